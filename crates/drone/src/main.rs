//! `drone`: serve a camera, a file or a test pattern to relays over TCP.

use std::net::SocketAddr;

use clap::Parser;
use cli::ServeArgs;
use drone::{CameraId, Config, Format, SourceSpec};

/// Captures frames and serves the newest one, as JPEG, to every cache-server or client that
/// connects.
#[derive(Debug, Parser)]
#[command(version = cli::version(env!("CARGO_PKG_VERSION")))]
struct Cli {
    /// Address to listen on for relays.
    #[arg(long, env = "DRONE_LISTEN", default_value = "0.0.0.0:9999")]
    listen: SocketAddr,
    /// The name of the stream this drone serves, which viewers may ask for and a cache-server
    /// relaying it reports (as well as `default`, when its --upstream names none).
    #[arg(long, env = "DRONE_NAME", default_value = "default", value_name = "NAME",
          value_parser = cli::args::stream_name)]
    name: String,
    /// Address to serve HTTP on (live MJPEG, snapshots, a status page, metrics), or `off`.
    /// Off by default: a Pi usually feeds a cache-server, which serves HTTP.
    #[arg(long, env = "DRONE_HTTP", default_value = "off", value_name = "ADDR|off")]
    http: cli::args::AddrOrOff,
    /// What to capture: `camera`, `test` (moving test pattern), or the path of an MJPEG file
    /// or a folder of .jpg files (played in a loop, passed through untouched). The default is
    /// `camera` in a drone built with `--features camera`, `test` otherwise.
    #[arg(long, env = "DRONE_SOURCE", default_value = DEFAULT_SOURCE)]
    source: SourceSpec,
    /// Which camera: an index (0 is /dev/video0) or a device path.
    #[arg(long, env = "DRONE_CAMERA", default_value = "0")]
    camera: CameraId,
    /// Print every camera with the formats, sizes and frame rates it offers, then exit.
    #[arg(long)]
    list_cameras: bool,
    /// Frame width in pixels (16 to 8192).
    #[arg(long, env = "DRONE_WIDTH", default_value_t = 640,
          value_parser = clap::value_parser!(u32).range(16..=i64::from(framing::MAX_DIMENSION)))]
    width: u32,
    /// Frame height in pixels (16 to 8192).
    #[arg(long, env = "DRONE_HEIGHT", default_value_t = 480,
          value_parser = clap::value_parser!(u32).range(16..=i64::from(framing::MAX_DIMENSION)))]
    height: u32,
    /// Frames per second (1 to 240).
    #[arg(long, env = "DRONE_FPS", default_value_t = 30,
          value_parser = clap::value_parser!(u32).range(1..=240))]
    fps: u32,
    /// JPEG quality, 1–100, where the drone encodes (the test pattern, raw cameras).
    #[arg(long, env = "DRONE_QUALITY", default_value_t = 80,
          value_parser = clap::value_parser!(u8).range(1..=100))]
    quality: u8,
    /// Quality layers: smaller JPEGs of every frame beside the full one, for viewers on slow
    /// links (relays pick one per viewer; see README). A list, largest first, of up to 4
    /// `[NAME=]SIZE[@QUALITY]`, SIZE being WxH or qqvga, qvga, vga, svga, hd, fhd; e.g.
    /// `640x480,320x240` or `full=vga,small=qvga@60`. A frame that fits a layer's size is that
    /// layer untouched.
    #[arg(long, env = "DRONE_LAYERS", value_name = "LIST")]
    layers: Option<drone::layers::LayerList>,
    /// Largest frame sent, in bytes (1024 to 1073741824). A larger one (a huge JPEG in a file)
    /// is skipped with an error in the log: receivers with the same limit would drop it.
    #[arg(long, env = "DRONE_MAX_FRAME_BYTES", default_value_t = framing::DEFAULT_MAX_MESSAGE_LEN,
          value_name = "BYTES", value_parser = cli::args::frame_bytes)]
    max_frame_bytes: usize,
    /// Data to send along with the frames, from a local program: `stdin`, `unix:PATH` or
    /// `udp:127.0.0.1:PORT`; one JSON object a line (a datagram), up to 64 KiB. The newest
    /// goes on the next frame, flagged fresh, and stays on later frames until replaced.
    #[arg(long, env = "DRONE_META_FROM", value_name = "stdin|unix:PATH|udp:ADDR")]
    meta_from: Option<drone::meta::MetaFrom>,
    /// Where messages from viewers go, as JSON lines: `stdout`, or `unix:PATH` (a socket any
    /// number of local programs may read). Without it the drone takes no messages.
    #[arg(long, env = "DRONE_MESSAGES_TO", value_name = "stdout|unix:PATH")]
    messages_to: Option<drone::messages::MessagesTo>,
    /// Keep capturing while no relay is connected (by default capture pauses).
    #[arg(long, env = "DRONE_ALWAYS_CAPTURE")]
    always_capture: bool,
    /// TLS with a self-signed certificate kept in this directory (made on first start; its
    /// fingerprint is logged for viewers to pin with --tls-pin). Instead of --tls-cert.
    #[arg(long, env = "DRONE_TLS_SELF_SIGNED", value_name = "DIR", conflicts_with = "tls_cert")]
    tls_self_signed: Option<std::path::PathBuf>,
    #[command(flatten)]
    serve: ServeArgs,
    #[command(flatten)]
    protect: cli::security::Protect,
    #[command(flatten)]
    log: cli::LogArgs,
}

