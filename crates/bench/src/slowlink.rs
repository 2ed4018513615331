//! Freshness behind a slow link: the drone and the cache-server in one network namespace, one
//! viewer in another, joined by a veth pair whose server end is shaped with `tc tbf`. Both
//! namespaces are created here (`harness::netns`) and removed on every exit path; no traffic
//! leaves them. They are named `dcb-<PID>-<N>-a` (drone and cache-server) and
//! `dcb-<PID>-<N>-b` (the viewer), PID being relay-bench's and N counting its runs from 0.
//!
//! Each run first measures the top layer's bitrate (one viewer of the drone's own port, on
//! loopback inside `a`, with an old-style hello: the top layer only), so that "half" or "a
//! quarter" of it can be checked. Then the viewer, a `relay-bench` process in `b`, measures
//! its window behind the shaped link.
//!
//! With layers (`drone --layers`), the viewer asks for the relay's choice (`auto`) and runs
//! with `--layer-events --hold`: it prints a JSON line each time it is on another layer and
//! one when its window ends, and then watches on until its stdin closes. On the window's end
//! this lifts the shaping (`tc qdisc del`), waits for the viewer to be on the top layer, puts
//! the shaping back and waits for it to step down again; each time is from the moment `tc`
//! returned to the arrival of the first frame of the new layer (both clocks are this
//! machine's wall clock). Then it closes the viewer's stdin and reads its figures, which are
//! those of the window alone.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use harness::Running;
use harness::netns::VethPair;
use relay::clock::now_us;
use serde_json::{Value, json};

use crate::load::LayerEvent;

/// What to run.
#[derive(Debug, Clone)]
pub struct SlowLink {
    /// Path of the `drone` binary.
    pub drone: String,
    /// Path of the `cache-server` binary.
    pub cache_server: String,
    /// Link rate from the cache-server to the viewer, kbit/s.
    pub rate_kbit: u32,
    /// `--notsent-lowat` for the cache-server (0 switches the mechanism off).
    pub notsent_lowat: u32,
    /// `--pacing` for the cache-server.
    pub pacing: bool,
    /// The drone's `--layers`, if any; the viewer then asks for `auto` and its steps up and
    /// down are timed after the window.
    pub layers: Option<String>,
    /// Measurement window.
    pub duration: Duration,
    /// Slices of the window for the age series.
    pub intervals: usize,
}

/// What [`run`] runs twice, on and then off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Compare {
    /// The cache-server's freshness pacing (`--pacing on`, then `off`).
    Pacing,
    /// The cache-server's low watermark (`--notsent-lowat`, then 0).
    Lowat,
    /// Nothing: one run as described.
    None,
}

/// How long the servers may take to log that they are ready, and the viewer to step up or
/// down, or to print what it measured, once it should.
const PATIENCE: Duration = Duration::from_secs(30);

/// The viewer's time between joining and its window.
const WARMUP: Duration = Duration::from_secs(5);

/// The top layer's bitrate is measured over this long (after a second of warm-up).
const TOP_LAYER_WINDOW: &str = "3";

/// The drone's and the cache-server's ports (inside namespace `a`).
const DRONE_PORT: u16 = 9999;
const CACHE_PORT: u16 = 9998;

