//! Freshness behind a slow link: the drone and the cache-server in one network namespace, one
//! viewer in another, joined by a veth pair whose server end is shaped with `tc tbf`. Both
//! namespaces are created here (`harness::netns`) and removed on every exit path; no traffic
//! leaves them. They are named `dcb-<PID>-<N>-a` (drone and cache-server) and
//! `dcb-<PID>-<N>-b` (the viewer), PID being relay-bench's and N counting its runs from 0.

use std::time::Duration;

use anyhow::{Context, bail};
use harness::Running;
use harness::netns::VethPair;

/// What to run.
#[derive(Debug, Clone)]
pub struct SlowLink {
    /// Path of the `drone` binary.
    pub drone: String,
    /// Path of the `cache-server` binary.
    pub cache_server: String,
    /// Link rate from the cache-server to the viewer, kbit/s.
    pub rate_kbit: u32,
    /// `--notsent-lowat` for the cache-server (0 switches the mechanism off).
    pub notsent_lowat: u32,
    /// Measurement window.
    pub duration: Duration,
    /// Slices of the window for the age series.
    pub intervals: usize,
}

/// How long the servers may take to log that they are ready.
const PATIENCE: Duration = Duration::from_secs(30);

/// Runs one slow-link measurement and returns the viewer's summary as JSON.
pub fn measure(link: &SlowLink) -> anyhow::Result<serde_json::Value> {
    let pair = VethPair::create("dcb", 0)
        .context("could not create network namespaces (this needs root and iproute2)")?;
    pair.shape(link.rate_kbit)?;
    let mut drone = pair.exec(&pair.a, &link.drone);
    let drone = Running::start(drone.args(["--listen", "127.0.0.1:9999", "--source", "test"]))?;
    drone.blocking_wait_for_line("drone serving", PATIENCE)?;
    let listen = format!("{}:9998", pair.a_addr);
    let mut cache = pair.exec(&pair.a, &link.cache_server);
    cache.args(["--upstream", "127.0.0.1:9999", "--listen", &listen, "--http", "off"]);
    let cache = Running::start(cache.args(["--notsent-lowat", &link.notsent_lowat.to_string()]))?;
    cache.blocking_wait_for_line("serving viewers", PATIENCE)?;

    let exe = std::env::current_exe().context("cannot find this program's path")?;
    let out = pair
        .exec(&pair.b, exe)
        .args(["--server", &listen, "--viewers", "1", "--json", "--warmup", "5"])
        .args(["--duration", &link.duration.as_secs_f64().to_string()])
        .args(["--intervals", &link.intervals.to_string()])
        .output()
        .context("could not run the viewer in its namespace")?;
    if !out.status.success() {
        bail!("viewer failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    // Drop order: the processes end before their namespaces go.
    drop((drone, cache));
    drop(pair);
    serde_json::from_slice(&out.stdout).with_context(|| {
        format!("viewer printed no JSON: {}", String::from_utf8_lossy(&out.stdout))
    })
}

/// Runs `link` twice, with the cache-server's low watermark at `link.notsent_lowat` and then
/// off (kernel default), and prints one line of results for each. Each run blocks on its
/// processes, so it runs on the blocking pool.
pub async fn run_on_and_off(link: SlowLink) -> anyhow::Result<()> {
    for lowat in [link.notsent_lowat, 0] {
        let label = match lowat {
            0 => "low watermark off".to_owned(),
            n => format!("low watermark {n} bytes"),
        };
        let run = SlowLink { notsent_lowat: lowat, ..link.clone() };
        let result = tokio::task::spawn_blocking(move || measure(&run)).await??;
        println!("{label}, link {} kbit/s: {result}", link.rate_kbit);
    }
    Ok(())
}
