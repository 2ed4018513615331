//! [`Stream`]: one live stream as a server holds it — the newest frame of each quality layer,
//! what its source is doing, its counters and its viewers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use framing::layers::MAX_LAYERS;
use framing::{DEFAULT_MAX_MESSAGE_LEN, Frame, LENGTH_PREFIX_LEN, ViewerMessage};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use serde::Serialize;
use tokio::sync::{mpsc, watch};

use crate::Latest;
use crate::clock::now_us;
use crate::viewers::ViewerTable;

/// A frame no receiver with the same limit would accept. It was not published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "skipped a {len}-byte frame: receivers accept at most {max} bytes and would drop the \
     connection (make the source's frames smaller, or raise --max-frame-bytes here and on \
     every receiver)"
)]
pub struct FrameTooLarge {
    /// The frame's message length.
    pub len: usize,
    /// The limit.
    pub max: usize,
}

/// What a stream's source is doing, for the status line, `/state` and `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceStatus {
    /// `"up"` while frames can come (a drone capturing, a cache-server's upstream
    /// connected); otherwise what it is doing: `"connecting"`, `"down"`, `"paused"` …
    pub state: &'static str,
    /// Where the frames come from: the upstream address, the camera, the file.
    pub from: String,
    /// The source's own name for itself (its hello's agent), when it has one.
    pub agent: String,
    /// Times the source came back after it was lost.
    pub reconnects: u64,
}

impl SourceStatus {
    /// True when the state is `"up"`.
    pub fn is_up(&self) -> bool {
        self.state == "up"
    }
}

/// Totals since the stream was created. Read them with [`Stream::totals`].
#[derive(Debug, Default)]
struct Counters {
    /// Frames published per layer; `frames_in` is layer 0's.
    published: [AtomicU64; MAX_LAYERS],
    bytes_in: AtomicU64,
    frames_out: AtomicU64,
    bytes_out: AtomicU64,
    frames_skipped: AtomicU64,
}

/// A snapshot of a stream's counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// Frames of the full picture (layer 0) published: received from upstream, or captured.
    pub frames_in: u64,
    /// Wire bytes published, every layer.
    pub bytes_in: u64,
    /// Frames written to viewers, summed over viewers.
    pub frames_out: u64,
    /// Bytes written to viewers, summed over viewers (TCP: wire bytes; HTTP: JPEG bytes).
    pub bytes_out: u64,
    /// Frames a viewer did not get because a newer one replaced it while its socket was busy.
    pub frames_skipped: u64,
    /// Viewer messages handed to the source.
    pub messages_in: u64,
    /// Viewer messages dropped: over a viewer's rate, or the source's inbox full.
    pub messages_dropped: u64,
}

/// Rates over the last second or so.
#[derive(Debug, Default, Clone, Copy, PartialEq, Serialize)]
pub struct Rates {
    /// Frames published per second.
    pub fps_in: f64,
    /// Megabits per second published.
    pub mbit_in: f64,
    /// Megabits per second written to all viewers together.
    pub mbit_out: f64,
}

#[derive(Debug)]
struct RateWindow {
    at: Instant,
    totals: Totals,
    rates: Rates,
}

/// One stream, shared by its source (which publishes into it) and the servers (which serve
/// it over TCP and HTTP).
#[derive(Debug)]
pub struct Stream {
    name: String,
    /// The newest frame of each quality layer, 0 the full picture. A viewer watches only the
    /// layer it is on, so the smaller layers cost the others no wake-ups.
    layers: [watch::Sender<Option<Frame>>; MAX_LAYERS],
    /// The layers' names, top first, as the source announced them; empty when unknown.
    layer_names: watch::Sender<Vec<String>>,
    /// Bumped by [`Stream::clear`]: frames after it may be older than frames before it (a
    /// new source), so a viewer stops comparing capture times across it.
    epoch: AtomicU64,
    /// The source's frame interval, µs, smoothed over layer 0's capture times.
    interval_us: AtomicU64,
    last_capture_us: AtomicU64,
    max_frame_len: usize,
    source: watch::Sender<SourceStatus>,
    counters: Counters,
    rate_window: Mutex<RateWindow>,
    age: Histogram,
    viewers: Arc<ViewerTable>,
    /// Frames are wanted until then even with no viewer (someone asked for a snapshot).
    wanted_until: watch::Sender<Option<Instant>>,
    /// Where viewer messages go, when the source takes them.
    inbox: Mutex<Option<mpsc::Sender<ViewerMessage>>>,
    messages_in: AtomicU64,
    messages_dropped: AtomicU64,
    /// Since when the source has been neither up nor paused; `None` while it is one of them.
    down_since: Mutex<Option<Instant>>,
}

