//! The load generator: N measuring viewers (plus K that never read) against one server, all
//! in this process, each on its own tokio task. Viewers speak the dronecast protocol (the TCP
//! port) or HTTP (`GET /stream.mjpg` on the HTTP port, parsed by [`crate::mjpeg`]); both
//! report the same figures. Dronecast viewers can also send the source messages, ask for a
//! quality layer (or the relay's choice), count the frames of each layer and the switches
//! between them, and print each change of layer as it happens (for `relay-bench slowlink`,
//! which times them from another process). Viewers can be spread over several named streams,
//! give a token, and speak TLS; the window opens only once every viewer has finished joining
//! (its TLS handshake too).

use std::fmt;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use framing::layers::MAX_LAYERS;
use framing::{Hello, Role, ViewerMessage};
use relay::clock::now_us;
use relay::{SubscribeOptions, Subscription, subscribe};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;
use tokio::time::{Instant, Interval, MissedTickBehavior, timeout};
use tokio_util::sync::CancellationToken;

use crate::dial::{self, Conn};
use crate::mjpeg;

/// Our agent name, in hellos and `User-Agent`.
const AGENT: &str = concat!("relay-bench/", env!("CARGO_PKG_VERSION"));

/// A thousand viewers joining at once: time for the kernel to retry dropped SYNs, and for
/// the server to get round to every handshake.
const JOIN_PATIENCE: Duration = Duration::from_secs(30);

/// A viewer that receives no byte for this long gives up (an HTTP stream has no heartbeats;
/// a paused source sends nothing).
const IDLE_PATIENCE: Duration = Duration::from_secs(60);

/// Bytes read from an HTTP viewer's socket at a time (about one frame).
const HTTP_READ_BUFFER: usize = 64 * 1024;

/// Which port the viewers use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// The dronecast protocol on the server's TCP port.
    #[default]
    Tcp,
    /// `GET /stream.mjpg` (multipart MJPEG) on the server's HTTP port.
    Http,
}

impl Protocol {
    /// Its name in the figures.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Http => "http",
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Load {
    /// `host:port` of the server (its HTTP port for [`Protocol::Http`]).
    pub server: String,
    /// Which port the viewers use.
    pub protocol: Protocol,
    /// Measuring viewers.
    pub viewers: usize,
    /// Viewers that never read: dronecast ones say hello, HTTP ones send the request.
    pub stalled: usize,
    /// Pause between joins (`None`: all at once).
    pub join_interval: Option<Duration>,
    /// Time after the last join before measuring starts.
    pub warmup: Duration,
    /// Length of the measurement window.
    pub duration: Duration,
    /// Report frame age p99 per slice of the window, in this many slices (1: just overall).
    pub intervals: usize,
    /// Count every frame, not just new ones (the ceiling writer repeats one frame).
    pub count_repeats: bool,
    /// Viewer messages each measuring viewer sends the source a second (0: none). Dronecast
    /// viewers only, and only to a source whose hello says it takes them.
    pub messages_per_second: f64,
    /// The streams watched, round-robin: measuring viewer `i` watches `streams[i % len]`
    /// ([`Load::stream_of`]), and so does stalled viewer `i`. Empty: the server's default
    /// stream.
    pub streams: Vec<String>,
    /// The token every viewer gives: in the dronecast hello, or as `Authorization: Bearer`.
    pub token: Token,
    /// TLS to the server: how the viewers trust it. `None`: plain TCP.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// With TLS, one measuring viewer in this many decrypts and measures its frames; the
    /// others (undecrypted viewers) complete the handshake and their hello or request,
    /// then discard the ciphertext unread and count its bytes. The server encrypts for every
    /// viewer all the same; what this spares is this process's decryption, which on one
    /// machine competes with the server for the same cores. 1: every viewer decrypts.
    pub decrypt_every: usize,
    /// The quality layer dronecast viewers ask for: `None` for a hello without
    /// [`framing::features::LAYERS`] (the top layer only, as an old viewer gets), else the
    /// hello's `layers` field ([`framing::layers::AUTO`], empty, for the relay's choice).
    pub layer: Option<String>,
    /// Print a JSON line on stdout each time a viewer's layer changes ([`LayerEvent`]), and
    /// one when the window ends.
    pub layer_events: bool,
    /// After the window, keep the viewers watching (and printing layer events) until stdin
    /// closes; the figures are still those of the window.
    pub hold: bool,
}

/// A token for the server; empty for none. Never shown by `Debug`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Token(pub String);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "none" } else { "<hidden>" })
    }
}

