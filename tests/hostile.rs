//! Hostile and broken input, against every listening port and against the subscriber.
//!
//! Server side: each case is played against the drone's port and the cache-server's viewer
//! port while a headless viewer watches each of them. Every hostile connection must be logged
//! with its address and what was wrong (captured in-process, `common::logs`), must be closed
//! by the server, and must change nothing for the viewers.
//!
//! Subscriber side: a fake "drone" (a listener in this test) first relays a real drone, then
//! turns hostile. The cache-server must log what its upstream sent, keep redialling, keep its
//! viewers and its cached frame; the headless client, told not to reconnect, must fail with an
//! error that names the problem.
//!
//! `docs/RELIABILITY.md` lists the cases and the test that proves each.

mod common;

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use client::{Report, headless};
use common::logs::logs;
use common::{Cache, Drone, PATIENCE, cache_with, drone_with, view};
use drone::Format;
use dronecast::framing::{Frame, Hello, Role};
use dronecast::relay::Backoff;
use dronecast::relay::{SubscribeOptions, subscribe};
use harness::usage::Pid;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::RwLock;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Tests share the process; the memory test must have it to itself.
static PROCESS: RwLock<()> = RwLock::const_new(());

/// Short enough to keep the stall tests fast, long enough for a loaded 2-core machine.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_millis(300);
/// The subscribers' idle timeout in the stall tests (a 30 fps source sends every 33 ms).
const IDLE_TIMEOUT: Duration = Duration::from_millis(500);
/// Viewers watch at least this long, so that their frame rate means something.
const MIN_WATCH: Duration = Duration::from_millis(1200);
/// Hostile connections per case and port.
const PER_PORT: usize = 12;
/// Half the `u64` range: a length no one can allocate.
const HUGE: u64 = 1 << 63;

// ---- what hostile peers send ---------------------------------------------------------------

/// `n` pseudo-random bytes from `rng`.
fn random_bytes(rng: &mut fastrand::Rng, n: usize) -> Vec<u8> {
    let mut bytes = vec![0; n];
    rng.fill(&mut bytes);
    bytes
}

/// What the Python tutorial's sender writes: `struct.pack("Q", len(data)) + pickle.dumps(..)`,
/// a native little-endian length, then a protocol-4 pickle. Returned as (length, pickle).
fn pickle_stream() -> (Vec<u8>, Vec<u8>) {
    let mut pickle = vec![0x80, 0x04, 0x95];
    let body = 60_000u64;
    pickle.extend_from_slice(&body.to_le_bytes());
    pickle.extend_from_slice(b"\x8c\x15numpy.core.multiarray\x94\x8c\x0c_reconstruct\x94\x93\x94");
    pickle.resize(pickle.len() + body as usize - 40, 0x7f);
    pickle.push(b'.');
    ((pickle.len() as u64).to_le_bytes().to_vec(), pickle)
}

fn hello(role: Role) -> Vec<u8> {
    Hello::new(role, "hostile/0.0").to_bytes().to_vec()
}

fn hello_with_magic(role: Role, magic: &[u8; 4]) -> Vec<u8> {
    let mut wire = hello(role);
    wire[9..13].copy_from_slice(magic);
    wire
}

fn hello_of_version(role: Role, version: u16) -> Vec<u8> {
    Hello { version, ..Hello::new(role, "dronecast/9.0") }.to_bytes().to_vec()
}

/// The prefix and kind byte of a frame that claims `len` bytes of body.
fn frame_head(len: u64) -> Vec<u8> {
    let mut wire = len.to_be_bytes().to_vec();
    wire.push(b'F');
    wire
}

// ---- a hostile client against a listening port ---------------------------------------------

/// How a hostile client ends its side after sending.
#[derive(Debug, Clone, Copy)]
enum Ending {
    /// Keep the connection open: the server must close it.
    Wait,
    /// Half-close (FIN): the server sees the end of the stream.
    HalfClose,
}

/// One hostile connection: what it sends, and what the server must log about it.
#[derive(Debug, Clone)]
struct Attack {
    /// Written one after the other, with a short pause between them.
    writes: Vec<Vec<u8>>,
    ending: Ending,
    expect: &'static str,
}

impl Attack {
    fn new(bytes: Vec<u8>, ending: Ending, expect: &'static str) -> Attack {
        Attack { writes: vec![bytes], ending, expect }
    }
}

