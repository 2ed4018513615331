//! The load generator: N measuring viewers (plus K that never read) against one server, all
//! in this process, each on its own tokio task.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use framing::{Hello, Role};
use relay::clock::now_us;
use relay::{SubscribeOptions, subscribe};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// What to run.
#[derive(Debug, Clone)]
pub struct Load {
    /// `host:port` of the server.
    pub server: String,
    /// Measuring viewers.
    pub viewers: usize,
    /// Viewers that connect, say hello and never read.
    pub stalled: usize,
    /// Pause between joins (`None`: all at once).
    pub join_interval: Option<Duration>,
    /// Time after the last join before measuring starts.
    pub warmup: Duration,
    /// Length of the measurement window.
    pub duration: Duration,
    /// Report frame age p99 per slice of the window, in this many slices (1: just overall).
    pub intervals: usize,
    /// Count every frame, not just new ones (the ceiling writer repeats one frame).
    pub count_repeats: bool,
}

/// What one viewer saw inside the measurement window.
#[derive(Debug, Default)]
pub struct ViewerResult {
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// Connect start to first frame.
    pub first_frame_ms: Option<f64>,
    /// Frames counted (new ones only, unless counting repeats).
    pub frames: u64,
    /// Wire bytes received.
    pub bytes: u64,
    /// Age of each counted frame on arrival, µs (not kept when counting repeats: a repeated
    /// static frame has no meaningful age).
    pub ages_us: Vec<u32>,
    /// When each of those frames arrived, ms since the window opened.
    pub arrivals_ms: Vec<u32>,
}

/// The window in µs since the Unix epoch; `u64::MAX` while not yet set.
#[derive(Debug)]
struct Window {
    start: AtomicU64,
    end: AtomicU64,
}

impl Window {
    fn contains(&self, t: u64) -> bool {
        t >= self.start.load(Ordering::Relaxed) && t < self.end.load(Ordering::Relaxed)
    }
}

/// Runs the load; returns one result per measuring viewer and the window length in seconds.
/// `during` runs concurrently with the measurement window (for sampling the server).
pub async fn run<F, T>(load: &Load, during: F) -> (Vec<ViewerResult>, f64, T)
where
    F: AsyncFnOnce(Duration) -> T,
{
    let window =
        Arc::new(Window { start: AtomicU64::new(u64::MAX), end: AtomicU64::new(u64::MAX) });
    let done = tokio_util::sync::CancellationToken::new();
    let options = SubscribeOptions {
        agent: concat!("relay-bench/", env!("CARGO_PKG_VERSION")).into(),
        // A thousand viewers joining at once: let the kernel retry dropped SYNs.
        connect_timeout: Duration::from_secs(30),
        handshake_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(60),
        ..SubscribeOptions::default()
    };
    let mut stalled = Vec::new();
    for _ in 0..load.stalled {
        match stall(&load.server).await {
            Ok(stream) => stalled.push(stream),
            Err(err) => tracing::warn!(%err, "stalled viewer could not connect"),
        }
    }
    let mut tasks = Vec::with_capacity(load.viewers);
    for _ in 0..load.viewers {
        let (server, options, window, done) =
            (load.server.clone(), options.clone(), window.clone(), done.clone());
        let count_repeats = load.count_repeats;
        tasks.push(tokio::spawn(async move {
            viewer(&server, &options, &window, done, count_repeats).await
        }));
        if let Some(pause) = load.join_interval {
            tokio::time::sleep(pause).await;
        }
    }
    tokio::time::sleep(load.warmup).await;
    let start = now_us();
    window.start.store(start, Ordering::Relaxed);
    window.end.store(start + load.duration.as_micros() as u64, Ordering::Relaxed);
    let measured = during(load.duration).await;
    let secs = load.duration.as_secs_f64();
    done.cancel();
    let mut results = Vec::with_capacity(tasks.len());
    for task in tasks {
        results.push(task.await.unwrap_or_else(|err| ViewerResult {
            error: Some(format!("viewer task failed: {err}")),
            ..ViewerResult::default()
        }));
    }
    drop(stalled);
    (results, secs, measured)
}

async fn viewer(
    server: &str,
    options: &SubscribeOptions,
    window: &Window,
    done: tokio_util::sync::CancellationToken,
    count_repeats: bool,
) -> ViewerResult {
    let mut result = ViewerResult::default();
    let t0 = Instant::now();
    let mut sub = match subscribe(server, options).await {
        Ok(sub) => sub,
        Err(err) => {
            result.error = Some(err.to_string());
            return result;
        }
    };
    let mut last: Option<(u64, u64)> = None;
    loop {
        let next = tokio::select! {
            _ = done.cancelled() => break,
            next = sub.next_frame() => next,
        };
        let frame = match next {
            Ok(Some(frame)) => frame,
            Ok(None) => {
                result.error = Some("server ended the stream".into());
                break;
            }
            Err(err) => {
                result.error = Some(err.to_string());
                break;
            }
        };
        let now = now_us();
        if result.first_frame_ms.is_none() {
            result.first_frame_ms = Some(t0.elapsed().as_secs_f64() * 1000.0);
        }
        let h = frame.header();
        let new = last != Some((h.seq, h.capture_us));
        last = Some((h.seq, h.capture_us));
        if window.contains(now) && (new || count_repeats) {
            result.frames += 1;
            result.bytes += frame.wire_len() as u64;
            if !count_repeats {
                let age = now.saturating_sub(h.capture_us).min(u64::from(u32::MAX));
                result.ages_us.push(age as u32);
                let since = now.saturating_sub(window.start.load(Ordering::Relaxed)) / 1000;
                result.arrivals_ms.push(since as u32);
            }
        }
    }
    sub.close().await;
    result
}

/// A viewer that says hello and then never reads: the kernel buffers fill and stay full.
async fn stall(server: &str) -> std::io::Result<TcpStream> {
    let mut stream = TcpStream::connect(server).await?;
    stream.write_all(&Hello::new(Role::Viewer, "relay-bench/stalled").to_bytes()).await?;
    Ok(stream)
}
