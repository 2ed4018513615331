//! The whole path on one machine: a test-pattern drone, a cache-server and a viewer, on
//! loopback. A window where a display exists; a stats line a second otherwise. Ctrl-C (or `q`
//! in the window) stops everything.
//!
//! ```text
//! cargo run --release --example demo
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::info;

fn main() -> anyhow::Result<()> {
    cli::init_logging(cli::LogFormat::Text);
    let runtime = tokio::runtime::Runtime::new().context("could not start tokio")?;
    let shutdown = CancellationToken::new();
    let (cache_addr, http_addr, servers) = runtime.block_on(start(shutdown.clone()))?;
    info!("watch from another terminal too: cargo run --release --bin client -- {cache_addr}");
    info!("or in a browser: http://{http_addr}/ (the live picture, the viewers, /metrics)");

    if client::window::display_available() {
        // The window owns the main thread; Ctrl-C still stops everything cleanly.
        let stop = shutdown.clone();
        runtime.spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            stop.cancel();
        });
        let watcher = runtime.spawn(async move {
            shutdown.cancelled().await;
            let _ = servers.await;
            std::process::exit(0);
        });
        let shown =
            client::window::run(&cache_addr.to_string(), client::window::Options::default());
        watcher.abort();
        return shown;
    }

    info!("no display: showing a stats line a second instead of a window");
    runtime.block_on(async {
        let stop = cli::shutdown_on_signal();
        let options = client::headless::Options {
            progress_every: Some(Duration::from_secs(1)),
            ..client::headless::Options::default()
        };
        let report = client::headless::run(&cache_addr.to_string(), options, stop.clone()).await?;
        info!(
            frames = report.frames,
            fps = format!("{:.1}", report.fps),
            age_ms_p99 = report.age_ms_p99,
            "viewer done"
        );
        shutdown.cancel();
        servers.await.context("servers did not stop")?
    })
}

/// Starts the drone and the cache-server; returns the viewer address, the HTTP address and a
/// task that ends when both have stopped.
async fn start(
    shutdown: CancellationToken,
) -> anyhow::Result<(SocketAddr, SocketAddr, tokio::task::JoinHandle<anyhow::Result<()>>)> {
    // The usual ports when free, so other viewers can join at the documented address.
    let drone_listener = bind("127.0.0.1:9999").await?;
    let cache_listener = bind("127.0.0.1:9998").await?;
    let http_listener = bind("127.0.0.1:8080").await?;
    let drone_addr = drone_listener.local_addr()?;
    let cache_addr = cache_listener.local_addr()?;
    let http_addr = http_listener.local_addr()?;
    let mut cache_config = cache_server::Config::new(drone_addr.to_string());
    cache_config.summary_every = Some(Duration::from_secs(5));
    let drone =
        tokio::spawn(drone::run(drone::Config::default(), drone_listener, shutdown.clone()));
    let cache = tokio::spawn(cache_server::CacheServer::new(cache_config)?.run_with_http(
        cache_listener,
        Some(http_listener),
        shutdown.clone(),
    ));
    let both = tokio::spawn(async move {
        drone.await.context("drone task")??;
        cache.await.context("cache-server task")??;
        Ok(())
    });
    Ok((cache_addr, http_addr, both))
}

async fn bind(preferred: &str) -> anyhow::Result<TcpListener> {
    match TcpListener::bind(preferred).await {
        Ok(listener) => Ok(listener),
        Err(_) => TcpListener::bind("127.0.0.1:0").await.context("could not bind on loopback"),
    }
}
