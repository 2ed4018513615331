//! The real `client` binary, headless, against a source that sends frames whose JPEG claims
//! 60000×60000 (a few hundred bytes each) between good ones. A viewer that sized its buffer
//! from the JPEG would try to allocate 10.8 GB per such frame. It must skip them, count them,
//! say so once, keep going, and stay small. (The window path is in `window.rs`.)

mod common;

use std::io::Read;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, ensure};
use common::{HostileSource, Shot, capped, peak_rss_kib};
use drone::Format;
use harness::Running;

/// Upper bound for anything the test waits on; generous for a loaded 2-core machine.
const PATIENCE: Duration = Duration::from_secs(30);

/// Small good frames, fast: the test is about the bad ones.
const FORMAT: Format = Format { width: 320, height: 240, fps: 50, quality: 80 };

/// Good, lying, good, oversized, …: every other frame is hostile.
const SCRIPT: &[Shot] = &[Shot::Good, Shot::LyingJpeg, Shot::Good, Shot::HugeHeader];

/// Frames the client is asked for: 30 good, 30 hostile.
const FRAMES: u64 = 60;

/// The source holds after this many frames while the test reads the client's memory. The
/// last frame before the hold (seq 30) is a good one.
const HOLD_AFTER: u64 = 31;

/// Most resident memory a client may ever have used: what issue #8 allows.
const MAX_RSS_KIB: u64 = 64 * 1024;

/// What the client logs for the first frame of a burst that does not decode.
const FIRST_FAILURE: &str = "frame did not decode; skipping it";

#[test]
fn headless_client_skips_and_counts_frames_that_claim_60000x60000() -> anyhow::Result<()> {
    let source = HostileSource::start(FORMAT, SCRIPT, Some(HOLD_AFTER))?;
    let mut command = capped(env!("CARGO_BIN_EXE_client"));
    command
        .args([&source.addr.to_string(), "--headless", "--json", "--timeout", "60"])
        .args(["--frames", &FRAMES.to_string()])
        // A line per frame received: the readiness signal for "every frame before the hold
        // went through the decoder".
        .env("RUST_LOG", "info,client::headless=trace")
        .stdout(Stdio::piped());
    let mut client = Running::start(&mut command)?;

    // Seq 30 logged means seq 0–29 were decoded (or refused): 15 of them hostile.
    let last_before_hold = format!("frame seq={} ", HOLD_AFTER - 1);
    client.blocking_wait_for_line(&last_before_hold, PATIENCE)?;
    let peak = peak_rss_kib(client.pid())?;
    println!("peak RSS after 15 hostile frames: {:.1} MiB", peak as f64 / 1024.0);
    source.release();

    let status = client.blocking_wait_exit(PATIENCE)?;
    let log = client.log();
    ensure!(status.code() == Some(0), "client exited with {status}; its log:\n{log}");
    ensure!(
        peak < MAX_RSS_KIB,
        "client's peak RSS was {:.1} MiB after 15 hostile frames",
        peak as f64 / 1024.0
    );

    let mut stdout = String::new();
    client.take_stdout().context("no stdout")?.read_to_string(&mut stdout)?;
    let report: serde_json::Value =
        serde_json::from_str(&stdout).with_context(|| format!("not a JSON report: {stdout:?}"))?;
    let field = |key: &str| report[key].as_u64().with_context(|| format!("no {key} in {report}"));
    ensure!(field("frames")? == FRAMES, "{report}");
    ensure!(field("distinct")? == FRAMES, "{report}");
    ensure!(field("decode_errors")? == FRAMES / 2, "hostile frames not counted: {report}");
    let size = (field("width")?, field("height")?);
    ensure!(size == (320, 240), "the last good picture's size is not reported: {report}");

    // Once per burst, not once per frame: the hostile frames never stop for long here.
    let firsts = log.lines().filter(|line| line.contains(FIRST_FAILURE)).count();
    ensure!(firsts == 1, "{firsts} lines say {FIRST_FAILURE:?} for 30 bad frames; log:\n{log}");
    Ok(())
}
