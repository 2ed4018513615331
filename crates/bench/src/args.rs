//! `relay-bench`'s command line (clap). Each subcommand's flags turn into the library's
//! description of the run; nothing here measures anything.

use std::time::Duration;

use std::net::SocketAddr;

use bench::load::{Load, Protocol};
use bench::report::Output;
use bench::slowlink::Compare;
use clap::{Args, Parser, Subcommand};

/// Opens many viewers against a dronecast server (drone or cache-server) from one process and
/// measures per viewer: new frames per second, frame age, first-frame time and throughput;
/// with --server-pid also the server's CPU and memory.
#[derive(Debug, Parser)]
#[command(version = cli::version(env!("CARGO_PKG_VERSION")), args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Cmd>,
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub log: cli::LogArgs,
}

/// The default command: load one server.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The server to load, HOST:PORT (loopback or a test namespace only); with --http, its
    /// HTTP port.
    #[arg(long)]
    pub server: Option<String>,
    /// HTTP viewers: each opens GET /stream.mjpg and parses the multipart stream (frame age
    /// from X-Timestamp, new frames by X-Frame-Seq), instead of speaking dronecast.
    #[arg(long)]
    pub http: bool,
    #[command(flatten)]
    pub common: Common,
    /// Viewers that connect, ask for the stream (a dronecast hello, or with --http the GET)
    /// and never read.
    #[arg(long, default_value_t = 0)]
    pub stalled: usize,
    /// Viewer messages (small JSON) each measuring viewer sends the source a second, spread
    /// evenly over the viewers; only to a source that takes messages (dronecast viewers only).
    #[arg(long, default_value_t = 0.0, value_name = "R")]
    pub messages_per_second: f64,
    /// Sample this process's CPU and RSS (the server under test) during the window.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Milliseconds between viewer joins (default: all at once).
    #[arg(long)]
    pub join_interval_ms: Option<u64>,
    /// Also report frame age p99 for each of this many equal slices of the window.
    #[arg(long, default_value_t = 1)]
    pub intervals: usize,
    /// Ask for a quality layer in the hello (dronecast viewers): `auto` (the relay's choice
    /// for each viewer's link), `top`, a number (0 the top) or the source's name for one.
    /// Without it the hello names no layers, as an old viewer's, and gets the top layer.
    #[arg(long, value_name = "LAYER", value_parser = layer)]
    pub layer: Option<String>,
    /// Print a JSON line on stdout each time a viewer is on another layer
    /// (`{"event":"layer","viewer":0,"layer":1,"name":"small","since_us":…,"at_us":…}`: three
    /// frames in a row of it, the first at since_us, µs since the Unix epoch; a single probe
    /// frame is no change), and `{"event":"window_end","at_us":…}` when the window ends.
    #[arg(long)]
    pub layer_events: bool,
    /// After the window, keep the viewers watching (and printing layer events) until stdin
    /// closes, then print the window's figures.
    #[arg(long)]
    pub hold: bool,
}

/// Checks `--layer`: `auto`, `top`, a layer number or a layer name; returns what the hello
/// asks for.
fn layer(s: &str) -> Result<String, String> {
    use framing::layers::{AUTO, MAX_LAYERS, valid_name};
    match s {
        "auto" => Ok(AUTO.to_owned()),
        "top" => Ok("0".to_owned()),
        _ => match s.parse::<usize>() {
            Ok(n) if n < MAX_LAYERS => Ok(n.to_string()),
            Ok(n) => Err(format!("layer {n}: a stream has layers 0 to {}", MAX_LAYERS - 1)),
            Err(_) if valid_name(s) => Ok(s.to_owned()),
            Err(_) => Err(format!("'{s}' is not auto, top, a layer number or a layer name")),
        },
    }
}

/// Flags of every measuring command.
#[derive(Debug, Args)]
pub struct Common {
    /// Measuring viewers.
    #[arg(long, default_value_t = 100)]
    pub viewers: usize,
    /// Measurement window, seconds.
    #[arg(long, default_value = "10", value_parser = cli::args::seconds)]
    pub duration: Duration,
    /// Seconds between the last join and the start of the window.
    #[arg(long, default_value = "2", value_parser = cli::args::seconds_or_zero)]
    pub warmup: Duration,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Run this many times and finish with the median of each figure.
    #[arg(long, default_value_t = 1)]
    pub repeat: usize,
}

