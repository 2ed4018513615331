//! Hostile and broken input against the HTTP port, as `tests/hostile.rs` plays it against the
//! dronecast port: oversized request heads, a slow header trickle, garbage, requests cut off,
//! a 10,000 connect/close flood, and peers on the wrong port.
//!
//! Each case is played against the drone's and the cache-server's HTTP ports while each server
//! has a TCP viewer (the headless client) and an HTTP viewer (a multipart parser) watching.
//! Every hostile connection must be closed by the server and logged with its address in
//! exactly one line (captured in-process, `common::logs`) that says what was wrong; the
//! viewers must see nothing of it; memory must stay flat.

mod common;

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use client::{Report, headless};
use common::http::{MjpegViewer, Reading, raw_request, state, wait_state};
use common::logs::logs;
use common::{Cache, Drone, PATIENCE, cache_http_with, drone_http_with, view};
use drone::Format;
use dronecast::relay::{SubscribeError, SubscribeOptions, subscribe};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::RwLock;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Tests share the process; the memory test must have it to itself.
static PROCESS: RwLock<()> = RwLock::const_new(());

/// Short enough to keep the trickle test quick, long enough for a loaded 2-core machine.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(1);
/// Viewers watch at least this long, so that their frame rate means something.
const MIN_WATCH: Duration = Duration::from_millis(1200);
/// Hostile connections per case and port.
const PER_PORT: usize = 10;
/// Small frames keep the shared 2-core machine free for the attacks.
const FORMAT: Format = Format { width: 320, height: 240, fps: 30, quality: 80 };

/// A small deterministic generator (xorshift64), so that "random bytes" are the same each run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

// ---- a hostile client ------------------------------------------------------------------------

/// What a hostile client sends.
#[derive(Debug, Clone)]
enum Attack {
    /// These bytes at once, then wait for the server to close.
    Bytes(Vec<u8>),
    /// These bytes at once, then a half-close (the request is cut off).
    Truncated(Vec<u8>),
    /// These bytes at once, then one more byte every 200 ms until the server closes.
    Trickle(Vec<u8>),
}

/// What one hostile connection saw.
#[derive(Debug)]
struct Played {
    ours: SocketAddr,
    /// The server's answer, if any (up to 4 KiB).
    answer: Vec<u8>,
    /// From the first byte sent to the server's close.
    took: Duration,
}

/// A loopback address of its own for each test's attacks, 127.0.0.10 and up: the tests run
/// at once, and a local port one test used may be taken again by another test's connection
/// to another server, which would count against the first in the server log.
fn attack_source() -> IpAddr {
    static NEXT: AtomicU8 = AtomicU8::new(10);
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, NEXT.fetch_add(1, Ordering::Relaxed)))
}

/// Plays `attack` from `source` against `target` until the server closes the connection.
async fn play(source: IpAddr, target: SocketAddr, attack: Attack) -> anyhow::Result<Played> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    let mut stream = socket.connect(target).await?;
    stream.set_nodelay(true)?;
    let ours = stream.local_addr()?;
    let started = Instant::now();
    let (first, truncated, trickle) = match attack {
        Attack::Bytes(bytes) => (bytes, false, false),
        Attack::Truncated(bytes) => (bytes, true, false),
        Attack::Trickle(bytes) => (bytes, false, true),
    };
    // The server may close (or reset) before it has read all of it: that is an answer too.
    if let Err(err) = stream.write_all(&first).await {
        ensure!(is_closed_by_peer(&err), "{ours}: write failed: {err}");
    }
    if truncated {
        stream.shutdown().await?;
    }
    let mut answer = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    let closed = async {
        loop {
            let read = if trickle {
                tokio::select! {
                    read = stream.read(&mut buf) => read,
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {
                        if let Err(err) = stream.write_all(b"a").await {
                            ensure!(is_closed_by_peer(&err), "{ours}: trickle failed: {err}");
                            return Ok(());
                        }
                        continue;
                    }
                }
            } else {
                stream.read(&mut buf).await
            };
            match read {
                Ok(0) => return Ok(()),
                Ok(n) => answer.extend_from_slice(&buf[..n.min(4096 - answer.len().min(4096))]),
                Err(err) if is_closed_by_peer(&err) => return Ok(()),
                Err(err) => return Err(err.into()),
            }
        }
    };
    tokio::time::timeout(PATIENCE, closed)
        .await
        .with_context(|| format!("{target} never closed {ours}"))??;
    Ok(Played { ours, answer, took: started.elapsed() })
}

fn is_closed_by_peer(err: &io::Error) -> bool {
    matches!(err.kind(), io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe)
}

