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
use relay::{Backoff, HttpConfig, HttpServer, Hub, Server, ServerConfig, Stream, SubscribeOptions};
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
            subscribe: SubscribeOptions {
                agent: agent.into(),
                features: framing::features::RELAY,
                ..SubscribeOptions::default()
            },
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
    hub: Arc<Hub>,
    upstream: Arc<UpstreamStats>,
}

impl CacheServer {
    /// Builds a cache-server.
    pub fn new(config: Config) -> CacheServer {
        let stream = Stream::new(DEFAULT_STREAM, config.subscribe.max_message_len);
        let (hub, stream) = Hub::single(config.server.clone(), stream);
        CacheServer { config, hub, upstream: Arc::new(UpstreamStats::new(stream)) }
    }

    /// Counters of the upstream link.
    pub fn upstream_stats(&self) -> Arc<UpstreamStats> {
        self.upstream.clone()
    }

    /// The streams and viewers served.
    pub fn hub(&self) -> Arc<Hub> {
        self.hub.clone()
    }

    /// Serves viewers on `listener` until `shutdown` is cancelled.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        self.run_with_http(listener, None, shutdown).await
    }

    /// Serves viewers on `listener`, and over HTTP on `http` if given, until `shutdown` is
    /// cancelled.
    pub async fn run_with_http(
        self,
        listener: TcpListener,
        http: Option<TcpListener>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let addr = listener.local_addr().context("listener has no local address")?;
        info!(%addr, upstream = %self.config.upstream, "cache-server serving viewers");
        // Every line the link logs names the upstream it dials.
        let span = info_span!("upstream", addr = %self.config.upstream);
        // Viewer messages go upstream, hop by hop, to the drone.
        let inbox = self.hub.default_stream().map(|s| s.take_messages(MESSAGE_BACKLOG));
        let inbox = inbox.context("a cache-server always has its stream")?;
        let upstream = tokio::spawn(
            upstream::run(
                self.config.upstream.clone(),
                self.config.subscribe.clone(),
                self.config.backoff,
                self.upstream.clone(),
                inbox,
                shutdown.clone(),
            )
            .instrument(span),
        );
        if let Some(every) = self.config.summary_every {
            let line = status_line::StatusLine::new(self.hub.clone(), every);
            tokio::spawn(line.run(shutdown.clone()));
        }
        let mut tcp = Server::new(self.hub.clone());
        let http = match http {
            Some(http) => {
                let http_addr = http.local_addr().context("HTTP listener has no local address")?;
                info!("serving HTTP on http://{http_addr}/");
                tcp = tcp.with_http_hint(format!("port {}", http_addr.port()));
                let config = HttpConfig { dronecast_hint: Some(format!("port {}", addr.port())) };
                let server = HttpServer::new(self.hub.clone(), config);
                Some(tokio::spawn(server.run(http, shutdown.clone())))
            }
            None => None,
        };
        tcp.run(listener, shutdown).await;
        if let Some(http) = http {
            http.await.context("HTTP server failed")?;
        }
        upstream.await.context("upstream task failed")?;
        info!("cache-server stopped");
        Ok(())
    }
}

/// The name of the one stream a cache-server relays (until it relays several).
pub const DEFAULT_STREAM: &str = "default";

/// Viewer messages that may wait for the upstream link; more are dropped and counted.
pub const MESSAGE_BACKLOG: usize = 1024;
