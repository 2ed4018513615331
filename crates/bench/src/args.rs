//! `relay-bench`'s command line (clap). Each subcommand's flags turn into the library's
//! description of the run; nothing here measures anything.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bench::load::{Load, Protocol, Token};
use bench::report::Output;
use bench::slowlink::Compare;
use clap::{Args, Parser, Subcommand};

/// Opens many viewers against a dronecast server (drone or cache-server) from one process and
/// measures per viewer: new frames per second, frame age, first-frame time and throughput;
/// with --server-pid also the server's CPU and memory. Viewers can be spread over named
/// streams (--stream) and reach a server that wants a token or TLS (--token, --tls).
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
    /// HTTP port. tls://HOST:PORT is the same as adding --tls.
    #[arg(long)]
    pub server: Option<String>,
    /// HTTP viewers: each opens GET /stream.mjpg and parses the multipart stream (frame age
    /// from X-Timestamp, new frames by X-Frame-Seq), instead of speaking dronecast.
    #[arg(long)]
    pub http: bool,
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub reach: Reach,
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
    #[arg(long, value_name = "LAYER", value_parser = cli::args::layer)]
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
    /// With --tls, only one viewer in N decrypts and measures frames (fps, age); the others
    /// complete the TLS handshake and the hello (or GET), then discard their ciphertext in the
    /// kernel unread (recv with MSG_TRUNC) and report a rate from its bytes. The server
    /// encrypts for every viewer as before: this lets one machine measure a TLS server whose
    /// viewers' decryption would otherwise take the cores it needs.
    #[arg(long, default_value_t = 1, value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..))]
    pub decrypt_every: u16,
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
    /// Seconds between the last viewer's join (connected, TLS and hello done, or failed) and
    /// the start of the window.
    #[arg(long, default_value = "2", value_parser = cli::args::seconds_or_zero)]
    pub warmup: Duration,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Run this many times and finish with the median of each figure.
    #[arg(long, default_value_t = 1)]
    pub repeat: usize,
}

/// Which streams the viewers watch, and how they get past a token and TLS.
#[derive(Debug, Args)]
pub struct Reach {
    /// Spread the viewers round-robin over these streams (comma-separated names; stalled ones
    /// too): the dronecast hello names the stream, an HTTP viewer opens /NAME/stream.mjpg.
    /// Default: the server's default stream.
    #[arg(long, value_name = "NAME[,NAME…]", value_delimiter = ',',
          value_parser = cli::args::stream_name)]
    pub stream: Vec<String>,
    // --token / --token-file (in the dronecast hello; over HTTP `Authorization: Bearer`),
    // --tls with --tls-pin or --tls-ca (over HTTP: HTTPS). Every viewer, stalled ones too,
    // completes its TLS handshake before the window opens.
    #[command(flatten)]
    pub dial: cli::security::Dial,
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
        #[command(flatten)]
        reach: Reach,
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
    /// Makes (once) a self-signed certificate for localhost and 127.0.0.1 in DIR (cert.pem,
    /// key.pem, kept for the next run) for a server's --tls-cert and --tls-key, and prints its
    /// fingerprint, for --tls-pin, on stdout.
    Cert {
        /// Where the certificate and key are kept.
        dir: PathBuf,
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
        let blind = self.decrypt_every > 1;
        if blind && (rate > 0.0 || self.layer_events || self.hold) {
            anyhow::bail!(
                "--decrypt-every leaves most viewers without a way to send or see anything: \
                 not with --messages-per-second, --layer-events or --hold"
            );
        }
        let (warmup, duration) = (self.common.warmup, self.common.duration);
        let load = Load {
            protocol: if self.http { Protocol::Http } else { Protocol::Tcp },
            stalled: self.stalled,
            join_interval: self.join_interval_ms.map(Duration::from_millis),
            intervals: self.intervals,
            messages_per_second: rate,
            layer: self.layer.clone(),
            layer_events: self.layer_events,
            hold: self.hold,
            decrypt_every: usize::from(self.decrypt_every),
            ..Load::new(server, self.common.viewers, warmup, duration)
        };
        let load = self.reach.apply(load)?;
        if blind && load.tls.is_none() {
            anyhow::bail!(
                "--decrypt-every is for TLS viewers (--tls): plain ones cost no decryption"
            );
        }
        Ok(load)
    }
}

