//! Starting the pieces in-process on ephemeral loopback ports.
#![allow(dead_code)] // each test file uses its own subset

pub mod logs;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dronecast::cache_server::{self, CacheServer, UpstreamState, UpstreamStats};
use dronecast::client::{Report, headless};
use dronecast::drone::{self, Format};
use dronecast::relay::Hub;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Upper bound for anything a test waits on; generous for a loaded 2-core CI machine.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// A running drone.
pub struct Drone {
    pub addr: SocketAddr,
    pub shutdown: CancellationToken,
    pub task: JoinHandle<anyhow::Result<()>>,
}

impl Drone {
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
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let mut config = drone::Config::default();
    config.format = Format { fps, ..config.format };
    configure(&mut config);
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(drone::run(config, listener, shutdown.clone()));
    Ok(Drone { addr, shutdown, task })
}

/// A test-pattern drone at `fps` on an ephemeral port.
pub async fn drone(fps: u32) -> anyhow::Result<Drone> {
    drone_at("127.0.0.1:0", fps).await
}

/// A running cache-server.
pub struct Cache {
    pub addr: SocketAddr,
    pub upstream: Arc<UpstreamStats>,
    pub hub: Arc<Hub>,
    pub shutdown: CancellationToken,
    pub task: JoinHandle<anyhow::Result<()>>,
}

impl Cache {
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
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let mut config = cache_server::Config::new(upstream.to_string());
    config.summary_every = None;
    configure(&mut config);
    let server = CacheServer::new(config);
    let upstream = server.upstream_stats();
    let hub = server.hub();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(server.run(listener, shutdown.clone()));
    Ok(Cache { addr, upstream, hub, shutdown, task })
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
