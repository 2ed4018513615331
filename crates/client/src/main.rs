//! `client`: watch a dronecast stream in a window, or measure it headless.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use clap::builder::BoolishValueParser as Boolish;
use cli::args::{frame_bytes, seconds};
use client::headless::{self, Print};
use client::send::Sending;
use client::window::{self, KeyBinding};
use relay::Link;

/// Shows the live stream of a cache-server (or drone) in a window; `q` or Esc quits.
#[derive(Debug, Parser)]
#[command(version = cli::version(env!("CARGO_PKG_VERSION")))]
struct Cli {
    /// The cache-server or drone to watch, as HOST:PORT, or HOST:PORT/STREAM for one of a
    /// cache-server's streams (without one: its default stream). Several, separated by commas
    /// (relays of the same drone: a:9998,b:9998), to fail over from one to the next.
    #[arg(env = "DRONECAST_SERVER", default_value = "127.0.0.1:9998")]
    server: client::Servers,
    /// The stream to watch (the same as HOST:PORT/STREAM).
    #[arg(long, env = "DRONECAST_STREAM", value_name = "NAME", value_parser = cli::args::stream_name)]
    stream: Option<String>,
    /// Receive and decode without a window; print a report at the end.
    #[arg(long, env = "DRONECAST_HEADLESS", value_parser = Boolish::new())]
    headless: bool,
    /// Headless: stop after this many frames (1 to 1000000000).
    #[arg(long, env = "DRONECAST_FRAMES", requires = "headless", value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..=1_000_000_000))]
    frames: Option<u64>,
    /// Headless: print the report as one JSON object on stdout.
    #[arg(long, env = "DRONECAST_JSON", requires = "headless", value_parser = Boolish::new())]
    json: bool,
    /// Headless: stop after this many seconds (exit code 1 if --frames did not all arrive).
    #[arg(long, env = "DRONECAST_TIMEOUT", requires = "headless", value_name = "SECS",
          value_parser = seconds)]
    timeout: Option<Duration>,
    /// Exit when the server goes away instead of reconnecting.
    #[arg(long, env = "DRONECAST_EXIT_ON_DISCONNECT", value_parser = Boolish::new())]
    exit_on_disconnect: bool,
    /// Largest frame accepted, in bytes (1024 to 1073741824); a longer one drops the connection.
    #[arg(long, env = "DRONECAST_MAX_FRAME_BYTES", value_name = "BYTES",
          default_value_t = framing::DEFAULT_MAX_MESSAGE_LEN, value_parser = frame_bytes)]
    max_frame_bytes: usize,
    /// Write every received JPEG, untouched, to this MJPEG file (with or without a window),
    /// and each frame's metadata to a JSON-lines file beside it (PATH with extension .jsonl).
    #[arg(long, env = "DRONECAST_RECORD", value_name = "PATH")]
    record: Option<PathBuf>,
    /// The name this viewer gives itself, which servers log and put on its messages (1 to 64
    /// bytes). Default: this machine's host name.
    #[arg(long, env = "DRONECAST_NAME", value_name = "NAME", value_parser = client::name)]
    name: Option<String>,
    /// Headless: print every frame's metadata on stdout as it arrives, one JSON line a frame:
    /// {"seq":…,"capture_us":…,"fresh":…,"meta":…}.
    #[arg(long, env = "DRONECAST_PRINT_META", requires = "headless", value_parser = Boolish::new())]
    print_meta: bool,
    /// Window: show a line of the newest frame's metadata at the bottom.
    #[arg(long, env = "DRONECAST_SHOW_META", conflicts_with = "headless",
          value_parser = Boolish::new())]
    show_meta: bool,
    /// Send the source this message once connected (up to 4096 bytes); repeat for more.
    #[arg(long, value_name = "TEXT", value_parser = client::send::payload)]
    send: Vec<Bytes>,
    /// Send each line typed on stdin (up to 4096 bytes) as a message.
    #[arg(long, env = "DRONECAST_SEND_STDIN", value_parser = Boolish::new())]
    send_stdin: bool,
    /// Which quality layer to receive, when the source makes several (drone --layers):
    /// `auto` lets the relay step this viewer down on a slow link and back up when it
    /// recovers; `top`, a number (0 is the top) or a layer's name pins one.
    #[arg(long, env = "DRONECAST_LAYER", value_name = "NAME|auto", default_value = "auto",
          value_parser = cli::args::layer)]
    layer: String,
    /// Window: pressing key K (a letter or digit, not q) sends TEXT; repeat for more keys.
    #[arg(long, value_name = "K=TEXT", conflicts_with = "headless")]
    send_on_key: Vec<KeyBinding>,
    #[command(flatten)]
    dial: cli::security::Dial,
    #[command(flatten)]
    log: cli::LogArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    cli::init_logging(cli.log.log_format);
    let mut subscribe = client::subscribe_options();
    subscribe.max_message_len = cli.max_frame_bytes;
    if let Some(name) = cli.name {
        subscribe.name = name;
    }
    subscribe.layers = cli.layer;
    match cli.dial.token() {
        Ok(token) => subscribe.token = token,
        Err(err) => return cli::exit_code(Err(err)),
    }
    // Each server with its own stream name and TLS; --stream names the stream on all.
    let mut dests = Vec::new();
    for target in cli.server.targets() {
        let mut options = subscribe.clone();
        options.stream = cli.stream.clone().unwrap_or_else(|| target.stream.clone());
        match cli.dial.tls_for(target.tls) {
            Ok(tls) => options.tls = tls,
            Err(err) => return cli::exit_code(Err(err)),
        }
        dests.push((target.addr.clone(), options));
    }
    let (reconnect, record) = (!cli.exit_on_disconnect, cli.record);
    let link = Link::failover(dests, reconnect);
    let send = Sending { once: cli.send, stdin: cli.send_stdin };
    if !cli.headless {
        let (show_meta, keys) = (cli.show_meta, cli.send_on_key);
        let options = window::Options { subscribe, reconnect, record, show_meta, send, keys };
        return cli::exit_code(window::run_link(link, options));
    }
    let options = headless::Options {
        frames: cli.frames,
        timeout: cli.timeout,
        reconnect,
        record,
        subscribe,
        print_meta: cli.print_meta,
        send,
        ..Default::default()
    };
    headless(link, options, if cli.json { Print::Json } else { Print::Line })
}

#[tokio::main]
async fn headless(link: Link, options: headless::Options, print: Print) -> ExitCode {
    let shutdown = cli::shutdown_on_signal();
    cli::exit_code(headless::run_and_print(link, options, print, shutdown).await)
}