impl Load {
    /// Whether measuring viewer `index` decrypts ([`Load::decrypt_every`]); every viewer of a
    /// plain load does.
    pub fn decrypts(&self, index: usize) -> bool {
        self.tls.is_none() || index.is_multiple_of(self.decrypt_every.max(1))
    }

    /// A load of `viewers` dronecast viewers against `server` with nothing else going on.
    pub fn new(server: &str, viewers: usize, warmup: Duration, duration: Duration) -> Load {
        Load {
            server: server.to_owned(),
            protocol: Protocol::Tcp,
            viewers,
            stalled: 0,
            join_interval: None,
            warmup,
            duration,
            intervals: 1,
            count_repeats: false,
            messages_per_second: 0.0,
            streams: Vec::new(),
            token: Token::default(),
            tls: None,
            decrypt_every: 1,
            layer: None,
            layer_events: false,
            hold: false,
        }
    }

    /// Which of [`Load::streams`] viewer `index` watches: round-robin, so that each gets the
    /// same number of viewers (±1). 0 when the load names none.
    pub fn stream_index(&self, index: usize) -> usize {
        index % self.streams.len().max(1)
    }

    /// The name of the stream viewer `index` watches; empty for the server's default.
    pub fn stream_of(&self, index: usize) -> &str {
        self.streams.get(self.stream_index(index)).map_or("", String::as_str)
    }
}

/// What one viewer saw inside the measurement window.
#[derive(Debug, Default)]
pub struct ViewerResult {
    /// The index in [`Load::streams`] of the stream it watched (0 for the default stream).
    pub stream: usize,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// Connect start to first frame.
    pub first_frame_ms: Option<f64>,
    /// Frames counted (new ones only, unless counting repeats).
    pub frames: u64,
    /// Wire bytes of those frames (for HTTP: the part's boundary, headers and JPEG).
    pub bytes: u64,
    /// Age of each counted frame on arrival, µs (not kept when counting repeats: a repeated
    /// static frame has no meaningful age).
    pub ages_us: Vec<u32>,
    /// When each of those frames arrived, ms since the window opened.
    pub arrivals_ms: Vec<u32>,
    /// Bytes of per-frame data (the frame's `meta`) on the counted frames.
    pub meta_bytes: u64,
    /// Counted frames whose data was new at the source (not repeated).
    pub meta_fresh: u64,
    /// Messages sent to the source inside the window.
    pub messages_sent: u64,
    /// Messages were asked for but the source takes none, so none were sent.
    pub messages_not_taken: bool,
    /// The source's names for its quality layers, top first (empty: it named none).
    pub layer_names: Vec<String>,
    /// Counted frames of each layer.
    pub layer_frames: [u64; MAX_LAYERS],
    /// Counted frames whose layer differs from the frame before (a probe of the layer above,
    /// one frame, makes two).
    pub layer_switches: u64,
    /// The layer the viewer was on ([`LayerTrack::steady`]) at its last counted frame.
    pub layer_at_end: Option<usize>,
    /// A TLS viewer that discarded its ciphertext unread ([`Load::decrypt_every`]): it counts
    /// no frames, only `ciphertext_bytes`.
    pub undecrypted: bool,
    /// Bytes such a viewer received inside the window (TLS records: frames, their headers,
    /// heartbeats and the records' own overhead).
    pub ciphertext_bytes: u64,
}

/// Frames in a row of one layer before a viewer counts as being on it. The relay tests the
/// link by sending a single frame of the layer above (a probe); that is not a change of layer.
pub const STEADY_FRAMES: u32 = 3;

/// Follows the layers of a viewer's frames: the switches (a frame whose layer differs from
/// the previous frame's) and the layer it is on (the last one [`STEADY_FRAMES`] frames in a
/// row were of).
#[derive(Debug, Default, Clone)]
pub struct LayerTrack {
    last: Option<usize>,
    run: u32,
    run_since_us: u64,
    steady: Option<usize>,
}