/// How the peer ended a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closed {
    Eof,
    Reset,
}

/// Reads (and drops) whatever the peer sends until it closes; fails if it does not within
/// `PATIENCE`. Returns how it closed and how many bytes it sent first.
async fn until_closed(stream: &mut TcpStream) -> anyhow::Result<(Closed, Vec<u8>)> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut received = Vec::new();
    let read = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) => return Ok((Closed::Eof, received)),
                // Kept up to a few kilobytes: enough to see what the peer answered.
                Ok(n) => {
                    let room = 4096usize.saturating_sub(received.len());
                    received.extend_from_slice(&buf[..n.min(room)]);
                }
                Err(err) if err.kind() == io::ErrorKind::ConnectionReset => {
                    return Ok((Closed::Reset, received));
                }
                Err(err) => return Err(err),
            }
        }
    };
    tokio::time::timeout(PATIENCE, read)
        .await
        .context("the peer never closed the connection")?
        .context("reading until the peer closed")
}

/// Plays `attack` against `target`; returns our address and how long the server took to close.
/// A server must not answer a peer that has not sent a valid hello, except a web browser,
/// which is told in one line of HTTP that this is not its port.
async fn play(target: SocketAddr, attack: Attack) -> anyhow::Result<(SocketAddr, Duration)> {
    let mut stream = TcpStream::connect(target).await?;
    stream.set_nodelay(true)?;
    let ours = stream.local_addr()?;
    for (i, bytes) in attack.writes.iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The server may already have dropped us (a reset); that is what we want to see.
        if let Err(err) = stream.write_all(bytes).await {
            ensure!(is_closed_by_peer(&err), "{ours}: write failed: {err}");
            return Ok((ours, Duration::ZERO));
        }
    }
    let sent = Instant::now();
    if let Ending::HalfClose = attack.ending {
        stream.shutdown().await?;
    }
    let (_, received) =
        until_closed(&mut stream).await.with_context(|| format!("{ours} against {target}"))?;
    let said_hello = attack.writes.first().is_some_and(|w| w.starts_with(&hello(Role::Viewer)));
    let browser = attack.writes.first().is_some_and(|w| w.starts_with(b"GET "));
    if browser {
        let answer = String::from_utf8_lossy(&received);
        ensure!(
            answer.starts_with("HTTP/1.1 400 Bad Request\r\n")
                && answer.contains("This is a dronecast viewer port, not HTTP"),
            "{target} answered a browser with {answer:?}"
        );
    } else {
        let n = received.len();
        ensure!(said_hello || n == 0, "{target} answered {n} bytes to {ours}");
    }
    Ok((ours, sent.elapsed()))
}

fn is_closed_by_peer(err: &io::Error) -> bool {
    matches!(err.kind(), io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe)
}

// ---- the servers under attack, and the viewers watching them -------------------------------

/// A drone and a cache-server relaying it, each watched by a headless viewer.
struct Rig {
    drone: Drone,
    cache: Cache,
    viewers: Vec<(SocketAddr, JoinHandle<anyhow::Result<Report>>)>,
    stop_viewers: CancellationToken,
    started: Instant,
    /// Where this test's lines start in the shared log.
    mark: usize,
}

/// Small frames keep the shared 2-core machine free for the attacks.
const FORMAT: Format = Format { width: 320, height: 240, fps: 30, quality: 80 };

