//! `cache-server`: relay drones' streams to any number of viewers.

use std::net::SocketAddr;
use std::time::Duration;

use cache_server::{CacheServer, Config, StreamSpec};
use clap::Parser;
use cli::ServeArgs;
use cli::args::{frame_bytes, seconds, seconds_or_zero};

/// Relays any number of named streams, each from a drone or another cache-server: keeps each
/// one's newest frame and serves it to every viewer that asks for it. Redials an upstream
/// whenever it drops, without dropping viewers.
#[derive(Debug, Parser)]
#[command(version = cli::version(env!("CARGO_PKG_VERSION")))]
struct Cli {
    /// A stream to relay (repeat for more): HOST:PORT (the stream `default`), NAME=HOST:PORT,
    /// NAME=HOST:PORT/STREAM (a stream of another relay), HOST:PORT/STREAM, or HOST:PORT/*
    /// (every stream of another relay, also those it adds later). Without any, and without
    /// --config: 127.0.0.1:9999.
    #[arg(
        long,
        env = "CACHE_UPSTREAM",
        value_delimiter = ',',
        value_name = "[NAME=]HOST:PORT[/STREAM]"
    )]
    upstream: Vec<StreamSpec>,
    /// A TOML file of streams (`[[stream]]` tables: name, upstream, max_frame_bytes,
    /// redial_max), re-read on SIGHUP: new streams start, removed ones stop.
    #[arg(long, env = "CACHE_CONFIG", value_name = "PATH")]
    config: Option<std::path::PathBuf>,
    /// Most streams served at once (1 to 1024).
    #[arg(long, env = "CACHE_MAX_STREAMS", default_value_t = 64, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..=1024))]
    max_streams: u64,
    /// Address to listen on for viewers.
    #[arg(long, env = "CACHE_LISTEN", default_value = "0.0.0.0:9998")]
    listen: SocketAddr,
    /// Address to serve HTTP on (live MJPEG for browsers, VLC, Home Assistant; snapshots; a
    /// status page; Prometheus metrics), or `off`.
    #[arg(long, env = "CACHE_HTTP", default_value = "0.0.0.0:8080", value_name = "ADDR|off")]
    http: cli::args::AddrOrOff,
    /// Longest pause between upstream redials, in seconds (the pause doubles from 50 ms). It
    /// bounds how long viewers wait for video once the upstream is back.
    #[arg(long, env = "CACHE_REDIAL_MAX", default_value = "0.5", value_name = "SECS",
          value_parser = seconds)]
    redial_max: Duration,
    /// Largest frame accepted from upstream, in bytes (1024 to 1073741824); a longer one drops
    /// the link.
    #[arg(long, env = "CACHE_MAX_FRAME_BYTES", default_value_t = framing::DEFAULT_MAX_MESSAGE_LEN,
          value_name = "BYTES", value_parser = frame_bytes)]
    max_frame_bytes: usize,
    /// Seconds between status lines in the log (0 for none).
    #[arg(long, env = "CACHE_SUMMARY_EVERY", default_value = "5", value_name = "SECS",
          value_parser = seconds_or_zero)]
    summary_every: Duration,
    /// Seconds a stream's upstream may be down before GET /healthz on the HTTP port answers
    /// 503 (0 to 86400), so that a balancer sends new viewers to another relay; a shorter
    /// outage (a drone restarting) keeps the relay in service.
    #[arg(long, env = "CACHE_HEALTH_GRACE", default_value = "3", value_name = "SECS",
          value_parser = seconds_or_zero)]
    health_grace: Duration,
    /// The token upstreams want (a stream of --config may set its own).
    #[arg(long, env = "CACHE_UPSTREAM_TOKEN", value_name = "TOKEN")]
    upstream_token: Option<String>,
    /// A file holding the token upstreams want (its first line).
    #[arg(
        long,
        env = "CACHE_UPSTREAM_TOKEN_FILE",
        value_name = "PATH",
        conflicts_with = "upstream_token"
    )]
    upstream_token_file: Option<std::path::PathBuf>,
    /// For tls:// upstreams: trust the CAs in this PEM file (instead of the system's).
    #[arg(
        long,
        env = "CACHE_UPSTREAM_TLS_CA",
        value_name = "PEM",
        conflicts_with = "upstream_tls_pin"
    )]
    upstream_tls_ca: Option<std::path::PathBuf>,
    /// For tls:// upstreams: trust exactly the certificate with this SHA-256 fingerprint.
    #[arg(long, env = "CACHE_UPSTREAM_TLS_PIN", value_name = "SHA256")]
    upstream_tls_pin: Option<relay::tls::Fingerprint>,
    #[command(flatten)]
    serve: ServeArgs,
    #[command(flatten)]
    protect: cli::security::Protect,
    #[command(flatten)]
    log: cli::LogArgs,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    cli::init_logging(cli.log.log_format);
    cli::exit_code(run(cli).await)
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut config = Config::new("127.0.0.1:9999");
    if !cli.upstream.is_empty() || cli.config.is_some() {
        config.streams = cli.upstream;
    }
    config.config_file = cli.config.clone();
    config.server = cli.serve.config(&config.server.agent);
    let (auth, tls) = cli.protect.load()?;
    if let Some(fingerprint) = tls.as_ref().and_then(|tls| tls.fingerprint()) {
        tracing::info!(%fingerprint, "TLS on; viewers can pin the certificate with --tls-pin {fingerprint}");
    }
    // SIGHUP re-reads the streams' config file, the tokens and the certificate.
    let reload = cli::reload_on_sighup();
    cli::security::reload_security(auth.clone(), tls.clone(), reload.clone());
    if auth.is_none() && tls.is_none() && cli.config.is_none() {
        let mut reloads = reload.clone();
        tokio::spawn(async move {
            while reloads.changed().await.is_ok() {
                tracing::info!("SIGHUP: nothing to reload");
            }
        });
    }
    (config.server.auth, config.server.tls) = (auth, tls);
    let upstream = cli::security::Dial {
        token: cli.upstream_token,
        token_file: cli.upstream_token_file,
        tls_ca: cli.upstream_tls_ca,
        tls_pin: cli.upstream_tls_pin,
        tls: false,
    };
    let token = upstream.token()?;
    config.upstream_token =
        (!token.is_empty()).then(|| String::from_utf8_lossy(&token).into_owned());
    config.upstream_trust = upstream.trust();
    // Bounded by clap to 1..=1024.
    config.server.max_streams = usize::try_from(cli.max_streams).unwrap_or(1024);
    config.subscribe.max_message_len = cli.max_frame_bytes;
    config.backoff = relay::Backoff::new(config.backoff.initial, cli.redial_max);
    config.summary_every = Some(cli.summary_every).filter(|d| !d.is_zero());
    config.health_grace = cli.health_grace;
    let shutdown = cli::shutdown_on_signal();
    let listener = cli::listen(cli.listen)?;
    let http = cli.http.0.map(cli::listen).transpose()?;
    // Ready once it serves viewers (the server's first beat), whether or not its upstreams
    // are up: until they are, viewers are told the source is offline.
    let status = format!("serving viewers on {}", cli.listen);
    cli::systemd::notify(&config.server, &shutdown, status);
    CacheServer::new(config)?.reload_on(reload).run_with_http(listener, http, shutdown).await
}
