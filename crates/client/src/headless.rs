//! The headless viewer: receive, decode and measure frames without a window, optionally
//! printing each frame's metadata and sending the source messages. Scripts, tests and the
//! demo (where no display exists) use it.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use relay::SubscribeOptions;
use relay::clock::age_ms;
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;
use tracing::{trace, warn};

use crate::decode::Decoder;
use crate::record::Recorder;
use crate::report::{Report, Tracker};
use crate::send::{self, Messenger, Once, Sending};
use relay::link::{Event, Link};

/// What the headless viewer does.
#[derive(Debug, Clone)]
pub struct Options {
    /// Stop after this many frames (`None`: until shutdown).
    pub frames: Option<u64>,
    /// Give up after this long.
    pub timeout: Option<Duration>,
    /// Redial when the server goes away (otherwise stop).
    pub reconnect: bool,
    /// Write every received JPEG, untouched, to this MJPEG file.
    pub record: Option<PathBuf>,
    /// How to dial.
    pub subscribe: SubscribeOptions,
    /// Called with the report so far after every frame (the demo's stats line uses it).
    pub progress_every: Option<Duration>,
    /// Print every frame's metadata on stdout, one JSON line a frame
    /// ([`crate::meta::json_line`]), as it arrives.
    pub print_meta: bool,
    /// Messages to send the source.
    pub send: Sending,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            frames: None,
            timeout: None,
            reconnect: true,
            record: None,
            subscribe: crate::subscribe_options(),
            progress_every: None,
            print_meta: false,
            send: Sending::default(),
        }
    }
}

/// How `client --headless` prints its report on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Print {
    /// One line for people ([`Report`]'s `Display`).
    Line,
    /// One JSON object (`--json`).
    Json,
}

/// `client --headless`: receives over `link` like [`run`], then prints the report on stdout
/// (after the metadata lines of [`Options::print_meta`]: the report is always the last line).
/// Fails when [`run`] does, or when fewer frames than [`Options::frames`] arrived (the report
/// is printed first). The link's own addresses and options are used, not
/// [`Options::subscribe`] and [`Options::reconnect`].
pub async fn run_and_print(
    link: Link,
    options: Options,
    print: Print,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let (wanted, timeout) = (options.frames, options.timeout);
    let (report, stop) = receive(link, options, shutdown).await?;
    match print {
        Print::Line => println!("{report}"),
        Print::Json => println!("{}", serde_json::to_string(&report)?),
    }
    let Some(wanted) = wanted.filter(|&n| report.frames < n) else { return Ok(()) };
    let why = match stop {
        Stop::Done => "the stream ended".to_owned(),
        Stop::TimedOut => {
            format!("within the {} s timeout", timeout.unwrap_or_default().as_secs_f64())
        }
        Stop::Shutdown => "before SIGINT or SIGTERM stopped the client".to_owned(),
        Stop::LinkFailed(err) => format!("before the connection failed: {err:#}"),
    };
    anyhow::bail!("only {} of the {wanted} frames asked for arrived {why}", report.frames)
}

/// Receives from `addr` (or the first that answers of several, separated by commas) until the
/// frame count, the timeout or `shutdown`, and returns what it saw; then gives messages still
/// on their way a moment ([`send::DRAIN_WITHIN`]) to go out. Fails when the link gives up
/// before a single frame arrived, or when the recording or stdout cannot be written.
pub async fn run(
    addr: &str,
    options: Options,
    shutdown: CancellationToken,
) -> anyhow::Result<Report> {
    let link = Link::new(addr, options.subscribe.clone(), options.reconnect);
    receive(link, options, shutdown).await.map(|(report, _)| report)
}

/// Why receiving stopped.
#[derive(Debug)]
enum Stop {
    /// Every frame asked for arrived (or none was asked for).
    Done,
    /// `--timeout` came first.
    TimedOut,
    /// SIGINT, SIGTERM, or whoever holds the shutdown token.
    Shutdown,
    /// The link gave up after some frames had arrived.
    LinkFailed(anyhow::Error),
}

