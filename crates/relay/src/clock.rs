//! Capture timestamps.
//!
//! Frame age is measured as "now − capture time" across processes, so both ends use the
//! wall clock (µs since the Unix epoch). On one host that is exact; across hosts it is as good
//! as their clock sync (NTP or PTP).

use std::time::{SystemTime, UNIX_EPOCH};

/// Microseconds since the Unix epoch, now.
pub fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

/// Age in milliseconds of something captured at `capture_us` (0 when it is from the future,
/// which a skewed clock can make happen).
pub fn age_ms(capture_us: u64) -> f64 {
    now_us().saturating_sub(capture_us) as f64 / 1000.0
}
