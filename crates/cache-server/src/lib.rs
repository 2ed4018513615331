//! The dronecast cache-server: relays any number of named streams — each from a drone or
//! from another cache-server — holding each one's newest frame and serving it to any number
//! of viewers over TCP ([`relay::Server`]) and HTTP ([`relay::HttpServer`]).
//!
//! The cache-server never decodes a frame: it forwards the exact bytes it received, shared by
//! reference among all viewers. A stream whose upstream is down costs a redial now and then,
//! and never disturbs another stream.
//!
//! # Layout
//! - [`spec`] — which streams to relay: `--upstream` values and the `--config` file.
//! - [`streams`] — one upstream link per stream, mirrors of another relay's list, reloads.
//! - [`upstream`] — the redialling upstream link and its counters.
//! - [`status_line`] — the periodic one-line status in the log, per stream.
//! - [`CacheServer`] — ties them to the listeners.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod spec;
pub mod status_line;
pub mod streams;
pub mod upstream;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use relay::{Backoff, HttpConfig, HttpServer, Hub, Server, ServerConfig, SubscribeOptions};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub use spec::{DEFAULT_STREAM, StreamSpec};
pub use streams::MESSAGE_BACKLOG;
pub use upstream::{UpstreamState, UpstreamStats};

/// Everything the cache-server needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// The streams to relay (from `--upstream`).
    pub streams: Vec<StreamSpec>,
    /// A file with more streams (`--config`), re-read on every reload.
    pub config_file: Option<PathBuf>,
    /// How to dial upstreams.
    pub subscribe: SubscribeOptions,
    /// How to pace redials.
    pub backoff: Backoff,
    /// The token upstreams want, unless a stream says otherwise.
    pub upstream_token: Option<String>,
    /// How to trust `tls://` upstreams, unless a stream says otherwise.
    pub upstream_trust: relay::tls::Trust,
    /// How viewers are served.
    pub server: ServerConfig,
    /// How often to log the status line; `None` for never.
    pub summary_every: Option<Duration>,
    /// How long a stream's upstream may be down before `/healthz` answers 503.
    pub health_grace: Duration,
}

impl Config {
    /// Defaults for one stream, `default`, relayed from `upstream` (`HOST:PORT`, or any form
    /// `--upstream` takes). An upstream that does not parse is a stream that never connects,
    /// with the reason in the log.
    pub fn new(upstream: impl Into<String>) -> Config {
        let agent = concat!("cache-server/", env!("CARGO_PKG_VERSION"));
        let upstream = upstream.into();
        let spec = upstream.parse::<StreamSpec>().unwrap_or_else(|err| {
            warn!(%upstream, %err, "not an upstream");
            StreamSpec {
                name: None,
                upstream: relay::Target { addr: upstream, stream: String::new(), tls: false },
                max_frame_bytes: None,
                redial_max: None,
                token: None,
                trust: None,
            }
        });
        Config {
            streams: vec![spec],
            config_file: None,
            subscribe: SubscribeOptions {
                agent: agent.into(),
                // Every layer: its own viewers each get the one their link carries.
                features: framing::features::RELAY | framing::features::LAYERS,
                layers: framing::layers::ALL.to_owned(),
                ..SubscribeOptions::default()
            },
            // A cap well under a second: viewers resume within a second of the drone's return.
            backoff: Backoff::new(Duration::from_millis(50), Duration::from_millis(500)),
            upstream_token: None,
            upstream_trust: relay::tls::Trust::System,
            server: ServerConfig { agent: agent.into(), ..ServerConfig::default() },
            summary_every: Some(Duration::from_secs(5)),
            health_grace: relay::http::DEFAULT_HEALTH_GRACE,
        }
    }

    /// The streams to relay now: `--upstream`s, then the config file's.
    pub fn all_streams(&self) -> anyhow::Result<Vec<StreamSpec>> {
        let mut specs = self.streams.clone();
        if let Some(path) = &self.config_file {
            specs.extend(spec::read_file(path)?);
        }
        spec::check_unique(&specs)?;
        Ok(specs)
    }
}

/// A cache-server, built but not yet running; its counters can be read from the start.
pub struct CacheServer {
    config: Config,
    hub: Arc<Hub>,
    streams: streams::Streams,
    specs: Vec<StreamSpec>,
    shutdown: CancellationToken,
    reload: Option<watch::Receiver<u64>>,
}

impl std::fmt::Debug for CacheServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheServer").field("streams", &self.hub.stream_names()).finish()
    }
}

