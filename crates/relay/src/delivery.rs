//! [`Delivery`]: which frame a viewer is sent next, and when — the same for the dronecast port
//! and for MJPEG over HTTP.
//!
//! **When: freshness pacing.** A frame is picked only once the link has carried the previous
//! one, as the kernel reports it (`TCP_INFO`: unsent plus unacknowledged bytes, and the
//! delivery rate). A frame picked while the last one still queues would wait behind it and
//! arrive old; picked a moment later it is the newest at the moment the link can take it. On
//! a fast link the queue drains in microseconds, so nothing waits.
//!
//! **Which: quality layers.** A source may publish every capture several times, smaller each
//! time (layer 0 the full picture). A viewer is sent one layer: the top (old viewers, and
//! anyone who asks), a pinned one, every layer (a relay), or — `auto` — the one its link
//! carries at a useful rate. [`Chooser`] makes that choice from what the viewer actually
//! received, with hysteresis; relays never decode or re-encode anything.

use std::sync::Arc;
use std::time::Duration;

use framing::features;
use framing::layers::{self, MAX_LAYERS};
use framing::{Frame, Hello};
use tokio::time::Instant;
use tracing::debug;

use crate::Latest;
use crate::stream::Stream;
use crate::viewers::ViewerEntry;

/// Which layer a viewer wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Want {
    /// The full picture only: every viewer that did not announce layers.
    Top,
    /// This layer, by number (0 the top) or by the source's name for it.
    Pinned(LayerRef),
    /// Whatever its link carries best, chosen here.
    Auto,
    /// Every layer: a relay, which serves its own viewers from them.
    All,
}

/// A layer named by a viewer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerRef {
    /// By number, 0 the top.
    Index(usize),
    /// By the source's name for it.
    Name(String),
}

impl Want {
    /// What a viewer's hello asks for: the top alone unless it announces layers.
    pub fn from_hello(hello: &Hello) -> Want {
        if hello.features & features::LAYERS == 0 {
            return Want::Top;
        }
        Want::parse(&hello.layers)
    }

    /// A request as a hello's `layers` field or an HTTP `?layer=` gives it: empty or `auto`,
    /// `*`, `top`, a number or a name.
    pub fn parse(request: &str) -> Want {
        match request {
            layers::AUTO | "auto" => Want::Auto,
            layers::ALL => Want::All,
            "top" => Want::Pinned(LayerRef::Index(0)),
            _ => match request.parse::<usize>() {
                Ok(index) => Want::Pinned(LayerRef::Index(index)),
                Err(_) => Want::Pinned(LayerRef::Name(request.to_owned())),
            },
        }
    }

    /// Checks a pinned layer against what `stream` has, for a refusal that says what there
    /// is. A name is taken on trust while the stream's layers are not known yet.
    pub fn check(&self, stream: &Stream) -> Result<(), String> {
        let Want::Pinned(layer) = self else { return Ok(()) };
        let names = stream.layer_names();
        let known = match layer {
            LayerRef::Index(index) => {
                *index < MAX_LAYERS && (names.is_empty() || *index < names.len())
            }
            LayerRef::Name(name) => names.is_empty() || names.contains(name),
        };
        if known {
            return Ok(());
        }
        let has =
            if names.is_empty() { "only the full picture".to_owned() } else { names.join(", ") };
        let asked = match layer {
            LayerRef::Index(index) => index.to_string(),
            LayerRef::Name(name) => format!("'{}'", framing::text::printable(name.as_bytes())),
        };
        Err(format!("no layer {asked} on stream '{}'; it has: {has}", stream.name()))
    }
}

/// The viewer's socket, asked how much it still has to carry. Without one (a test's pipe, a
/// system without `TCP_INFO`) every frame goes as soon as the last one was written.
///
/// The drain time of what is queued needs the link's rate. The kernel's `delivery_rate` is
/// one sample, and a sample taken while we had little to send can be far above what the link
/// sustains (a shaper's token bucket passes a small frame at line rate: 35 MB/s measured
/// behind a 4 Mbit/s `tbf`). So the probe also measures what the link delivered while the
/// viewer had bytes waiting — `tcpi_bytes_acked` over a busy stretch, which only the link
/// can limit — and trusts the lower of the two, for as long as that measurement is recent.
#[derive(Debug, Clone, Copy, Default)]
pub struct LinkProbe {
    #[cfg(unix)]
    fd: Option<std::os::fd::RawFd>,
    /// Start of the current busy stretch: when, and `bytes_acked` then.
    busy_from: Option<(Instant, u64)>,
    /// The rate measured over the last busy stretch, bytes a second, and when.
    measured: Option<(u64, Instant)>,
}