/// Why a viewer message was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MessageDropped {
    /// The source takes no messages.
    #[error("this stream's source takes no viewer messages")]
    NotTaken,
    /// The source's inbox is full: it reads them slower than they come.
    #[error("the source's inbox is full")]
    InboxFull,
}

impl Stream {
    /// A stream with no frame yet whose frames may be up to `max_frame_len` bytes long (the
    /// message length, as receivers check it).
    pub fn new(name: &str, max_frame_len: usize) -> Stream {
        Stream {
            name: name.to_owned(),
            layers: std::array::from_fn(|_| watch::Sender::new(None)),
            layer_names: watch::Sender::new(Vec::new()),
            epoch: AtomicU64::new(0),
            interval_us: AtomicU64::new(0),
            last_capture_us: AtomicU64::new(0),
            max_frame_len,
            source: watch::Sender::new(SourceStatus {
                state: "connecting",
                from: String::new(),
                agent: String::new(),
                reconnects: 0,
            }),
            counters: Counters::default(),
            rate_window: Mutex::new(RateWindow {
                at: Instant::now(),
                totals: Totals::default(),
                rates: Rates::default(),
            }),
            // 1 ms to ~16 s, doubling: a LAN hop is a few ms, a radio link a few hundred.
            age: Histogram::new(exponential_buckets(0.001, 2.0, 15)),
            viewers: Arc::new(ViewerTable::default()),
            wanted_until: watch::Sender::new(None),
            inbox: Mutex::new(None),
            messages_in: AtomicU64::new(0),
            messages_dropped: AtomicU64::new(0),
            down_since: Mutex::new(Some(Instant::now())),
        }
    }

    /// A stream with the receivers' default frame limit.
    pub fn with_default_limit(name: &str) -> Stream {
        Stream::new(name, DEFAULT_MAX_MESSAGE_LEN)
    }

    /// The stream's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Makes `frame` the newest frame of its layer; never waits, whatever the viewers do. A
    /// frame above the limit is refused here, at the source, rather than put on the wire where
    /// every receiver would drop its connection for it.
    pub fn publish(&self, frame: Frame) -> Result<(), FrameTooLarge> {
        let len = frame.wire_len() - LENGTH_PREFIX_LEN;
        if len > self.max_frame_len {
            return Err(FrameTooLarge { len, max: self.max_frame_len });
        }
        let layer = frame.layer();
        let capture_us = frame.header().capture_us;
        if layer == 0 {
            self.age.observe(now_us().saturating_sub(capture_us) as f64 / 1e6);
            self.note_interval(capture_us);
        }
        self.counters.bytes_in.fetch_add(frame.wire_len() as u64, Ordering::Relaxed);
        // Counted before the frame is visible: a viewer that sees it sees the count too.
        self.counters.published[layer].fetch_add(1, Ordering::Relaxed);
        self.layers[layer].send_replace(Some(frame));
        Ok(())
    }

    /// Smooths the gap between two captures into the source's frame interval (1/8 of each
    /// new gap), ignoring gaps that are not a steady rate (a pause, a restart).
    fn note_interval(&self, capture_us: u64) {
        let last = self.last_capture_us.swap(capture_us, Ordering::Relaxed);
        let gap = capture_us.saturating_sub(last);
        if last == 0 || gap == 0 || gap > 1_000_000 {
            return;
        }
        let old = self.interval_us.load(Ordering::Relaxed);
        let new = if old == 0 { gap } else { (old * 7 + gap) / 8 };
        self.interval_us.store(new, Ordering::Relaxed);
    }

    /// The source's frame interval, once it has sent a few frames.
    pub fn frame_interval(&self) -> Option<Duration> {
        match self.interval_us.load(Ordering::Relaxed) {
            0 => None,
            us => Some(Duration::from_micros(us)),
        }
    }

    /// Forgets the newest frames, so that a viewer who joins later is not handed a stale one.
    pub fn clear(&self) {
        self.epoch.fetch_add(1, Ordering::Relaxed);
        self.last_capture_us.store(0, Ordering::Relaxed);
        for layer in &self.layers {
            layer.send_replace(None);
        }
    }

