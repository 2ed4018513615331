//! [`Tracker`] turns the frames a viewer receives into a [`Report`]: how many, how fresh, in
//! what order.
//!
//! A monitoring client may run for days, so the tracker's memory and the cost of a report are
//! fixed when it is created and never grow with the frames it has seen: frame ages go into an
//! HDR histogram, and duplicates are looked for among the last [`RECENT`] frames only.

use std::collections::VecDeque;
use std::fmt;

use framing::FrameHeader;
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::time::Instant;

/// How many of the latest frames a new one is compared with to tell a duplicate. A relay
/// holds only its newest frame, so a frame can come twice only while it is among the newest
/// (typically: the cache-server's cached frame again after a reconnect); 256 frames are more
/// than 8 s at 30 fps. An older frame coming again would still count as out of order.
pub const RECENT: usize = 256;

/// Ages above this (an hour, in µs) are recorded as this: only a clock far off does that.
const MAX_AGE_US: u64 = 3_600_000_000;

/// What a viewer saw. Serialised as the headless client's `--json` output.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    /// Frames received.
    pub frames: u64,
    /// Frames that were not a duplicate of one of the [`RECENT`] frames before them (same
    /// sequence number and capture time).
    pub distinct: u64,
    /// Frames older than the one received before them (should be 0).
    pub out_of_order: u64,
    /// Times the source restarted (sequence went back, capture time forward).
    pub source_restarts: u64,
    /// Times the connection was lost and redialled.
    pub reconnects: u64,
    /// Reconnections that went to another address than the connection before (a client given
    /// several, `a:9998,b:9998`); a balancer's address counts as one.
    pub failovers: u64,
    /// The address of the last connection made (the one in use, unless it was lost at the
    /// end); empty if none was.
    pub addr: String,
    /// Frames dropped, not shown, because they were not newer than one shown already: a
    /// relay's cached frame again after a reconnect, a lagging relay's after a failover.
    pub stale_frames: u64,
    /// Frames per second between the first and last frame received.
    pub fps: f64,
    /// Median age of a frame on arrival (now − capture time), in ms (to 3 significant digits,
    /// as are the other ages).
    pub age_ms_p50: f64,
    /// 99th-percentile age, in ms.
    pub age_ms_p99: f64,
    /// Oldest frame on arrival, in ms.
    pub age_ms_max: f64,
    /// Time from starting to connect until the first frame, in ms.
    pub first_frame_ms: f64,
    /// Frames that were not decoded: a damaged JPEG, or one whose size disagrees with the
    /// frame header or is above `framing::MAX_DIMENSION`.
    pub decode_errors: u64,
    /// Width of the last decoded frame.
    pub width: u32,
    /// Height of the last decoded frame.
    pub height: u32,
    /// Payload bytes received.
    pub bytes: u64,
    /// Messages written to the source (`--send`, `--send-stdin`).
    pub messages_sent: u64,
    /// Messages that did not go: the source takes none, the link was down, too many were
    /// waiting, or the client stopped first.
    pub messages_dropped: u64,
    /// The quality layer of the last frame: its name, or its number when the source named
    /// none (`0` is the full picture).
    pub layer: String,
    /// Times the layer the frames come on changed (the relay stepped down or up). A layer
    /// counts once [`HOLD_FRAMES`] frames in a row came on it: one frame of the layer above
    /// (the relay probing the link) is no switch, and is counted in `probe_frames`.
    pub layer_switches: u64,
    /// Frames of another layer than the one the viewer was on that did not become a switch:
    /// the relay's probes of the layer above.
    pub probe_frames: u64,
}

