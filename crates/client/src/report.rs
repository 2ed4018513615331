//! [`Tracker`] turns the frames a viewer receives into a [`Report`]: how many, how fresh, in
//! what order.

use std::collections::HashSet;

use framing::FrameHeader;
use serde::Serialize;
use tokio::time::Instant;

/// What a viewer saw. Serialised as the headless client's `--json` output.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    /// Frames received.
    pub frames: u64,
    /// Frames with a (sequence, capture time) not seen before.
    pub distinct: u64,
    /// Frames older than one already received (should be 0).
    pub out_of_order: u64,
    /// Times the source restarted (sequence went back, capture time forward).
    pub source_restarts: u64,
    /// Times the connection was lost and redialled.
    pub reconnects: u64,
    /// Frames per second between the first and last frame received.
    pub fps: f64,
    /// Median age of a frame on arrival (now − capture time), in ms.
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
}

/// Accumulates a [`Report`].
#[derive(Debug)]
pub struct Tracker {
    started: Instant,
    first: Option<Instant>,
    last: Option<Instant>,
    last_header: Option<FrameHeader>,
    seen: HashSet<(u64, u64)>,
    ages_ms: Vec<f64>,
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
            seen: HashSet::new(),
            ages_ms: Vec::new(),
            report: Report {
                frames: 0,
                distinct: 0,
                out_of_order: 0,
                source_restarts: 0,
                reconnects: 0,
                fps: 0.0,
                age_ms_p50: 0.0,
                age_ms_p99: 0.0,
                age_ms_max: 0.0,
                first_frame_ms: 0.0,
                decode_errors: 0,
                width: 0,
                height: 0,
                bytes: 0,
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
        if self.seen.insert((header.seq, header.capture_us)) {
            r.distinct += 1;
        }
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
        self.ages_ms.push(age_ms);
        if self.first.is_none() {
            self.first = Some(at);
            r.first_frame_ms = at.duration_since(self.started).as_secs_f64() * 1000.0;
        }
        self.last = Some(at);
    }

    /// Counts a reconnection.
    pub fn reconnected(&mut self) {
        self.report.reconnects += 1;
    }

    /// The report so far.
    pub fn report(&self) -> Report {
        let mut r = self.report.clone();
        if let (Some(first), Some(last)) = (self.first, self.last) {
            let secs = last.duration_since(first).as_secs_f64();
            if secs > 0.0 {
                r.fps = (r.frames - 1) as f64 / secs;
            }
        }
        let mut ages = self.ages_ms.clone();
        ages.sort_by(f64::total_cmp);
        r.age_ms_p50 = percentile(&ages, 0.50);
        r.age_ms_p99 = percentile(&ages, 0.99);
        r.age_ms_max = ages.last().copied().unwrap_or(0.0);
        r
    }
}

impl Default for Tracker {
    fn default() -> Self {
        Self::new()
    }
}

/// Nearest-rank percentile of sorted values (0 when empty).
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
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
    fn a_frame_that_did_not_decode_is_counted_and_keeps_the_last_size() {
        let mut t = Tracker::new();
        t.record(&header(0, 1), 1, 1.0, Instant::now(), true);
        let huge = FrameHeader { width: 60_000, height: 60_000, ..header(1, 2) };
        t.record(&huge, 1, 1.0, Instant::now(), false);
        let r = t.report();
        assert_eq!((r.decode_errors, r.width, r.height), (1, 4, 2));
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&[], 0.99), 0.0);
    }
}
