//! SIGTERM with every kind of peer at once: the promise is exit 0 within a second, whatever
//! the viewers do. 100 viewers (85 reading, 5 slow, 10 that never read) and 10 connections
//! still in their handshake, while the source is quiet (its drone is gone), so the server is
//! sending heartbeats and the stalled viewers' sockets are full.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{PATIENCE, RawViewer, start_cache, start_drone};
use framing::Message;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
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