/// A busy stretch this long measures the link's rate.
const MEASURE_OVER: Duration = Duration::from_millis(20);

/// A measured rate older than this is forgotten: the link may have recovered, and a fast
/// link is never busy long enough to measure it again.
const MEASURED_FOR: Duration = Duration::from_secs(1);

/// The lower of the kernel's rate sample (0: none yet) and a recent measured rate.
fn rate_to_trust(kernel: u64, measured: Option<(u64, Instant)>, now: Instant) -> u64 {
    match measured {
        Some((rate, at)) if now - at < MEASURED_FOR && (kernel == 0 || rate < kernel) => rate,
        _ => kernel,
    }
}

/// A probe frame has crossed the link when no more than this is still queued.
const PROBE_SLACK: u64 = 4 * 1024;

impl LinkProbe {
    /// Probes the socket `fd`, which must stay open while this probe is used (it belongs to
    /// the connection this probe paces).
    #[cfg(unix)]
    pub fn of(fd: std::os::fd::RawFd) -> LinkProbe {
        LinkProbe { fd: Some(fd), ..LinkProbe::default() }
    }

    /// No probe: no pacing.
    pub fn none() -> LinkProbe {
        LinkProbe::default()
    }

    /// `None` when the link can take the next frame now; else how long to wait before asking
    /// again.
    fn busy(&mut self) -> Option<Duration> {
        let mut info = self.info()?;
        let now = Instant::now();
        if info.queued() == 0 {
            self.busy_from = None;
            return None;
        }
        let (since, acked) = *self.busy_from.get_or_insert((now, info.bytes_acked));
        let span = now - since;
        if span >= MEASURE_OVER {
            let rate = (info.bytes_acked.saturating_sub(acked) as f64 / span.as_secs_f64()) as u64;
            if rate > 0 {
                self.measured = Some((rate, now));
            }
            self.busy_from = Some((now, info.bytes_acked));
        }
        info.delivery_rate = rate_to_trust(info.delivery_rate, self.measured, now);
        pace(&info)
    }

    /// Whether a probe frame written before now has crossed the link: (nearly) nothing is
    /// left queued. Also what was queued, for the log. Without a socket: carried.
    fn carried(&self) -> (bool, Option<u64>) {
        match self.info() {
            Some(info) => (info.queued() <= PROBE_SLACK, Some(info.queued())),
            None => (true, None),
        }
    }

    /// The socket's state now, if it can be read.
    fn info(&self) -> Option<tcpinfo::TcpInfo> {
        #[cfg(unix)]
        {
            tcpinfo::of_raw(self.fd?).ok()
        }
        #[cfg(not(unix))]
        None
    }
}

/// What is still queued may drain for this long before the next frame is picked: a frame
/// picked then starts just as the link frees up. Below the scheduling granularity of a timer,
/// so on a LAN nothing ever waits.
const QUEUE_TIME: Duration = Duration::from_millis(2);

/// Queued bytes allowed while the kernel has no delivery rate yet (a new connection).
const QUEUE_BYTES_UNMEASURED: u64 = 16 * 1024;

/// Shortest and longest wait between two looks at a busy link.
const RECHECK_MIN: Duration = Duration::from_millis(1);
const RECHECK_MAX: Duration = Duration::from_millis(20);

/// The pacing rule, on one reading of the socket.
fn pace(info: &tcpinfo::TcpInfo) -> Option<Duration> {
    let queued = info.queued();
    if queued == 0 {
        return None;
    }
    match info.drain_time() {
        Some(drain) => {
            let allowed = info.min_rtt.max(QUEUE_TIME);
            (drain > allowed).then(|| (drain - allowed).clamp(RECHECK_MIN, RECHECK_MAX))
        }
        None => (queued > QUEUE_BYTES_UNMEASURED).then_some(Duration::from_millis(5)),
    }
}

/// Why a viewer's delivery ended.
#[derive(Debug, thiserror::Error)]
pub enum Ended {
    /// The stream went away.
    #[error("stream ended")]
    StreamGone,
    /// The link carried nothing for this long.
    #[error("its link carried nothing for {0:?}")]
    Stalled(Duration),
}