async fn receive(
    mut link: Link,
    options: Options,
    shutdown: CancellationToken,
) -> anyhow::Result<(Report, Stop)> {
    let mut recorder = options.record.as_deref().map(Recorder::create).transpose()?;
    let deadline = options.timeout.map(|t| tokio::time::Instant::now() + t);
    let mut in_use = String::new();
    let messenger = Messenger::new(&link);
    let mut once = Once::new(options.send.once.clone());
    if options.send.stdin {
        messenger.send_stdin().context("could not start reading stdin")?;
    }
    let mut stdout = options.print_meta.then(tokio::io::stdout);
    let mut tracker = Tracker::new();
    let mut decoder = Decoder::default();
    let mut connected_once = false;
    let mut last_progress = tokio::time::Instant::now();
    let mut stop = Stop::Done;
    while options.frames.is_none_or(|n| tracker.frames() < n) {
        let event = tokio::select! {
            _ = shutdown.cancelled() => {
                stop = Stop::Shutdown;
                break;
            }
            _ = sleep_until(deadline) => {
                if options.frames.is_some() {
                    warn!(frames = tracker.frames(), "timed out before receiving every frame");
                }
                stop = Stop::TimedOut;
                break;
            }
            event = link.next() => event,
        };
        let event = match event {
            Ok(event) => event,
            Err(err) if tracker.frames() == 0 => return Err(err.into()),
            Err(err) => {
                warn!(error = %err, "stopped early");
                stop = Stop::LinkFailed(err.into());
                break;
            }
        };
        match event {
            Event::Connected(_) => {
                if std::mem::replace(&mut connected_once, true) {
                    tracker.reconnected();
                }
                in_use = link.current().unwrap_or_default().to_owned();
                once.connected(&messenger);
            }
            Event::Lost(_) => {}
            Event::Frame(frame, at) => {
                let age = age_ms(frame.header().capture_us);
                // One line per frame with RUST_LOG=client=trace: what tests time deliveries by.
                trace!(seq = frame.header().seq, age_ms = age, layer = frame.layer(), "frame");
                let decoded = decoder.decode_frame(&frame).is_some();
                tracker.record(frame.header(), frame.payload().len(), age, at, decoded);
                tracker.layer(frame.layer(), &link.layer_name(frame.layer()));
                if let Some(recorder) = recorder.as_mut() {
                    recorder.write(&frame)?;
                }
                if let Some(out) = stdout.as_mut() {
                    let mut line = crate::meta::json_line(&frame);
                    line.push('\n');
                    // Flushed line by line: a program reading along gets each frame's data
                    // as it arrives.
                    let printed = async {
                        out.write_all(line.as_bytes()).await?;
                        out.flush().await
                    };
                    printed.await.context("could not print metadata on stdout")?;
                }
                if let Some(every) = options.progress_every {
                    if at.duration_since(last_progress) >= every {
                        last_progress = at;
                        let r = tracker.report();
                        tracing::info!(
                            "{} frames, {:.1} fps, age p50 {:.1} ms p99 {:.1} ms, {}x{}",
                            r.frames,
                            r.fps,
                            r.age_ms_p50,
                            r.age_ms_p99,
                            r.width,
                            r.height
                        );
                    }
                }
            }
        }
    }
    if !matches!(stop, Stop::LinkFailed(_)) {
        send::drain(&mut link, &messenger).await;
    }
    let (failovers, stale_frames) = (link.failovers(), link.stale_frames());
    link.close().await;
    if let Some(recorder) = recorder {
        recorder.finish()?;
    }
    let mut report = tracker.report();
    (report.addr, report.failovers, report.stale_frames) = (in_use, failovers, stale_frames);
    report.messages_sent = messenger.sent();
    // `--send` messages still waiting for a first connection never went either.
    report.messages_dropped = messenger.dropped() + once.unsent();
    Ok((report, stop))
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
