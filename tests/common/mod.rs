//! Starting the pieces in-process on ephemeral loopback ports.
#![allow(dead_code)] // each test file uses its own subset

pub mod http;
pub mod logs;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cache_server::{self, CacheServer, UpstreamState, UpstreamStats};
use client::{Report, headless};
use drone::{self, Format};
use dronecast::relay::Hub;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Upper bound for anything a test waits on; generous for a loaded 2-core CI machine.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// A running drone.
pub struct Drone {
    pub addr: SocketAddr,
    /// Its HTTP port, if it serves one.
    pub http: Option<SocketAddr>,
    pub shutdown: CancellationToken,
    pub task: JoinHandle<anyhow::Result<()>>,
}

impl Drone {
    /// Its HTTP port; fails for a drone started without one.
    pub fn http(&self) -> anyhow::Result<SocketAddr> {
        self.http.ok_or_else(|| anyhow::anyhow!("this drone serves no HTTP"))
    }

    /// Stops it and waits until it has let go of its port.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        tokio::time::timeout(PATIENCE, self.task).await??
    }
}

/// A test-pattern drone at `fps` on `addr` (`127.0.0.1:0` for any port).
pub async fn drone_at(addr: &str, fps: u32) -> anyhow::Result<Drone> {
    drone_with(addr, fps, |_| {}).await
}

/// A test-pattern drone at `fps` on `addr`, its configuration adjusted by `configure`.
pub async fn drone_with(
    addr: &str,
    fps: u32,
    configure: impl FnOnce(&mut drone::Config),
) -> anyhow::Result<Drone> {
    start_drone(addr, fps, configure, false).await
}

/// A test-pattern drone at `fps` on an ephemeral port that also serves HTTP on one, its
/// configuration adjusted by `configure`.
pub async fn drone_http_with(
    fps: u32,
    configure: impl FnOnce(&mut drone::Config),
) -> anyhow::Result<Drone> {
    start_drone("127.0.0.1:0", fps, configure, true).await
}

async fn start_drone(
    addr: &str,
    fps: u32,
    configure: impl FnOnce(&mut drone::Config),
    with_http: bool,
) -> anyhow::Result<Drone> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let http = match with_http {
        true => Some(TcpListener::bind("127.0.0.1:0").await?),
        false => None,
    };
    let http_addr = http.as_ref().map(TcpListener::local_addr).transpose()?;
    let mut config = drone::Config::default();
    config.format = Format { fps, ..config.format };
    configure(&mut config);
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(drone::run_with_http(config, listener, http, shutdown.clone()));
    Ok(Drone { addr, http: http_addr, shutdown, task })
}

/// A test-pattern drone at `fps` on an ephemeral port.
pub async fn drone(fps: u32) -> anyhow::Result<Drone> {
    drone_at("127.0.0.1:0", fps).await
}

/// A running cache-server.
pub struct Cache {
    pub addr: SocketAddr,
    /// Its HTTP port, if it serves one.
    pub http: Option<SocketAddr>,
    pub upstream: Arc<UpstreamStats>,
    pub hub: Arc<Hub>,
    pub shutdown: CancellationToken,
    pub task: JoinHandle<anyhow::Result<()>>,
}

impl Cache {
    /// Its HTTP port; fails for a cache-server started without one.
    pub fn http(&self) -> anyhow::Result<SocketAddr> {
        self.http.ok_or_else(|| anyhow::anyhow!("this cache-server serves no HTTP"))
    }

    /// Stops it and waits until it has let go of its ports.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        tokio::time::timeout(PATIENCE, self.task).await??
    }

    /// Waits until the upstream link is in `state`.
    pub async fn wait_upstream(&self, state: UpstreamState) -> anyhow::Result<()> {
        let mut watch = self.upstream.watch_state();
        tokio::time::timeout(PATIENCE, watch.wait_for(|s| *s == state)).await??;
        Ok(())
    }

    /// Waits until at least `n` frames have come from upstream.
    pub async fn wait_frames_in(&self, n: u64) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while self.upstream.frames_in() < n {
            anyhow::ensure!(tokio::time::Instant::now() < deadline, "no frames from upstream");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(())
    }
}

/// A cache-server on an ephemeral port, relaying `upstream`.
pub async fn cache(upstream: SocketAddr) -> anyhow::Result<Cache> {
    cache_with(upstream, |_| {}).await
}

/// A cache-server on an ephemeral port, relaying `upstream`, its configuration adjusted by
/// `configure`.
pub async fn cache_with(
    upstream: SocketAddr,
    configure: impl FnOnce(&mut cache_server::Config),
) -> anyhow::Result<Cache> {
    start_cache(upstream, configure, false).await
}

/// A cache-server relaying `upstream` that also serves HTTP, each on an ephemeral port, its
/// configuration adjusted by `configure`.
pub async fn cache_http_with(
    upstream: SocketAddr,
    configure: impl FnOnce(&mut cache_server::Config),
) -> anyhow::Result<Cache> {
    start_cache(upstream, configure, true).await
}

async fn start_cache(
    upstream: SocketAddr,
    configure: impl FnOnce(&mut cache_server::Config),
    with_http: bool,
) -> anyhow::Result<Cache> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let http = match with_http {
        true => Some(TcpListener::bind("127.0.0.1:0").await?),
        false => None,
    };
    let http_addr = http.as_ref().map(TcpListener::local_addr).transpose()?;
    let mut config = cache_server::Config::new(upstream.to_string());
    config.summary_every = None;
    configure(&mut config);
    let server = CacheServer::new(config)?;
    let upstream = server.upstream_stats();
    let hub = server.hub();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(server.run_with_http(listener, http, shutdown.clone()));
    Ok(Cache { addr, http: http_addr, upstream, hub, shutdown, task })
}

/// A headless viewer that takes `frames` frames from `addr`, redialling if need be.
pub async fn view(addr: SocketAddr, frames: u64) -> anyhow::Result<Report> {
    let options = headless::Options {
        frames: Some(frames),
        timeout: Some(PATIENCE),
        ..headless::Options::default()
    };
    let report = headless::run(&addr.to_string(), options, CancellationToken::new()).await?;
    anyhow::ensure!(report.frames == frames, "viewer got {} of {frames} frames", report.frames);
    Ok(report)
}

/// Every frame arrived once, in order, and decoded at the drone's size.
pub fn assert_clean(report: &Report) {
    assert_eq!(report.distinct, report.frames, "duplicate frames: {report:?}");
    assert_eq!(report.out_of_order, 0, "frames out of order: {report:?}");
    assert_eq!(report.decode_errors, 0, "undecodable frames: {report:?}");
    assert_eq!((report.width, report.height), (640, 480), "{report:?}");
}
