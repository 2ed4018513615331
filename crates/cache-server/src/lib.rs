//! The dronecast cache-server: keeps one upstream link to a drone (or another cache-server),
//! holds the newest frame in a `tokio::sync::watch` channel, and serves it to any number of
//! viewers through [`relay::Server`].
//!
//! The cache-server never decodes a frame: it forwards the exact bytes it received, shared by
//! reference among all viewers.
//!
//! # Layout
//! - [`upstream`] — the redialling upstream link and its counters.
//! - [`status_line`] — the periodic one-line status in the log.
//! - [`CacheServer`] — ties the two to a viewer listener.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod status_line;
pub mod upstream;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use relay::{Backoff, Publisher, Server, ServerConfig, ServerStats, SubscribeOptions};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span};

pub use upstream::{UpstreamState, UpstreamStats};

/// Everything the cache-server needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// `host:port` of the drone or upstream cache-server.
    pub upstream: String,
    /// How to dial it.
    pub subscribe: SubscribeOptions,
    /// How to pace redials.
    pub backoff: Backoff,
    /// How viewers are served.
    pub server: ServerConfig,
    /// How often to log the status line; `None` for never.
    pub summary_every: Option<Duration>,
}

impl Config {
    /// Defaults for an upstream at `upstream`.
    pub fn new(upstream: impl Into<String>) -> Config {
        let agent = concat!("cache-server/", env!("CARGO_PKG_VERSION"));
        Config {
            upstream: upstream.into(),
            subscribe: SubscribeOptions { agent: agent.into(), ..SubscribeOptions::default() },
            // A cap well under a second: viewers resume within a second of the drone's return.
            backoff: Backoff::new(Duration::from_millis(50), Duration::from_millis(500)),
            server: ServerConfig { agent: agent.into(), ..ServerConfig::default() },
            summary_every: Some(Duration::from_secs(5)),
        }
    }
}

/// A cache-server, built but not yet running; its counters can be read from the start.
#[derive(Debug)]
pub struct CacheServer {
    config: Config,
    server: Server,
    upstream: Arc<UpstreamStats>,
}

impl CacheServer {
    /// Builds a cache-server.
    pub fn new(config: Config) -> CacheServer {
        let server = Server::new(config.server.clone());
        CacheServer { config, server, upstream: Arc::new(UpstreamStats::new()) }
    }

    /// Counters of the upstream link.
    pub fn upstream_stats(&self) -> Arc<UpstreamStats> {
        self.upstream.clone()
    }

    /// Counters of the viewer side.
    pub fn viewer_stats(&self) -> Arc<ServerStats> {
        self.server.stats()
    }

    /// Serves viewers on `listener` until `shutdown` is cancelled.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let addr = listener.local_addr().context("listener has no local address")?;
        info!(%addr, upstream = %self.config.upstream, "cache-server serving viewers");
        let publish = Publisher::new(self.config.subscribe.max_message_len);
        let latest = publish.subscribe();
        // Every line the link logs names the upstream it dials.
        let span = info_span!("upstream", addr = %self.config.upstream);
        let upstream = tokio::spawn(
            upstream::run(
                self.config.upstream.clone(),
                self.config.subscribe.clone(),
                self.config.backoff,
                publish,
                self.upstream.clone(),
                shutdown.clone(),
            )
            .instrument(span),
        );
        if let Some(every) = self.config.summary_every {
            let line =
                status_line::StatusLine::new(self.upstream.clone(), self.server.stats(), every);
            tokio::spawn(line.run(shutdown.clone()));
        }
        self.server.run(listener, latest, shutdown).await;
        upstream.await.context("upstream task failed")?;
        info!("cache-server stopped");
        Ok(())
    }
}