impl Rig {
    async fn start() -> anyhow::Result<Rig> {
        let mark = logs().len();
        let drone = drone_with("127.0.0.1:0", FORMAT.fps, |config| {
            config.format = FORMAT;
            config.server.handshake_timeout = HANDSHAKE_TIMEOUT;
        })
        .await?;
        let cache = cache_with(drone.addr, |config| {
            config.server.handshake_timeout = HANDSHAKE_TIMEOUT;
        })
        .await?;
        let stop_viewers = CancellationToken::new();
        let viewers = [drone.addr, cache.addr]
            .into_iter()
            .map(|addr| (addr, tokio::spawn(watch(addr, stop_viewers.clone()))))
            .collect();
        cache.wait_frames_in(10).await?;
        let deadline = Instant::now() + PATIENCE;
        while cache.hub.viewers() == 0 {
            ensure!(Instant::now() < deadline, "the cache-server's viewer never joined");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(Rig { drone, cache, viewers, stop_viewers, started: Instant::now(), mark })
    }

    /// The two listening ports: the drone's and the cache-server's viewer port.
    fn ports(&self) -> [SocketAddr; 2] {
        [self.drone.addr, self.cache.addr]
    }

    /// Plays each attack `PER_PORT` times against both ports, and checks that every one was
    /// closed by the server and logged with its address and `expect`.
    async fn attack(&self, attacks: impl Fn(usize) -> Attack) -> anyhow::Result<()> {
        let mut plays = JoinSet::new();
        for port in self.ports() {
            for i in 0..PER_PORT {
                let attack = attacks(i);
                let expect = attack.expect;
                plays
                    .spawn(async move { play(port, attack).await.map(|(ours, _)| (ours, expect)) });
            }
        }
        let mut played: HashMap<&str, Vec<SocketAddr>> = HashMap::new();
        while let Some(done) = plays.join_next().await {
            let (ours, expect) = done??;
            played.entry(expect).or_default().push(ours);
        }
        for (expect, ours) in played {
            wait_all_logged(self.mark, &ours, expect).await?;
        }
        Ok(())
    }

    /// After the attacks: a new viewer still gets frames at once on both ports, and the
    /// viewers that watched throughout saw a clean, steady stream.
    async fn finish(self) -> anyhow::Result<()> {
        for port in self.ports() {
            let late = view(port, 2).await?;
            assert_steady(&late, false);
            assert!(late.first_frame_ms < 1000.0, "{port}: first frame after {late:?}");
        }
        tokio::time::sleep_until(self.started + MIN_WATCH).await;
        let watched = self.started.elapsed().as_secs_f64();
        self.stop_viewers.cancel();
        for (port, viewer) in self.viewers {
            let report = viewer.await??;
            assert_steady(&report, true);
            // Over the whole attack, not only between its first and last frame: no long gap.
            let rate = report.frames as f64 / watched;
            assert!(report.fps > 10.0 && rate > 10.0, "{port}: frame rate collapsed: {report:?}");
        }
        self.cache.shutdown.cancel();
        tokio::time::timeout(PATIENCE, self.cache.task).await???;
        self.drone.stop().await
    }
}

/// A headless viewer of `addr` until `stop`.
async fn watch(addr: SocketAddr, stop: CancellationToken) -> anyhow::Result<Report> {
    let options = headless::Options { timeout: Some(PATIENCE), ..headless::Options::default() };
    headless::run(&addr.to_string(), options, stop).await
}

/// Every frame once, in order, decoded; and (for a viewer that watched throughout) never
/// dropped.
fn assert_steady(report: &Report, watched_throughout: bool) {
    assert!(report.frames >= 2, "too few frames: {report:?}");
    assert_eq!(report.distinct, report.frames, "duplicate frames: {report:?}");
    assert_eq!(report.out_of_order, 0, "frames out of order: {report:?}");
    assert_eq!(report.decode_errors, 0, "undecodable frames: {report:?}");
    assert_eq!((report.width, report.height), (FORMAT.width, FORMAT.height), "{report:?}");
    if watched_throughout {
        assert_eq!(report.reconnects, 0, "the viewer was dropped: {report:?}");
    }
}

// ---- server side: one test per case, both ports --------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_bytes_to_servers() -> anyhow::Result<()> {
    let _shared = PROCESS.read().await;
    let rig = Rig::start().await?;
    rig.attack(|i| {
        // Seeded: the same "random" bytes each run.
        let mut rng = fastrand::Rng::with_seed(i as u64 + 1);
        let len = rng.usize(64..4064);
        Attack::new(
            random_bytes(&mut rng, len),
            Ending::Wait,
            "peer does not speak dronecast: it sent",
        )
    })
    .await?;
    rig.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_request_to_servers() -> anyhow::Result<()> {
    let _shared = PROCESS.read().await;
    let rig = Rig::start().await?;
    let request = b"GET /video_feed HTTP/1.1\r\nHost: drone:5000\r\nAccept: */*\r\n\r\n";
    rig.attack(|_| {
        Attack::new(request.to_vec(), Ending::Wait, "an HTTP request (GET /video_feed HTTP/1.1)")
    })
    .await?;
    rig.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pickle_stream_to_servers() -> anyhow::Result<()> {
    let _shared = PROCESS.read().await;
    let rig = Rig::start().await?;
    rig.attack(|i| {
        let (len, pickle) = pickle_stream();
        // Every other sender writes the length on its own first, as some tutorial code does.
        let writes = if i % 2 == 0 { vec![[len, pickle].concat()] } else { vec![len, pickle] };
        Attack { writes, ending: Ending::Wait, expect: "a Python pickle stream" }
    })
    .await?;
    rig.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_magic_to_servers() -> anyhow::Result<()> {
    let _shared = PROCESS.read().await;
    let rig = Rig::start().await?;
    let wire = hello_with_magic(Role::Viewer, b"XXXX");
    rig.attack(|_| {
        Attack::new(wire.clone(), Ending::Wait, "a hello with the wrong magic 58 58 58 58")
    })
    .await?;
    rig.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_version_to_servers() -> anyhow::Result<()> {
    let _shared = PROCESS.read().await;
    let rig = Rig::start().await?;
    let wire = hello_of_version(Role::Viewer, 2);
    rig.attack(|_| Attack::new(wire.clone(), Ending::Wait, "speaks dronecast protocol version 2"))
        .await?;
    rig.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_length_to_servers() -> anyhow::Result<()> {
    let _shared = PROCESS.read().await;
    let rig = Rig::start().await?;
    rig.attack(|i| match i % 2 {
        // As the first message, in place of a hello …
        0 => Attack::new(
            frame_head(HUGE),
            Ending::Wait,
            "length prefix of 9223372036854775808 bytes",
        ),
        // … and after a valid hello, where a viewer may send only control messages.
        _ => Attack::new(
            [hello(Role::Viewer), frame_head(HUGE)].concat(),
            Ending::Wait,
            "peer announced a 9223372036854775808-byte message, above the 6211-byte limit",
        ),
    })
    .await?;
    rig.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_frame_to_servers() -> anyhow::Result<()> {
    let _shared = PROCESS.read().await;
    let rig = Rig::start().await?;
    rig.attack(|i| {
        let bytes = match i % 2 {
            // A hello cut off mid-body …
            0 => hello(Role::Viewer)[..20].to_vec(),
            // … and a whole hello, then a message cut off mid-body.
            _ => [hello(Role::Viewer), frame_head(2000), vec![0; 1000]].concat(),
        };
        Attack::new(bytes, Ending::HalfClose, "connection closed in the middle of a message")
    })
    .await?;
    rig.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_header_stall_to_servers() -> anyhow::Result<()> {
    let _shared = PROCESS.read().await;
    let rig = Rig::start().await?;
    let expect = "sent no complete hello within 300ms (4 bytes received)";
    let mut plays = JoinSet::new();
    for port in rig.ports() {
        for _ in 0..PER_PORT {
            plays.spawn(play(port, Attack::new(vec![0, 0, 0, 0], Ending::Wait, expect)));
        }
    }
    let mut played = Vec::new();
    while let Some(done) = plays.join_next().await {
        let (ours, waited) = done??;
        assert!(
            waited >= HANDSHAKE_TIMEOUT / 2,
            "{ours} dropped after {waited:?}, before the timeout"
        );
        played.push(ours);
    }
    wait_all_logged(rig.mark, &played, expect).await?;
    rig.finish().await
}

// ---- the flood, and memory ------------------------------------------------------------------

/// `n` connections to `target`, each closed at once without a byte, `concurrency` at a time.
/// Returns our addresses.
async fn connect_close(
    target: SocketAddr,
    n: usize,
    concurrency: usize,
) -> anyhow::Result<Vec<SocketAddr>> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = JoinSet::new();
    for _ in 0..concurrency {
        let next = next.clone();
        workers.spawn(async move {
            let mut ours = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < n {
                let stream = TcpStream::connect(target).await?;
                ours.push(stream.local_addr()?);
            }
            anyhow::Ok(ours)
        });
    }
    let mut ours = Vec::with_capacity(n);
    while let Some(done) = workers.join_next().await {
        ours.extend(done??);
    }
    Ok(ours)
}

/// `n` attempts at a 2^63-byte message on `target`, half in place of the hello and half after
/// it, `concurrency` at a time.
async fn huge_lengths(
    target: SocketAddr,
    n: usize,
    concurrency: usize,
) -> anyhow::Result<Vec<SocketAddr>> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = JoinSet::new();
    for _ in 0..concurrency {
        let next = next.clone();
        workers.spawn(async move {
            let mut ours = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let bytes = match i % 2 {
                    0 => frame_head(HUGE),
                    _ => [hello(Role::Viewer), frame_head(HUGE)].concat(),
                };
                ours.push(play(target, Attack::new(bytes, Ending::Wait, "")).await?.0);
            }
            anyhow::Ok(ours)
        });
    }
    let mut ours = Vec::with_capacity(n);
    while let Some(done) = workers.join_next().await {
        ours.extend(done??);
    }
    Ok(ours)
}

/// Waits until every connection in `ours` has its own line since `mark` that names it as
/// `peer=` and contains `needle`. (One address can appear twice: the same local port may be
/// used towards both servers.)
async fn wait_all_logged(mark: usize, ours: &[SocketAddr], needle: &str) -> anyhow::Result<()> {
    let mut wanted: HashMap<String, usize> = HashMap::new();
    for addr in ours {
        *wanted.entry(addr.to_string()).or_default() += 1;
    }
    let deadline = Instant::now() + PATIENCE;
    loop {
        let logged = logs().peers_in_lines_with(mark, needle);
        let missing: Vec<_> = wanted
            .iter()
            .filter(|(addr, n)| logged.get(*addr).copied().unwrap_or_default() < **n)
            .map(|(addr, _)| addr)
            .collect();
        if missing.is_empty() {
            // One sample per case, for `--nocapture` readers (docs/RELIABILITY.md quotes them).
            if let Some(ours) = ours.first() {
                let peer = format!("peer={ours}}}");
                let sample = logs().lines_with(mark, &[&peer, needle]).into_iter().next();
                eprintln!("server log: {}", sample.unwrap_or_default());
            }
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "{} of {} peers not logged with {needle:?}, e.g. {:?}",
                missing.len(),
                ours.len(),
                &missing[..missing.len().min(5)]
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Floods both ports with connections that close at once and with 2^63-byte lengths; every
/// one is logged, the viewers carry on, and memory returns to where it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_close_flood_and_huge_lengths_leave_memory_flat() -> anyhow::Result<()> {
    const FLOOD: usize = 10_000;
    const HUGE_BURST: usize = 1_000;
    const CONCURRENCY: usize = 32;
    // Alone in the process, so that its memory is all ours to measure.
    let _alone = PROCESS.write().await;
    let rig = Rig::start().await?;

    // Warm up: the allocator, the runtime's task slabs and the listeners' queues reach
    // their working size before the baseline is taken.
    for port in rig.ports() {
        connect_close(port, 1_000, CONCURRENCY).await?;
        huge_lengths(port, 100, CONCURRENCY).await?;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (rss_before, log_before) = (Pid::This.rss_bytes()?, logs().len());
    let mark = log_before;

    let started = Instant::now();
    let [drone, cache] = rig.ports();
    let (on_drone, on_cache) = tokio::try_join!(
        connect_close(drone, FLOOD, CONCURRENCY),
        connect_close(cache, FLOOD, CONCURRENCY),
    )?;
    let flood_took = started.elapsed();
    let (huge_on_drone, huge_on_cache) = tokio::try_join!(
        huge_lengths(drone, HUGE_BURST, CONCURRENCY),
        huge_lengths(cache, HUGE_BURST, CONCURRENCY),
    )?;
    let closed = "closed the connection before its hello";
    wait_all_logged(mark, &[on_drone, on_cache].concat(), closed).await?;
    wait_all_logged(mark, &[huge_on_drone, huge_on_cache].concat(), "9223372036854775808").await?;
    let took = started.elapsed();

    tokio::time::sleep(Duration::from_millis(200)).await;
    let (rss_after, log_after) = (Pid::This.rss_bytes()?, logs().len());
    // The captured log lives in this process too: it is not the servers' memory.
    let log_growth = (log_after - log_before) as u64;
    let growth = rss_after.saturating_sub(rss_before).saturating_sub(log_growth);
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    eprintln!(
        "{} connect/close + {} huge-length connections in {took:.1?} (flood {flood_took:.1?}); \
         RSS {:.1} -> {:.1} MiB, log +{:.1} MiB, growth net of the log {:.1} MiB",
        2 * FLOOD,
        2 * HUGE_BURST,
        mib(rss_before),
        mib(rss_after),
        mib(log_growth),
        mib(growth),
    );
    assert!(growth < 16 * 1024 * 1024, "memory grew by {:.1} MiB", mib(growth));
    rig.finish().await
}

// ---- subscriber side: a hostile "drone" -----------------------------------------------------

/// What the fake drone does with a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hostile {
    Garbage,
    Pickle,
    HttpResponse,
    WrongMagic,
    WrongVersion,
    HugeFirst,
    HugeAfterHello,
    Truncated,
    HalfHeaderStall,
    CloseInHandshake,
}

impl Hostile {
    /// What the subscriber's error must say.
    fn expect(self) -> &'static str {
        match self {
            Hostile::Garbage => "peer does not speak dronecast: it sent unrecognised bytes",
            Hostile::Pickle => "a Python pickle stream",
            Hostile::HttpResponse => "an HTTP response (HTTP/1.1 200 OK)",
            Hostile::WrongMagic => "a hello with the wrong magic 58 58 58 58",
            Hostile::WrongVersion => "speaks dronecast protocol version 2",
            Hostile::HugeFirst => "length prefix of 9223372036854775808 bytes",
            Hostile::HugeAfterHello => "announced a 9223372036854775808-byte message",
            Hostile::Truncated => "connection closed in the middle of a message",
            Hostile::HalfHeaderStall => "(stalled after 20 bytes of one message)",
            Hostile::CloseInHandshake => "closed the connection during the handshake",
        }
    }

    /// Sends this behaviour's bytes on `stream`. Write errors mean the subscriber hung up,
    /// which is fine.
    async fn send(self, stream: &mut TcpStream) -> io::Result<()> {
        let source = || hello(Role::Source);
        let bytes = match self {
            Hostile::Garbage => {
                random_bytes(&mut fastrand::Rng::with_seed(0x2545_f491_4f6c_dd1d), 512)
            }
            Hostile::Pickle => {
                // The length on its own first, then the pickle: the hard case for sniffing.
                let (len, pickle) = pickle_stream();
                stream.write_all(&len).await?;
                tokio::time::sleep(Duration::from_millis(20)).await;
                pickle
            }
            Hostile::HttpResponse => b"HTTP/1.1 200 OK\r\n\
                Content-Type: multipart/x-mixed-replace; boundary=frame\r\n\r\n--frame\r\n"
                .to_vec(),
            Hostile::WrongMagic => hello_with_magic(Role::Source, b"XXXX"),
            Hostile::WrongVersion => hello_of_version(Role::Source, 2),
            Hostile::HugeFirst => frame_head(HUGE),
            Hostile::HugeAfterHello => [source(), frame_head(HUGE)].concat(),
            Hostile::Truncated => [source(), frame_head(100_000), vec![0; 1000]].concat(),
            Hostile::HalfHeaderStall => [source(), frame_head(100_000), vec![1; 11]].concat(),
            Hostile::CloseInHandshake => {
                // Take the hello (so the close is a clean FIN), then hang up without a word.
                let mut hello = [0u8; 64];
                let _ = stream.read(&mut hello).await?;
                return Ok(());
            }
        };
        stream.write_all(&bytes).await?;
        if self == Hostile::Truncated {
            stream.shutdown().await?;
        }
        Ok(())
    }
}

/// What the fake drone does with the next connection.
#[derive(Debug, Clone, Copy)]
enum Mode {
    /// Relay a real drone.
    Proxy(SocketAddr),
    Hostile(Hostile),
}

#[derive(Debug)]
struct FakeState {
    mode: Mutex<Mode>,
    /// Cancelled to cut the relayed connections.
    cut: Mutex<CancellationToken>,
    /// Hostile connections accepted so far.
    hostile: AtomicU64,
    /// For each hostile connection: did the subscriber close it (`Ok`), or not (`Err`)?
    outcomes: Mutex<Vec<Result<Closed, String>>>,
}

/// A listener that plays a drone: either relays a real one or turns hostile.
struct FakeDrone {
    addr: SocketAddr,
    state: Arc<FakeState>,
    task: JoinHandle<()>,
}

impl Drop for FakeDrone {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeDrone {
    async fn start(mode: Mode) -> anyhow::Result<FakeDrone> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(FakeState {
            mode: Mutex::new(mode),
            cut: Mutex::new(CancellationToken::new()),
            hostile: AtomicU64::new(0),
            outcomes: Mutex::new(Vec::new()),
        });
        let shared = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let Ok(mode) = shared.mode.lock().map(|m| *m) else { return };
                let state = shared.clone();
                tokio::spawn(async move {
                    match mode {
                        Mode::Proxy(drone) => state.proxy(stream, drone).await,
                        Mode::Hostile(hostile) => state.hostile(stream, hostile).await,
                    }
                });
            }
        });
        Ok(FakeDrone { addr, state, task })
    }

    fn set_mode(&self, mode: Mode) {
        if let Ok(mut m) = self.state.mode.lock() {
            *m = mode;
        }
    }

    /// Cuts every relayed connection.
    fn cut(&self) {
        if let Ok(mut cut) = self.state.cut.lock() {
            cut.cancel();
            *cut = CancellationToken::new();
        }
    }

    fn hostile_accepted(&self) -> u64 {
        self.state.hostile.load(Ordering::Relaxed)
    }

    fn outcomes(&self) -> Vec<Result<Closed, String>> {
        self.state.outcomes.lock().map(|o| o.clone()).unwrap_or_default()
    }

    async fn wait_hostile(&self, n: u64) -> anyhow::Result<()> {
        let deadline = Instant::now() + PATIENCE;
        while self.hostile_accepted() < n {
            ensure!(
                Instant::now() < deadline,
                "only {} hostile connections",
                self.hostile_accepted()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(())
    }
}

impl FakeState {
    async fn proxy(&self, mut stream: TcpStream, drone: SocketAddr) {
        let cut = self.cut.lock().map(|c| c.clone()).unwrap_or_default();
        let Ok(mut upstream) = TcpStream::connect(drone).await else { return };
        tokio::select! {
            _ = cut.cancelled() => {}
            _ = tokio::io::copy_bidirectional(&mut stream, &mut upstream) => {}
        }
    }

    async fn hostile(&self, mut stream: TcpStream, hostile: Hostile) {
        self.hostile.fetch_add(1, Ordering::Relaxed);
        let outcome = match hostile.send(&mut stream).await {
            // We hung up ourselves: nothing to wait for.
            Ok(()) if hostile == Hostile::CloseInHandshake => Ok(Closed::Eof),
            Ok(()) => {
                until_closed(&mut stream).await.map(|(how, _)| how).map_err(|e| format!("{e:#}"))
            }
            Err(err) if is_closed_by_peer(&err) => Ok(Closed::Reset),
            Err(err) => Err(format!("write failed: {err}")),
        };
        if let Ok(mut outcomes) = self.outcomes.lock() {
            outcomes.push(outcome);
        }
    }
}

/// The first frame a new viewer of `addr` gets, within a second.
async fn first_frame(addr: SocketAddr) -> anyhow::Result<Frame> {
    let mut sub = subscribe(&addr.to_string(), &SubscribeOptions::default()).await?;
    let frame = tokio::time::timeout(Duration::from_secs(1), sub.next_frame())
        .await
        .context("no frame within a second")??
        .context("the stream ended")?;
    sub.close().await;
    Ok(frame)
}

/// A cache-server whose upstream turns into each of `cases` in turn: it must log what the
/// upstream sent, keep redialling, keep its viewer and its frame, and recover afterwards.
async fn cache_against(cases: &[Hostile]) -> anyhow::Result<()> {
    let drone = drone_with("127.0.0.1:0", FORMAT.fps, |config| config.format = FORMAT).await?;
    let fake = FakeDrone::start(Mode::Proxy(drone.addr)).await?;
    let cache = cache_with(fake.addr, |config| {
        config.backoff = Backoff::new(Duration::from_millis(10), Duration::from_millis(100));
        config.subscribe.idle_timeout = IDLE_TIMEOUT;
    })
    .await?;
    let stop_viewer = CancellationToken::new();
    let viewer = tokio::spawn(watch(cache.addr, stop_viewer.clone()));
    cache.wait_frames_in(10).await?;
    let span = format!("upstream{{addr={} stream=default}}", fake.addr);

    for &case in cases {
        let mark = logs().len();
        let hostile_before = fake.hostile_accepted();
        let dials_before = cache.upstream.dials();
        fake.set_mode(Mode::Hostile(case));
        fake.cut();
        // Once the cache has dialled the hostile drone, its good connection is over.
        fake.wait_hostile(hostile_before + 1).await?;
        let before = first_frame(cache.addr).await.context("the cached frame before")?;

        // A stalling upstream costs an idle timeout per dial; the others fail at once.
        let redials = if case == Hostile::HalfHeaderStall { 2 } else { 3 };
        fake.wait_hostile(hostile_before + redials).await?;
        let line = logs().wait_for(mark, &[&span, case.expect()]).await?;
        eprintln!("cache-server log: {line}");
        assert!(line.contains("WARN"), "{case:?}: {line}");
        assert!(cache.upstream.dials() >= dials_before + redials, "{case:?}: not redialling");

        let after = first_frame(cache.addr).await.context("the cached frame after")?;
        assert!(after == before, "{case:?}: the cached frame changed");
        assert!(cache.hub.viewers() >= 1, "{case:?}: the cache-server's viewer was dropped");

        fake.set_mode(Mode::Proxy(drone.addr));
        let frames_before = cache.upstream.frames_in();
        cache.wait_frames_in(frames_before + 5).await.context("no recovery")?;
        let outcomes = fake.outcomes();
        assert!(
            outcomes.iter().all(|o| o.is_ok()),
            "{case:?}: the cache-server left a hostile upstream connection open: {outcomes:?}"
        );
    }

    stop_viewer.cancel();
    let report = viewer.await??;
    assert_steady(&report, true);
    cache.shutdown.cancel();
    tokio::time::timeout(PATIENCE, cache.task).await???;
    drone.stop().await
}

/// The headless client, told not to reconnect, against a drone that is `case` from the
/// start: it must fail, naming the address and the problem, and hang up.
async fn client_against(case: Hostile) -> anyhow::Result<()> {
    let fake = FakeDrone::start(Mode::Hostile(case)).await?;
    let mut options = headless::Options {
        frames: Some(1),
        timeout: Some(PATIENCE),
        reconnect: false,
        ..headless::Options::default()
    };
    options.subscribe.idle_timeout = IDLE_TIMEOUT;
    let result = headless::run(&fake.addr.to_string(), options, CancellationToken::new()).await;
    let err = match result {
        Ok(report) => bail!("{case:?}: the client accepted a hostile drone: {report:?}"),
        Err(err) => format!("{err:#}"),
    };
    eprintln!("client error: {err}");
    assert!(err.contains(&fake.addr.to_string()), "{case:?}: error names no address: {err}");
    assert!(err.contains(case.expect()), "{case:?}: error does not name the problem: {err}");
    let deadline = Instant::now() + PATIENCE;
    while fake.outcomes().is_empty() {
        ensure!(Instant::now() < deadline, "{case:?}: the hostile connection never ended");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(fake.outcomes().iter().all(|o| o.is_ok()), "{case:?}: {:?}", fake.outcomes());
    Ok(())
}

/// Both subscribers against `cases`, side by side.
async fn subscribers_against(cases: &[Hostile]) -> anyhow::Result<()> {
    let _shared = PROCESS.read().await;
    logs();
    let clients = async {
        for &case in cases {
            client_against(case).await?;
        }
        anyhow::Ok(())
    };
    tokio::try_join!(cache_against(cases), clients)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_from_upstream() -> anyhow::Result<()> {
    subscribers_against(&[Hostile::Garbage]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pickle_stream_from_upstream() -> anyhow::Result<()> {
    subscribers_against(&[Hostile::Pickle]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_response_from_upstream() -> anyhow::Result<()> {
    subscribers_against(&[Hostile::HttpResponse]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_magic_from_upstream() -> anyhow::Result<()> {
    subscribers_against(&[Hostile::WrongMagic]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_version_from_upstream() -> anyhow::Result<()> {
    subscribers_against(&[Hostile::WrongVersion]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_length_from_upstream() -> anyhow::Result<()> {
    subscribers_against(&[Hostile::HugeFirst, Hostile::HugeAfterHello]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_frame_from_upstream() -> anyhow::Result<()> {
    subscribers_against(&[Hostile::Truncated]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_header_stall_from_upstream() -> anyhow::Result<()> {
    subscribers_against(&[Hostile::HalfHeaderStall]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_in_handshake_from_upstream() -> anyhow::Result<()> {
    subscribers_against(&[Hostile::CloseInHandshake]).await
}