/// The other commands.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Measures the loopback ceiling: a trivial writer of one static frame, as fast as the
    /// sockets take it, to the same number of viewers.
    Ceiling {
        #[command(flatten)]
        common: Common,
        /// Size of the static frame, bytes (≈ a 640×480 q80 JPEG).
        #[arg(long, default_value_t = 65_000)]
        frame_bytes: usize,
    },
    /// Runs the relay at each viewer count, then the ceiling at the largest count that held
    /// the rate, and reports that as a fraction of the ceiling.
    Sweep {
        /// The server to load, HOST:PORT (with --http, its HTTP port).
        #[arg(long)]
        server: String,
        /// HTTP viewers (GET /stream.mjpg); the ceiling stays the dronecast writer.
        #[arg(long)]
        http: bool,
        /// The server's PID, for CPU and RSS.
        #[arg(long)]
        server_pid: Option<u32>,
        /// Viewer counts to try, in order.
        #[arg(long, value_delimiter = ',', default_value = "200,500,1000,1500,2000")]
        counts: Vec<usize>,
        /// Every viewer must hold at least this rate for a count to pass.
        #[arg(long, default_value_t = 29.0)]
        min_fps: f64,
        /// Measurement window per count, seconds.
        #[arg(long, default_value = "10", value_parser = cli::args::seconds)]
        duration: Duration,
        /// Print JSON lines instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// One viewer behind a link shaped to --rate-kbit (network namespaces + tc tbf, created
    /// and removed here; needs root), the cache-server's freshness pacing on, then off
    /// (--compare). With --layers, the viewer is on `auto`; after the window the shaping is
    /// lifted and then put back, timing the viewer's steps up and down.
    Slowlink {
        /// The drone binary.
        #[arg(long, default_value = "target/release/drone")]
        drone: String,
        /// The cache-server binary.
        #[arg(long, default_value = "target/release/cache-server")]
        cache_server: String,
        /// Link rate, kbit/s (the default test pattern stream is about 16 Mbit/s).
        #[arg(long, default_value_t = 8000)]
        rate_kbit: u32,
        /// Measurement window per run, seconds.
        #[arg(long, default_value = "60", value_parser = cli::args::seconds)]
        duration: Duration,
        /// Slices of the window for the frame-age series.
        #[arg(long, default_value_t = 6)]
        intervals: usize,
        /// The cache-server's --notsent-lowat (for --compare lowat: in the "on" run).
        #[arg(long, default_value_t = 16_384)]
        lowat: u32,
        /// The cache-server's --pacing, unless --compare pacing runs both.
        #[arg(long, default_value = "on", value_name = "on|off", value_parser = cli::args::on_off,
              action = clap::ArgAction::Set)]
        pacing: bool,
        /// What to run twice, on then off: `pacing` (the cache-server's --pacing), `lowat` (its
        /// --notsent-lowat, then 0) or `none` (one run). Default: `pacing`, or `none` with
        /// --layers.
        #[arg(long, value_enum)]
        compare: Option<Compare>,
        /// The drone's --layers (e.g. `640x480,small=320x240@50`); the viewer asks for `auto`,
        /// and after the window the shaping is lifted, then put back, to time its steps.
        #[arg(long, value_name = "LIST")]
        layers: Option<String>,
    },
    /// Sends data for every frame: a JSON object of --bytes bytes, one UDP datagram each, at
    /// --rate a second, to a drone started with `--meta-from udp:127.0.0.1:PORT`. Runs until
    /// killed (or --duration).
    Feed {
        /// The drone's --meta-from address, 127.0.0.1:PORT.
        #[arg(long)]
        udp: SocketAddr,
        /// Size of each JSON object, bytes (72 to 65536).
        #[arg(long, default_value_t = 1024)]
        bytes: usize,
        /// Objects a second (the drone's frame rate puts data that is new on every frame).
        #[arg(long, default_value_t = 30.0)]
        rate: f64,
        /// Stop after this many seconds (default: run until killed).
        #[arg(long, value_parser = cli::args::seconds)]
        duration: Option<Duration>,
    },
    /// Internal: the ceiling's writer process. Prints its address, then serves.
    #[command(name = bench::ceiling::WRITER_SUBCOMMAND, hide = true)]
    CeilingWriter {
        #[arg(long)]
        frame_bytes: usize,
    },
}

impl RunArgs {
    /// The load this command describes.
    pub fn load(&self) -> anyhow::Result<Load> {
        let server = self.server.as_deref();
        let server = server.ok_or_else(|| anyhow::anyhow!("--server HOST:PORT is required"))?;
        let rate = self.messages_per_second;
        if !(rate.is_finite() && (0.0..=1000.0).contains(&rate)) {
            anyhow::bail!("--messages-per-second must be between 0 and 1000");
        }
        if self.http && rate > 0.0 {
            anyhow::bail!("--messages-per-second needs dronecast viewers: HTTP has no way back");
        }
        if self.http && (self.layer.is_some() || self.layer_events) {
            anyhow::bail!("--layer and --layer-events need dronecast viewers, not --http");
        }
        let (warmup, duration) = (self.common.warmup, self.common.duration);
        Ok(Load {
            protocol: if self.http { Protocol::Http } else { Protocol::Tcp },
            stalled: self.stalled,
            join_interval: self.join_interval_ms.map(Duration::from_millis),
            intervals: self.intervals,
            messages_per_second: rate,
            layer: self.layer.clone(),
            layer_events: self.layer_events,
            hold: self.hold,
            ..Load::new(server, self.common.viewers, warmup, duration)
        })
    }
}

impl Common {
    /// How results are printed.
    pub fn output(&self) -> Output {
        Output { json: self.json }
    }
}