/// Runs one slow-link measurement and returns the viewer's figures as JSON, with the link's
/// rate, the top layer's measured bitrate, the settings and (with layers) the steps.
pub fn measure(link: &SlowLink) -> anyhow::Result<Value> {
    let pair = VethPair::create("dcb", 0)
        .context("could not create network namespaces (this needs root and iproute2)")?;
    pair.shape(link.rate_kbit)?;
    let drone_addr = format!("127.0.0.1:{DRONE_PORT}");
    let mut drone = pair.exec(&pair.a, &link.drone);
    drone.args(["--listen", &drone_addr, "--source", "test"]);
    if let Some(layers) = &link.layers {
        drone.args(["--layers", layers]);
    }
    let drone = Running::start(&mut drone)?;
    drone.blocking_wait_for_line("drone serving", PATIENCE)?;
    let listen = format!("{}:{CACHE_PORT}", pair.a_addr);
    let mut cache = pair.exec(&pair.a, &link.cache_server);
    cache.args(["--upstream", &drone_addr, "--listen", &listen, "--http", "off"]);
    cache.args(["--notsent-lowat", &link.notsent_lowat.to_string()]);
    let cache = Running::start(cache.args(["--pacing", if link.pacing { "on" } else { "off" }]))?;
    wait_until_relaying(&cache)?;

    let exe = std::env::current_exe().context("cannot find this program's path")?;
    let top_layer_kbit = top_layer_kbit(&pair, &exe, &drone_addr)?;

    let mut cmd = pair.exec(&pair.b, &exe);
    cmd.args(["--server", &listen, "--viewers", "1", "--json"]);
    cmd.args(["--warmup", &WARMUP.as_secs_f64().to_string()]);
    cmd.args(["--duration", &link.duration.as_secs_f64().to_string()]);
    cmd.args(["--intervals", &link.intervals.to_string()]);
    if link.layers.is_some() {
        cmd.args(["--layer", "auto", "--layer-events", "--hold"]);
    }
    let window_end_by = Instant::now() + WARMUP + link.duration + PATIENCE;
    let mut viewer = Viewer::start(&mut cmd)?;
    let steps = link.layers.as_ref().map(|_| lift_and_reshape(&viewer, &pair, link, window_end_by));
    let mut result = viewer.figures(window_end_by + PATIENCE)?;
    // Drop order: the processes end before their namespaces go.
    drop((viewer, drone, cache));
    drop(pair);

    let Value::Object(fields) = &mut result else { bail!("the viewer printed {result}") };
    fields.insert("link_kbit".into(), json!(link.rate_kbit));
    fields.insert("top_layer_kbit".into(), json!(top_layer_kbit.round()));
    fields.insert("pacing".into(), json!(link.pacing));
    fields.insert("notsent_lowat".into(), json!(link.notsent_lowat));
    fields.insert("drone_layers".into(), json!(link.layers));
    if let Some(steps) = steps {
        fields.insert("top_after_lift_s".into(), json!(steps.up_s));
        fields.insert("down_after_reshape_s".into(), json!(steps.down_s));
        if let Some(err) = steps.error {
            eprintln!("relay-bench slowlink: {err}");
            fields.insert("steps_error".into(), json!(err));
        }
    }
    Ok(result)
}

/// Waits for the cache-server to listen and to be connected to the drone (so that its hello
/// to the viewer names the drone's layers).
fn wait_until_relaying(cache: &Running) -> anyhow::Result<()> {
    let deadline = Instant::now() + PATIENCE;
    let (mut serving, mut upstream) = (false, false);
    while !(serving && upstream) {
        // Both lines mention the upstream: "… serving viewers … upstream=…", "upstream
        // connected" (or "upstream back" after a failed first dial).
        let left = deadline.saturating_duration_since(Instant::now());
        let line = cache.blocking_wait_for_line("upstream", left)?;
        serving |= line.contains("serving viewers");
        upstream |= line.contains("upstream connected") || line.contains("upstream back");
    }
    Ok(())
}

/// The top layer's bitrate in kbit/s: one viewer with an old-style hello (the top layer
/// only) on the drone's own port, on loopback inside namespace `a`.
fn top_layer_kbit(pair: &VethPair, exe: &std::path::Path, drone: &str) -> anyhow::Result<f64> {
    let mut viewer = pair.exec(&pair.a, exe);
    viewer.args(["--server", drone, "--viewers", "1", "--json", "--warmup", "1"]);
    let mut viewer = Viewer::start(viewer.args(["--duration", TOP_LAYER_WINDOW]))?;
    let figures = viewer.figures(Instant::now() + PATIENCE).context("measuring the top layer")?;
    let gbit_s = figures["gbit_s"].as_f64().context("no gbit_s in the figures")?;
    anyhow::ensure!(gbit_s > 0.0, "the top layer's viewer received nothing: {figures}");
    Ok(gbit_s * 1e6)
}

/// How long the viewer took to step after the window, as far as it got.
#[derive(Debug, Clone, Default)]
struct Steps {
    /// From lifting the shaping to the first frame of the top layer, seconds (0 if it was
    /// on the top layer already).
    up_s: Option<f64>,
    /// From putting the shaping back to the first frame of a smaller layer, seconds.
    down_s: Option<f64>,
    /// Why it got no further.
    error: Option<String>,
}

/// After the viewer's window: lifts the shaping and times the step up, puts it back and
/// times the step down.
fn lift_and_reshape(
    viewer: &Viewer,
    pair: &VethPair,
    link: &SlowLink,
    window_end_by: Instant,
) -> Steps {
    let mut steps = Steps::default();
    if let Err(err) = steps.take(viewer, pair, link, window_end_by) {
        steps.error = Some(format!("{err:#}"));
    }
    steps
}

impl Steps {
    fn take(
        &mut self,
        viewer: &Viewer,
        pair: &VethPair,
        link: &SlowLink,
        window_end_by: Instant,
    ) -> anyhow::Result<()> {
        let mut on = None;
        let end = "the end of its window";
        while let LayerEvent::Layer { layer, .. } = viewer.next_event(window_end_by, end)? {
            on = Some(layer);
        }
        pair.unshape()?;
        let lifted = now_us();
        let up = "the top layer after the shaping was lifted";
        self.up_s = Some(match on {
            Some(0) => 0.0,
            _ => viewer.wait_for_layer(|l| l == 0, lifted, up)?,
        });
        pair.shape(link.rate_kbit)?;
        let reshaped = now_us();
        let down = "a smaller layer after the shaping was put back";
        self.down_s = Some(viewer.wait_for_layer(|l| l > 0, reshaped, down)?);
        Ok(())
    }
}

