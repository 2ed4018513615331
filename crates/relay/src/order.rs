//! [`FrameOrder`]: which frames a viewer may still be shown, so that one that reconnects — to
//! the same relay, or after a failover to another relay of the same drone — is never shown a
//! frame older than, or the same as, one it has shown already.
//!
//! Relays keep a frame's `seq` and `capture_us` as the drone set them, so frames of one drone
//! are comparable whichever relay they came through. A frame is **newer** than the last one
//! shown when
//!
//! - its `seq` is higher and its `capture_us` is not lower: the same run of the drone; or
//! - its `seq` is lower and its `capture_us` higher: the drone restarted (it counts `seq`
//!   from 0 in each run), as `docs/PROTOCOL.md` says a viewer should read it.
//!
//! Anything else is **stale** and dropped: the relay's cached frame again after a reconnect
//! (same `seq`), a frame from a relay that lags behind the one before it. Two cases would
//! otherwise freeze the picture for good — a drone restarted with its clock set back, or a
//! clock stepped back within a run — so once frames have been stale without a break for
//! [`FrameOrder::GIVE_UP_AFTER`], the next one is taken as the start of a new run and shown.
//! A connection whose source names another stream than the previous connection's starts over
//! too: its numbers are not comparable.

use std::time::Duration;

use framing::FrameHeader;
use tokio::time::Instant;

/// The last frame shown, and how long frames have been stale since.
#[derive(Debug, Default, Clone)]
pub struct FrameOrder {
    /// `(seq, capture_us)` of the last frame admitted.
    last: Option<(u64, u64)>,
    /// When the current run of stale frames began.
    stale_since: Option<Instant>,
    /// The stream the source's hello named on the last connection.
    stream: Option<String>,
}

/// What [`FrameOrder::admit`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Newer than the last frame shown: show it.
    Newer,
    /// Not newer: drop it.
    Stale,
    /// Not newer, but frames have been stale for [`FrameOrder::GIVE_UP_AFTER`]: taken as a
    /// new run of the source, shown, and the order starts over from it.
    Restarted,
}

impl FrameOrder {
    /// How long frames may be stale without a break before the source is taken as restarted.
    pub const GIVE_UP_AFTER: Duration = Duration::from_secs(2);

    /// An order that admits any first frame.
    pub fn new() -> FrameOrder {
        FrameOrder::default()
    }

    /// A new connection, whose source's hello names `stream`: a different stream than last
    /// time starts the order over.
    pub fn connected(&mut self, stream: &str) {
        if self.stream.as_deref() != Some(stream) {
            self.last = None;
            self.stale_since = None;
            self.stream = Some(stream.to_owned());
        }
    }

    /// Whether the frame with `header`, arriving at `now`, may be shown; remembers it if so.
    pub fn admit(&mut self, header: &FrameHeader, now: Instant) -> Admit {
        let (seq, capture_us) = (header.seq, header.capture_us);
        let newer = match self.last {
            None => true,
            Some((last_seq, last_us)) => {
                (seq > last_seq && capture_us >= last_us)
                    || (seq < last_seq && capture_us > last_us)
            }
        };
        let verdict = if newer {
            Admit::Newer
        } else {
            let since = *self.stale_since.get_or_insert(now);
            if now.duration_since(since) < FrameOrder::GIVE_UP_AFTER {
                return Admit::Stale;
            }
            Admit::Restarted
        };
        self.last = Some((seq, capture_us));
        self.stale_since = None;
        verdict
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use framing::Encoding;

    fn header(seq: u64, capture_us: u64) -> FrameHeader {
        FrameHeader { seq, capture_us, encoding: Encoding::Jpeg, width: 4, height: 2 }
    }

    /// Feeds `(seq, capture_us, ms after the start)` and returns what was decided for each.
    fn feed(order: &mut FrameOrder, frames: &[(u64, u64, u64)]) -> Vec<Admit> {
        let start = Instant::now();
        frames
            .iter()
            .map(|&(seq, us, ms)| order.admit(&header(seq, us), start + Duration::from_millis(ms)))
            .collect()
    }

    use Admit::{Newer, Restarted, Stale};

    #[test]
    fn after_a_failover_repeats_and_older_frames_are_dropped() {
        let mut order = FrameOrder::new();
        order.connected("default");
        // Relay A shows 10 and 11 and dies; relay B's cached frame is 11 (a repeat), and a
        // lagging relay's 10 would be older: both dropped; then 12 goes on.
        let got = feed(&mut order, &[(10, 100, 0), (11, 110, 33), (11, 110, 90), (10, 100, 95)]);
        assert_eq!(got, [Newer, Newer, Stale, Stale]);
        order.connected("default");
        assert_eq!(feed(&mut order, &[(12, 120, 100)]), [Newer], "the same stream: kept order");
    }

    #[test]
    fn a_drone_restart_is_a_lower_seq_with_a_newer_capture_time() {
        let mut order = FrameOrder::new();
        let got = feed(&mut order, &[(500, 5_000, 0), (0, 9_000, 10), (1, 9_100, 20)]);
        assert_eq!(got, [Newer, Newer, Newer]);
        // A frame of the old run after the new one has started: higher seq, older capture.
        assert_eq!(feed(&mut order, &[(501, 5_010, 30)]), [Stale]);
    }

    #[test]
    fn frames_stale_for_two_seconds_are_taken_as_a_restart_with_the_clock_set_back() {
        // The drone restarts with its clock 10 s behind: lower seq, older capture time.
        let mut order = FrameOrder::new();
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        assert_eq!(order.admit(&header(900, 50_000_000), at(0)), Newer);
        assert_eq!(order.admit(&header(0, 40_000_000), at(100)), Stale);
        assert_eq!(order.admit(&header(60, 42_000_000), at(2_100)), Restarted, "2 s stale");
        assert_eq!(order.admit(&header(61, 42_033_333), at(2_133)), Newer, "order from there");
    }

    #[test]
    fn another_stream_starts_the_order_over() {
        let mut order = FrameOrder::new();
        order.connected("front");
        assert_eq!(feed(&mut order, &[(500, 5_000, 0)]), [Newer]);
        order.connected("back");
        assert_eq!(feed(&mut order, &[(3, 100, 10)]), [Newer], "not comparable with front's");
    }
}