impl Reach {
    /// `load` with these streams, this token and TLS (also when its server is written
    /// tls://HOST:PORT), each checked.
    pub fn apply(&self, load: Load) -> anyhow::Result<Load> {
        let (tls, server) = match load.server.strip_prefix("tls://") {
            Some(server) => (true, server.to_owned()),
            None => (false, load.server.clone()),
        };
        for (i, name) in self.stream.iter().enumerate() {
            if self.stream[..i].contains(name) {
                anyhow::bail!("--stream names '{name}' twice");
            }
        }
        let token = String::from_utf8(self.dial.token()?.to_vec())
            .map_err(|_| anyhow::anyhow!("the token must be UTF-8 text"))?;
        if token.chars().any(char::is_control) {
            // It goes into an HTTP header as it is.
            anyhow::bail!("the token must not hold control characters");
        }
        let tls = tls || self.dial.tls;
        if tls && self.dial.tls_pin.is_none() && self.dial.tls_ca.is_none() {
            anyhow::bail!(
                "--tls needs --tls-pin SHA256 or --tls-ca PEM: no public CA vouches for a \
                 loopback server (relay-bench cert DIR makes one and prints its pin)"
            );
        }
        let tls = self.dial.tls_for(tls)?;
        Ok(Load { server, streams: self.stream.clone(), token: Token(token), tls, ..load })
    }
}

impl Common {
    /// How results are printed.
    pub fn output(&self) -> Output {
        Output { json: self.json }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(args: &[&str]) -> anyhow::Result<Load> {
        let cli =
            Cli::try_parse_from([&["relay-bench", "--server", "127.0.0.1:1"], args].concat())?;
        cli.run.load()
    }

    const PIN: &str = "SHA256:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:\
                       AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB";

    #[test]
    fn streams_are_listed_once_each_and_by_name() -> anyhow::Result<()> {
        assert!(load(&[])?.streams.is_empty(), "no flag: the default stream");
        let l = load(&["--stream", "front,back", "--stream", "door"])?;
        assert_eq!(l.streams, ["front", "back", "door"]);
        assert_eq!(
            (0..4).map(|i| l.stream_of(i)).collect::<Vec<_>>(),
            ["front", "back", "door", "front"]
        );
        assert!(load(&["--stream", "a,a"]).is_err(), "a stream named twice");
        assert!(load(&["--stream", "no/slash"]).is_err());
        assert!(load(&["--stream", ""]).is_err());
        Ok(())
    }

    #[test]
    fn tls_wants_a_pin_or_a_ca_and_they_want_tls() -> anyhow::Result<()> {
        assert!(load(&[])?.tls.is_none());
        assert!(load(&["--tls"]).is_err(), "the system's roots vouch for no loopback server");
        assert!(load(&["--tls-pin", PIN]).is_err(), "a pin without TLS is a mistake");
        assert!(load(&["--tls", "--tls-pin", PIN])?.tls.is_some());
        assert!(load(&["--tls-pin", "SHA256:12"]).is_err(), "not a fingerprint");
        let cli = Cli::try_parse_from([
            "relay-bench",
            "--server",
            "tls://127.0.0.1:1",
            "--tls-pin",
            PIN,
        ])?;
        let l = cli.run.load()?;
        assert!(l.tls.is_some() && l.server == "127.0.0.1:1", "{}", l.server);
        assert!(load(&["--tls", "--tls-ca", "/nonexistent/ca.pem"]).is_err(), "an unreadable CA");
        assert!(load(&["--decrypt-every", "10"]).is_err(), "plain viewers all decrypt");
        assert!(load(&["--decrypt-every", "0"]).is_err());
        let tls = ["--tls", "--tls-pin", PIN, "--decrypt-every", "10"];
        assert_eq!(load(&tls)?.decrypt_every, 10);
        assert!(load(&[&tls[..], &["--messages-per-second", "1"]].concat()).is_err());
        Ok(())
    }

    #[test]
    fn tokens_are_text_without_control_characters() -> anyhow::Result<()> {
        assert_eq!(load(&[])?.token, Token::default());
        assert_eq!(load(&["--token", "s3cret"])?.token, Token("s3cret".into()));
        assert!(load(&["--token", "a\r\nX-Evil: 1"]).is_err());
        assert_eq!(format!("{:?}", load(&["--token", "s3cret"])?.token), "<hidden>");
        Ok(())
    }
}