/// A frame picked for a viewer.
#[derive(Debug)]
pub struct Picked {
    /// The frame.
    pub frame: Frame,
    /// Frames of its layer the viewer skipped to get it.
    skipped: u64,
}

/// One viewer's delivery: what it wants, the layer receivers, the pacing and the layer choice.
pub struct Delivery {
    stream: Arc<Stream>,
    entry: Arc<ViewerEntry>,
    want: Want,
    rx: [Latest; MAX_LAYERS],
    /// A newer frame of the layer was published and not yet picked.
    pending: [bool; MAX_LAYERS],
    link: LinkProbe,
    /// Look at the link again then, not before.
    pace_until: Option<Instant>,
    /// Since when the link has been busy without a break.
    busy_since: Option<Instant>,
    stall_after: Duration,
    /// Epoch and capture time of the newest frame sent, per layer (a relay is sent each
    /// layer) or in slot 0 (everyone else): nothing older or equal is sent again.
    last: [Option<(u64, u64)>; MAX_LAYERS],
    chooser: Option<Chooser>,
    /// A probe frame of this layer was sent; whether the link carried it in time is checked
    /// then.
    probe_check: Option<(Instant, usize)>,
}

impl Delivery {
    /// A delivery for a viewer who wants `want`; the viewer's first pick is the cached
    /// frame, at once.
    pub fn new(
        stream: Arc<Stream>,
        entry: Arc<ViewerEntry>,
        want: Want,
        link: LinkProbe,
        stall_after: Duration,
    ) -> Delivery {
        let rx = std::array::from_fn(|layer| stream.subscribe_layer(layer));
        let chooser = (want == Want::Auto).then(|| {
            let mut chooser = Chooser::new(Instant::now());
            chooser.restart_window(stream.frames_published_on(0), Instant::now());
            chooser
        });
        let mut delivery = Delivery {
            stream,
            entry,
            want,
            rx,
            pending: [false; MAX_LAYERS],
            link,
            pace_until: None,
            busy_since: None,
            stall_after,
            last: [None; MAX_LAYERS],
            chooser,
            probe_check: None,
        };
        match delivery.want {
            Want::All => delivery.pending = [true; MAX_LAYERS],
            _ => {
                let layer = delivery.layer();
                delivery.pending[layer] = true;
            }
        }
        delivery
    }

    /// The layer this viewer is on (for a relay: 0).
    pub fn layer(&self) -> usize {
        match &self.want {
            Want::Auto => self.chooser.as_ref().map_or(0, |c| c.current),
            want => Delivery::layer_of(want, &self.stream),
        }
    }

    /// The layer `want` means on `stream` now: a pinned one, or else the top.
    pub fn layer_of(want: &Want, stream: &Stream) -> usize {
        match want {
            Want::Pinned(LayerRef::Index(index)) => (*index).min(MAX_LAYERS - 1),
            Want::Pinned(LayerRef::Name(name)) => {
                stream.layer_names().iter().position(|n| n == name).unwrap_or(0)
            }
            _ => 0,
        }
    }

    /// Layers whose changes this viewer waits for.
    fn watched(&self) -> [bool; MAX_LAYERS] {
        let mut watched = [false; MAX_LAYERS];
        match self.want {
            Want::All => watched = [true; MAX_LAYERS],
            _ => {
                watched[self.layer()] = true;
                // On a smaller layer, the top's frames tell whether that layer still comes.
                watched[0] |= self.chooser.is_some();
            }
        }
        watched
    }

    fn has_pending(&self) -> bool {
        match self.want {
            Want::All => self.pending.iter().any(|p| *p),
            _ => self.pending[self.layer()],
        }
    }

    /// Waits until there is a frame to pick and the link can carry it. Cancel-safe: every
    /// await is on state kept in `self`.
    pub async fn ready(&mut self) -> Result<(), Ended> {
        loop {
            if let Some(until) = self.pace_until {
                tokio::time::sleep_until(until).await;
                self.pace_until = None;
            }
            if let Some((at, layer)) = self.probe_check {
                if Instant::now() >= at {
                    self.probe_check = None;
                    let (carried, queued) = self.link.carried();
                    if let Some(chooser) = &mut self.chooser {
                        let up = chooser.probed(layer, carried, Instant::now());
                        debug!(
                            layer,
                            carried,
                            queued,
                            "probe of the layer above: {}",
                            if up { "stepping up" } else { "staying" }
                        );
                        if up {
                            self.switched();
                        }
                    }
                    continue;
                }
            }
            if !self.has_pending() {
                self.wait_for_frame().await?;
                continue;
            }
            match self.link.busy() {
                None => {
                    self.busy_since = None;
                    return Ok(());
                }
                Some(wait) => {
                    let now = Instant::now();
                    let since = *self.busy_since.get_or_insert(now);
                    if now - since >= self.stall_after {
                        return Err(Ended::Stalled(self.stall_after));
                    }
                    self.pace_until = Some(now + wait);
                }
            }
        }
    }

