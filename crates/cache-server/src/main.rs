//! `cache-server`: relay one drone's stream to any number of viewers.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use cache_server::{CacheServer, Config};
use clap::Parser;
use relay::cli::ServeArgs;

/// Connects to a drone (or another cache-server), keeps its newest frame and serves it to
/// every viewer that connects. Redials the upstream whenever it drops, without dropping
/// viewers.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// The drone or upstream cache-server, as HOST:PORT.
    #[arg(long, env = "CACHE_UPSTREAM", default_value = "127.0.0.1:9999")]
    upstream: String,
    /// Address to listen on for viewers.
    #[arg(long, env = "CACHE_LISTEN", default_value = "0.0.0.0:9998")]
    listen: SocketAddr,
    /// Longest pause between upstream redials, in seconds (the pause doubles from 50 ms). It
    /// bounds how long viewers wait for video once the upstream is back.
    #[arg(long, env = "CACHE_REDIAL_MAX", default_value_t = 0.5)]
    redial_max: f64,
    /// Largest frame accepted from upstream, in bytes; a longer one drops the link.
    #[arg(long, default_value_t = framing::DEFAULT_MAX_MESSAGE_LEN)]
    max_frame_bytes: usize,
    /// Seconds between status lines in the log (0 for none).
    #[arg(long, default_value_t = 5.0)]
    summary_every: f64,
    #[command(flatten)]
    serve: ServeArgs,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    relay::cli::init_logging();
    relay::cli::exit_code(run(cli).await)
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut config = Config::new(&cli.upstream);
    config.server = cli.serve.config(&config.server.agent).map_err(anyhow::Error::msg)?;
    config.subscribe.max_message_len = cli.max_frame_bytes;
    config.backoff.max = Duration::try_from_secs_f64(cli.redial_max)
        .context("--redial-max must be a non-negative number of seconds")?
        .max(config.backoff.initial);
    config.summary_every =
        Duration::try_from_secs_f64(cli.summary_every).ok().filter(|d| !d.is_zero());
    let listener = relay::socket::listen(cli.listen)
        .with_context(|| format!("could not listen on {} (port in use?)", cli.listen))?;
    CacheServer::new(config).run(listener, relay::cli::shutdown_on_signal()).await
}