impl fmt::Display for Report {
    /// The headless client's one-line summary.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} frames ({} distinct, {} out of order), {:.1} fps, age p50 {:.1} ms p99 {:.1} ms, \
             first frame {:.1} ms, {}x{}, {} decode errors",
            self.frames,
            self.distinct,
            self.out_of_order,
            self.fps,
            self.age_ms_p50,
            self.age_ms_p99,
            self.first_frame_ms,
            self.width,
            self.height,
            self.decode_errors
        )?;
        if self.reconnects > 0 {
            write!(f, ", {} reconnects ({} failovers)", self.reconnects, self.failovers)?;
        }
        if self.stale_frames > 0 {
            write!(f, ", {} stale frames dropped", self.stale_frames)?;
        }
        if self.messages_sent + self.messages_dropped > 0 {
            write!(f, ", {} messages sent, {} dropped", self.messages_sent, self.messages_dropped)?;
        }
        if self.layer_switches > 0 || !matches!(self.layer.as_str(), "" | "0") {
            write!(f, ", layer {} ({} switches)", self.layer, self.layer_switches)?;
        }
        Ok(())
    }
}

/// Frames in a row on another layer that make it the layer the viewer is on.
pub const HOLD_FRAMES: u64 = 3;

/// The layer a viewer's frames come on, told apart from the relay's probes: a layer is held
/// once [`HOLD_FRAMES`] frames in a row came on it (or at the first frame).
#[derive(Debug, Default)]
pub struct LayerHold {
    /// The layer held.
    pub on: Option<usize>,
    /// The run of frames on another layer: which, and how many.
    run: (usize, u64),
    /// Changes of the layer held.
    pub switches: u64,
    /// Frames of another layer that were not followed by enough of it: probes.
    pub probes: u64,
}

impl LayerHold {
    /// A frame of `layer` came; true when it is on the layer held (a change, perhaps).
    pub fn frame(&mut self, layer: usize) -> bool {
        if self.on == Some(layer) {
            // Back on the layer after a frame or two of another: those were probes.
            self.probes += std::mem::take(&mut self.run).1;
            return true;
        }
        if self.run.0 != layer {
            self.probes += self.run.1;
            self.run = (layer, 0);
        }
        self.run.1 += 1;
        if self.run.1 < HOLD_FRAMES && self.on.is_some() {
            return false;
        }
        if self.on.replace(layer).is_some() {
            self.switches += 1;
        }
        self.run = (0, 0);
        true
    }
}

/// Accumulates a [`Report`] in constant memory.
#[derive(Debug)]
pub struct Tracker {
    started: Instant,
    first: Option<Instant>,
    last: Option<Instant>,
    last_header: Option<FrameHeader>,
    layers: LayerHold,
    /// (seq, capture_us) of the latest [`RECENT`] frames, oldest first.
    recent: VecDeque<(u64, u64)>,
    /// Frame ages in µs, 3 significant digits.
    ages_us: Histogram<u64>,
    report: Report,
}

impl Tracker {
    /// A tracker whose clock for `first_frame_ms` starts now.
    pub fn new() -> Tracker {
        Tracker {
            started: Instant::now(),
            first: None,
            last: None,
            last_header: None,
            layers: LayerHold::default(),
            recent: VecDeque::with_capacity(RECENT),
            ages_us: Histogram::new_with_bounds(1, MAX_AGE_US, 3)
                .expect("1 µs to an hour at 3 significant digits is a valid histogram"),
            report: Report {
                frames: 0,
                distinct: 0,
                out_of_order: 0,
                source_restarts: 0,
                reconnects: 0,
                failovers: 0,
                addr: String::new(),
                stale_frames: 0,
                fps: 0.0,
                age_ms_p50: 0.0,
                age_ms_p99: 0.0,
                age_ms_max: 0.0,
                first_frame_ms: 0.0,
                decode_errors: 0,
                width: 0,
                height: 0,
                bytes: 0,
                messages_sent: 0,
                messages_dropped: 0,
                layer: String::new(),
                layer_switches: 0,
                probe_frames: 0,
            },
        }
    }

    /// Frames recorded so far.
    pub fn frames(&self) -> u64 {
        self.report.frames
    }