/// Waits until every connection in `ours` has been logged in a line with `needle`, then
/// checks that it was logged in no other line: one line per hostile connection. (An address
/// may appear twice: the same local port may be used towards both servers.)
async fn wait_logged_once(mark: usize, ours: &[SocketAddr], needle: &str) -> anyhow::Result<()> {
    let mut wanted: HashMap<String, usize> = HashMap::new();
    for addr in ours {
        *wanted.entry(addr.to_string()).or_default() += 1;
    }
    let deadline = Instant::now() + PATIENCE;
    loop {
        let logged = logs().peers_in_lines_with(mark, needle);
        let missing = wanted.iter().filter(|(a, n)| logged.get(*a).copied().unwrap_or(0) < **n);
        let missing: Vec<_> = missing.map(|(addr, _)| addr.clone()).collect();
        if missing.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "{} of {} connections not logged with {needle:?}, e.g. {:?}",
                missing.len(),
                ours.len(),
                &missing[..missing.len().min(5)]
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // What a connection that never became a viewer logs comes from the module `relay::http`
    // (a viewer's lines come from `relay::http::mjpeg`: the watching viewers' local ports may
    // be reused towards the other server).
    let all = logs().peers_in_lines_with(mark, " relay::http: ");
    for (addr, n) in &wanted {
        let lines = all.get(addr).copied().unwrap_or(0);
        ensure!(
            lines == *n,
            "{addr} was logged in {lines} lines for {n} connections:\n{}",
            logs().lines_with(mark, &[&format!("http{{peer={addr}}}")]).join("\n")
        );
    }
    if let Some(ours) = ours.first() {
        let sample = logs().lines_with(mark, &[&format!("peer={ours}}}"), needle]);
        eprintln!("server log: {}", sample.first().map(String::as_str).unwrap_or_default());
    }
    Ok(())
}

// ---- the servers under attack, and their viewers ---------------------------------------------

/// A drone and a cache-server relaying it, both serving HTTP, each watched over TCP (headless
/// client) and over HTTP.
struct Rig {
    drone: Drone,
    cache: Cache,
    tcp_viewers: Vec<(SocketAddr, JoinHandle<anyhow::Result<Report>>)>,
    http_viewers: Vec<(SocketAddr, Reading)>,
    stop_viewers: CancellationToken,
    started: Instant,
    /// Where this test's lines start in the shared log.
    mark: usize,
    /// Where this test's attacks come from.
    source: IpAddr,
}

impl Rig {
    async fn start() -> anyhow::Result<Rig> {
        let mark = logs().len();
        let drone = drone_http_with(FORMAT.fps, |config| {
            config.format = FORMAT;
            config.server.handshake_timeout = HANDSHAKE_TIMEOUT;
        })
        .await?;
        let cache = cache_http_with(drone.addr, |config| {
            config.server.handshake_timeout = HANDSHAKE_TIMEOUT;
        })
        .await?;
        cache.wait_frames_in(5).await?;
        let stop_viewers = CancellationToken::new();
        let tcp_viewers = [drone.addr, cache.addr]
            .into_iter()
            .map(|addr| (addr, tokio::spawn(watch(addr, stop_viewers.clone()))))
            .collect();
        let mut http_viewers = Vec::new();
        for http in [drone.http()?, cache.http()?] {
            let mut viewer = MjpegViewer::open(http, "/stream.mjpg", "watching").await?;
            viewer.next_part().await?;
            http_viewers.push((http, viewer.read_on()));
        }
        // The drone serves the cache-server too.
        wait_state(drone.http()?, "the drone's viewers", |s| s["viewers"] == 3).await?;
        wait_state(cache.http()?, "the cache-server's viewers", |s| s["viewers"] == 2).await?;
        Ok(Rig {
            drone,
            cache,
            tcp_viewers,
            http_viewers,
            stop_viewers,
            started: Instant::now(),
            mark,
            source: attack_source(),
        })
    }

    /// The two HTTP ports: the drone's and the cache-server's.
    fn http_ports(&self) -> anyhow::Result<[SocketAddr; 2]> {
        Ok([self.drone.http()?, self.cache.http()?])
    }

    /// Plays each attack `PER_PORT` times against both HTTP ports at once; returns what each
    /// connection saw.
    async fn attack(&self, attack: impl Fn(usize) -> Attack) -> anyhow::Result<Vec<Played>> {
        let mut plays = JoinSet::new();
        for port in self.http_ports()? {
            for i in 0..PER_PORT {
                plays.spawn(play(self.source, port, attack(i)));
            }
        }
        let mut played = Vec::new();
        while let Some(done) = plays.join_next().await {
            played.push(done??);
        }
        Ok(played)
    }

    /// After the attacks: a new viewer still gets frames at once on every port, and the
    /// viewers that watched throughout saw a clean, steady stream.
    async fn finish(self) -> anyhow::Result<()> {
        for http in self.http_ports()? {
            let first = Instant::now();
            let mut late = MjpegViewer::open(http, "/stream.mjpg", "late").await?;
            late.next_part().await?;
            let took = first.elapsed();
            ensure!(took < Duration::from_secs(1), "{http}: first part after {took:?}");
        }
        for port in [self.drone.addr, self.cache.addr] {
            let late = view(port, 2).await?;
            ensure!(late.first_frame_ms < 1000.0, "{port}: first frame after {late:?}");
        }
        tokio::time::sleep_until(self.started + MIN_WATCH).await;
        let watched = self.started.elapsed();
        self.stop_viewers.cancel();
        for (port, viewer) in self.tcp_viewers {
            let report = viewer.await??;
            ensure!(report.reconnects == 0, "{port}: the TCP viewer was dropped: {report:?}");
            ensure!(report.distinct == report.frames && report.out_of_order == 0, "{report:?}");
            ensure!(report.decode_errors == 0, "{port}: {report:?}");
            let rate = report.frames as f64 / watched.as_secs_f64();
            ensure!(report.fps > 10.0 && rate > 10.0, "{port}: frame rate collapsed: {report:?}");
        }
        for (port, viewer) in self.http_viewers {
            let gap = viewer.longest_gap();
            let parts = viewer.finish().await.with_context(|| format!("on {port}"))?;
            let rate = parts as f64 / watched.as_secs_f64();
            ensure!(rate > 10.0, "{port}: the HTTP viewer got {parts} parts in {watched:?}");
            ensure!(gap < Duration::from_secs(1), "{port}: the HTTP viewer waited {gap:?}");
        }
        self.cache.stop().await?;
        self.drone.stop().await
    }
}

/// A headless viewer of `addr` until `stop`.
async fn watch(addr: SocketAddr, stop: CancellationToken) -> anyhow::Result<Report> {
    let options = headless::Options { timeout: Some(PATIENCE), ..headless::Options::default() };
    headless::run(&addr.to_string(), options, stop).await
}

// ---- one test per case, both HTTP ports ------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_request_heads_get_431_and_are_dropped() -> anyhow::Result<()> {
    let _shared = PROCESS.read().await;
    let rig = Rig::start().await?;
    let mut head = b"GET /stream.mjpg HTTP/1.1\r\nHost: t\r\nX-Padding: ".to_vec();
    head.extend_from_slice(&[b'a'; 16 * 1024]);
    head.extend_from_slice(b"\r\n\r\n");
    let played = rig.attack(|_| Attack::Bytes(head.clone())).await?;
    for p in &played {
        let answer = String::from_utf8_lossy(&p.answer);
        ensure!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 431 "),
            "{}: answered {answer:?}",
            p.ours
        );
    }
    let ours: Vec<_> = played.iter().map(|p| p.ours).collect();
    wait_logged_once(rig.mark, &ours, "HTTP connection dropped err=message head is too large")
        .await?;
    rig.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_header_trickle_is_dropped_by_the_handshake_timeout() -> anyhow::Result<()> {
    let _shared = PROCESS.read().await;
    let rig = Rig::start().await?;
    let start = b"GET /stream.mjpg HTTP/1.1\r\nHost: t\r\nX-Slow: ".to_vec();
    let played = rig.attack(|_| Attack::Trickle(start.clone())).await?;
    for p in &played {
        // Each byte does not restart the clock: the whole head is due within the timeout.
        ensure!(
            p.took >= HANDSHAKE_TIMEOUT.mul_f64(0.9)
                && p.took < HANDSHAKE_TIMEOUT + Duration::from_secs(1),
            "{} was dropped {:?} after it started, with a {HANDSHAKE_TIMEOUT:?} timeout",
            p.ours,
            p.took
        );
    }
    let ours: Vec<_> = played.iter().map(|p| p.ours).collect();
    wait_logged_once(rig.mark, &ours, "read header from client timeout").await?;
    let state = state(rig.cache.http()?).await?;
    ensure!(state["dropped"]["handshake_timeout"] == PER_PORT, "{}", state["dropped"]);
    rig.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_is_answered_400_and_dropped() -> anyhow::Result<()> {
    let _shared = PROCESS.read().await;
    let rig = Rig::start().await?;
    let played = rig
        .attack(|i| {
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (i as u64 + 1));
            let len = 64 + (rng.next() % 4000) as usize;
            Attack::Bytes(rng.bytes(len))
        })
        .await?;
    for p in &played {
        let answer = String::from_utf8_lossy(&p.answer);
        ensure!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 400 "),
            "{}: answered {answer:?}",
            p.ours
        );
    }
    let ours: Vec<_> = played.iter().map(|p| p.ours).collect();
    wait_logged_once(rig.mark, &ours, "HTTP connection dropped").await?;
    rig.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_cut_off_is_dropped() -> anyhow::Result<()> {
    let _shared = PROCESS.read().await;
    let rig = Rig::start().await?;
    let cut = b"GET /stream.mjpg HTTP/1.".to_vec();
    let played = rig.attack(|_| Attack::Truncated(cut.clone())).await?;
    let ours: Vec<_> = played.iter().map(|p| p.ours).collect();
    wait_logged_once(rig.mark, &ours, "HTTP connection dropped").await?;
    rig.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_on_the_wrong_port_are_told_the_right_one() -> anyhow::Result<()> {
    let _shared = PROCESS.read().await;
    let rig = Rig::start().await?;
    // A dronecast viewer that dials the HTTP port is refused in dronecast, naming the port.
    for (http, dronecast) in
        [(rig.drone.http()?, rig.drone.addr), (rig.cache.http()?, rig.cache.addr)]
    {
        let options = SubscribeOptions::default();
        match subscribe(&http.to_string(), &options).await {
            Err(err @ SubscribeError::Refused { .. }) => {
                let text = err.to_string();
                let port = format!("port {}", dronecast.port());
                ensure!(text.contains(&port), "the refusal does not name the {port}: {text}");
                eprintln!("dronecast viewer on the HTTP port: {text}");
            }
            other => bail!("a dronecast viewer on the HTTP port {http}: {other:?}"),
        }
        let state = state(http).await?;
        ensure!(state["refused"]["wrong_port"] == 1, "{}", state["refused"]);
        // And a browser that opens the dronecast port is told, in HTTP, where to go.
        let request = format!("GET / HTTP/1.1\r\nHost: {dronecast}\r\nConnection: close\r\n\r\n");
        let answer = raw_request(dronecast, request.as_bytes()).await?;
        let want = format!("open the HTTP port {} in a browser instead", http.port());
        ensure!(answer.status == 400 && answer.text().contains(&want), "{answer:?}");
    }
    rig.finish().await
}

// ---- the flood, and memory -------------------------------------------------------------------

/// Resident memory of this process, from `/proc/self/status`.
fn rss_bytes() -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .context("no VmRSS in /proc/self/status")?;
    Ok(kib.trim().parse::<u64>()? * 1024)
}

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

