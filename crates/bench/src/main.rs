//! `relay-bench`: load generator and measurements for dronecast servers.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::Context;
use bench::load::Load;
use bench::summary::Summary;
use clap::{Args, Parser, Subcommand};

/// Opens many viewers against a dronecast server (drone or cache-server) from one process and
/// measures per viewer: new frames per second, frame age, first-frame time and throughput;
/// with --server-pid also the server's CPU and memory.
#[derive(Debug, Parser)]
#[command(version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// The server to load, HOST:PORT (loopback or a test namespace only).
    #[arg(long)]
    server: Option<String>,
    #[command(flatten)]
    common: Common,
    /// Viewers that connect, say hello and never read.
    #[arg(long, default_value_t = 0)]
    stalled: usize,
    /// Sample this process's CPU and RSS (the server under test) during the window.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Milliseconds between viewer joins (default: all at once).
    #[arg(long)]
    join_interval_ms: Option<u64>,
    /// Also report frame age p99 for each of this many equal slices of the window.
    #[arg(long, default_value_t = 1)]
    intervals: usize,
}

#[derive(Debug, Args)]
struct Common {
    /// Measuring viewers.
    #[arg(long, default_value_t = 100)]
    viewers: usize,
    /// Measurement window, seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds between the last join and the start of the window.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Run this many times and finish with the median of each figure.
    #[arg(long, default_value_t = 1)]
    repeat: usize,
}

#[derive(Debug, Subcommand)]
enum Cmd {
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
        /// The server to load, HOST:PORT.
        #[arg(long)]
        server: String,
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
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// Print JSON lines instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// One viewer behind a link shaped to --rate-kbit (network namespaces + tc tbf, created
    /// and removed here; needs root), with the cache-server's low watermark on, then off.
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
        #[arg(long, default_value_t = 60.0)]
        duration: f64,
        /// Slices of the window for the frame-age series.
        #[arg(long, default_value_t = 6)]
        intervals: usize,
        /// The cache-server's --notsent-lowat for the "on" run.
        #[arg(long, default_value_t = 16_384)]
        lowat: u32,
    },
    /// Internal: the ceiling's writer process. Prints its address, then serves.
    #[command(hide = true)]
    CeilingWriter {
        #[arg(long)]
        frame_bytes: usize,
    },
}

fn secs(s: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(s).context("durations are non-negative seconds")
}

fn print(summary: &Summary, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(summary)?);
    } else {
        println!("{}", summary.table());
    }
    Ok(())
}

/// After several runs, the median of every figure, labelled as such.
fn print_median(runs: &[Summary], json: bool) -> anyhow::Result<()> {
    if runs.len() < 2 {
        return Ok(());
    }
    let median = bench::summary::median(runs);
    if json {
        println!("{}", serde_json::json!({ "median_of_runs": runs.len(), "median": median }));
    } else {
        println!("median of {} runs:\n{}", runs.len(), median.table());
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    cli::init_logging();
    let cli = Cli::parse();
    match cli.command {
        None => {
            let run = cli.run;
            let server = run.server.context("--server HOST:PORT is required")?;
            let load = Load {
                server,
                viewers: run.common.viewers,
                stalled: run.stalled,
                join_interval: run.join_interval_ms.map(Duration::from_millis),
                warmup: secs(run.common.warmup)?,
                duration: secs(run.common.duration)?,
                intervals: run.intervals,
                count_repeats: false,
            };
            let mut runs = Vec::new();
            for _ in 0..run.common.repeat.max(1) {
                let summary = bench::measure("relay", &load, run.server_pid).await;
                print(&summary, run.common.json)?;
                runs.push(summary);
            }
            print_median(&runs, run.common.json)
        }
        Some(Cmd::Ceiling { common, frame_bytes }) => {
            let (duration, warmup) = (secs(common.duration)?, secs(common.warmup)?);
            let mut runs = Vec::new();
            for _ in 0..common.repeat.max(1) {
                let summary = ceiling(common.viewers, duration, warmup, frame_bytes).await?;
                print(&summary, common.json)?;
                runs.push(summary);
            }
            print_median(&runs, common.json)
        }
        Some(Cmd::Sweep { server, server_pid, counts, min_fps, duration, json }) => {
            let duration = secs(duration)?;
            let mut best: Option<Summary> = None;
            for viewers in counts {
                let load = Load {
                    server: server.clone(),
                    viewers,
                    stalled: 0,
                    join_interval: None,
                    warmup: Duration::from_secs(3),
                    duration,
                    intervals: 1,
                    count_repeats: false,
                };
                let summary = bench::measure("relay", &load, server_pid).await;
                print(&summary, json)?;
                let held = summary.connected == viewers && summary.fps_min >= min_fps;
                if !held {
                    break;
                }
                best = Some(summary);
            }
            let Some(best) = best else {
                anyhow::bail!("no viewer count held {min_fps} fps");
            };
            let ceiling = ceiling(best.viewers, duration, Duration::from_secs(3), 65_000).await?;
            print(&ceiling, json)?;
            let fraction = best.gbit_s / ceiling.gbit_s;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"capacity_viewers": best.viewers, "capacity_gbit_s": best.gbit_s,
                        "ceiling_gbit_s": ceiling.gbit_s, "fraction_of_ceiling": fraction})
                );
            } else {
                println!(
                    "capacity: {} viewers at >= {min_fps} fps = {:.3} Gbit/s = {:.0}% of the ceiling ({:.3} Gbit/s at the same count)",
                    best.viewers,
                    best.gbit_s,
                    fraction * 100.0,
                    ceiling.gbit_s
                );
            }
            Ok(())
        }
        Some(Cmd::Slowlink { drone, cache_server, rate_kbit, duration, intervals, lowat: on }) => {
            for lowat in [on, 0] {
                let label = match lowat {
                    0 => "low watermark off".to_owned(),
                    n => format!("low watermark {n} bytes"),
                };
                let link = bench::slowlink::SlowLink {
                    drone: drone.clone(),
                    cache_server: cache_server.clone(),
                    rate_kbit,
                    notsent_lowat: lowat,
                    duration: secs(duration)?,
                    intervals,
                };
                let result =
                    tokio::task::spawn_blocking(move || bench::slowlink::measure(&link)).await??;
                println!("{label}, link {rate_kbit} kbit/s: {result}");
            }
            Ok(())
        }
        Some(Cmd::CeilingWriter { frame_bytes }) => {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            println!("{}", listener.local_addr()?);
            bench::ceiling::serve(listener, frame_bytes).await
        }
    }
}

/// Runs the ceiling writer in a child process (as the relay runs in its own) and loads it.
async fn ceiling(
    viewers: usize,
    duration: Duration,
    warmup: Duration,
    frame_bytes: usize,
) -> anyhow::Result<Summary> {
    let exe = std::env::current_exe().context("cannot find this program's path")?;
    let mut child = Command::new(exe)
        .args(["ceiling-writer", "--frame-bytes", &frame_bytes.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .context("could not start the ceiling writer")?;
    let mut line = String::new();
    let stdout = child.stdout.take().context("no stdout from the ceiling writer")?;
    BufReader::new(stdout).read_line(&mut line).context("ceiling writer said nothing")?;
    let load = Load {
        server: line.trim().to_owned(),
        viewers,
        stalled: 0,
        join_interval: None,
        warmup,
        duration,
        intervals: 1,
        count_repeats: true,
    };
    let summary = bench::measure("ceiling", &load, Some(child.id())).await;
    let _ = child.kill();
    let _ = child.wait();
    Ok(summary)
}