    /// Waits for a change on a watched layer (or the probe check's time) and notes it.
    async fn wait_for_frame(&mut self) -> Result<(), Ended> {
        let watched = self.watched();
        let probe_at = self.probe_check.map(|(at, _)| at);
        let [r0, r1, r2, r3] = &mut self.rx;
        let changed = tokio::select! {
            c = r0.changed(), if watched[0] => c.map(|()| Some(0)),
            c = r1.changed(), if watched[1] => c.map(|()| Some(1)),
            c = r2.changed(), if watched[2] => c.map(|()| Some(2)),
            c = r3.changed(), if watched[3] => c.map(|()| Some(3)),
            () = sleep_until(probe_at) => Ok(None),
        };
        let Some(layer) = changed.map_err(|_| Ended::StreamGone)? else { return Ok(()) };
        let on = self.layer();
        if layer == 0 && on > 0 && !matches!(self.want, Want::All) {
            // Only watched to see that the smaller layer still comes.
            self.rx[0].borrow_and_update();
            if self.chooser.is_some() && self.layer_is_stale(on) {
                debug!(layer = on, "the layer stopped coming: back to the top");
                if let Some(chooser) = &mut self.chooser {
                    chooser.fall_back(Instant::now());
                }
                self.switched();
                self.pending[0] = true;
            }
            return Ok(());
        }
        self.pending[layer] = true;
        Ok(())
    }

    /// A smaller layer whose newest frame is well behind the top's has stopped coming (the
    /// source no longer makes it).
    fn layer_is_stale(&self, layer: usize) -> bool {
        let capture = |l: usize| self.stream.latest_of(l).map(|f| f.header().capture_us);
        match (capture(0), capture(layer)) {
            (Some(top), Some(small)) => top.saturating_sub(small) > STALE_LAYER.as_micros() as u64,
            (Some(_), None) => true,
            _ => false,
        }
    }

    /// The frame to write now, if there is one newer than the last sent. Call after
    /// [`Delivery::ready`]; then write it, then call [`Delivery::sent`].
    pub fn pick(&mut self) -> Option<Picked> {
        if self.want == Want::All {
            for layer in 0..MAX_LAYERS {
                if std::mem::take(&mut self.pending[layer]) {
                    let Some(frame) = self.rx[layer].borrow_and_update().clone() else { continue };
                    if let Some(picked) = self.take(layer, layer, frame) {
                        return Some(picked);
                    }
                }
            }
            return None;
        }
        let layer = self.layer();
        let now = Instant::now();
        if let Some(up) = self.chooser.as_mut().and_then(|c| c.probe_due(now)) {
            if let Some(frame) = self.stream.latest_of(up) {
                if let Some(picked) = self.take(0, up, frame) {
                    // In time: within PROBE_WITHIN frame intervals, plus the round trip its
                    // last acknowledgement needs on a long path.
                    let interval = self.stream.frame_interval().unwrap_or(DEFAULT_INTERVAL);
                    let rtt = self.link.info().map_or(Duration::ZERO, |info| info.min_rtt);
                    self.probe_check = Some((now + interval.mul_f64(PROBE_WITHIN) + rtt, up));
                    return Some(picked);
                }
            }
        }
        if !std::mem::take(&mut self.pending[layer]) {
            return None;
        }
        let frame = self.rx[layer].borrow_and_update().clone()?;
        self.take(0, layer, frame)
    }

    /// `frame` of `layer`, if it is newer than the last sent in `slot`.
    fn take(&mut self, slot: usize, layer: usize, frame: Frame) -> Option<Picked> {
        let epoch = self.stream.epoch();
        let capture_us = frame.header().capture_us;
        if let Some((last_epoch, last_capture)) = self.last[slot] {
            if last_epoch == epoch && capture_us <= last_capture {
                return None;
            }
        }
        self.last[slot] = Some((epoch, capture_us));
        let skipped = if self.want == Want::All && layer > 0 {
            0
        } else {
            self.entry.picked(layer, self.stream.frames_published_on(layer))
        };
        Some(Picked { frame, skipped })
    }

