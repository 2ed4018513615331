//! Data both ways, with the real binaries on loopback: the drone's `--meta-from` data as the
//! headless client prints it (`--print-meta`) and records it (the `--record` sidecar), and
//! messages from the client (`--send`, `--send-stdin`) as the drone hands them on
//! (`--messages-to stdout`), or drops them when it takes none.
//!
//! Needs the `drone` binary built beside the client (`cargo build --bins`).

mod common;

use std::io::Write;
use std::process::{Command, ExitStatus, Stdio};

use anyhow::{Context, ensure};
use bytes::Bytes;
use common::{DRONE_SIZE, PATIENCE, StdoutLines, start_drone};
use harness::Running;
use serde_json::Value;

/// Starts the real client watching `addr` with `flags`, stdout piped, and `stdin`.
fn start_client(
    addr: std::net::SocketAddr,
    flags: &[&str],
    stdin: Stdio,
) -> anyhow::Result<Running> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_client"));
    command.arg(addr.to_string()).args(flags).stdin(stdin).stdout(Stdio::piped());
    Running::start(&mut command)
}

/// Waits for `client` to exit and checks that it succeeded.
fn expect_success(client: &mut Running) -> anyhow::Result<ExitStatus> {
    let status = client.blocking_wait_exit(PATIENCE)?;
    ensure!(status.success(), "client exited with {status}; its log:\n{}", client.log());
    Ok(status)
}

fn json(line: &str) -> anyhow::Result<Value> {
    serde_json::from_str(line).with_context(|| format!("not JSON: {line:?}"))
}

/// The `n` of a `{"n":…}` metadata object; `None` for `null`.
fn counter(meta: &Value) -> anyhow::Result<Option<u64>> {
    if meta.is_null() {
        return Ok(None);
    }
    meta["n"].as_u64().map(Some).with_context(|| format!("unexpected metadata {meta}"))
}

