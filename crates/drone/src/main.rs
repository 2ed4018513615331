//! `drone`: serve a camera, a file or a test pattern to relays over TCP.

use std::net::SocketAddr;

use anyhow::Context;
use clap::Parser;
use drone::{Config, Format, SourceSpec};
use relay::cli::ServeArgs;

/// Captures frames and serves the newest one, as JPEG, to every cache-server or client that
/// connects.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// Address to listen on for relays.
    #[arg(long, env = "DRONE_LISTEN", default_value = "0.0.0.0:9999")]
    listen: SocketAddr,
    /// What to capture: `test` (moving test pattern), `camera`, or the path of an MJPEG file
    /// or a folder of .jpg files.
    #[arg(long, env = "DRONE_SOURCE", default_value = "test")]
    source: SourceSpec,
    /// Frame width in pixels.
    #[arg(long, default_value_t = 640)]
    width: u32,
    /// Frame height in pixels.
    #[arg(long, default_value_t = 480)]
    height: u32,
    /// Frames per second.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=240))]
    fps: u32,
    /// JPEG quality, 1–100, where the drone encodes (the test pattern, raw cameras).
    #[arg(long, default_value_t = 80, value_parser = clap::value_parser!(u8).range(1..=100))]
    quality: u8,
    /// Keep capturing while no relay is connected (by default capture pauses).
    #[arg(long)]
    always_capture: bool,
    #[command(flatten)]
    serve: ServeArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    relay::cli::init_logging();
    let agent = concat!("drone/", env!("CARGO_PKG_VERSION"));
    let server = cli.serve.config(agent).map_err(anyhow::Error::msg)?;
    let format = Format { width: cli.width, height: cli.height, fps: cli.fps, quality: cli.quality };
    let config =
        Config { source: cli.source, format, always_capture: cli.always_capture, server };
    let listener = tokio::net::TcpListener::bind(cli.listen)
        .await
        .with_context(|| format!("could not listen on {} (port in use?)", cli.listen))?;
    drone::run(config, listener, relay::cli::shutdown_on_signal()).await
}