/// 10,000 connections that close at once without a request, at the cache-server's HTTP port:
/// each logged once, the viewers carry on, and memory returns to where it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connect_close_flood_is_logged_and_leaves_memory_flat() -> anyhow::Result<()> {
    const FLOOD: usize = 10_000;
    const CONCURRENCY: usize = 32;
    // Alone in the process, so that its memory is all ours to measure.
    let _alone = PROCESS.write().await;
    let rig = Rig::start().await?;
    let http = rig.cache.http()?;
    // Warm up: the allocator, the runtime's task slabs and the listener's queue reach their
    // working size before the baseline is taken (after 1,000 the flood still added 3 MiB,
    // after 5,000 it adds 0.3-2.8 MiB; a leak of 800 bytes a connection would add 8).
    let warm = connect_close(http, 5_000, CONCURRENCY).await?;
    wait_logged_once(rig.mark, &warm, "HTTP connection closed before its request").await?;
    let (rss_before, log_before) = (rss_bytes()?, logs().len());

    let started = Instant::now();
    let ours = connect_close(http, FLOOD, CONCURRENCY).await?;
    let flood_took = started.elapsed();
    wait_logged_once(log_before, &ours, "HTTP connection closed before its request").await?;
    let took = started.elapsed();

    let (rss_after, log_after) = (rss_bytes()?, logs().len());
    // The captured log lives in this process too: it is not the servers' memory.
    let log_growth = (log_after - log_before) as u64;
    let growth = rss_after.saturating_sub(rss_before).saturating_sub(log_growth);
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    eprintln!(
        "{FLOOD} connect/close in {flood_took:.1?}, all logged after {took:.1?}; RSS {:.1} -> \
         {:.1} MiB, log +{:.1} MiB, growth net of the log {:.1} MiB",
        mib(rss_before),
        mib(rss_after),
        mib(log_growth),
        mib(growth),
    );
    ensure!(growth < 8 * 1024 * 1024, "memory grew by {:.1} MiB", mib(growth));
    let state = state(http).await?;
    let closed = state["dropped"]["closed_in_handshake"].as_u64().unwrap_or(0);
    ensure!(closed >= FLOOD as u64, "dropped: {}", state["dropped"]);
    rig.finish().await
}
