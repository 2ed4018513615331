//! The dronecast drone: runs beside a camera, captures JPEG frames and serves the newest one
//! to every relay (cache-server or client) that connects.
//!
//! # Layout
//! - [`source`] — the [`source::Source`] trait and the sources: test pattern, file, camera
//!   (the camera only with the cargo feature `camera`, which needs libclang to build).
//! - [`jpeg`] — finding where a JPEG ends, splitting an MJPEG stream, reading a frame's size;
//!   what lets camera and file frames pass through untouched.
//! - [`raw`] — raw camera pixels (YUYV, NV12, RGB) to JPEG, for cameras without MJPEG.
//! - [`capture`] — the capture thread that paces a source and publishes its frames.
//! - [`layers`] — `--layers`: smaller JPEGs of each capture, made on a thread of their own.
//! - [`meta`] — `--meta-from`: data from a local program, sent along with the frames.
//! - [`messages`] — `--messages-to`: what viewers send back, to a local program.
//! - [`run`] — ties the capture thread to a [`relay::Server`] on a listener.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod capture;
pub mod jpeg;
pub mod layers;
pub mod messages;
pub mod meta;
pub mod raw;
pub mod source;

use anyhow::Context;
use relay::{HttpConfig, HttpServer, Hub, Server, ServerConfig, Stream};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::info;

pub use source::{CameraId, Format, SourceSpec};

/// Everything the drone needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Which source to capture from.
    pub source: SourceSpec,
    /// Size, rate and JPEG quality.
    pub format: Format,
    /// Keep capturing while no relay is connected.
    pub always_capture: bool,
    /// Largest frame sent, as a message length in bytes; a larger one is skipped with an
    /// error in the log, since every receiver with the same limit would drop its connection.
    pub max_frame_bytes: usize,
    /// How relays are served.
    pub server: ServerConfig,
    /// The name of the stream, which viewers may ask for and relays report.
    pub name: String,
    /// Where data to send with the frames comes from, if anywhere.
    pub meta_from: Option<meta::MetaFrom>,
    /// Where viewer messages go; without it the drone takes none.
    pub messages_to: Option<messages::MessagesTo>,
    /// The quality layers to make, largest first; empty: the full picture only.
    pub layers: layers::LayerList,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            source: SourceSpec::Test,
            format: Format { width: 640, height: 480, fps: 30, quality: 80 },
            always_capture: false,
            max_frame_bytes: framing::DEFAULT_MAX_MESSAGE_LEN,
            name: "default".into(),
            meta_from: None,
            messages_to: None,
            layers: layers::LayerList::default(),
            server: ServerConfig {
                agent: concat!("drone/", env!("CARGO_PKG_VERSION")).into(),
                ..ServerConfig::default()
            },
        }
    }
}

/// The name of the only layer of a drone without `--layers`.
pub const FULL_PICTURE: &str = "full";

/// Opens the source, then serves its frames on `listener` until `shutdown` is cancelled.
/// Fails at once when the source cannot be opened.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    run_with_http(config, listener, None, shutdown).await
}

/// [`run`], also serving HTTP (MJPEG, snapshots, status page, metrics) on `http` if given.
pub async fn run_with_http(
    config: Config,
    listener: TcpListener,
    http: Option<TcpListener>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let stream = Stream::new(&config.name, config.max_frame_bytes);
    let (hub, stream) = Hub::single(config.server, stream);
    let stop = shutdown.child_token();
    let layers = match config.layers.0.is_empty() {
        true => {
            stream.set_layer_names(vec![FULL_PICTURE.to_owned()]);
            None
        }
        false => {
            stream.set_layer_names(config.layers.names());
            let specs = config.layers.0.clone();
            Some(layers::Layers::start(specs, config.format.quality, stream.clone())?)
        }
    };
    let meta = match &config.meta_from {
        Some(from) => Some(meta::start(from, stop.clone()).await?),
        None => None,
    };
    if let Some(to) = &config.messages_to {
        let inbox = stream.take_messages(messages::BACKLOG);
        messages::start(to, inbox, stop.clone()).await?;
    }
    let task = capture::CaptureTask {
        spec: config.source.clone(),
        format: config.format,
        stream: stream.clone(),
        meta,
        layers,
        always: config.always_capture,
        stop: stop.clone(),
    };
    let (described, capture) =
        task.start().await.with_context(|| format!("could not open source '{}'", config.source))?;
    let addr = listener.local_addr().context("listener has no local address")?;
    info!(%addr, "drone serving {described}");
    let mut tcp = Server::new(hub.clone());
    let http = match http {
        Some(http) => {
            let http_addr = http.local_addr().context("HTTP listener has no local address")?;
            let scheme = if hub.config().tls.is_some() { "https" } else { "http" };
            info!("serving HTTP on {scheme}://{http_addr}/");
            tcp = tcp.with_http_hint(format!("port {}", http_addr.port()));
            let config = HttpConfig {
                dronecast_hint: Some(format!("port {}", addr.port())),
                ..HttpConfig::default()
            };
            Some(tokio::spawn(HttpServer::new(hub.clone(), config).run(http, shutdown.clone())))
        }
        None => None,
    };
    tcp.run(listener, shutdown).await;
    if let Some(http) = http {
        http.await.context("HTTP server failed")?;
    }
    stop.cancel();
    tokio::task::spawn_blocking(move || capture.join())
        .await
        .context("capture thread did not stop")?
        .map_err(|_| anyhow::anyhow!("capture thread panicked"))?;
    info!("drone stopped");
    Ok(())
}
