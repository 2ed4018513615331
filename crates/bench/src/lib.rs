//! `relay-bench`: measures what a dronecast server delivers to many viewers at once, and the
//! loopback ceiling to compare it against. See docs/BENCHMARKS.md for the method and figures.
//!
//! # Layout
//! - [`load`] — the load generator: measuring viewers and stalled ones, on the dronecast port
//!   or the HTTP port, spread over named streams, with a token and TLS if asked, optionally
//!   sending the source messages.
//! - [`mjpeg`] — the HTTP viewer's parser: response head, chunked encoding, multipart parts.
//! - [`dial`] — TCP, then TLS when asked: the HTTP and the stalled viewers' connections.
//! - [`feed`] — data for every frame: JSON datagrams to a drone's `--meta-from udp:…`.
//! - [`figures`] — one run's figures from the per-viewer results (percentiles from an HDR
//!   histogram), as a table or JSON, and the median of several runs.
//! - [`report`] — printing runs, their median and the capacity line, as tables or JSON.
//! - [`ceiling`] — the trivial static-buffer writer that defines the ceiling, and the child
//!   process it runs in.
//! - [`sweep`] — the capacity sweep: growing viewer counts, then the ceiling.
//! - [`slowlink`] — one viewer behind a shaped link, in network namespaces made here: pacing
//!   on vs off, or with quality layers the viewer on `auto` and its steps timed.
//!
//! Server CPU and memory come from `harness::usage` (`/proc`, through the `procfs` crate).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod ceiling;
pub mod dial;
pub mod feed;
pub mod figures;
pub mod load;
pub mod mjpeg;
pub mod report;
pub mod slowlink;
pub mod sweep;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use figures::{Figures, ServerSample};
use harness::usage::{CpuMeter, Pid};
use relay::tls::Fingerprint;
use report::Output;

/// Runs `load` against a server, sampling `server_pid` (if any) during the window.
pub async fn measure(mode: &'static str, load: &load::Load, server_pid: Option<u32>) -> Figures {
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
    figures::summarize(mode, load, &results, secs, sample)
}

/// Runs `once` `repeat` times (at least once), printing each run's figures as it ends and
/// then, after several, the median of each figure.
pub async fn repeat(
    repeat: usize,
    out: Output,
    mut once: impl AsyncFnMut() -> anyhow::Result<Figures>,
) -> anyhow::Result<()> {
    let mut runs = Vec::new();
    for _ in 0..repeat.max(1) {
        let run = once().await?;
        out.figures(&run)?;
        runs.push(run);
    }
    out.median(&runs)
}

/// The self-signed certificate kept in `dir` for `localhost` and `127.0.0.1` (made on first
/// use, [`relay::tls::self_signed`]): its two files, for a server's `--tls-cert` and
/// `--tls-key`, and its fingerprint, for the viewers' `--tls-pin`.
pub fn cert(dir: &Path) -> anyhow::Result<(PathBuf, PathBuf, Fingerprint)> {
    let names = ["localhost".to_owned(), "127.0.0.1".to_owned()];
    let (cert, key) = relay::tls::self_signed(dir, &names)?;
    let fingerprint = relay::tls::ServerTls::load(&cert, &key)?.fingerprint();
    let fingerprint =
        fingerprint.with_context(|| format!("{} holds no certificate", cert.display()))?;
    Ok((cert, key, fingerprint))
}

/// Resident memory of `pid` in MiB; `None` once it cannot be read (the server exited).
fn rss_mb(pid: Pid) -> Option<f64> {
    pid.rss_bytes().ok().map(|bytes| bytes as f64 / (1024.0 * 1024.0))
}
