//! The real `client` given two relays of one drone (`client A,B`): when A is killed it is
//! watching B's frames within 2 s, never a frame older than (or the same as) one it showed,
//! and its report says it failed over and to where. Then the drone restarts: its `seq`
//! starts again from 0, with newer capture times, and the client shows the new run rather
//! than dropping it as old. And an address that refuses passes the client on to the next;
//! when every address refuses, it gives up with the refusal.

mod common;

use std::io::Read;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use common::PATIENCE;
use harness::Running;

/// The client's log line for each frame it shows (with `RUST_LOG=…client::headless=trace`).
const FRAME: &str = "client::headless: frame";

fn drone(listen: &str) -> anyhow::Result<(Running, SocketAddr)> {
    let mut command = Command::new(harness::sibling_bin("drone")?);
    command.args(["--listen", listen, "--source", "test", "--width", "320", "--height", "240"]);
    let drone = Running::start(command.args(["--fps", "20", "--http", "off"]))?;
    let addr = drone.blocking_wait_for_addr("drone serving", PATIENCE)?;
    Ok((drone, addr))
}

fn relay(upstream: SocketAddr) -> anyhow::Result<(Running, SocketAddr)> {
    let mut command = Command::new(harness::sibling_bin("cache-server")?);
    command.args(["--upstream", &upstream.to_string(), "--listen", "127.0.0.1:0"]);
    let relay = Running::start(command.args(["--http", "off", "--summary-every", "0"]))?;
    let addr = relay.blocking_wait_for_addr("serving viewers", PATIENCE)?;
    Ok((relay, addr))
}

fn start_client(servers: &str, extra: &[&str]) -> anyhow::Result<Running> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_client"));
    command.args([servers, "--headless", "--json", "--name", "failover"]).args(extra);
    command.env("RUST_LOG", "info,client::headless=trace").stdout(Stdio::piped());
    Running::start(&mut command)
}

/// The `seq=` of a frame line.
fn seq(line: &str) -> Option<u64> {
    line.split_whitespace().find_map(|w| w.strip_prefix("seq=")).and_then(|s| s.parse().ok())
}

/// Waits for `n` frame lines read after `since`; returns their instants and sequence numbers.
fn frames(client: &Running, n: usize, since: Instant) -> anyhow::Result<Vec<(Instant, u64)>> {
    (0..n)
        .map(|_| {
            let (at, line) = client.blocking_wait_for_line_since(FRAME, Some(since), PATIENCE)?;
            Ok((at, seq(&line).with_context(|| format!("no seq in {line:?}"))?))
        })
        .collect()
}

/// Stops the client and returns its JSON report.
fn report(mut client: Running) -> anyhow::Result<serde_json::Value> {
    client.terminate()?;
    let exit = client.blocking_wait_exit(PATIENCE)?;
    anyhow::ensure!(exit.success(), "client exited with {exit}: {}", client.log());
    let mut out = String::new();
    client.take_stdout().context("no stdout")?.read_to_string(&mut out)?;
    Ok(serde_json::from_str(&out)?)
}

#[test]
fn a_killed_relay_fails_over_to_the_next_in_order_and_a_drone_restart_is_shown()
-> anyhow::Result<()> {
    let (mut drone_run, drone_addr) = drone("127.0.0.1:0")?;
    let (mut a, a_addr) = relay(drone_addr)?;
    let (_b, b_addr) = relay(drone_addr)?;
    let client = start_client(&format!("{a_addr},{b_addr}"), &[])?;
    let first = client.blocking_wait_for_line("connected", PATIENCE)?;
    assert!(first.contains(&format!("addr={a_addr}")), "not the first address: {first}");
    let mut shown = frames(&client, 10, Instant::now() - PATIENCE)?;

    a.signal("KILL")?;
    let killed = Instant::now();
    a.blocking_wait_exit(PATIENCE)?;
    let over = client.blocking_wait_for_line("connected (failed over)", PATIENCE)?;
    assert!(over.contains(&format!("addr={b_addr}")), "{over}");
    let after = frames(&client, 20, killed)?;
    let again = after[0].0 - killed;
    println!("frames again {again:?} after the relay was killed");
    assert!(again < Duration::from_secs(2), "frames again only {again:?} after the kill");
    shown.extend(after);
    let seqs: Vec<u64> = shown.iter().map(|(_, seq)| *seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "a frame out of order or twice: {seqs:?}");

    // The drone restarts on the same port: seq from 0 again, later capture times.
    let before_restart = *seqs.last().context("no frames")?;
    drone_run.signal("KILL")?;
    drone_run.blocking_wait_exit(PATIENCE)?;
    let (_drone, _) = drone(&drone_addr.to_string())?;
    let restarted = Instant::now();
    let new_run = frames(&client, 10, restarted)?;
    assert!(new_run[0].1 < before_restart, "not a new run: {new_run:?} after {before_restart}");
    let restart_gap = new_run[0].0 - restarted;
    assert!(restart_gap < Duration::from_secs(2), "the new run shown only after {restart_gap:?}");

    let report = report(client)?;
    println!("{report}");
    assert_eq!(report["failovers"], 1, "{report}");
    assert_eq!(report["reconnects"], 1, "{report}");
    assert_eq!(report["addr"], b_addr.to_string(), "{report}");
    assert_eq!(report["out_of_order"], 0, "{report}");
    assert_eq!(report["source_restarts"], 1, "{report}");
    assert_eq!(report["distinct"], report["frames"], "a frame shown twice: {report}");
    Ok(())
}

#[test]
fn an_address_that_refuses_passes_on_to_the_next_and_all_refusing_is_an_error() -> anyhow::Result<()>
{
    let (_drone, drone_addr) = drone("127.0.0.1:0")?;
    let (_relay, addr) = relay(drone_addr)?;
    // A stream the relay does not have: refused. The second address asks for the default.
    let client =
        start_client(&format!("{addr}/nope,{addr}"), &["--frames", "5", "--timeout", "30"])?;
    client.blocking_wait_for_line("refused", PATIENCE)?;
    frames(&client, 5, Instant::now() - PATIENCE)?;
    let mut all = start_client(&format!("{addr}/nope,{addr}/nada"), &["--frames", "5"])?;
    let exit = all.blocking_wait_exit(PATIENCE)?;
    assert_eq!(exit.code(), Some(1), "{}", all.log());
    assert!(all.log().contains("no stream named 'nada'"), "{}", all.log());
    Ok(())
}
