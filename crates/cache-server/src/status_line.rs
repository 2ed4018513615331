//! The periodic status line: upstream state, frames and bitrate in, viewers and bitrate out.

use std::sync::Arc;
use std::time::Duration;

use relay::ServerStats;
use tokio::time::{Instant, MissedTickBehavior, interval};
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::UpstreamStats;

/// Logs one line every period.
#[derive(Debug)]
pub struct StatusLine {
    upstream: Arc<UpstreamStats>,
    viewers: Arc<ServerStats>,
    every: Duration,
}

impl StatusLine {
    /// A status line of these counters every `every`.
    pub fn new(upstream: Arc<UpstreamStats>, viewers: Arc<ServerStats>, every: Duration) -> Self {
        StatusLine { upstream, viewers, every }
    }

    /// Logs until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut tick = interval(self.every);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        tick.tick().await;
        let mut last = (Instant::now(), self.upstream.frames_in(), self.upstream.bytes_in(), 0);
        last.3 = self.viewers.bytes_sent();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let now = Instant::now();
            let (frames, bytes_in, bytes_out) =
                (self.upstream.frames_in(), self.upstream.bytes_in(), self.viewers.bytes_sent());
            let secs = now.duration_since(last.0).as_secs_f64().max(1e-3);
            let fps = (frames - last.1) as f64 / secs;
            let mbit_in = (bytes_in - last.2) as f64 * 8.0 / secs / 1e6;
            let mbit_out = (bytes_out - last.3) as f64 * 8.0 / secs / 1e6;
            info!(
                "upstream {} | in {fps:.1} fps {mbit_in:.1} Mbit/s | {} viewers, out {mbit_out:.1} Mbit/s",
                self.upstream.state(),
                self.viewers.viewers(),
            );
            last = (now, frames, bytes_in, bytes_out);
        }
    }
}
