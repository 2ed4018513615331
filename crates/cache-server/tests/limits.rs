//! Limits and timeouts of the real `cache-server` binary (the drone serves through the same
//! `relay::Server`): the viewer limit, the handshake and viewer timeouts, keepalive on every
//! connection, and accept back-off when file descriptors run out.

mod common;

use std::io::ErrorKind;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{PATIENCE, RawViewer, client_bin, inprocess_drone, start_cache, start_drone};
use framing::{Hello, Message, Role};
use harness::Running;
use harness::usage::Pid;
use relay::{SubscribeOptions, subscribe};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// Reads and discards until the peer closes; how long that took, or an error if it did not
/// close within `patience`.
async fn wait_closed(stream: &mut TcpStream, patience: Duration) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let mut sink = vec![0u8; 256 * 1024];
    loop {
        match tokio::time::timeout(patience, stream.read(&mut sink)).await {
            Ok(Ok(0)) => return Ok(start.elapsed()),
            Ok(Ok(_)) => continue,
            Ok(Err(err)) if err.kind() == ErrorKind::ConnectionReset => return Ok(start.elapsed()),
            Ok(Err(err)) => anyhow::bail!("read failed after {:?}: {err}", start.elapsed()),
            Err(_) => anyhow::bail!("still open after {:?}", start.elapsed()),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_over_the_limit_is_refused_and_the_client_says_so() -> anyhow::Result<()> {
    let drone = inprocess_drone(15).await?;
    let (cache, addr) =
        start_cache(&drone.to_string(), "127.0.0.1:0", &["--max-viewers", "2"]).await?;
    let addr = addr.to_string();
    let client = |extra: &[&str]| -> anyhow::Result<Running> {
        Running::start(Command::new(client_bin()?).arg(&addr).arg("--headless").args(extra))
    };
    let mut first = client(&[])?;
    first.wait_for_line("connected", PATIENCE).await?;
    let mut second = client(&[])?;
    second.wait_for_line("connected", PATIENCE).await?;

    let mut third = client(&[])?;
    let started = Instant::now();
    let exit = third.wait_exit(Duration::from_secs(10)).await?;
    println!("the third client exited with {exit} after {:?}", started.elapsed());
    let log = third.log();
    assert!(!exit.success(), "the third client exited 0; log:\n{log}");
    assert!(
        log.contains("refused the connection: server full (2 viewers)"),
        "the client does not say why: {log}"
    );
    cache.wait_for_line("refusing viewer: server full", PATIENCE).await?;

    // A slot frees when a viewer leaves: the next client is served.
    first.terminate()?;
    assert!(first.wait_exit(PATIENCE).await?.success(), "{}", first.log());
    cache.wait_for_line("viewer left", PATIENCE).await?;
    let mut fourth = client(&["--frames", "5", "--timeout", "20"])?;
    let exit = fourth.wait_exit(PATIENCE).await?;
    assert!(exit.success(), "a client was refused after a slot freed: {}", fourth.log());

    second.terminate()?;
    assert!(second.wait_exit(PATIENCE).await?.success(), "{}", second.log());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_never_finishes_its_hello_is_dropped() -> anyhow::Result<()> {
    // No upstream is needed: the viewer port works regardless.
    let (cache, addr) =
        start_cache("127.0.0.1:1", "127.0.0.1:0", &["--handshake-timeout", "0.5"]).await?;
    let connected = Instant::now();
    let mut silent = TcpStream::connect(addr).await?;
    let hello = Hello::new(Role::Viewer, "test/half-hello").to_bytes();
    let mut half = TcpStream::connect(addr).await?;
    half.write_all(&hello[..hello.len() / 2]).await?;

    for (name, stream) in [("a silent peer", &mut silent), ("half a hello", &mut half)] {
        wait_closed(stream, Duration::from_secs(5)).await?;
        let took = connected.elapsed();
        println!("{name}: dropped {took:?} after connecting");
        assert!(took > Duration::from_millis(400), "{name} was dropped early, after {took:?}");
        assert!(took < Duration::from_secs(3), "{name} was dropped only after {took:?}");
    }
    // Once per peer, with the reason.
    cache.wait_for_line("hello within 500ms", PATIENCE).await?;
    cache.wait_for_line("hello within 500ms", PATIENCE).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_that_never_reads_is_dropped_while_others_keep_getting_frames()
-> anyhow::Result<()> {
    let drone = inprocess_drone(30).await?;
    let (cache, addr) = start_cache(
        &drone.to_string(),
        "127.0.0.1:0",
        &["--viewer-timeout", "1", "--notsent-lowat", "16384"],
    )
    .await?;

    // A healthy viewer, timing every frame.
    let mut healthy = subscribe(&addr.to_string(), &SubscribeOptions::default()).await?;
    healthy.next_frame().await?.expect("a first frame");
    let (arrivals_tx, mut arrivals) = tokio::sync::mpsc::unbounded_channel();
    let watcher = tokio::spawn(async move {
        loop {
            match healthy.next_frame().await {
                Ok(Some(_)) => {
                    if arrivals_tx.send(Instant::now()).is_err() {
                        return Ok(());
                    }
                }
                Ok(None) => anyhow::bail!("the healthy viewer's stream ended"),
                Err(err) => anyhow::bail!("the healthy viewer was dropped: {err}"),
            }
        }
    });

    // A viewer with a tiny receive buffer that says hello and never reads.
    let stuck = TcpSocket::new_v4()?;
    stuck.set_recv_buffer_size(2048)?;
    let mut stuck = stuck.connect(addr).await?;
    stuck.write_all(&Hello::new(Role::Viewer, "test/never-reads").to_bytes()).await?;
    let hello_sent = Instant::now();

    let line = cache.wait_for_line("viewer dropped", PATIENCE).await?;
    let dropped_after = hello_sent.elapsed();
    assert!(line.contains("took no frame for 1s"), "dropped for another reason: {line}");
    assert!(dropped_after < Duration::from_secs(5), "dropped only after {dropped_after:?}");
    // It really is disconnected: past what was buffered, its stream ends.
    wait_closed(&mut stuck, Duration::from_secs(5)).await?;

    // The healthy viewer never paused and is still served.
    let until = Instant::now() + Duration::from_millis(500);
    let mut last = hello_sent;
    let mut worst = Duration::ZERO;
    let mut after = 0;
    while last < until {
        let at = tokio::time::timeout(PATIENCE, arrivals.recv()).await?.expect("watcher alive");
        if at > hello_sent {
            worst = worst.max(at - last);
            last = at;
        }
        if at > hello_sent + dropped_after {
            after += 1;
        }
    }
    println!(
        "never-reading viewer dropped {dropped_after:?} after its hello; longest gap at the healthy viewer {worst:?}"
    );
    assert!(worst < Duration::from_millis(500), "the healthy viewer stalled for {worst:?}");
    assert!(after >= 5, "only {after} frames after the drop");
    drop(arrivals);
    watcher.abort();
    Ok(())
}

/// The kernel's timer on each TCP socket matching `filter` (an `ss` filter), as `ss -o`
/// shows it: `keepalive` for an idle socket with SO_KEEPALIVE. `ss` runs on the blocking pool.
async fn ss_timers(filter: &str) -> anyhow::Result<String> {
    let filter = filter.to_owned();
    let ss = move || Command::new("ss").args(["-tnoH", "state", "established", &filter]).output();
    let out = tokio::task::spawn_blocking(ss).await??;
    anyhow::ensure!(out.status.success(), "ss failed: {}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Polls until `ss` shows a keepalive timer on the socket matching `filter` (a socket that
/// just sent data shows its retransmission timer for a moment instead).
async fn assert_keepalive(what: &str, filter: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let seen = ss_timers(filter).await?;
        if seen.contains("timer:(keepalive") {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "{what}: no keepalive timer in ss: {seen:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_connection_has_tcp_keepalive() -> anyhow::Result<()> {
    // An upstream that accepts and then stays silent: the cache-server's dialling socket idles
    // in the handshake.
    let upstream = TcpListener::bind("127.0.0.1:0").await?;
    let up = upstream.local_addr()?;
    let (_cache, addr) = start_cache(&up.to_string(), "127.0.0.1:0", &[]).await?;
    let _held = tokio::time::timeout(PATIENCE, upstream.accept()).await??;
    let _viewer = RawViewer::connect(addr).await?;
    let viewer_side = format!("( sport = :{} )", addr.port());
    assert_keepalive("cache-server viewer socket", &viewer_side).await?;
    let upstream_side = format!("( dport = :{} )", up.port());
    assert_keepalive("cache-server upstream socket", &upstream_side).await?;

    // The drone's sockets go through the same relay::Server; at 1 fps they idle between
    // frames.
    let (_drone, drone) = start_drone("127.0.0.1:0", &["--fps", "1"]).await?;
    let mut relay = RawViewer::connect(drone).await?;
    assert!(matches!(relay.next(PATIENCE).await?, Some(Message::Frame(_))), "no frame");
    assert_keepalive("drone viewer socket", &format!("( sport = :{} )", drone.port())).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_out_of_file_descriptors_backs_off_and_recovers() -> anyhow::Result<()> {
    let drone = inprocess_drone(15).await?;
    // 40 descriptors: a dozen for the runtime, the listener and the upstream, the rest for
    // viewers. Peers that never say hello hold theirs for a minute.
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "ulimit -n 40 && exec \"$0\" \"$@\""]).arg(common::cache_bin()).args([
        "--upstream",
        &drone.to_string(),
        "--listen",
        "127.0.0.1:0",
        "--http",
        "off",
        "--summary-every",
        "0",
        "--handshake-timeout",
        "60",
    ]);
    let cache = Running::start(&mut cmd)?;
    let addr = cache.wait_for_addr("serving viewers", PATIENCE).await?;
    cache.wait_for_line("upstream connected", PATIENCE).await?;

    // More connections than descriptors: the kernel completes them all into the backlog; the
    // server runs out while accepting.
    let mut peers = Vec::new();
    for _ in 0..80 {
        peers.push(TcpStream::connect(addr).await?);
    }
    let line = cache.wait_for_line("accept failed; retrying after a pause", PATIENCE).await?;
    assert!(line.contains("Too many open files"), "another accept error: {line}");

    // While out of descriptors, it waits rather than spins.
    let server = Pid::Other(cache.pid());
    let (cpu_before, wall_before) = (server.cpu_time()?, Instant::now());
    tokio::time::sleep(Duration::from_secs(2)).await; // the measurement window
    let cpu = server.cpu_time()?.saturating_sub(cpu_before);
    let share = cpu.as_secs_f64() / wall_before.elapsed().as_secs_f64();
    assert!(share < 0.3, "{:.0}% of a core while out of descriptors", share * 100.0);
    let retries = cache.log().matches("accept failed").count();
    assert!(retries < 20, "{retries} accept retries in a few seconds: not backing off");

    // Descriptors come back when the peers leave, and a viewer is served again.
    drop(peers);
    let options = SubscribeOptions { handshake_timeout: PATIENCE, ..SubscribeOptions::default() };
    let mut viewer = subscribe(&addr.to_string(), &options).await?;
    assert!(viewer.next_frame().await?.is_some(), "no frame after recovering");
    println!("cpu while out of descriptors: {:.1}% of a core, {retries} retries", share * 100.0);
    Ok(())
}