/// The drone is fed `{"n":1}`, `{"n":2}`, … on stdin, each only once the client has printed
/// the one before on a repeated (not fresh) frame: so every value reaches some frame, and
/// each is seen fresh and then repeated. Every line the client prints must parse, and the
/// data must be bound to its frame: a value is fresh once, on the first frame that carries
/// it; a frame right after another repeats its data exactly unless its data is fresh.
#[test]
fn printed_metadata_is_bound_to_its_frame() -> anyhow::Result<()> {
    const FRAMES: usize = 90;
    let (meta_in, mut feed) = std::io::pipe()?;
    let (_drone, addr) = start_drone(&["--meta-from", "stdin"], meta_in.into(), Stdio::null())?;
    let frames = FRAMES.to_string();
    let flags = ["--headless", "--print-meta", "--json", "--frames", &frames, "--timeout", "60"];
    let mut client = start_client(addr, &flags, Stdio::null())?;
    let stdout = StdoutLines::of(&mut client)?;

    let mut lines = Vec::new();
    let mut fed = 0u64;
    while let Some(line) = stdout.next()? {
        let value = json(&line)?;
        if value.get("seq").is_some() {
            let (n, fresh) = (counter(&value["meta"])?, value["fresh"].as_bool());
            if fed == 0 || (n == Some(fed) && fresh == Some(false)) {
                fed += 1;
                writeln!(feed, r#"{{"n":{fed}}}"#)?;
            }
        }
        lines.push(value);
    }
    expect_success(&mut client)?;

    let (report, printed) = lines.split_last().context("the client printed nothing")?;
    ensure!(report["frames"] == FRAMES && report.get("seq").is_none(), "not last: {report}");
    ensure!(printed.len() == FRAMES, "{} metadata lines for {FRAMES} frames", printed.len());
    let mut previous: Option<(u64, Option<u64>)> = None;
    let (mut fresh_lines, mut repeated_lines, mut highest) = (0, 0, 0);
    for line in printed {
        let seq = line["seq"].as_u64().with_context(|| format!("no seq: {line}"))?;
        ensure!(line["capture_us"].as_u64().is_some_and(|us| us > 0), "no capture_us: {line}");
        let fresh = line["fresh"].as_bool().with_context(|| format!("no fresh: {line}"))?;
        let n = counter(&line["meta"])?;
        if let Some((before, before_n)) = previous {
            ensure!(seq > before, "seq {seq} after {before}");
            ensure!(n >= before_n, "data went back from {before_n:?} to {n:?} at seq {seq}");
            if seq == before + 1 && !fresh {
                ensure!(n == before_n, "seq {seq} is not fresh but its data changed: {line}");
            }
        }
        match n {
            Some(n) if fresh => {
                ensure!(n > highest, "{n} fresh again at seq {seq} ({highest} seen)");
                fresh_lines += 1;
            }
            Some(n) => {
                ensure!(n == highest || n == highest + 1, "{n} after {highest} at seq {seq}");
                repeated_lines += 1;
            }
            None => ensure!(!fresh && highest == 0, "no data but fresh, or after data: {line}"),
        }
        highest = highest.max(n.unwrap_or(0));
        previous = Some((seq, n));
    }
    println!("{fresh_lines} fresh, {repeated_lines} repeated; fed up to {fed}");
    ensure!(
        fresh_lines >= 5 && repeated_lines >= 5,
        "{fresh_lines} fresh, {repeated_lines} repeated"
    );
    ensure!(highest + 1 >= fed, "fed {fed} but saw only up to {highest}");
    Ok(())
}

/// `--record` writes `rec.jsonl` beside `rec.mjpeg`: one line per JPEG, in the same order,
/// each with the seq of the frame it describes (the test pattern draws its seq into the
/// picture, which is read back here).
#[test]
fn the_recordings_sidecar_has_a_line_per_jpeg_with_its_seq() -> anyhow::Result<()> {
    const FRAMES: usize = 30;
    let (meta_in, mut feed) = std::io::pipe()?;
    let (_drone, addr) = start_drone(&["--meta-from", "stdin"], meta_in.into(), Stdio::null())?;
    writeln!(feed, r#"{{"k":1}}"#)?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("rec.mjpeg");
    let frames = FRAMES.to_string();
    let record = path.display().to_string();
    let flags = ["--headless", "--frames", &frames, "--timeout", "60", "--record", &record];
    let mut client = start_client(addr, &flags, Stdio::null())?;
    expect_success(&mut client)?;

    let mjpeg = Bytes::from(std::fs::read(&path)?);
    let jpegs = drone::jpeg::split_jpegs(&mjpeg).frames;
    let sidecar = std::fs::read_to_string(dir.path().join("rec.jsonl"))?;
    let lines: Vec<&str> = sidecar.lines().collect();
    ensure!(jpegs.len() == FRAMES, "{} JPEGs in the recording", jpegs.len());
    ensure!(lines.len() == FRAMES, "{} lines in the sidecar", lines.len());
    let mut carried = 0;
    for (jpeg, line) in jpegs.iter().zip(&lines) {
        let line = json(line)?;
        let picture = image::load_from_memory(&jpeg.jpeg)?.to_rgb8();
        let (width, height) = DRONE_SIZE;
        let drawn = drone::source::pattern::read_strip(picture.as_raw(), width, height);
        ensure!(drawn == line["seq"].as_u64(), "JPEG of frame {drawn:?} beside line {line}");
        ensure!(line["capture_us"].as_u64().is_some() && line["fresh"].is_boolean(), "{line}");
        match &line["meta"] {
            Value::Null => ensure!(carried == 0, "data gone again: {line}"),
            meta if *meta == serde_json::json!({"k": 1}) => carried += 1,
            _ => anyhow::bail!("unexpected metadata: {line}"),
        }
    }
    ensure!(carried > 0, "no frame carried the drone's data:\n{sidecar}");
    Ok(())
}

/// The lines the drone writes for viewer messages (`--messages-to stdout`), `n` of them.
fn messages(drone: &StdoutLines, n: usize) -> anyhow::Result<Vec<Value>> {
    (0..n).map(|_| json(&drone.expect()?)).collect()
}

/// Checks that the drone's `line` is `payload` from the client named `name`.
fn check_message(line: &Value, name: &str, payload: &str) -> anyhow::Result<()> {
    ensure!(line["name"] == name, "not from {name}: {line}");
    let first_hop = line["path"][0].as_str().unwrap_or_default();
    ensure!(first_hop.starts_with("client/") && first_hop.contains("@127.0.0.1:"), "{line}");
    ensure!(line["payload"] == payload, "not {payload:?}: {line}");
    Ok(())
}

#[test]
fn sent_messages_reach_the_drone_under_the_clients_name() -> anyhow::Result<()> {
    let (mut drone, addr) =
        start_drone(&["--messages-to", "stdout"], Stdio::null(), Stdio::piped())?;
    let out = StdoutLines::of(&mut drone)?;
    let sent = ["X", r#"{"cmd":"home","note":"café"}"#];
    let flags = ["--headless", "--json", "--frames", "1", "--name", "ground-7"];
    let flags = [&flags[..], &["--send", sent[0], "--send", sent[1]]].concat();
    let mut client = start_client(addr, &flags, Stdio::null())?;
    let report = StdoutLines::of(&mut client)?;
    expect_success(&mut client)?;

    // Sent after connecting, and before leaving even though one frame was all it waited for.
    for (line, payload) in messages(&out, 2)?.iter().zip(sent) {
        check_message(line, "ground-7", payload)?;
    }
    let report = json(&report.expect()?)?;
    ensure!(report["messages_sent"] == 2 && report["messages_dropped"] == 0, "{report}");
    Ok(())
}

#[test]
fn lines_typed_on_stdin_are_sent_as_they_come() -> anyhow::Result<()> {
    let (mut drone, addr) =
        start_drone(&["--messages-to", "stdout"], Stdio::null(), Stdio::piped())?;
    let out = StdoutLines::of(&mut drone)?;
    let (typed, mut keyboard) = std::io::pipe()?;
    let mut client =
        start_client(addr, &["--headless", "--send-stdin", "--name", "typist"], typed.into())?;
    let report = StdoutLines::of(&mut client)?;
    client.blocking_wait_for_line("connected", PATIENCE)?;

    writeln!(keyboard, "first")?;
    check_message(&messages(&out, 1)?[0], "typist", "first")?;
    // A blank line is nothing to send; a line over 4 KiB is refused, with an error.
    writeln!(keyboard, "\n{}\r\nsecond line\r", "x".repeat(4097))?;
    check_message(&messages(&out, 1)?[0], "typist", "second line")?;
    client.blocking_wait_for_line("line from stdin not sent: it is longer than 4096", PATIENCE)?;

    client.terminate()?;
    expect_success(&mut client)?;
    let report = report.rest()?.join("\n");
    ensure!(report.contains(", 2 messages sent, 0 dropped"), "report: {report}");
    Ok(())
}

/// A drone without `--messages-to` takes no messages: the client drops them, counts them and
/// says why once. (Without `--name`, the client is named after the host.)
#[test]
fn messages_to_a_drone_that_takes_none_are_dropped_and_said_once() -> anyhow::Result<()> {
    let (drone, addr) = start_drone(&[], Stdio::null(), Stdio::null())?;
    let flags = ["--headless", "--json", "--frames", "10", "--send", "a", "--send", "b"];
    let flags = [&flags[..], &["--send", "c"]].concat();
    let mut client = start_client(addr, &flags, Stdio::null())?;
    let report = StdoutLines::of(&mut client)?;
    expect_success(&mut client)?;
    let report = json(&report.expect()?)?;
    ensure!(report["messages_sent"] == 0 && report["messages_dropped"] == 3, "{report}");
    let log = client.log();
    let said = log.lines().filter(|l| l.contains("takes no viewer messages")).count();
    ensure!(said == 1, "said {said} times that the drone takes no messages:\n{log}");
    let joined = drone.blocking_wait_for_line("viewer joined", PATIENCE)?;
    let host = format!("name={}", client::default_name());
    ensure!(joined.contains(&host), "not named after the host ({host}): {joined}");
    Ok(())
}

/// `--send` longer than a message can carry stops the client before it starts.
#[test]
fn a_send_over_4_kib_is_refused_at_parse_time() -> anyhow::Result<()> {
    let long = "x".repeat(4097);
    let out = Command::new(env!("CARGO_BIN_EXE_client"))
        .args(["127.0.0.1:9", "--headless", "--send", &long])
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(out.status.code() == Some(2), "exited with {}: {stderr}", out.status);
    ensure!(stderr.contains("is 4097 bytes; a message carries at most 4096"), "{stderr}");
    Ok(())
}
