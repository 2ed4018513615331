//! SIGTERM with every kind of peer at once: the promise is exit 0 within a second, whatever
//! the viewers do. 100 viewers (85 reading, 5 slow, 10 that never read) and 10 connections
//! still in their handshake, while the source is quiet (its drone is gone), so the server is
//! sending heartbeats and the stalled viewers' sockets are full. The same for HTTP viewers:
//! reading ones and stalled ones whose sockets are full, while frames flow.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use common::{PATIENCE, RawViewer, start_cache, start_cache_with_http, start_drone};
use framing::Message;
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::task::JoinSet;

const READING: usize = 85;
const SLOW: usize = 5;
const STALLED: usize = 10;
const HANDSHAKING: usize = 10;

/// Reads every message until the end; counts a goodbye; says when a heartbeat arrived.
async fn reader(
    mut viewer: RawViewer,
    pause: Duration,
    goodbyes: Arc<AtomicUsize>,
    heard_beat: Arc<Notify>,
) {
    while let Some(Ok(message)) = viewer.read.next().await {
        match message {
            Message::Goodbye(_) => {
                goodbyes.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Message::Heartbeat => heard_beat.notify_one(),
            _ => {}
        }
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_stalled_slow_and_handshaking_peers_during_a_quiet_source_exits_0_within_1s()
-> anyhow::Result<()> {
    // 640×480 frames (~65 kB) fill a never-reading viewer's socket within a few frames.
    let (drone, drone_addr) =
        start_drone("127.0.0.1:0", &["--width", "640", "--height", "480", "--fps", "30"]).await?;
    let (mut cache, addr) = start_cache(&drone_addr.to_string(), "127.0.0.1:0", &[]).await?;

    let goodbyes = Arc::new(AtomicUsize::new(0));
    let heard_beat = Arc::new(Notify::new());
    let mut readers = JoinSet::new();
    for i in 0..READING + SLOW {
        let viewer = RawViewer::connect(addr).await?;
        let pause = if i < READING { Duration::ZERO } else { Duration::from_millis(150) };
        readers.spawn(reader(viewer, pause, goodbyes.clone(), heard_beat.clone()));
    }
    let mut stalled = Vec::new();
    for _ in 0..STALLED {
        stalled.push(RawViewer::connect(addr).await?);
    }
    let total = READING + SLOW + STALLED;
    let joined = format!("viewers={total}");
    cache.wait_for_line(&joined, PATIENCE).await?;
    let mut handshaking = Vec::new();
    for _ in 0..HANDSHAKING {
        let mut peer = TcpStream::connect(addr).await?;
        peer.write_all(&framing::Hello::new(framing::Role::Viewer, "half").to_bytes()[..12])
            .await?;
        handshaking.push(peer);
    }

    // Frames flow until the stalled viewers' sockets are full, then the source goes quiet.
    let ports: Vec<u16> =
        stalled.iter().map(|v| v.write.local_addr().map(|a| a.port())).collect::<Result<_, _>>()?;
    stalled_sockets_full(addr, &ports).await?;
    drone.signal("KILL")?;
    cache.wait_for_line("upstream lost", PATIENCE).await?;
    // Heartbeats now go out instead of frames: the state the shutdown must not wait on.
    for _ in 0..2 {
        tokio::time::timeout(PATIENCE, heard_beat.notified()).await?;
    }

    let sent = Instant::now();
    cache.signal("TERM")?;
    let exit = cache.wait_exit(PATIENCE).await?;
    let took = sent.elapsed();
    eprintln!("exited {took:?} after SIGTERM");
    assert!(exit.success(), "exit {exit} after SIGTERM; log:\n{}", cache.log());
    assert!(took < Duration::from_secs(1), "took {took:?} to exit after SIGTERM");
    while readers.join_next().await.is_some() {}
    let goodbyes = goodbyes.load(Ordering::Relaxed);
    assert!(goodbyes >= READING, "only {goodbyes} of {READING} reading viewers got a goodbye");
    drop((stalled, handshaking));
    Ok(())
}

const HTTP_READING: usize = 20;
const HTTP_STALLED: usize = 5;

/// Asks for the live stream as a browser would (HTTP/1.1).
const STREAM_REQUEST: &[u8] =
    b"GET /stream.mjpg HTTP/1.1\r\nHost: t\r\nUser-Agent: shutdown-test\r\n\r\n";

/// Reads a live HTTP stream to its end; returns how many bytes came and whether the body ended
/// as a chunked body ends (a last, empty chunk) rather than being cut off.
async fn read_stream(mut stream: TcpStream) -> std::io::Result<(usize, bool)> {
    let mut buf = vec![0u8; 64 * 1024];
    let (mut total, mut tail) = (0, Vec::new());
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok((total, tail.ends_with(b"\r\n0\r\n\r\n")));
        }
        total += n;
        tail.extend_from_slice(&buf[..n]);
        let keep = tail.len().saturating_sub(16);
        tail.drain(..keep);
    }
}

/// The number of viewers `/state` lists.
async fn viewers_now(http: SocketAddr) -> anyhow::Result<u64> {
    let mut stream = TcpStream::connect(http).await?;
    stream.write_all(b"GET /state HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").await?;
    let mut answer = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut answer)).await??;
    let answer = String::from_utf8_lossy(&answer);
    let (_, body) = answer.split_once("\r\n\r\n").context("no /state body")?;
    let state: serde_json::Value = serde_json::from_str(body)?;
    state["viewers"].as_u64().context("no viewer count in /state")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_reading_and_stalled_http_viewers_exits_0_within_1s() -> anyhow::Result<()> {
    // 640×480 frames (~65 kB): a part fills a stalled viewer's small window at once.
    let (_drone, drone_addr) =
        start_drone("127.0.0.1:0", &["--width", "640", "--height", "480", "--fps", "30"]).await?;
    let (mut cache, _, http) = start_cache_with_http(&drone_addr.to_string(), &[]).await?;

    let mut readers = JoinSet::new();
    for _ in 0..HTTP_READING {
        let mut stream = TcpStream::connect(http).await?;
        stream.write_all(STREAM_REQUEST).await?;
        readers.spawn(read_stream(stream));
    }
    let mut stalled = Vec::new();
    for _ in 0..HTTP_STALLED {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.set_recv_buffer_size(4096)?;
        let mut stream = socket.connect(http).await?;
        stream.write_all(STREAM_REQUEST).await?;
        stalled.push(stream);
    }
    let total = (HTTP_READING + HTTP_STALLED) as u64;
    let deadline = Instant::now() + PATIENCE;
    while viewers_now(http).await? < total {
        anyhow::ensure!(Instant::now() < deadline, "not all {total} HTTP viewers joined");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let ports: Vec<u16> =
        stalled.iter().map(|s| s.local_addr().map(|a| a.port())).collect::<Result<_, _>>()?;
    stalled_sockets_full(http, &ports).await?;

    let sent = Instant::now();
    cache.signal("TERM")?;
    let exit = cache.wait_exit(PATIENCE).await?;
    let took = sent.elapsed();
    eprintln!(
        "exited {took:?} after SIGTERM, with {HTTP_READING} reading and {HTTP_STALLED} stalled HTTP viewers"
    );
    assert!(exit.success(), "exit {exit} after SIGTERM; log:\n{}", cache.log());
    assert!(took < Duration::from_secs(1), "took {took:?} to exit after SIGTERM");
    // The reading viewers' streams ended as a chunked body ends, not cut off.
    let mut clean = 0;
    while let Some(read) = readers.join_next().await {
        let (bytes, ended) = read??;
        assert!(bytes > 0, "a reading HTTP viewer got nothing");
        clean += usize::from(ended);
    }
    assert_eq!(clean, HTTP_READING, "only {clean} of {HTTP_READING} streams ended cleanly");
    drop(stalled);
    Ok(())
}

/// Waits until the server's socket towards each viewer on one of `ports` holds at least the
/// low watermark (16 KiB) of bytes the kernel has not even sent (`ss -i` "notsent"): those
/// viewers' windows are closed and the server can write them no more.
async fn stalled_sockets_full(addr: SocketAddr, ports: &[u16]) -> anyhow::Result<()> {
    let deadline = Instant::now() + PATIENCE;
    let dports: Vec<String> = ports.iter().map(|p| format!("dport = :{p}")).collect();
    let filter = format!("( sport = :{} ) and ( {} )", addr.port(), dports.join(" or "));
    loop {
        let filter = filter.clone();
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new("ss")
                .args(["-Htni", "state", "established", &filter])
                .output()
        })
        .await??;
        let full = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|field| field.strip_prefix("notsent:")?.parse::<u64>().ok())
            .filter(|&notsent| notsent >= 16 * 1024)
            .count();
        if full >= ports.len() {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "only {full} of {ports:?} filled up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
