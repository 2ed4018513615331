//! `relay-bench`: measures what a dronecast server delivers to many viewers at once, and the
//! loopback ceiling to compare it against. See docs/BENCHMARKS.md for the method and figures.
//!
//! # Layout
//! - [`load`] — the load generator: measuring viewers and stalled ones.
//! - [`summary`] — per-viewer results to percentiles, table and JSON.
//! - [`ceiling`] — the trivial static-buffer writer that defines the ceiling.
//! - [`slowlink`] — one viewer behind a shaped link, in network namespaces made here.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod ceiling;
pub mod load;
pub mod slowlink;
pub mod summary;

use std::time::Duration;

use harness::usage::{CpuMeter, Pid};
use summary::{ServerSample, Summary};

/// Runs `load` against a server, sampling `server_pid` (if any) during the window.
pub async fn measure(mode: &'static str, load: &load::Load, server_pid: Option<u32>) -> Summary {
    let sample = async |duration: Duration| {
        let server = server_pid.map(Pid::Other);
        let server_cpu = server.map(CpuMeter::start);
        let bench_cpu = CpuMeter::start(Pid::This);
        let mut sample =
            ServerSample { rss_start_mb: server.and_then(rss_mb), ..ServerSample::default() };
        let end = tokio::time::Instant::now() + duration;
        let mut rss_max = sample.rss_start_mb;
        while tokio::time::Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(250).min(end - tokio::time::Instant::now()))
                .await;
            let rss = server.and_then(rss_mb);
            rss_max = match (rss_max, rss) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
            sample.rss_end_mb = rss;
        }
        sample.rss_mb = rss_max;
        sample.cpu_pct = server_cpu.and_then(|m| m.percent());
        sample.bench_cpu_pct = bench_cpu.percent();
        sample
    };
    let (results, secs, sample) = load::run(load, sample).await;
    summary::summarize(mode, &results, load.stalled, secs, load.intervals, sample)
}

/// Resident memory of `pid` in MiB; `None` once it cannot be read (the server exited).
fn rss_mb(pid: Pid) -> Option<f64> {
    pid.rss_bytes().ok().map(|bytes| bytes as f64 / (1024.0 * 1024.0))
}
