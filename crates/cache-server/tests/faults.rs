//! Faults with the real binaries on loopback: a drone killed and restarted, the middle of a
//! relay chain killed and restarted, the cache-server restarted under its clients, and
//! SIGINT/SIGTERM on each server. Network faults (link cut, loss, delay) are in `netns.rs`.
//!
//! The outages themselves last a fixed time (a couple of seconds, as a restart would);
//! everything else waits on readiness lines or on frames.

mod common;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use common::{
    PATIENCE, RawViewer, cache_cmd, client_bin, inprocess_drone, start_cache, start_cache_at,
    start_drone, start_drone_at,
};
use framing::Message;
use harness::Running;
use relay::{SubscribeOptions, subscribe};
use tokio::sync::mpsc;

/// How long a killed process stays away before it is restarted.
const OUTAGE: Duration = Duration::from_secs(2);

/// Viewers must be back within this of the restarted upstream saying it is ready.
const RESUME_WITHIN: Duration = Duration::from_secs(1);

/// A viewer in this process that records when each frame arrives (and its seq). Fails if its
/// connection ends: a restart upstream must not reach it.
fn frame_clock(addr: SocketAddr) -> mpsc::UnboundedReceiver<anyhow::Result<(Instant, u64)>> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut sub = match subscribe(&addr.to_string(), &SubscribeOptions::default()).await {
            Ok(sub) => sub,
            Err(err) => return drop(tx.send(Err(err.into()))),
        };
        loop {
            let item = match sub.next_frame().await {
                Ok(Some(frame)) => Ok((Instant::now(), frame.header().seq)),
                Ok(None) => Err(anyhow::anyhow!("the viewer's stream ended")),
                Err(err) => Err(anyhow::anyhow!("the viewer was disconnected: {err}")),
            };
            let ended = item.is_err();
            if tx.send(item).is_err() || ended {
                return;
            }
        }
    });
    rx
}

/// Waits for `n` frames at the viewer.
async fn frames(
    clock: &mut mpsc::UnboundedReceiver<anyhow::Result<(Instant, u64)>>,
    n: usize,
) -> anyhow::Result<Vec<(Instant, u64)>> {
    let mut got = Vec::new();
    while got.len() < n {
        match tokio::time::timeout(PATIENCE, clock.recv()).await? {
            Some(item) => got.push(item?),
            None => anyhow::bail!("viewer task ended"),
        }
    }
    Ok(got)
}

/// Empties what has arrived so far; fails if the viewer was disconnected meanwhile.
fn drain(
    clock: &mut mpsc::UnboundedReceiver<anyhow::Result<(Instant, u64)>>,
) -> anyhow::Result<()> {
    while let Ok(item) = clock.try_recv() {
        item?;
    }
    Ok(())
}

/// The client binary, headless, printing its JSON report at the end.
fn start_client(addr: SocketAddr, extra: &[&str]) -> anyhow::Result<Running> {
    let mut cmd = Command::new(client_bin()?);
    cmd.arg(addr.to_string()).args(["--headless", "--json"]).args(extra).stdout(Stdio::piped());
    Running::start(&mut cmd)
}

/// Stops a client with SIGTERM and returns its report.
async fn client_report(client: &mut Running) -> anyhow::Result<serde_json::Value> {
    client.terminate()?;
    client_exit_report(client).await
}

/// Waits for a client to exit by itself and returns its report.
async fn client_exit_report(client: &mut Running) -> anyhow::Result<serde_json::Value> {
    let exit = client.wait_exit(PATIENCE).await?;
    let mut out = String::new();
    std::io::Read::read_to_string(&mut client.take_stdout().expect("piped"), &mut out)?;
    anyhow::ensure!(exit.success(), "client exited with {exit}: {}\n{out}", client.log());
    Ok(serde_json::from_str(&out)?)
}

