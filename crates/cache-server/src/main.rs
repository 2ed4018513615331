//! `cache-server`: relay one drone's stream to any number of viewers.

use std::net::SocketAddr;
use std::time::Duration;

use cache_server::{CacheServer, Config};
use clap::Parser;
use cli::ServeArgs;
use cli::args::{frame_bytes, seconds, seconds_or_zero};

/// Connects to a drone (or another cache-server), keeps its newest frame and serves it to
/// every viewer that connects. Redials the upstream whenever it drops, without dropping
/// viewers.
#[derive(Debug, Parser)]
#[command(version = cli::version(env!("CARGO_PKG_VERSION")))]
struct Cli {
    /// The drone or upstream cache-server, as HOST:PORT.
    #[arg(long, env = "CACHE_UPSTREAM", default_value = "127.0.0.1:9999")]
    upstream: String,
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
    #[command(flatten)]
    serve: ServeArgs,
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
    let mut config = Config::new(&cli.upstream);
    config.server = cli.serve.config(&config.server.agent);
    config.subscribe.max_message_len = cli.max_frame_bytes;
    config.backoff = relay::Backoff::new(config.backoff.initial, cli.redial_max);
    config.summary_every = Some(cli.summary_every).filter(|d| !d.is_zero());
    let shutdown = cli::shutdown_on_signal();
    let mut reloads = cli::reload_on_sighup();
    tokio::spawn(async move {
        while reloads.changed().await.is_ok() {
            tracing::info!("SIGHUP: nothing to reload");
        }
    });
    let listener = cli::listen(cli.listen)?;
    let http = cli.http.0.map(cli::listen).transpose()?;
    // Ready once it serves viewers (the server's first beat), whether or not the upstream is
    // up: until it is, viewers are told the source is offline.
    let status = format!("serving viewers on {}; upstream {}", cli.listen, cli.upstream);
    cli::systemd::notify(&config.server, &shutdown, status);
    CacheServer::new(config).run_with_http(listener, http, shutdown).await
}
