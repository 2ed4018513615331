//! `client`: watch a dronecast stream in a window, or measure it headless.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use client::headless;

/// Shows the live stream of a cache-server (or drone) in a window; `q` or Esc quits.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// The cache-server or drone to watch, as HOST:PORT.
    #[arg(env = "DRONECAST_SERVER", default_value = "127.0.0.1:9998")]
    server: String,
    /// Receive and decode without a window; print a report at the end.
    #[arg(long)]
    headless: bool,
    /// Headless: stop after this many frames.
    #[arg(long, requires = "headless")]
    frames: Option<u64>,
    /// Headless: print the report as one JSON object on stdout.
    #[arg(long, requires = "headless")]
    json: bool,
    /// Headless: give up after this many seconds (exit code 1 if the frames did not all come).
    #[arg(long, requires = "headless")]
    timeout: Option<f64>,
    /// Exit when the server goes away instead of reconnecting.
    #[arg(long)]
    exit_on_disconnect: bool,
    /// Largest frame accepted, in bytes; a longer one drops the connection.
    #[arg(long, default_value_t = framing::DEFAULT_MAX_MESSAGE_LEN)]
    max_frame_bytes: usize,
    /// Write every received JPEG, untouched, to this MJPEG file (with or without a window).
    #[arg(long)]
    record: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    cli::init_logging();
    let outcome = if cli.headless { run_headless(&cli) } else { run_window(&cli) };
    match outcome {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn subscribe_options(cli: &Cli) -> relay::SubscribeOptions {
    let mut options = headless::Options::default().subscribe;
    options.max_message_len = cli.max_frame_bytes;
    options
}

fn run_window(cli: &Cli) -> anyhow::Result<ExitCode> {
    client::window::run(
        &cli.server,
        subscribe_options(cli),
        !cli.exit_on_disconnect,
        cli.record.as_deref(),
    )?;
    Ok(ExitCode::SUCCESS)
}

#[tokio::main]
async fn run_headless(cli: &Cli) -> anyhow::Result<ExitCode> {
    let timeout = match cli.timeout {
        Some(secs) => Some(
            Duration::try_from_secs_f64(secs)
                .map_err(|_| anyhow::anyhow!("--timeout must be a positive number of seconds"))?,
        ),
        None => None,
    };
    let options = headless::Options {
        frames: cli.frames,
        timeout,
        reconnect: !cli.exit_on_disconnect,
        record: cli.record.clone(),
        subscribe: subscribe_options(cli),
        ..headless::Options::default()
    };
    let report = headless::run(&cli.server, options, cli::shutdown_on_signal()).await?;
    if cli.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "{} frames ({} distinct, {} out of order), {:.1} fps, age p50 {:.1} ms p99 {:.1} ms, \
             first frame {:.1} ms, {}x{}, {} decode errors",
            report.frames,
            report.distinct,
            report.out_of_order,
            report.fps,
            report.age_ms_p50,
            report.age_ms_p99,
            report.first_frame_ms,
            report.width,
            report.height,
            report.decode_errors
        );
    }
    let complete = cli.frames.is_none_or(|n| report.frames >= n);
    Ok(if complete { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