/// Bytes sent but not yet acknowledged on the established socket matching `filter` (`ss`'s
/// Send-Q). `ss` runs on the blocking pool.
async fn send_queue(filter: &str) -> anyhow::Result<u64> {
    let filter = filter.to_owned();
    let ss = move || Command::new("ss").args(["-tnH", "state", "established", &filter]).output();
    let out = tokio::task::spawn_blocking(ss).await??;
    let text = String::from_utf8_lossy(&out.stdout);
    let field = text.split_whitespace().nth(1).context("no such socket")?;
    Ok(field.parse()?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drone_killed_mid_frame_comes_back_without_viewers_reconnecting() -> anyhow::Result<()> {
    // Frames of a few hundred kB: the kernel takes each in several pieces, so a blocked
    // writer is in the middle of one.
    let big = ["--width", "1280", "--height", "720", "--fps", "15"];
    let (mut drone, drone_addr) = start_drone("127.0.0.1:0", &big).await?;
    let mut cmd = cache_cmd(&drone_addr.to_string(), "127.0.0.1:0", &[]);
    cmd.env("RUST_LOG", "info,cache_server::upstream=debug"); // every redial attempt
    let (cache, cache_addr, _) = start_cache_at(cmd).await?;
    let mut clock = frame_clock(cache_addr);
    let mut client = start_client(cache_addr, &[])?;
    client.wait_for_line("connected", PATIENCE).await?;
    frames(&mut clock, 10).await?;

    // Kill the drone in the middle of writing a frame: pause the cache-server so the drone's
    // socket fills up and its writer blocks partway through a frame, kill the drone, resume.
    cache.signal("STOP")?;
    // Blocked: a send queue that stays put while the drone has new frames to send.
    let filter = format!("( sport = :{} )", drone_addr.port());
    let deadline = Instant::now() + PATIENCE;
    let (mut last, mut same) = (0, 0);
    let paused = Instant::now();
    while same < 3 {
        anyhow::ensure!(Instant::now() < deadline, "the drone's socket never filled up");
        tokio::time::sleep(Duration::from_millis(50)).await;
        let queued = send_queue(&filter).await?;
        same = if queued == last && queued >= 16 * 1024 { same + 1 } else { 0 };
        last = queued;
    }
    println!("the drone's writer blocked {:?} after the pause", paused.elapsed());
    drone.signal("KILL")?;
    drone.wait_exit(PATIENCE).await?;
    cache.signal("CONT")?;
    let lost = cache.wait_for_line("upstream lost; redialling", PATIENCE).await?;
    assert!(lost.contains("in the middle of a message"), "not killed mid-frame: {lost}");
    let line = cache.wait_for_line("upstream unavailable", PATIENCE).await?;
    assert!(line.contains("backoff up to 500ms"), "{line}");
    tokio::time::sleep(OUTAGE).await;
    drain(&mut clock)?;

    let (_drone, _, ready) = start_drone_at(&drone_addr.to_string(), &big).await?;
    let (next, _) = frames(&mut clock, 1).await?[0];
    let resumed = next.saturating_duration_since(ready);
    println!("viewer resumed {resumed:?} after the new drone was ready");
    assert!(resumed < RESUME_WITHIN, "viewer resumed only {resumed:?} after the drone was back");

    // Redials backed off, and never paused longer than the cap (500 ms).
    let mut attempts = Vec::new();
    loop {
        let (at, line) = cache.wait_for_line_since("upstream", None, PATIENCE).await?;
        if line.contains("upstream back") {
            break;
        }
        if line.contains("still unavailable") {
            attempts.push(at);
        }
    }
    let gaps: Vec<Duration> = attempts.windows(2).map(|w| w[1] - w[0]).collect();
    let longest = gaps.iter().max().copied().unwrap_or_default();
    assert!(gaps.len() >= 3, "too few redials to judge: {gaps:?}");
    assert!(longest < Duration::from_millis(650), "a redial pause above the cap: {gaps:?}");
    assert!(longest > Duration::from_millis(350), "redials did not back off: {gaps:?}");
    frames(&mut clock, 10).await?;

    let report = client_report(&mut client).await?;
    assert_eq!(report["reconnects"], 0, "the client was dropped: {report}");
    assert_eq!(report["source_restarts"], 1, "{report}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_middle_of_a_chain_killed_and_restarted_keeps_the_far_viewers() -> anyhow::Result<()> {
    let drone = inprocess_drone(30).await?;
    let (mut near, near_addr) = start_cache(&drone.to_string(), "127.0.0.1:0", &[]).await?;
    let (far, far_addr) = start_cache(&near_addr.to_string(), "127.0.0.1:0", &[]).await?;
    let mut clock = frame_clock(far_addr);
    let mut client = start_client(far_addr, &[])?;
    client.wait_for_line("connected", PATIENCE).await?;
    frames(&mut clock, 10).await?;

    near.signal("KILL")?;
    near.wait_exit(PATIENCE).await?;
    far.wait_for_line("upstream lost; redialling", PATIENCE).await?;
    tokio::time::sleep(OUTAGE).await;
    drain(&mut clock)?;

    let (_near, _, ready) =
        start_cache_at(cache_cmd(&drone.to_string(), &near_addr.to_string(), &[])).await?;
    let (next, _) = frames(&mut clock, 1).await?[0];
    let resumed = next.saturating_duration_since(ready);
    println!("far viewer resumed {resumed:?} after the middle cache-server was ready");
    assert!(resumed < RESUME_WITHIN, "far viewer resumed only {resumed:?} after the restart");
    far.wait_for_line("upstream back", PATIENCE).await?;
    frames(&mut clock, 10).await?;

    let report = client_report(&mut client).await?;
    assert_eq!(report["reconnects"], 0, "the far client was dropped: {report}");
    assert_eq!(report["out_of_order"], 0, "{report}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_reconnect_by_themselves_when_the_cache_server_restarts() -> anyhow::Result<()> {
    // 10 fps: the client wants 50 frames, 5 s' worth, so both restarts below happen while it
    // is still collecting, and it can only finish if frames continue after each.
    let drone = inprocess_drone(10).await?.to_string();
    let (mut cache, addr) = start_cache(&drone, "127.0.0.1:0", &[]).await?;
    let mut client = start_client(addr, &["--frames", "50", "--timeout", "60"])?;
    client.wait_for_line("connected", PATIENCE).await?;

    // A clean restart: the client gets a goodbye.
    cache.terminate()?;
    assert!(cache.wait_exit(PATIENCE).await?.success(), "{}", cache.log());
    let (mut cache, _) = start_cache(&drone, &addr.to_string(), &[]).await?;
    client.wait_for_line("connected", PATIENCE).await?;

    // A crash: the connection just breaks.
    cache.signal("KILL")?;
    cache.wait_exit(PATIENCE).await?;
    let (_cache, _) = start_cache(&drone, &addr.to_string(), &[]).await?;
    client.wait_for_line("connected", PATIENCE).await?;

    let report = client_exit_report(&mut client).await?;
    assert_eq!(report["frames"], 50, "{report}");
    assert_eq!(report["reconnects"], 2, "{report}");
    assert_eq!(report["out_of_order"], 0, "{report}");
    Ok(())
}

/// Sends `signal` to a serving binary with a viewer attached (and a peer that has not said
/// hello yet), and checks the viewer gets a goodbye, new connections are not served, and the
/// process exits 0 within a second.
async fn stops_cleanly(mut server: Running, addr: SocketAddr, signal: &str) -> anyhow::Result<()> {
    let _silent = tokio::net::TcpStream::connect(addr).await?;
    let mut viewer = RawViewer::connect(addr).await?;
    let mut frames = 0;
    while frames < 3 {
        match viewer.next(PATIENCE).await? {
            Some(Message::Frame(_)) => frames += 1,
            Some(Message::Heartbeat) => {} // a source may send these before its first frame
            other => panic!("expected a frame: {other:?}"),
        }
    }
    let sent = Instant::now();
    server.signal(signal)?;
    let goodbye = loop {
        match viewer.next(Duration::from_secs(1)).await? {
            Some(Message::Frame(_) | Message::Heartbeat) => continue,
            other => break other,
        }
    };
    assert!(matches!(goodbye, Some(Message::Goodbye(_))), "no goodbye but {goodbye:?}");
    // No longer accepting: a new viewer is refused, or at least never served.
    let late = tokio::time::timeout(Duration::from_millis(500), RawViewer::connect(addr)).await;
    assert!(!matches!(late, Ok(Ok(_))), "a new viewer was served after SIG{signal}");
    let exit = server.wait_exit(Duration::from_secs(1).saturating_sub(sent.elapsed())).await?;
    let took = sent.elapsed();
    assert!(exit.success(), "exit {exit} after SIG{signal}; log:\n{}", server.log());
    assert!(took < Duration::from_secs(1), "took {took:?} to exit after SIG{signal}");
    assert!(server.log().contains(&format!("SIG{signal} received")), "{}", server.log());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drone_says_goodbye_and_exits_0_on_sigint() -> anyhow::Result<()> {
    let (drone, addr) = start_drone("127.0.0.1:0", &[]).await?;
    stops_cleanly(drone, addr, "INT").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drone_says_goodbye_and_exits_0_on_sigterm() -> anyhow::Result<()> {
    let (drone, addr) = start_drone("127.0.0.1:0", &[]).await?;
    stops_cleanly(drone, addr, "TERM").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_server_says_goodbye_and_exits_0_on_sigint() -> anyhow::Result<()> {
    let drone = inprocess_drone(30).await?;
    let (cache, addr) = start_cache(&drone.to_string(), "127.0.0.1:0", &[]).await?;
    stops_cleanly(cache, addr, "INT").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_server_says_goodbye_and_exits_0_on_sigterm() -> anyhow::Result<()> {
    let drone = inprocess_drone(30).await?;
    let (cache, addr) = start_cache(&drone.to_string(), "127.0.0.1:0", &[]).await?;
    stops_cleanly(cache, addr, "TERM").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_goodbye_ends_a_subscription_cleanly() -> anyhow::Result<()> {
    // What a relay or client sees of the goodbye above: `next_frame` returns Ok(None).
    let (drone, addr) = start_drone("127.0.0.1:0", &[]).await?;
    let mut sub = subscribe(&addr.to_string(), &SubscribeOptions::default()).await?;
    assert!(sub.next_frame().await?.is_some());
    drone.signal("INT")?;
    let ended = tokio::time::timeout(Duration::from_secs(1), async {
        loop {
            match sub.next_frame().await {
                Ok(Some(_)) => continue,
                other => return other,
            }
        }
    })
    .await?;
    assert!(matches!(ended, Ok(None)), "the stream did not end cleanly: {ended:?}");
    Ok(())
}