    /// Records a frame that arrived at `at` with the given age; `decoded` says whether it
    /// decoded (at the size in its header).
    pub fn record(
        &mut self,
        header: &FrameHeader,
        bytes: usize,
        age_ms: f64,
        at: Instant,
        decoded: bool,
    ) {
        let r = &mut self.report;
        r.frames += 1;
        r.bytes += bytes as u64;
        let id = (header.seq, header.capture_us);
        if !self.recent.contains(&id) {
            r.distinct += 1;
        }
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(id);
        if let Some(prev) = self.last_header {
            if header.seq < prev.seq {
                if header.capture_us > prev.capture_us {
                    r.source_restarts += 1;
                } else {
                    r.out_of_order += 1;
                }
            } else if header.seq > prev.seq && header.capture_us < prev.capture_us {
                r.out_of_order += 1;
            }
        }
        self.last_header = Some(*header);
        if decoded {
            (r.width, r.height) = (header.width, header.height);
        } else {
            r.decode_errors += 1;
        }
        // Ages are never negative (see `relay::clock::age_ms`); below 1 µs counts as 1 µs.
        self.ages_us.saturating_record((age_ms * 1000.0).round().max(1.0) as u64);
        if self.first.is_none() {
            self.first = Some(at);
            r.first_frame_ms = at.duration_since(self.started).as_secs_f64() * 1000.0;
        }
        self.last = Some(at);
    }

    /// Notes the layer of the frame just recorded: `layer`, named `name`.
    pub fn layer(&mut self, layer: usize, name: &str) {
        let held = self.layers.frame(layer);
        (self.report.layer_switches, self.report.probe_frames) =
            (self.layers.switches, self.layers.probes);
        if held && self.report.layer != name {
            self.report.layer = name.to_owned();
        }
    }

    /// Counts a reconnection.
    pub fn reconnected(&mut self) {
        self.report.reconnects += 1;
    }

    /// The report so far. Costs the same however many frames were recorded: it reads the
    /// histogram's fixed set of counters, nothing else that grows.
    pub fn report(&self) -> Report {
        let mut r = self.report.clone();
        if let (Some(first), Some(last)) = (self.first, self.last) {
            let secs = last.duration_since(first).as_secs_f64();
            if secs > 0.0 {
                r.fps = (r.frames - 1) as f64 / secs;
            }
        }
        if !self.ages_us.is_empty() {
            let ms = |us: u64| us as f64 / 1000.0;
            r.age_ms_p50 = ms(self.ages_us.value_at_quantile(0.50));
            r.age_ms_p99 = ms(self.ages_us.value_at_quantile(0.99));
            r.age_ms_max = ms(self.ages_us.max());
        }
        r
    }

    /// Bytes the tracker holds on the heap: fixed at creation, whatever it records.
    pub fn heap_bytes(&self) -> usize {
        self.recent.capacity() * size_of::<(u64, u64)>()
            + self.ages_us.distinct_values() * size_of::<u64>()
    }
}

impl Default for Tracker {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use framing::Encoding;

    fn header(seq: u64, capture_us: u64) -> FrameHeader {
        FrameHeader { seq, capture_us, encoding: Encoding::Jpeg, width: 4, height: 2 }
    }

    #[test]
    fn counts_order_restarts_and_duplicates() {
        let mut t = Tracker::new();
        let now = Instant::now();
        for (seq, cap) in [(1, 10), (3, 30), (3, 30), (2, 20), (0, 40), (1, 50)] {
            t.record(&header(seq, cap), 100, 1.0, now, true);
        }
        let r = t.report();
        assert_eq!((r.frames, r.distinct, r.out_of_order, r.source_restarts), (6, 5, 1, 1));
        assert_eq!((r.width, r.height, r.decode_errors, r.bytes), (4, 2, 0, 600));
    }

    #[test]
    fn layer_changes_are_counted_and_probe_frames_are_not_changes() {
        let mut t = Tracker::new();
        // Top, down to 1, a probe of the top (one frame), then up for good.
        for layer in [0, 0, 1, 1, 1, 0, 1, 1, 0, 0, 0, 0] {
            t.layer(layer, &layer.to_string());
        }
        let r = t.report();
        assert_eq!((r.layer.as_str(), r.layer_switches, r.probe_frames), ("0", 2, 1));
        // The first frame sets the layer at once.
        let mut t = Tracker::new();
        t.layer(1, "small");
        assert_eq!((t.report().layer.as_str(), t.report().layer_switches), ("small", 0));
    }