/// What one frame changed, by [`LayerTrack::frame`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Noted {
    /// Its layer differs from the previous frame's.
    pub switched: bool,
    /// The viewer is now on another layer: this one, since the frame that arrived at this
    /// time (µs since the Unix epoch), the first of the run that made it steady.
    pub now_on: Option<(usize, u64)>,
}

impl LayerTrack {
    /// Notes a frame of `layer` that arrived at `at_us`.
    pub fn frame(&mut self, layer: usize, at_us: u64) -> Noted {
        let switched = self.last.is_some_and(|last| last != layer);
        if self.last == Some(layer) {
            self.run = self.run.saturating_add(1);
        } else {
            (self.last, self.run, self.run_since_us) = (Some(layer), 1, at_us);
        }
        let mut now_on = None;
        if self.run >= STEADY_FRAMES && self.steady != Some(layer) {
            self.steady = Some(layer);
            now_on = Some((layer, self.run_since_us));
        }
        Noted { switched, now_on }
    }

    /// The layer the viewer is on: the last one [`STEADY_FRAMES`] frames in a row were of.
    pub fn steady(&self) -> Option<usize> {
        self.steady
    }
}

/// A line `--layer-events` prints: a viewer is on another layer, or the window ended.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum LayerEvent {
    /// Viewer `viewer` is on `layer` (named `name`): [`STEADY_FRAMES`] frames in a row were
    /// of it, the first arriving at `since_us`; `at_us` when that was seen (µs since the Unix
    /// epoch).
    Layer {
        /// Which measuring viewer, from 0.
        viewer: usize,
        /// The layer, 0 the top.
        layer: usize,
        /// The source's name for it (its number when it named none).
        name: String,
        /// Arrival of the first frame of the run.
        since_us: u64,
        /// Arrival of the frame that made the run steady.
        at_us: u64,
    },
    /// The measurement window ended (with `hold`, the viewers watch on).
    WindowEnd {
        /// When, µs since the Unix epoch.
        at_us: u64,
    },
}

impl LayerEvent {
    /// Prints it as one line on stdout (nothing if stdout is gone: the parent stopped
    /// listening).
    fn print(&self) {
        if let Ok(line) = serde_json::to_string(self) {
            let _ = writeln!(std::io::stdout().lock(), "{line}");
        }
    }
}

/// The name of `layer` among `names` (its number when the source named none).
pub fn layer_name(names: &[String], layer: usize) -> String {
    names.get(layer).cloned().unwrap_or_else(|| layer.to_string())
}

/// The window in µs since the Unix epoch; `u64::MAX` while not yet set.
#[derive(Debug)]
struct Window {
    start: AtomicU64,
    end: AtomicU64,
}

impl Window {
    fn contains(&self, t: u64) -> bool {
        t >= self.start.load(Ordering::Relaxed) && t < self.end.load(Ordering::Relaxed)
    }

    /// ms from the window's start to `t`.
    fn since_start_ms(&self, t: u64) -> u32 {
        (t.saturating_sub(self.start.load(Ordering::Relaxed)) / 1000) as u32
    }
}

/// What every measuring viewer shares.
struct Shared {
    load: Load,
    window: Window,
    done: CancellationToken,
}

/// A viewer's part in the count of viewers that have finished joining: connected and past
/// every handshake (TCP, TLS, hello or response head), or failed. Counted once, at the latest
/// when the viewer ends (also by a panic), so the wait for all of them cannot hang.
struct Joined(Option<Arc<Semaphore>>);

impl Joined {
    fn done(&mut self) {
        if let Some(count) = self.0.take() {
            count.add_permits(1);
        }
    }
}

impl Drop for Joined {
    fn drop(&mut self) {
        self.done();
    }
}