const DEFAULT_SOURCE: &str = if cfg!(feature = "camera") { "camera" } else { "test" };

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    cli::init_logging(cli.log.log_format);
    cli::exit_code(run(cli).await)
}

async fn run(mut cli: Cli) -> anyhow::Result<()> {
    if cli.list_cameras {
        println!("{}", drone::source::list_cameras()?);
        return Ok(());
    }
    if let SourceSpec::Camera(id) = &mut cli.source {
        *id = cli.camera.clone();
    }
    let mut server = cli.serve.config(concat!("drone/", env!("CARGO_PKG_VERSION")));
    let (auth, mut tls) = cli.protect.load()?;
    if let Some(dir) = &cli.tls_self_signed {
        let names =
            vec![gethostname::gethostname().to_string_lossy().into_owned(), "localhost".into()];
        let (cert, key) = relay::tls::self_signed(dir, &names)?;
        tls = Some(relay::tls::ServerTls::load(&cert, &key)?);
    }
    if let Some(fingerprint) = tls.as_ref().and_then(|tls| tls.fingerprint()) {
        tracing::info!(%fingerprint, "TLS on; viewers can pin the certificate with --tls-pin {fingerprint}");
    }
    // SIGHUP re-reads the tokens and the certificate.
    let reloads = cli::reload_on_sighup();
    cli::security::reload_security(auth.clone(), tls.clone(), reloads.clone());
    if auth.is_none() && tls.is_none() {
        let mut reloads = reloads;
        tokio::spawn(async move {
            while reloads.changed().await.is_ok() {
                tracing::info!("SIGHUP: nothing to reload");
            }
        });
    }
    (server.auth, server.tls) = (auth, tls);
    let format =
        Format { width: cli.width, height: cli.height, fps: cli.fps, quality: cli.quality };
    let config = Config {
        source: cli.source,
        format,
        always_capture: cli.always_capture,
        max_frame_bytes: cli.max_frame_bytes,
        server,
        name: cli.name,
        meta_from: cli.meta_from,
        messages_to: cli.messages_to,
        layers: cli.layers.unwrap_or_default(),
    };
    let shutdown = cli::shutdown_on_signal();
    let listener = cli::listen(cli.listen)?;
    let http = cli.http.0.map(cli::listen).transpose()?;
    // Ready once the source is open and the accept loop runs (the server's first beat).
    let status = format!("serving {} on {}", config.source, cli.listen);
    cli::systemd::notify(&config.server, &shutdown, status);
    drone::run_with_http(config, listener, http, shutdown).await
}