    #[test]
    fn a_frame_that_did_not_decode_is_counted_and_keeps_the_last_size() {
        let mut t = Tracker::new();
        t.record(&header(0, 1), 1, 1.0, Instant::now(), true);
        let huge = FrameHeader { width: 60_000, height: 60_000, ..header(1, 2) };
        t.record(&huge, 1, 1.0, Instant::now(), false);
        let r = t.report();
        assert_eq!((r.decode_errors, r.width, r.height), (1, 4, 2));
    }

    #[test]
    fn duplicates_are_recognised_within_the_recent_window() {
        let mut t = Tracker::new();
        let now = Instant::now();
        for seq in 0..1000 {
            t.record(&header(seq, seq * 10), 1, 1.0, now, true);
        }
        // The cache-server's cached frame again after a reconnect: a duplicate.
        t.record(&header(999, 9990), 1, 1.0, now, true);
        assert_eq!(t.report().distinct, 1000);
        // A frame from long ago: beyond the window, but still out of order.
        t.record(&header(5, 50), 1, 1.0, now, true);
        let r = t.report();
        assert_eq!((r.distinct, r.out_of_order), (1001, 1));
    }

    #[test]
    fn ages_are_reported_to_three_significant_digits() {
        let mut t = Tracker::new();
        let now = Instant::now();
        for (i, age_ms) in (1..=100).map(f64::from).enumerate() {
            t.record(&header(i as u64, i as u64), 1, age_ms, now, true);
        }
        let r = t.report();
        let close = |got: f64, want: f64| (got - want).abs() <= want * 0.001;
        assert!(close(r.age_ms_p50, 50.0), "p50 {}", r.age_ms_p50);
        assert!(close(r.age_ms_p99, 99.0), "p99 {}", r.age_ms_p99);
        assert!(close(r.age_ms_max, 100.0), "max {}", r.age_ms_max);
        assert_eq!(Tracker::new().report().age_ms_p99, 0.0, "no frames, no age");
    }

    /// Ten million frames: 30 fps for 92 hours. What the tracker holds, and so what a report
    /// reads, is the same after them as after the first thousand.
    #[test]
    fn memory_and_report_cost_stay_constant_over_days_of_frames() {
        let mut t = Tracker::new();
        let start = Instant::now();
        let created = t.heap_bytes();
        let record = |t: &mut Tracker, seq: u64| {
            // 1 frame in 500 is a duplicate of the one before it; ages from 0.5 to ~70 ms.
            let seq = if seq.is_multiple_of(500) { seq.saturating_sub(1) } else { seq };
            let age_ms = 0.5 + (seq % 7000) as f64 / 100.0;
            t.record(&header(seq, seq * 33_333), 40_000, age_ms, start, true);
        };
        for seq in 0..1_000 {
            record(&mut t, seq);
        }
        let early = (t.heap_bytes(), t.ages_us.distinct_values(), t.recent.len());
        let first = t.report();
        for seq in 1_000..10_000_000 {
            record(&mut t, seq);
        }
        let late = (t.heap_bytes(), t.ages_us.distinct_values(), t.recent.len());
        let r = t.report();

        assert_eq!(early, late, "(heap bytes, histogram counters, recent frames) grew");
        assert_eq!(created, late.0, "memory grew after creation");
        assert!(late.0 < 256 * 1024, "the tracker holds {} bytes", late.0);
        assert_eq!(r.frames, 10_000_000);
        // Every 500th frame repeats the one before it (but the very first).
        assert_eq!(r.distinct, 10_000_000 - (10_000_000 / 500 - 1));
        assert!(r.age_ms_p50 > first.age_ms_p50, "the histogram kept counting");
        assert!((r.age_ms_p99 - 69.8).abs() < 0.1, "p99 {}", r.age_ms_p99);
    }
}
