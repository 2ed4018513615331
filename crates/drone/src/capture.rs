//! The capture thread: opens the source, produces frames at the requested rate and publishes
//! each into the watch channel that the server's viewers read.
//!
//! Capture and encoding run on a thread of their own and publish with `send_replace`, which
//! never waits: a slow network cannot hold up capture, and capture cannot hold up the network.

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context;
use framing::{Encoding, Frame, FrameHeader};
use relay::Stream;
use relay::clock::now_us;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::source::{self, Format, SourceSpec};

/// What the capture thread needs.
pub struct CaptureTask {
    /// Which source to open.
    pub spec: SourceSpec,
    /// What to ask it for.
    pub format: Format,
    /// Where each frame is published; capture pauses while it has no viewers and nobody
    /// wants its frames (unless `always` is set).
    pub stream: Arc<Stream>,
    /// The newest data to send along with each frame, if there is a source of it.
    pub meta: Option<Arc<crate::meta::Newest>>,
    /// Makes the smaller layers of each capture (`--layers`), if any.
    pub layers: Option<crate::layers::Layers>,
    /// Capture even with no viewers.
    pub always: bool,
    /// Stops the thread.
    pub stop: CancellationToken,
}

impl CaptureTask {
    /// Starts the thread and waits until the source has opened, so that a missing camera or
    /// unreadable file is an error at start-up, not at the first viewer. Returns the
    /// source's description and the thread's handle.
    pub async fn start(self) -> anyhow::Result<(String, thread::JoinHandle<()>)> {
        let (opened_tx, opened_rx) = oneshot::channel();
        let runtime = tokio::runtime::Handle::current();
        let handle = thread::Builder::new()
            .name("capture".into())
            .spawn(move || {
                // The source is opened on this thread: camera handles are not `Send`.
                let source = match source::open(&self.spec, self.format) {
                    Ok(source) => source,
                    Err(err) => {
                        let _ = opened_tx.send(Err(err));
                        return;
                    }
                };
                let described = source.describe();
                self.stream.update_source(|status| {
                    status.state = "up";
                    status.from = described.clone();
                });
                let _ = opened_tx.send(Ok(described));
                self.run(source, &runtime);
            })
            .context("could not start the capture thread")?;
        let described = opened_rx.await.context("capture thread ended while opening")??;
        Ok((described, handle))
    }

    fn run(self, mut source: Box<dyn source::Source>, runtime: &tokio::runtime::Handle) {
        let interval = Duration::from_secs_f64(1.0 / f64::from(self.format.fps.max(1)));
        let mut viewers = self.stream.viewers().watch_count();
        let mut wanted = self.stream.watch_wanted();
        let mut seq = 0u64;
        let mut next = Instant::now();
        let mut failures =
            Failures::new("capture failed; retrying every second", "capture recovered");
        let mut oversized = Failures::new("frame not sent", "frames fit again");
        while !self.stop.is_cancelled() {
            let watched = *viewers.borrow_and_update() > 0
                || wanted.borrow_and_update().is_some_and(|until| until > Instant::now());
            if !self.always && !watched {
                // Nobody watches: stop capturing (a camera stops streaming, a Pi stays cool)
                // and drop the cached frame so the next viewer is not handed a stale picture.
                self.stream.clear();
                self.stream.update_source(|status| status.state = "paused");
                source.pause();
                info!("no viewers; capture paused");
                runtime.block_on(async {
                    tokio::select! {
                        _ = viewers.wait_for(|n| *n > 0) => {}
                        _ = wanted.changed() => {}
                        _ = self.stop.cancelled() => {}
                    }
                });
                if self.stop.is_cancelled() {
                    break;
                }
                info!("viewer connected; capture running");
                self.stream.update_source(|status| status.state = "up");
                if let Err(err) = source.resume() {
                    failures.report(&err);
                }
                next = Instant::now();
                continue;
            }
            let paced = source.self_paced();
            if !paced {
                let now = Instant::now();
                if next > now {
                    thread::sleep(next - now);
                } else if now - next > interval {
                    next = now; // fell behind (slow encode, suspended): don't burst to catch up
                }
                next += interval;
            }
            match source.next_frame() {
                Ok(captured) => {
                    // Stamped when the source hands over the finished JPEG, for every source
                    // alike: a camera's exposure and MJPEG encode happen before nokhwa returns,
                    // so the test pattern's drawing and encoding are left out the same way.
                    // Frame age then measures the path from drone to screen.
                    let capture_us = now_us();
                    let header = FrameHeader {
                        seq,
                        capture_us,
                        encoding: Encoding::Jpeg,
                        width: captured.width,
                        height: captured.height,
                    };
                    if failures.recovered() {
                        self.stream.update_source(|status| status.state = "up");
                    }
                    // Skipped, not sent: every receiver would drop its connection for it.
                    let (meta, fresh) =
                        self.meta.as_ref().map(|m| m.for_frame()).unwrap_or_default();
                    let flags = if fresh { framing::flags::META_FRESH } else { 0 };
                    let (width, height) = (captured.width, captured.height);
                    let untouched =
                        self.layers.as_ref().is_none_or(|l| l.top_is_untouched(width, height));
                    let jpeg = captured.jpeg;
                    if untouched {
                        let frame = Frame::with_flags(header, flags, &meta, jpeg.clone());
                        match self.stream.publish(frame) {
                            Ok(()) => {
                                oversized.recovered();
                            }
                            Err(too_large) => oversized.report(&too_large.into()),
                        }
                    }
                    // After the full picture, so that the smaller ones never delay it.
                    if let Some(layers) = &self.layers {
                        layers.submit(header, flags, &meta, jpeg);
                    }
                    seq += 1;
                }
                Err(err) => {
                    failures.report(&err);
                    self.stream.update_source(|status| status.state = "failing");
                    thread::sleep(Duration::from_secs(1));
                }
            }
        }
    }
}

/// Logs errors without flooding the log while a source stays broken (a camera unplugged for
/// an hour, a file whose every frame is too large): a new error at once, the same one again
/// every minute, and one line when it stops.
struct Failures {
    failed: &'static str,
    recovered: &'static str,
    last: Option<(String, Instant)>,
    repeats: u64,
}

impl Failures {
    const REPEAT_EVERY: Duration = Duration::from_secs(60);

    fn new(failed: &'static str, recovered: &'static str) -> Failures {
        Failures { failed, recovered, last: None, repeats: 0 }
    }

    fn report(&mut self, err: &anyhow::Error) {
        let text = format!("{err:#}");
        match &mut self.last {
            Some((last, at)) if *last == text => {
                self.repeats += 1;
                if at.elapsed() >= Self::REPEAT_EVERY {
                    warn!(error = %text, repeats = self.repeats, "{} (still)", self.failed);
                    *at = Instant::now();
                }
            }
            _ => {
                warn!(error = %text, "{}", self.failed);
                self.last = Some((text, Instant::now()));
                self.repeats = 0;
            }
        }
    }

    /// Says so once when failures stop; true then.
    fn recovered(&mut self) -> bool {
        let was_failing = self.last.take().is_some();
        if was_failing {
            info!(repeats = self.repeats, "{}", self.recovered);
        }
        was_failing
    }
}
