//! The periodic status line: per stream, the source's state, frames and bitrate in, viewers
//! and bitrate out.

use std::sync::Arc;
use std::time::Duration;

use relay::{Hub, Stream};
use tokio::time::{MissedTickBehavior, interval};
use tokio_util::sync::CancellationToken;
use tracing::info;

/// Logs one line per stream every period.
#[derive(Debug)]
pub struct StatusLine {
    hub: Arc<Hub>,
    every: Duration,
}

impl StatusLine {
    /// A status line of `hub`'s streams every `every`.
    pub fn new(hub: Arc<Hub>, every: Duration) -> Self {
        StatusLine { hub, every }
    }

    /// Logs until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut tick = interval(self.every);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        tick.tick().await;
        for stream in self.hub.streams() {
            stream.rates(); // opens the first window
        }
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let streams = self.hub.streams();
            for stream in &streams {
                info!("{}", line(stream, streams.len() > 1));
            }
        }
    }
}

/// `upstream up | in 30.0 fps 15.6 Mbit/s | 3 viewers, out 46.8 Mbit/s`, with the stream's
/// name in front when there are several.
fn line(stream: &Stream, named: bool) -> String {
    let rates = stream.rates();
    let name = if named { format!("{}: ", stream.name()) } else { String::new() };
    format!(
        "{name}upstream {} | in {:.1} fps {:.1} Mbit/s | {} viewers, out {:.1} Mbit/s",
        stream.source().state,
        rates.fps_in,
        rates.mbit_in,
        stream.viewers().count(),
        rates.mbit_out,
    )
}