    /// How many times the stream was cleared: frames of different epochs are not compared.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Relaxed)
    }

    /// A receiver of the newest full-picture frame (layer 0).
    pub fn subscribe(&self) -> Latest {
        self.layers[0].subscribe()
    }

    /// A receiver of the newest frame of `layer` (below [`MAX_LAYERS`]).
    pub fn subscribe_layer(&self, layer: usize) -> Latest {
        self.layers[layer.min(MAX_LAYERS - 1)].subscribe()
    }

    /// The newest full-picture frame, if there is one.
    pub fn latest(&self) -> Option<Frame> {
        self.latest_of(0)
    }

    /// The newest frame of `layer`, if there is one.
    pub fn latest_of(&self, layer: usize) -> Option<Frame> {
        self.layers.get(layer)?.borrow().clone()
    }

    /// Names the stream's layers, top first (as the source's hello or `--layers` gives them).
    pub fn set_layer_names(&self, names: Vec<String>) {
        self.layer_names.send_if_modified(|old| {
            let changed = *old != names;
            *old = names;
            changed
        });
    }

    /// The layers' names, top first; empty when the source named none.
    pub fn layer_names(&self) -> Vec<String> {
        self.layer_names.borrow().clone()
    }

    /// How many layers the stream has: as many as are named, or else as have frames.
    pub fn layer_count(&self) -> usize {
        let named = self.layer_names.borrow().len();
        let seen = self.layers.iter().rposition(|l| l.borrow().is_some()).map_or(1, |i| i + 1);
        named.max(seen).clamp(1, MAX_LAYERS)
    }

    /// The name of `layer`: as named, else its number.
    pub fn layer_name(&self, layer: usize) -> String {
        match self.layer_names.borrow().get(layer) {
            Some(name) => name.clone(),
            None => layer.to_string(),
        }
    }

    /// Says what the source is doing.
    pub fn set_source(&self, status: SourceStatus) {
        self.source.send_replace(status);
        self.note_down_since();
    }

    /// Changes part of the source status.
    pub fn update_source(&self, change: impl FnOnce(&mut SourceStatus)) {
        self.source.send_modify(change);
        self.note_down_since();
    }

    /// How long the source has been neither `up` nor `paused` (connecting, down, failing), as
    /// `/healthz` judges a stream; `None` while it is either. A new stream counts from its
    /// creation.
    pub fn down_for(&self) -> Option<Duration> {
        self.down_since.lock().ok().and_then(|since| *since).map(|since| since.elapsed())
    }

    /// Starts or ends the count of [`Stream::down_for`] as the source's state says.
    fn note_down_since(&self) {
        let serving = matches!(self.source.borrow().state, "up" | "paused");
        if let Ok(mut since) = self.down_since.lock() {
            match (serving, *since) {
                (true, _) => *since = None,
                (false, None) => *since = Some(Instant::now()),
                (false, Some(_)) => {}
            }
        }
    }

    /// What the source is doing.
    pub fn source(&self) -> SourceStatus {
        self.source.borrow().clone()
    }

    /// A receiver that sees the source status change.
    pub fn watch_source(&self) -> watch::Receiver<SourceStatus> {
        self.source.subscribe()
    }

    /// The stream's viewers, over every protocol.
    pub fn viewers(&self) -> &Arc<ViewerTable> {
        &self.viewers
    }

    /// Asks the source for frames for `how_long` even if nobody watches (a snapshot of a
    /// drone whose capture is paused).
    pub fn want_frames_for(&self, how_long: Duration) {
        let until = Instant::now() + how_long;
        self.wanted_until.send_if_modified(|wanted| {
            let later = wanted.is_none_or(|w| w < until);
            if later {
                *wanted = Some(until);
            }
            later
        });
    }

    /// Until when frames are wanted without viewers; watch it to wake a paused source.
    pub fn watch_wanted(&self) -> watch::Receiver<Option<Instant>> {
        self.wanted_until.subscribe()
    }

    /// From now on the stream takes viewer messages: they arrive on the returned receiver,
    /// at most `capacity` waiting (more are dropped and counted, never queued without bound).
    pub fn take_messages(&self, capacity: usize) -> mpsc::Receiver<ViewerMessage> {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        if let Ok(mut inbox) = self.inbox.lock() {
            *inbox = Some(tx);
        }
        rx
    }

    /// True when the stream's source takes viewer messages (and so its servers announce it).
    pub fn takes_messages(&self) -> bool {
        self.inbox.lock().is_ok_and(|inbox| inbox.as_ref().is_some_and(|tx| !tx.is_closed()))
    }

    /// Hands a viewer message to the source, never waiting.
    pub fn offer_message(&self, message: ViewerMessage) -> Result<(), MessageDropped> {
        let sent = match self.inbox.lock() {
            Ok(inbox) => match inbox.as_ref() {
                Some(tx) => tx.try_send(message).map_err(|err| match err {
                    mpsc::error::TrySendError::Full(_) => MessageDropped::InboxFull,
                    mpsc::error::TrySendError::Closed(_) => MessageDropped::NotTaken,
                }),
                None => Err(MessageDropped::NotTaken),
            },
            Err(_) => Err(MessageDropped::NotTaken),
        };
        match sent {
            Ok(()) => self.messages_in.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.messages_dropped.fetch_add(1, Ordering::Relaxed),
        };
        sent
    }

    /// Counts a message dropped on its way: over its viewer's rate, or by a relay that could
    /// not hand it on.
    pub fn count_dropped_message(&self) {
        self.messages_dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// Full-picture frames published so far; a viewer compares two readings to count what it
    /// skipped.
    pub fn frames_published(&self) -> u64 {
        self.frames_published_on(0)
    }

    /// Frames of `layer` published so far.
    pub fn frames_published_on(&self, layer: usize) -> u64 {
        self.counters.published.get(layer).map_or(0, |n| n.load(Ordering::Relaxed))
    }

    /// Counts a frame written to a viewer, and the frames it skipped to get it.
    pub(crate) fn count_out(&self, bytes: usize, skipped: u64) {
        self.counters.frames_out.fetch_add(1, Ordering::Relaxed);
        self.counters.bytes_out.fetch_add(bytes as u64, Ordering::Relaxed);
        if skipped > 0 {
            self.counters.frames_skipped.fetch_add(skipped, Ordering::Relaxed);
        }
    }

    /// The counters now.
    pub fn totals(&self) -> Totals {
        let c = &self.counters;
        Totals {
            frames_in: c.published[0].load(Ordering::Relaxed),
            bytes_in: c.bytes_in.load(Ordering::Relaxed),
            frames_out: c.frames_out.load(Ordering::Relaxed),
            bytes_out: c.bytes_out.load(Ordering::Relaxed),
            frames_skipped: c.frames_skipped.load(Ordering::Relaxed),
            messages_in: self.messages_in.load(Ordering::Relaxed),
            messages_dropped: self.messages_dropped.load(Ordering::Relaxed),
        }
    }

    /// Rates over the window since the previous reading at least a second ago (so callers
    /// that ask often share one window rather than each getting a noisy one).
    pub fn rates(&self) -> Rates {
        let Ok(mut window) = self.rate_window.lock() else { return Rates::default() };
        let now = Instant::now();
        let secs = now.duration_since(window.at).as_secs_f64();
        if secs >= RATE_WINDOW.as_secs_f64() {
            let (then, totals) = (window.totals, self.totals());
            let per_sec = |a: u64, b: u64| b.saturating_sub(a) as f64 / secs;
            window.rates = Rates {
                fps_in: per_sec(then.frames_in, totals.frames_in),
                mbit_in: per_sec(then.bytes_in, totals.bytes_in) * 8.0 / 1e6,
                mbit_out: per_sec(then.bytes_out, totals.bytes_out) * 8.0 / 1e6,
            };
            window.at = now;
            window.totals = totals;
        }
        window.rates
    }

    /// Ages of frames on arrival at this server, for `/metrics`.
    pub(crate) fn age_histogram(&self) -> &Histogram {
        &self.age
    }
}