/// A `relay-bench` viewer process; its stdout is read line by line as it comes.
struct Viewer {
    running: Running,
    /// Closed (dropped) to end a `--hold`.
    stdin: Option<std::process::ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl Viewer {
    fn start(cmd: &mut Command) -> anyhow::Result<Viewer> {
        let mut running = Running::start(cmd.stdin(Stdio::piped()).stdout(Stdio::piped()))?;
        let stdout = running.take_stdout().context("the viewer's stdout is not piped")?;
        let stdin = running.take_stdin();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Viewer { running, stdin, lines })
    }

    /// The next line the viewer prints, by `deadline`; an error naming `what` was awaited.
    fn next_line(&self, deadline: Instant, what: &str) -> anyhow::Result<String> {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.lines.recv_timeout(left) {
            Ok(line) => Ok(line),
            Err(RecvTimeoutError::Timeout) => bail!("no sign of {what} in time{}", self.log()),
            Err(RecvTimeoutError::Disconnected) => {
                bail!("the viewer ended before {what}{}", self.log())
            }
        }
    }

    /// `; the viewer's log: …`, if it logged anything.
    fn log(&self) -> String {
        match self.running.log() {
            log if log.is_empty() => String::new(),
            log => format!("; the viewer's log:\n{log}"),
        }
    }

    /// The next layer event, by `deadline`.
    fn next_event(&self, deadline: Instant, what: &str) -> anyhow::Result<LayerEvent> {
        let line = self.next_line(deadline, what)?;
        serde_json::from_str(&line)
            .with_context(|| format!("waiting for {what}, the viewer printed {line:?}"))
    }

    /// Waits (at most [`PATIENCE`]) until the viewer is on a layer that `wanted`; returns the
    /// seconds from `from_us` to the first frame of it.
    fn wait_for_layer(
        &self,
        wanted: impl Fn(usize) -> bool,
        from_us: u64,
        what: &str,
    ) -> anyhow::Result<f64> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let event = self.next_event(deadline, what);
            let event = event.with_context(|| format!("waited up to {PATIENCE:?}"))?;
            if let LayerEvent::Layer { layer, since_us, .. } = event {
                if wanted(layer) {
                    return Ok(since_us.saturating_sub(from_us) as f64 / 1e6);
                }
            }
        }
    }

    /// Ends a `--hold` (closes stdin) and returns the figures, the first line that is not a
    /// layer event, printed by `deadline`.
    fn figures(&mut self, deadline: Instant) -> anyhow::Result<Value> {
        drop(self.stdin.take());
        loop {
            let line = self.next_line(deadline, "its figures")?;
            if serde_json::from_str::<LayerEvent>(&line).is_ok() {
                continue;
            }
            return serde_json::from_str(&line)
                .with_context(|| format!("the viewer printed {line:?} instead of JSON figures"));
        }
    }
}

/// Runs `link`, twice when `compare` says so (on, then off), and prints one line of results
/// for each. Each run blocks on its processes, so it runs on the blocking pool.
pub async fn run(link: SlowLink, compare: Compare) -> anyhow::Result<()> {
    let runs = match compare {
        Compare::Pacing => {
            vec![SlowLink { pacing: true, ..link.clone() }, SlowLink { pacing: false, ..link }]
        }
        Compare::Lowat => vec![link.clone(), SlowLink { notsent_lowat: 0, ..link }],
        Compare::None => vec![link],
    };
    for run in runs {
        let label = label(&run);
        let result = tokio::task::spawn_blocking(move || measure(&run)).await??;
        let top = result["top_layer_kbit"].as_f64().unwrap_or(0.0);
        let share = result["link_kbit"].as_f64().unwrap_or(0.0) / top.max(1.0);
        println!("{label} ({:.0}% of the top layer's {top:.0} kbit/s): {result}", share * 100.0);
    }
    Ok(())
}

/// `pacing on, low watermark 16384 bytes, layers …, link 8000 kbit/s`.
fn label(link: &SlowLink) -> String {
    let pacing = if link.pacing { "pacing on" } else { "pacing off" };
    let lowat = match link.notsent_lowat {
        0 => "low watermark off".to_owned(),
        n => format!("low watermark {n} bytes"),
    };
    let layers = match &link.layers {
        Some(layers) => format!("layers {layers} (viewer on auto)"),
        None => "layers off".to_owned(),
    };
    format!("{pacing}, {lowat}, {layers}, link {} kbit/s", link.rate_kbit)
}