impl CacheServer {
    /// Builds a cache-server and starts its upstream links (they redial until the server
    /// runs, and stop when it stops). Fails when the configuration does: a config file that
    /// does not read, two streams with one name, more streams than `max_streams`. Must be
    /// called inside a tokio runtime.
    pub fn new(config: Config) -> anyhow::Result<CacheServer> {
        let specs = config.all_streams()?;
        let max = config.server.max_streams;
        anyhow::ensure!(
            specs.iter().filter(|s| !s.is_mirror()).count() <= max,
            "{} streams configured, more than --max-streams {max}",
            specs.len()
        );
        let hub = Hub::new(config.server.clone());
        let shutdown = CancellationToken::new();
        let dialing = streams::Dialing {
            subscribe: config.subscribe.clone(),
            backoff: config.backoff,
            token: config.upstream_token.clone(),
            trust: config.upstream_trust.clone(),
        };
        let mut streams = streams::Streams::new(hub.clone(), dialing, shutdown.child_token());
        streams.apply(&specs);
        Ok(CacheServer { config, hub, streams, specs, shutdown, reload: None })
    }

    /// Re-reads the config file whenever `reload` changes (the `main` wires SIGHUP to it):
    /// new streams start, removed ones stop, the others carry on untouched.
    pub fn reload_on(mut self, reload: watch::Receiver<u64>) -> CacheServer {
        self.reload = Some(reload);
        self
    }

    /// Counters of the upstream link of the first stream configured.
    pub fn upstream_stats(&self) -> Arc<UpstreamStats> {
        self.specs.first().and_then(|spec| self.streams.stats(&spec.key())).unwrap_or_else(|| {
            Arc::new(UpstreamStats::new(Arc::new(relay::Stream::with_default_limit(
                DEFAULT_STREAM,
            ))))
        })
    }

    /// Counters of the upstream link feeding stream `name`, if one does.
    pub fn upstream_stats_of(&self, name: &str) -> Option<Arc<UpstreamStats>> {
        self.streams.stats(name)
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
        let upstreams: Vec<String> = self.specs.iter().map(|s| s.upstream.to_string()).collect();
        info!(%addr, upstream = %upstreams.join(", "), "cache-server serving viewers");
        if let Some(every) = self.config.summary_every {
            let line = status_line::StatusLine::new(self.hub.clone(), every);
            tokio::spawn(line.run(shutdown.clone()));
        }
        let mut tcp = Server::new(self.hub.clone());
        let http = match http {
            Some(http) => {
                let http_addr = http.local_addr().context("HTTP listener has no local address")?;
                let scheme = if self.hub.config().tls.is_some() { "https" } else { "http" };
                info!("serving HTTP on {scheme}://{http_addr}/");
                tcp = tcp.with_http_hint(format!("port {}", http_addr.port()));
                let config = HttpConfig {
                    dronecast_hint: Some(format!("port {}", addr.port())),
                    health_grace: self.config.health_grace,
                };
                let server = HttpServer::new(self.hub.clone(), config);
                Some(tokio::spawn(server.run(http, shutdown.clone())))
            }
            None => None,
        };
        let CacheServer { config, streams, reload, shutdown: links, .. } = self;
        streams.go();
        let reloading = tokio::spawn(reload_loop(config, streams, reload, shutdown.clone()));
        tcp.run(listener, shutdown).await;
        if let Some(http) = http {
            http.await.context("HTTP server failed")?;
        }
        let streams = reloading.await.context("the stream supervisor failed")?;
        links.cancel();
        streams.stop_all().await;
        info!("cache-server stopped");
        Ok(())
    }
}

/// Applies the configuration again at each reload, until `shutdown`; returns the streams.
async fn reload_loop(
    config: Config,
    mut streams: streams::Streams,
    reload: Option<watch::Receiver<u64>>,
    shutdown: CancellationToken,
) -> streams::Streams {
    let Some(mut reload) = reload else {
        shutdown.cancelled().await;
        return streams;
    };
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return streams,
            changed = reload.changed() => if changed.is_err() {
                shutdown.cancelled().await;
                return streams;
            },
        }
        if config.config_file.is_none() {
            continue;
        }
        match config.all_streams() {
            Ok(specs) => {
                info!(streams = specs.len(), "configuration reloaded");
                streams.apply(&specs);
            }
            Err(err) => {
                warn!(error = %format!("{err:#}"), "configuration not reloaded; keeping the streams as they are")
            }
        }
    }
}