    /// Counts `picked` as written whole (`bytes` of it: the wire bytes, or over HTTP the
    /// JPEG's), and lets the layer choice see it.
    pub fn sent(&mut self, picked: &Picked, bytes: usize) {
        let frame = &picked.frame;
        self.entry.sent(bytes, frame.header().capture_us);
        self.stream.count_out(bytes, picked.skipped);
        let now = Instant::now();
        let layer = frame.layer();
        let stream = &self.stream;
        if let Some(chooser) = &mut self.chooser {
            // Asked only when a window closes: reading a layer's latest frame takes its
            // channel's lock, which every viewer's writer would otherwise take each frame.
            let below = chooser.current + 1;
            let lower = || below < MAX_LAYERS && stream.latest_of(below).is_some();
            let published = stream.frames_published_on(chooser.current);
            if chooser.sent(layer, published, lower, now) {
                debug!(layer = chooser.current, "too few frames got through: stepping down");
                self.switched();
            }
        }
    }

    /// The layer changed: count it, and let the new layer's newest frame go at once.
    fn switched(&mut self) {
        self.entry.switched_layer();
        let layer = self.layer();
        self.pending[layer] = true;
        if let Some(chooser) = &mut self.chooser {
            chooser.restart_window(self.stream.frames_published_on(layer), Instant::now());
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Frame interval assumed before the stream has measured one.
const DEFAULT_INTERVAL: Duration = Duration::from_millis(33);

/// A smaller layer this far behind the top has stopped coming.
const STALE_LAYER: Duration = Duration::from_secs(1);

/// How long the layer choice watches before judging a layer.
pub const WINDOW: Duration = Duration::from_secs(1);
/// Fewest frames published in a window for a judgement.
pub const MIN_FRAMES: u64 = 5;
/// Below this share of the layer's frames delivered, step down.
pub const STEP_DOWN_BELOW: f64 = 0.6;
/// At or above this share, the layer is healthy enough to probe the one above.
pub const PROBE_FROM: f64 = 0.9;
/// A probe frame (one frame of the layer above) must have left the link within this many
/// frame intervals for a step up.
pub const PROBE_WITHIN: f64 = 0.8;
/// First wait before probing the layer above, and the most it grows to after failed probes.
pub const PROBE_EVERY: Duration = Duration::from_secs(2);
/// Longest wait between failed probes: a link that recovers is found within this.
pub const PROBE_EVERY_MAX: Duration = Duration::from_secs(4);
/// After a step up that had to be undone within [`FLAP_WITHIN`], probes wait this long (doubling
/// from [`PROBE_EVERY`]): a link on the edge does not flap.
pub const PROBE_EVERY_AFTER_FLAP: Duration = Duration::from_secs(16);
/// A step down this soon after a step up is a flap.
pub const FLAP_WITHIN: Duration = Duration::from_secs(5);

/// The `auto` layer choice for one viewer: down when the link delivers too few of the layer's
/// frames, up after a probe frame of the layer above crossed the link in time.
#[derive(Debug)]
pub struct Chooser {
    /// The layer the viewer is on.
    pub current: usize,
    window_start: Instant,
    window_published: u64,
    window_sent: u64,
    /// Wait before the next probe.
    probe_every: Duration,
    next_probe: Instant,
    /// The probe in flight, if one is.
    probing: bool,
    /// Healthy enough to probe (the last window delivered at least [`PROBE_FROM`]).
    healthy: bool,
    last_up: Option<Instant>,
}

impl Chooser {
    /// Starts on the top layer.
    pub fn new(now: Instant) -> Chooser {
        Chooser {
            current: 0,
            window_start: now,
            window_published: 0,
            window_sent: 0,
            probe_every: PROBE_EVERY,
            next_probe: now,
            probing: false,
            healthy: false,
            last_up: None,
        }
    }

    fn restart_window(&mut self, published: u64, now: Instant) {
        self.window_start = now;
        self.window_published = published;
        self.window_sent = 0;
        self.healthy = false;
    }

    /// A frame of `layer` was written; `published` is the current layer's publish count and
    /// `lower` says (when asked) whether a smaller layer exists. True when the viewer steps down.
    pub fn sent(
        &mut self,
        layer: usize,
        published: u64,
        lower: impl FnOnce() -> bool,
        now: Instant,
    ) -> bool {
        if layer == self.current {
            self.window_sent += 1;
        }
        if now - self.window_start < WINDOW {
            return false;
        }
        let frames = published.saturating_sub(self.window_published);
        let share =
            if frames >= MIN_FRAMES { self.window_sent as f64 / frames as f64 } else { 1.0 };
        self.restart_window(published, now);
        if share < STEP_DOWN_BELOW && self.current + 1 < MAX_LAYERS && lower() {
            self.current += 1;
            let flapped = self.last_up.is_some_and(|up| now - up < FLAP_WITHIN);
            self.probe_every = if flapped {
                (self.probe_every * 2).min(PROBE_EVERY_AFTER_FLAP)
            } else {
                PROBE_EVERY
            };
            self.next_probe = now + self.probe_every;
            self.probing = false;
            return true;
        }
        self.healthy = share >= PROBE_FROM && frames >= MIN_FRAMES;
        false
    }

    /// The layer to send one probe frame of now, if a probe is due.
    pub fn probe_due(&mut self, now: Instant) -> Option<usize> {
        if self.current == 0 || self.probing || !self.healthy || now < self.next_probe {
            return None;
        }
        self.probing = true;
        Some(self.current - 1)
    }

    /// The probe frame of `layer` crossed the link in time (`carried`) or not. True when the
    /// viewer steps up.
    pub fn probed(&mut self, layer: usize, carried: bool, now: Instant) -> bool {
        self.probing = false;
        if carried && layer + 1 == self.current {
            self.current = layer;
            self.last_up = Some(now);
            self.next_probe = now + self.probe_every;
            return true;
        }
        if self.probe_every < PROBE_EVERY_MAX {
            self.probe_every = (self.probe_every * 2).min(PROBE_EVERY_MAX);
        }
        self.next_probe = now + self.probe_every;
        false
    }

    /// The layer stopped coming: back to the top.
    pub fn fall_back(&mut self, now: Instant) {
        self.current = 0;
        self.probing = false;
        self.next_probe = now + PROBE_EVERY;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(queued: u64, rate: u64, min_rtt_us: u64) -> tcpinfo::TcpInfo {
        tcpinfo::TcpInfo {
            unacked_bytes: queued,
            delivery_rate: rate,
            min_rtt: Duration::from_micros(min_rtt_us),
            ..Default::default()
        }
    }

    #[test]
    fn a_fast_link_never_waits_and_a_slow_one_waits_for_its_queue() {
        assert_eq!(pace(&info(0, 0, 0)), None, "nothing queued");
        // 64 KB on a gigabit link drain in 0.5 ms.
        assert_eq!(pace(&info(65_536, 125_000_000, 50)), None);
        // 64 KB at 1 MB/s take 65 ms: wait (capped), then look again.
        assert_eq!(pace(&info(65_536, 1_000_000, 50)), Some(RECHECK_MAX));
        // 3 KB at 1 MB/s take 3 ms: 1 ms over the allowance.
        let wait = pace(&info(3_000, 1_000_000, 50)).expect("busy");
        assert!(wait >= RECHECK_MIN && wait < Duration::from_millis(2), "{wait:?}");
        // A long path: what drains within one round trip is the pipe, not a queue.
        assert_eq!(pace(&info(40_000, 1_000_000, 50_000)), None);
        // No rate measured yet: a little is fine, a lot waits.
        assert_eq!(pace(&info(8_000, 0, 0)), None);
        assert!(pace(&info(100_000, 0, 0)).is_some());
    }

    #[test]
    fn a_measured_rate_below_the_kernels_sample_wins_while_it_is_recent() {
        let now = Instant::now();
        // Behind a 4 Mbit/s shaper the kernel sampled 35 MB/s; 500 KB/s were measured.
        assert_eq!(rate_to_trust(35_000_000, Some((500_000, now)), now), 500_000);
        assert_eq!(rate_to_trust(0, Some((500_000, now)), now), 500_000);
        // A measurement above the kernel's sample, or an old one, is not used.
        assert_eq!(rate_to_trust(1_000_000, Some((2_000_000, now)), now), 1_000_000);
        let later = now + MEASURED_FOR;
        assert_eq!(rate_to_trust(35_000_000, Some((500_000, now)), later), 35_000_000);
        assert_eq!(rate_to_trust(35_000_000, None, now), 35_000_000);
    }

    #[test]
    fn requests_parse() {
        let hello = |features, layers: &str| Hello {
            features,
            layers: layers.into(),
            ..Hello::new(framing::Role::Viewer, "t")
        };
        assert_eq!(Want::from_hello(&hello(0, "qvga")), Want::Top, "no LAYERS feature: the top");
        assert_eq!(Want::from_hello(&hello(features::LAYERS, "")), Want::Auto);
        assert_eq!(Want::from_hello(&hello(features::LAYERS, "*")), Want::All);
        assert_eq!(Want::parse("top"), Want::Pinned(LayerRef::Index(0)));
        assert_eq!(Want::parse("1"), Want::Pinned(LayerRef::Index(1)));
        assert_eq!(Want::parse("qvga"), Want::Pinned(LayerRef::Name("qvga".into())));
    }

    #[test]
    fn a_pinned_layer_that_does_not_exist_is_refused_with_what_does() {
        let stream = Stream::with_default_limit("front");
        assert!(Want::parse("qvga").check(&stream).is_ok(), "no names known yet: trusted");
        stream.set_layer_names(vec!["vga".into(), "qvga".into()]);
        assert!(Want::parse("qvga").check(&stream).is_ok());
        let err = Want::parse("hd").check(&stream).expect_err("no such layer");
        assert_eq!(err, "no layer 'hd' on stream 'front'; it has: vga, qvga");
        assert!(Want::parse("9").check(&stream).is_err());
        assert!(Want::parse("1").check(&stream).is_ok());
        assert!(Want::parse("2").check(&stream).is_err(), "two layers: 0 and 1");
    }

    /// Feeds `chooser` one window in which `sent` of 30 published frames were delivered.
    fn window(chooser: &mut Chooser, now: &mut Instant, published: &mut u64, sent: u64) -> bool {
        let mut stepped = false;
        for i in 0..30 {
            *published += 1;
            *now += Duration::from_millis(34);
            if i < sent {
                let layer = chooser.current;
                stepped |= chooser.sent(layer, *published, || true, *now);
            }
        }
        stepped
    }

    #[test]
    fn steps_down_when_too_few_frames_get_through_and_holds_without_flapping() {
        let (mut now, mut published) = (Instant::now(), 0);
        let mut chooser = Chooser::new(now);
        assert!(!window(&mut chooser, &mut now, &mut published, 30), "all delivered: stays");
        assert!(!window(&mut chooser, &mut now, &mut published, 25), "83 %: stays");
        // A window at 40 % (judged at the next frame after it).
        window(&mut chooser, &mut now, &mut published, 12);
        assert!(window(&mut chooser, &mut now, &mut published, 30) || chooser.current == 1);
        assert_eq!(chooser.current, 1);
        // Healthy on the small layer; no probe before PROBE_EVERY.
        window(&mut chooser, &mut now, &mut published, 30);
        let t = chooser.next_probe;
        assert!(chooser.probe_due(t - Duration::from_millis(1)).is_none());
        assert_eq!(chooser.probe_due(t), Some(0));
        assert!(chooser.probe_due(t).is_none(), "one probe at a time");
        // A probe that did not cross in time: stay, and wait longer (up to the cap).
        assert!(!chooser.probed(0, false, t));
        assert_eq!(chooser.probe_every, PROBE_EVERY * 2);
        chooser.probed(0, false, t);
        assert_eq!(chooser.probe_every, PROBE_EVERY_MAX, "capped");
        // One that did: up.
        assert!(chooser.probed(0, true, t));
        assert_eq!(chooser.current, 0);
    }

    #[test]
    fn a_step_down_soon_after_a_step_up_slows_the_probes() {
        let (mut now, mut published) = (Instant::now(), 0);
        let mut chooser = Chooser::new(now);
        window(&mut chooser, &mut now, &mut published, 10);
        window(&mut chooser, &mut now, &mut published, 30);
        assert_eq!(chooser.current, 1);
        assert!(chooser.probed(0, true, now), "up");
        window(&mut chooser, &mut now, &mut published, 10);
        window(&mut chooser, &mut now, &mut published, 10);
        assert_eq!(chooser.current, 1, "down again within FLAP_WITHIN");
        assert_eq!(chooser.probe_every, PROBE_EVERY * 2, "a flap doubles the wait");
    }
}