/// Runs the load; returns one result per measuring viewer and the window length in seconds.
/// The window opens `warmup` after every viewer has finished joining (so no TLS handshake
/// falls inside it). `during` runs concurrently with the window (for sampling the server).
pub async fn run<F, T>(load: &Load, during: F) -> (Vec<ViewerResult>, f64, T)
where
    F: AsyncFnOnce(Duration) -> T,
{
    let window = Window { start: AtomicU64::new(u64::MAX), end: AtomicU64::new(u64::MAX) };
    let shared = Arc::new(Shared { load: load.clone(), window, done: CancellationToken::new() });
    let mut stalled = Vec::new();
    for index in 0..load.stalled {
        match stall(load, load.stream_of(index)).await {
            Ok(stream) => stalled.push(stream),
            Err(err) => {
                tracing::warn!(err = format!("{err:#}"), "stalled viewer could not connect")
            }
        }
    }
    let joined = Arc::new(Semaphore::new(0));
    let mut tasks = Vec::with_capacity(load.viewers);
    for index in 0..load.viewers {
        let shared = shared.clone();
        let joined = Joined(Some(joined.clone()));
        tasks.push(tokio::spawn(async move {
            match shared.load.protocol {
                _ if !shared.load.decrypts(index) => {
                    undecrypted_viewer(&shared, index, joined).await
                }
                Protocol::Tcp => tcp_viewer(&shared, index, joined).await,
                Protocol::Http => http_viewer(&shared, index, joined).await,
            }
        }));
        if let Some(pause) = load.join_interval {
            tokio::time::sleep(pause).await;
        }
    }
    // Each viewer adds one permit once joined (or failed, or ended); a count beyond u32 could
    // not have been spawned.
    let all = u32::try_from(load.viewers).unwrap_or(u32::MAX);
    if let Ok(permits) = joined.acquire_many(all).await {
        permits.forget();
    }
    tokio::time::sleep(load.warmup).await;
    let start = now_us();
    shared.window.start.store(start, Ordering::Relaxed);
    shared.window.end.store(start + load.duration.as_micros() as u64, Ordering::Relaxed);
    let measured = during(load.duration).await;
    let secs = load.duration.as_secs_f64();
    if load.layer_events {
        LayerEvent::WindowEnd { at_us: now_us() }.print();
    }
    if load.hold {
        until_stdin_closes().await;
    }
    shared.done.cancel();
    let mut results = Vec::with_capacity(tasks.len());
    for (index, task) in tasks.into_iter().enumerate() {
        let mut result = task.await.unwrap_or_else(|err| ViewerResult {
            error: Some(format!("viewer task failed: {err}")),
            ..ViewerResult::default()
        });
        result.stream = load.stream_index(index);
        results.push(result);
    }
    drop(stalled);
    (results, secs, measured)
}

/// Returns when stdin reaches its end (or fails).
async fn until_stdin_closes() {
    let mut stdin = tokio::io::stdin();
    let mut buf = [0u8; 256];
    while let Ok(1..) = stdin.read(&mut buf).await {}
}

/// Counts a frame that arrived at `now` (µs) if it falls in the window: new ones only, unless
/// counting repeats. Returns whether it was counted.
fn count(
    shared: &Shared,
    result: &mut ViewerResult,
    now: u64,
    new: bool,
    capture_us: Option<u64>,
    wire_len: usize,
) -> bool {
    let count_repeats = shared.load.count_repeats;
    if !shared.window.contains(now) || !(new || count_repeats) {
        return false;
    }
    result.frames += 1;
    result.bytes += wire_len as u64;
    if let (false, Some(capture_us)) = (count_repeats, capture_us) {
        let age = now.saturating_sub(capture_us).min(u64::from(u32::MAX));
        result.ages_us.push(age as u32);
        result.arrivals_ms.push(shared.window.since_start_ms(now));
    }
    true
}

