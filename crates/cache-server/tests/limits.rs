//! Limits and timeouts of the real `cache-server` binary (the drone serves through the same
//! `relay::Server`): the viewer limit, the handshake and viewer timeouts, keepalive on every
//! connection, and accept back-off when file descriptors run out.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream as StdStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{PATIENCE, RawViewer, client_bin, inprocess_drone, start_cache, start_drone};
use framing::{Hello, Message, Role};
use harness::Running;
use harness::usage::Pid;
use relay::{SubscribeOptions, subscribe};
use socket2::{Domain, Protocol, Socket, Type};

/// Reads and discards until the peer closes; how long that took, or an error if it did not
/// close within `patience`.
fn wait_closed(stream: &mut StdStream, patience: Duration) -> anyhow::Result<Duration> {
    let start = Instant::now();
    stream.set_read_timeout(Some(patience))?;
    let mut sink = vec![0u8; 256 * 1024];
    loop {
        match stream.read(&mut sink) {
            Ok(0) => return Ok(start.elapsed()),
            Ok(_) => continue,
            Err(err) if err.kind() == ErrorKind::ConnectionReset => return Ok(start.elapsed()),
            Err(err) => anyhow::bail!("still open after {:?}: {err}", start.elapsed()),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_over_the_limit_is_refused_and_the_client_says_so() -> anyhow::Result<()> {
    let drone = inprocess_drone(15).await?;
    let (cache, addr) = start_cache(&drone.to_string(), "127.0.0.1:0", &["--max-viewers", "2"])?;
    let addr = addr.to_string();
    let client = |extra: &[&str]| -> anyhow::Result<Running> {
        Running::start(Command::new(client_bin()?).arg(&addr).arg("--headless").args(extra))
    };
    let mut first = client(&[])?;
    first.blocking_wait_for_line("connected", PATIENCE)?;
    let mut second = client(&[])?;
    second.blocking_wait_for_line("connected", PATIENCE)?;

    let mut third = client(&[])?;
    let started = Instant::now();
    let exit = third.blocking_wait_exit(Duration::from_secs(10))?;
    println!("the third client exited with {exit} after {:?}", started.elapsed());
    let log = third.log();
    assert!(!exit.success(), "the third client exited 0; log:\n{log}");
    assert!(
        log.contains("refused the connection: server full (2 viewers)"),
        "the client does not say why: {log}"
    );
    cache.blocking_wait_for_line("refusing viewer: server full", PATIENCE)?;

    // A slot frees when a viewer leaves: the next client is served.
    first.terminate()?;
    assert!(first.blocking_wait_exit(PATIENCE)?.success(), "{}", first.log());
    cache.blocking_wait_for_line("viewer left", PATIENCE)?;
    let mut fourth = client(&["--frames", "5", "--timeout", "20"])?;
    let exit = fourth.blocking_wait_exit(PATIENCE)?;
    assert!(exit.success(), "a client was refused after a slot freed: {}", fourth.log());

    second.terminate()?;
    assert!(second.blocking_wait_exit(PATIENCE)?.success(), "{}", second.log());
    Ok(())
}

#[test]
fn a_peer_that_never_finishes_its_hello_is_dropped() -> anyhow::Result<()> {
    // No upstream is needed: the viewer port works regardless.
    let (cache, addr) = start_cache("127.0.0.1:1", "127.0.0.1:0", &["--handshake-timeout", "0.5"])?;
    let connected = Instant::now();
    let mut silent = StdStream::connect(addr)?;
    let hello = Hello::new(Role::Viewer, "test/half-hello").to_bytes();
    let mut half = StdStream::connect(addr)?;
    half.write_all(&hello[..hello.len() / 2])?;

    for (name, stream) in [("a silent peer", &mut silent), ("half a hello", &mut half)] {
        wait_closed(stream, Duration::from_secs(5))?;
        let took = connected.elapsed();
        println!("{name}: dropped {took:?} after connecting");
        assert!(took > Duration::from_millis(400), "{name} was dropped early, after {took:?}");
        assert!(took < Duration::from_secs(3), "{name} was dropped only after {took:?}");
    }
    // Once per peer, with the reason.
    cache.blocking_wait_for_line("hello within 500ms", PATIENCE)?;
    cache.blocking_wait_for_line("hello within 500ms", PATIENCE)?;
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
    )?;

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
    let stuck = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    stuck.set_recv_buffer_size(2048)?;
    stuck.connect(&addr.into())?;
    let mut stuck = StdStream::from(stuck);
    stuck.write_all(&Hello::new(Role::Viewer, "test/never-reads").to_bytes())?;
    let hello_sent = Instant::now();

    let line = cache.blocking_wait_for_line("viewer dropped", PATIENCE)?;
    let dropped_after = hello_sent.elapsed();
    assert!(line.contains("took no frame for 1s"), "dropped for another reason: {line}");
    assert!(dropped_after < Duration::from_secs(5), "dropped only after {dropped_after:?}");
    // It really is disconnected: past what was buffered, its stream ends.
    wait_closed(&mut stuck, Duration::from_secs(5))?;

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
/// shows it: `keepalive` for an idle socket with SO_KEEPALIVE.
fn ss_timers(filter: &str) -> anyhow::Result<String> {
    let out = Command::new("ss").args(["-tnoH", "state", "established", filter]).output()?;
    anyhow::ensure!(out.status.success(), "ss failed: {}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Polls until `ss` shows a keepalive timer on the socket matching `filter` (a socket that
/// just sent data shows its retransmission timer for a moment instead).
fn assert_keepalive(what: &str, filter: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let seen = ss_timers(filter)?;
        if seen.contains("timer:(keepalive") {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "{what}: no keepalive timer in ss: {seen:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_connection_has_tcp_keepalive() -> anyhow::Result<()> {
    // An upstream that accepts and then stays silent: the cache-server's dialling socket idles
    // in the handshake.
    let upstream = std::net::TcpListener::bind("127.0.0.1:0")?;
    let up = upstream.local_addr()?;
    let (_cache, addr) = start_cache(&up.to_string(), "127.0.0.1:0", &[])?;
    let _held = upstream.accept()?;
    let _viewer = RawViewer::connect(addr).await?;
    assert_keepalive("cache-server viewer socket", &format!("( sport = :{} )", addr.port()))?;
    assert_keepalive("cache-server upstream socket", &format!("( dport = :{} )", up.port()))?;

    // The drone's sockets go through the same relay::Server; at 1 fps they idle between
    // frames.
    let (_drone, drone) = start_drone("127.0.0.1:0", &["--fps", "1"])?;
    let mut relay = RawViewer::connect(drone).await?;
    assert!(matches!(relay.next(PATIENCE).await?, Some(Message::Frame(_))), "no frame");
    assert_keepalive("drone viewer socket", &format!("( sport = :{} )", drone.port()))?;
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
        "--summary-every",
        "0",
        "--handshake-timeout",
        "60",
    ]);
    let cache = Running::start(&mut cmd)?;
    let addr = cache.blocking_wait_for_addr("serving viewers", PATIENCE)?;
    cache.blocking_wait_for_line("upstream connected", PATIENCE)?;

    // More connections than descriptors: the kernel completes them all into the backlog; the
    // server runs out while accepting.
    let mut peers = Vec::new();
    for _ in 0..80 {
        peers.push(StdStream::connect(addr)?);
    }
    let line = cache.blocking_wait_for_line("accept failed; retrying after a pause", PATIENCE)?;
    assert!(line.contains("Too many open files"), "another accept error: {line}");

    // While out of descriptors, it waits rather than spins.
    let server = Pid::Other(cache.pid());
    let (cpu_before, wall_before) = (server.cpu_time()?, Instant::now());
    std::thread::sleep(Duration::from_secs(2)); // the measurement window
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
