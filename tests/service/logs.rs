//! What reaches a log that is not a terminal (a pipe here; the journal or a file in real
//! life): one line per event, no escape codes in either format, and with `--log-format json`
//! one JSON object per line.
//!
//! Each binary runs through a session that logs at several levels, with fields and spans: a
//! drone and a cache-server relaying to a headless client, a peer that sends the servers
//! bytes with escape codes in them (a warning naming the peer), SIGTERM, and a drone whose
//! source does not open (the final `error:` line).

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use harness::Running;

use super::PATIENCE;

/// Everything the three binaries wrote on stderr during one session, per binary, and what
/// the failing drone wrote.
struct Session {
    drone: String,
    cache: String,
    client: String,
    failed: String,
}

fn start(bin: &str, format: &str, args: &[&str]) -> anyhow::Result<Running> {
    let mut cmd = Command::new(harness::sibling_bin(bin)?);
    cmd.args(args).args(["--log-format", format]).env_remove("JOURNAL_STREAM");
    // Not a terminal, whatever the test runner's own stderr is.
    cmd.stdin(Stdio::null()).stdout(Stdio::null());
    Running::start(&mut cmd)
}

/// A peer that sends escape codes and a bell instead of a hello.
fn hostile_peer(addr: SocketAddr) -> anyhow::Result<()> {
    let mut conn = TcpStream::connect_timeout(&addr, PATIENCE)?;
    conn.write_all(b"\x1b[31mred\x1b[0m\x07 and a line\nbreak\r\n")?;
    Ok(())
}

/// Waits for the readiness line in either format; in JSON the address is a field.
async fn ready_addr(server: &Running, needle: &str) -> anyhow::Result<SocketAddr> {
    let line = server.wait_for_line(needle, PATIENCE).await?;
    if let Ok(json) = serde_json::from_str::<serde_json::Value>(&line) {
        let addr = json["addr"].as_str().ok_or_else(|| anyhow::anyhow!("no addr in {line}"))?;
        return Ok(addr.parse()?);
    }
    super::addr_in(&line)
}

async fn session(format: &str) -> anyhow::Result<Session> {
    let drone = start("drone", format, &["--listen", "127.0.0.1:0", "--source", "test"])?;
    let drone_addr = ready_addr(&drone, "drone serving").await?;
    let upstream = drone_addr.to_string();
    let cache = start(
        "cache-server",
        format,
        &[
            "--listen",
            "127.0.0.1:0",
            "--http",
            "off",
            "--upstream",
            &upstream,
            "--summary-every",
            "0.2",
        ],
    )?;
    let cache_addr = ready_addr(&cache, "cache-server serving viewers").await?;
    let server = cache_addr.to_string();
    let mut client = start(
        "client",
        format,
        &[&server, "--headless", "--frames", "5", "--timeout", "20", "--name", "log-test"],
    )?;
    let status = client.wait_exit(PATIENCE).await?;
    anyhow::ensure!(status.success(), "client: {status}; log:\n{}", client.log());
    hostile_peer(drone_addr)?;
    hostile_peer(cache_addr)?;
    drone.wait_for_line("dropped peer during handshake", PATIENCE).await?;
    cache.wait_for_line("dropped peer during handshake", PATIENCE).await?;
    let (mut drone, mut cache) = (drone, cache);
    for server in [&mut cache, &mut drone] {
        server.terminate()?;
        let status = server.wait_exit(PATIENCE).await?;
        anyhow::ensure!(status.success(), "exit {status}; log:\n{}", server.log());
    }
    let args = ["--listen", "127.0.0.1:0", "--source", "/nonexistent/dronecast/clip.mjpeg"];
    let mut failed = start("drone", format, &args)?;
    let status = failed.wait_exit(PATIENCE).await?;
    anyhow::ensure!(status.code() == Some(1), "exit {status}; log:\n{}", failed.log());
    // The reader thread may still be on the last lines: wait for the end of stderr.
    for running in [&drone, &cache, &client, &failed] {
        let _ = running.wait_for_line("\u{0}never", Duration::from_secs(5)).await;
    }
    Ok(Session {
        drone: drone.log(),
        cache: cache.log(),
        client: client.log(),
        failed: failed.log(),
    })
}

fn no_escape_codes(format: &str, session: &Session) -> anyhow::Result<()> {
    for (who, log) in [
        ("drone", &session.drone),
        ("cache-server", &session.cache),
        ("client", &session.client),
        ("failing drone", &session.failed),
    ] {
        anyhow::ensure!(!log.is_empty(), "{who} logged nothing");
        anyhow::ensure!(
            !log.contains('\u{1b}'),
            "{who} wrote an escape code to a pipe with --log-format {format}:\n{log}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_logs_are_plain_lines_off_a_terminal() -> anyhow::Result<()> {
    let session = session("text").await?;
    no_escape_codes("text", &session)?;
    // One line per event: each starts with its timestamp (or is main's last word).
    for log in [&session.drone, &session.cache, &session.client, &session.failed] {
        for line in log.lines() {
            let stamped = line.len() > 20 && line.as_bytes()[4] == b'-' && line.contains('T');
            anyhow::ensure!(stamped || line.starts_with("error: "), "not an event line: {line:?}");
        }
    }
    anyhow::ensure!(session.drone.contains("dropped peer during handshake"), "{}", session.drone);
    let last = session.failed.lines().last().unwrap_or_default();
    anyhow::ensure!(last.starts_with("error: could not open source"), "last line: {last:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_parse_line_by_line() -> anyhow::Result<()> {
    let session = session("json").await?;
    no_escape_codes("json", &session)?;
    let mut warnings = 0;
    for (who, log) in [
        ("drone", &session.drone),
        ("cache-server", &session.cache),
        ("client", &session.client),
        ("failing drone", &session.failed),
    ] {
        for line in log.lines() {
            let event: serde_json::Value = serde_json::from_str(line)
                .map_err(|e| anyhow::anyhow!("{who}: not JSON ({e}): {line:?}"))?;
            for key in ["timestamp", "level", "message", "target"] {
                anyhow::ensure!(event.get(key).is_some(), "{who}: no {key:?} in {line}");
            }
            if event["level"] == "WARN" && event["message"] == "dropped peer during handshake" {
                // The peer's address comes from the span, the problem from a field.
                anyhow::ensure!(event["span"]["peer"].is_string(), "no span peer: {line}");
                anyhow::ensure!(event["err"].is_string(), "no err field: {line}");
                warnings += 1;
            }
        }
    }
    anyhow::ensure!(warnings == 2, "{warnings} handshake warnings, expected one per server");
    let last = session.failed.lines().last().unwrap_or_default();
    let last: serde_json::Value = serde_json::from_str(last)?;
    anyhow::ensure!(last["level"] == "ERROR", "last line: {last}");
    let message = last["message"].as_str().unwrap_or_default();
    anyhow::ensure!(message.starts_with("error: could not open source"), "last line: {last}");
    Ok(())
}