/// Shortest window [`Stream::rates`] measures over.
const RATE_WINDOW: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use framing::{Encoding, FrameHeader};

    fn frame(payload: usize) -> Frame {
        let header =
            FrameHeader { seq: 1, capture_us: 2, encoding: Encoding::Jpeg, width: 1, height: 1 };
        Frame::new(header, b"", Bytes::from(vec![0; payload]))
    }

    #[test]
    fn frames_up_to_the_limit_are_published_and_larger_ones_refused() {
        let stream = Stream::new("s", 1000);
        let fits = frame(1000 - (frame(0).wire_len() - LENGTH_PREFIX_LEN));
        stream.publish(fits.clone()).expect("a frame of exactly the limit is published");
        let err = stream.publish(frame(2000)).expect_err("a larger one is refused");
        assert_eq!(err.max, 1000);
        assert_eq!(stream.latest().as_ref(), Some(&fits), "the refused frame replaced nothing");
        assert_eq!(stream.totals().frames_in, 1, "only the published frame is counted");
    }

    #[test]
    fn down_for_counts_from_creation_and_from_each_loss_of_the_source() {
        let stream = Stream::with_default_limit("s");
        assert!(stream.down_for().is_some(), "connecting at first: down");
        stream.update_source(|s| s.state = "up");
        assert_eq!(stream.down_for(), None);
        stream.update_source(|s| s.state = "paused");
        assert_eq!(stream.down_for(), None, "a paused drone is not down");
        stream.update_source(|s| s.state = "down");
        let first = stream.down_for().expect("down");
        std::thread::sleep(Duration::from_millis(5));
        stream.update_source(|s| s.reconnects += 1);
        assert!(stream.down_for().expect("still down") > first, "counted from the loss");
    }
}