/// A dronecast viewer of its stream; with `messages_per_second`, it also sends the source
/// messages, the viewers' sends spread evenly over each period (viewer `index` of all of them).
async fn tcp_viewer(shared: &Shared, index: usize, mut joined: Joined) -> ViewerResult {
    let mut result = ViewerResult::default();
    let t0 = Instant::now();
    let load = &shared.load;
    let options = SubscribeOptions {
        agent: AGENT.into(),
        name: format!("bench-{index}"),
        stream: load.stream_of(index).to_owned(),
        token: Bytes::from(load.token.0.clone()),
        tls: load.tls.clone(),
        features: if shared.load.layer.is_some() { framing::features::LAYERS } else { 0 },
        layers: shared.load.layer.clone().unwrap_or_default(),
        connect_timeout: JOIN_PATIENCE,
        handshake_timeout: JOIN_PATIENCE,
        idle_timeout: IDLE_PATIENCE,
        ..SubscribeOptions::default()
    };
    let subscribed = subscribe(&load.server, &options).await;
    joined.done();
    let mut sub = match subscribed {
        Ok(sub) => sub,
        Err(err) => {
            result.error = Some(err.to_string());
            return result;
        }
    };
    let mut messages = message_ticks(&shared.load, index, &sub, &mut result);
    result.layer_names =
        framing::layers::parse_names(&sub.source_hello().layers).unwrap_or_default();
    let mut layers = LayerTrack::default();
    let mut sent_here = 0u64;
    let mut last: Option<(u64, u64, usize)> = None;
    loop {
        // `next_frame` is cancel-safe: a frame half read when a tick comes stays buffered.
        let next = tokio::select! {
            _ = shared.done.cancelled() => break,
            _ = tick(&mut messages) => {
                sent_here += 1;
                let payload = format!(r#"{{"bench":"relay-bench","viewer":{index},"n":{sent_here}}}"#);
                if let Err(err) = sub.send_message(&ViewerMessage::new(payload)).await {
                    result.error = Some(err.to_string());
                    break;
                }
                if shared.window.contains(now_us()) {
                    result.messages_sent += 1;
                }
                continue;
            }
            next = sub.next_frame() => next,
        };
        let frame = match next {
            Ok(Some(frame)) => frame,
            Ok(None) => {
                result.error = Some("server ended the stream".into());
                break;
            }
            Err(err) => {
                result.error = Some(err.to_string());
                break;
            }
        };
        let now = now_us();
        if result.first_frame_ms.is_none() {
            result.first_frame_ms = Some(t0.elapsed().as_secs_f64() * 1000.0);
        }
        let h = frame.header();
        // The layers of one capture share its seq and capture time.
        let layer = frame.layer().min(MAX_LAYERS - 1);
        let new = last != Some((h.seq, h.capture_us, layer));
        last = Some((h.seq, h.capture_us, layer));
        let noted = if new { layers.frame(layer, now) } else { Noted::default() };
        if let (true, Some((on, since_us))) = (shared.load.layer_events, noted.now_on) {
            let name = layer_name(&result.layer_names, on);
            LayerEvent::Layer { viewer: index, layer: on, name, since_us, at_us: now }.print();
        }
        if count(shared, &mut result, now, new, Some(h.capture_us), frame.wire_len()) {
            result.meta_bytes += frame.meta().len() as u64;
            result.meta_fresh += u64::from(frame.meta_is_fresh());
            result.layer_frames[layer] += 1;
            result.layer_switches += u64::from(noted.switched);
            result.layer_at_end = layers.steady();
        }
    }
    sub.close().await;
    result
}

/// The message clock of viewer `index`, if it is to send messages and the source takes them.
fn message_ticks(
    load: &Load,
    index: usize,
    sub: &Subscription,
    result: &mut ViewerResult,
) -> Option<Interval> {
    if load.messages_per_second <= 0.0 {
        return None;
    }
    if !sub.takes_messages() {
        result.messages_not_taken = true;
        return None;
    }
    let period = Duration::from_secs_f64(1.0 / load.messages_per_second);
    let phase = period.mul_f64(index as f64 / load.viewers.max(1) as f64);
    let mut ticks = tokio::time::interval_at(Instant::now() + phase, period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    Some(ticks)
}

/// The next tick, or never.
async fn tick(ticks: &mut Option<Interval>) {
    match ticks {
        Some(ticks) => {
            ticks.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// An HTTP viewer of its stream: `GET /stream.mjpg` (or `/NAME/stream.mjpg`), frame age from
/// `X-Timestamp`, new frames by `X-Frame-Seq`.
async fn http_viewer(shared: &Shared, index: usize, mut joined: Joined) -> ViewerResult {
    let mut result = ViewerResult::default();
    let t0 = Instant::now();
    let load = &shared.load;
    let request = mjpeg::request(&load.server, load.stream_of(index), AGENT, &load.token.0);
    let opened = mjpeg::open(&load.server, &request, load.tls.as_ref(), JOIN_PATIENCE).await;
    joined.done();
    let (mut stream, mut reader, rest) = match opened {
        Ok(opened) => opened,
        Err(err) => {
            result.error = Some(format!("{err:#}"));
            return result;
        }
    };
    let mut last_seq: Option<u64> = None;
    let mut on_part = |part: mjpeg::Part| {
        let now = now_us();
        if result.first_frame_ms.is_none() {
            result.first_frame_ms = Some(t0.elapsed().as_secs_f64() * 1000.0);
        }
        // Without a sequence number every part counts as new.
        let new = part.seq.is_none() || part.seq != last_seq;
        last_seq = part.seq;
        count(shared, &mut result, now, new, part.capture_us, part.wire_len);
    };
    let mut failed = reader.feed(&rest, &mut on_part).err().map(|err| format!("{err:#}"));
    let mut buf = vec![0u8; HTTP_READ_BUFFER];
    while failed.is_none() {
        let read = tokio::select! {
            _ = shared.done.cancelled() => break,
            read = timeout(IDLE_PATIENCE, stream.read(&mut buf)) => read,
        };
        failed = match read {
            Err(_) => Some(format!("{} sent nothing for {IDLE_PATIENCE:?}", shared.load.server)),
            Ok(Err(err)) => Some(format!("reading the stream: {err}")),
            Ok(Ok(0)) => Some("server closed the stream".into()),
            Ok(Ok(n)) => match reader.feed(&buf[..n], &mut on_part) {
                Err(err) => Some(format!("bad MJPEG stream: {err:#}")),
                Ok(()) if reader.ended() => Some("server ended the stream".into()),
                Ok(()) => None,
            },
        };
    }
    result.error = failed;
    result
}

/// A viewer that connects (TLS handshake included, when the load speaks TLS), asks for
/// `stream` (a dronecast hello, or the HTTP request) and then never reads: the kernel buffers
/// fill and stay full.
async fn stall(load: &Load, stream: &str) -> anyhow::Result<Conn> {
    const AGENT: &str = "relay-bench/stalled";
    let mut conn = dial::connect(&load.server, load.tls.as_ref(), JOIN_PATIENCE).await?;
    let request = ask(load, stream, AGENT);
    timeout(JOIN_PATIENCE, conn.write_all(&request)).await??;
    // Through TLS, the request is only on its way once flushed.
    timeout(JOIN_PATIENCE, conn.flush()).await??;
    Ok(conn)
}

/// What a viewer that parses nothing sends to be sent `stream`: a dronecast hello, or the
/// HTTP request.
fn ask(load: &Load, stream: &str, agent: &str) -> Vec<u8> {
    match load.protocol {
        Protocol::Tcp => {
            let token = Bytes::from(load.token.0.clone());
            let hello =
                Hello { stream: stream.to_owned(), token, ..Hello::new(Role::Viewer, agent) };
            hello.to_bytes().to_vec()
        }
        Protocol::Http => mjpeg::request(&load.server, stream, agent, &load.token.0).into_bytes(),
    }
}

/// A TLS viewer that does not decrypt ([`Load::decrypt_every`]): TCP, the TLS handshake and
/// its hello (or request) through TLS as any viewer, then it leaves TLS and discards what
/// arrives with `recv(MSG_TRUNC)` — the kernel drops the bytes without copying them out —
/// counting them. The server cannot tell it from a decrypting viewer: it reads at once
/// whatever it is sent, so the server's latest-frame delivery sends it every frame it can.
async fn undecrypted_viewer(shared: &Shared, index: usize, mut joined: Joined) -> ViewerResult {
    const AGENT: &str = concat!("relay-bench/", env!("CARGO_PKG_VERSION"), " (undecrypted)");
    let mut result = ViewerResult { undecrypted: true, ..ViewerResult::default() };
    let load = &shared.load;
    let request = ask(load, load.stream_of(index), AGENT);
    let opened =
        dial::connect_tls_then_leave(&load.server, load.tls.as_ref(), &request, JOIN_PATIENCE);
    let opened = opened.await;
    joined.done();
    let tcp = match opened {
        Ok(tcp) => tcp,
        Err(err) => {
            result.error = Some(format!("{err:#}"));
            return result;
        }
    };
    // Never read into: MSG_TRUNC only needs its length.
    let mut sink = vec![std::mem::MaybeUninit::<u8>::uninit(); DISCARD_AT_ONCE];
    let socket = socket2::SockRef::from(&tcp);
    let failed = loop {
        let ready = tokio::select! {
            _ = shared.done.cancelled() => break None,
            ready = timeout(IDLE_PATIENCE, tcp.readable()) => ready,
        };
        match ready {
            Err(_) => break Some(format!("{} sent nothing for {IDLE_PATIENCE:?}", load.server)),
            Ok(Err(err)) => break Some(format!("waiting for the stream: {err}")),
            Ok(Ok(())) => {}
        }
        let discarded = tcp.try_io(tokio::io::Interest::READABLE, || {
            socket.recv_with_flags(&mut sink, libc::MSG_TRUNC)
        });
        match discarded {
            Ok(0) => break Some("server closed the stream".into()),
            Ok(n) if shared.window.contains(now_us()) => result.ciphertext_bytes += n as u64,
            Ok(_) => {}
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(err) => break Some(format!("reading the stream: {err}")),
        }
    };
    result.error = failed;
    result
}

/// Bytes an undecrypted viewer discards a call (a few frames' worth of TLS records; the
/// kernel never writes into it, and a readiness event seldom finds more).
const DISCARD_AT_ONCE: usize = 256 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `layers`, one frame each 33 ms; returns the switches and each change of layer.
    fn follow(layers: &[usize]) -> (u64, Vec<(usize, u64)>, Option<usize>) {
        let mut track = LayerTrack::default();
        let (mut switches, mut changes) = (0, Vec::new());
        for (i, &layer) in layers.iter().enumerate() {
            let noted = track.frame(layer, i as u64 * 33_000);
            switches += u64::from(noted.switched);
            changes.extend(noted.now_on);
        }
        (switches, changes, track.steady())
    }

    #[test]
    fn a_switch_is_a_frame_of_another_layer_than_the_one_before() {
        let (switches, _, _) = follow(&[0, 0, 1, 1, 1, 0]);
        assert_eq!(switches, 2);
        // The first frame switches from nothing.
        assert_eq!(follow(&[1]).0, 0);
        assert_eq!(follow(&[]), (0, Vec::new(), None));
    }

    #[test]
    fn a_layer_is_on_after_three_frames_in_a_row_and_a_probe_is_no_change() {
        // Top, down to the small layer, a probe of the top (one frame), back up for good.
        let frames = [0, 0, 0, 0, 1, 1, 1, 1, 0, 1, 1, 0, 0, 0, 0];
        let (switches, changes, steady) = follow(&frames);
        assert_eq!(switches, 4);
        // Each change is dated by the first frame of its run: frames 0, 4 and 11.
        assert_eq!(changes, vec![(0, 0), (1, 4 * 33_000), (0, 11 * 33_000)]);
        assert_eq!(steady, Some(0));
        // Two frames are not yet a layer.
        assert_eq!(follow(&[1, 1]).2, None);
    }

    #[test]
    fn layer_events_are_one_json_object_a_line_and_read_back() -> anyhow::Result<()> {
        let event = LayerEvent::Layer {
            viewer: 0,
            layer: 1,
            name: "small".into(),
            since_us: 1_700_000_000_000_000,
            at_us: 1_700_000_000_066_000,
        };
        let line = serde_json::to_string(&event)?;
        assert!(line.starts_with(r#"{"event":"layer","viewer":0,"layer":1,"name":"small""#));
        assert_eq!(serde_json::from_str::<LayerEvent>(&line)?, event);
        let end = serde_json::to_string(&LayerEvent::WindowEnd { at_us: 5 })?;
        assert_eq!(end, r#"{"event":"window_end","at_us":5}"#);
        assert_eq!(layer_name(&["vga".into()], 0), "vga");
        assert_eq!(layer_name(&["vga".into()], 1), "1");
        Ok(())
    }
}
