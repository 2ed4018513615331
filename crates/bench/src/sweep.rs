//! The capacity sweep: the relay at growing viewer counts until one misses the rate, then the
//! ceiling writer at the largest count that held it; capacity is that count's throughput as a
//! fraction of the ceiling's (docs/BENCHMARKS.md, target 3).

use std::time::Duration;

use crate::load::Load;
use crate::report::{Capacity, Output};

/// What to sweep.
#[derive(Debug, Clone)]
pub struct Sweep {
    /// The load at every count: server, port, streams, token, TLS (its viewer count, warm-up
    /// and window are set here). The ceiling is always the plain dronecast writer.
    pub load: Load,
    /// The server's PID, for its CPU and RSS.
    pub server_pid: Option<u32>,
    /// Viewer counts to try, in order; the sweep stops at the first that misses the rate.
    pub counts: Vec<usize>,
    /// Every viewer must hold at least this rate for a count to pass, fps.
    pub min_fps: f64,
    /// Measurement window per count.
    pub duration: Duration,
}

/// Time after the last join before each window opens.
const WARMUP: Duration = Duration::from_secs(3);

/// Size of the ceiling's static frame: about a 640×480 q80 JPEG, like the test pattern's.
const CEILING_FRAME_BYTES: usize = 65_000;

/// Runs the sweep, printing each count's figures, the ceiling's and the capacity as they come.
pub async fn run(sweep: &Sweep, out: Output) -> anyhow::Result<Capacity> {
    let mut best = None;
    for &viewers in &sweep.counts {
        let load = Load { viewers, warmup: WARMUP, duration: sweep.duration, ..sweep.load.clone() };
        let figures = crate::measure("relay", &load, sweep.server_pid).await;
        out.figures(&figures)?;
        if figures.connected < viewers || figures.fps_min < sweep.min_fps {
            break;
        }
        best = Some(figures);
    }
    let Some(best) = best else {
        anyhow::bail!("no viewer count held {} fps", sweep.min_fps);
    };
    let ceiling =
        crate::ceiling::measure(best.viewers, sweep.duration, WARMUP, CEILING_FRAME_BYTES).await?;
    out.figures(&ceiling)?;
    let capacity = Capacity {
        capacity_viewers: best.viewers,
        min_fps: sweep.min_fps,
        capacity_gbit_s: best.gbit_s,
        ceiling_gbit_s: ceiling.gbit_s,
        fraction_of_ceiling: best.gbit_s / ceiling.gbit_s,
    };
    out.capacity(&capacity)?;
    Ok(capacity)
}
