//! One run's figures: per-viewer results turned into the rates, frame ages and first-frame
//! times the benchmarks report (percentiles from an HDR histogram), as a table or JSON, and the
//! median of several runs.

use std::collections::BTreeMap;

use framing::layers::MAX_LAYERS;
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::load::{Load, ViewerResult, layer_name};

/// Server-side samples taken during the window.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct ServerSample {
    /// CPU over the window, percent of one core.
    pub cpu_pct: Option<f64>,
    /// Largest RSS seen, MiB.
    pub rss_mb: Option<f64>,
    /// RSS at the start of the window, MiB.
    pub rss_start_mb: Option<f64>,
    /// RSS at the end of the window, MiB.
    pub rss_end_mb: Option<f64>,
    /// This process's CPU over the window, percent of one core.
    pub bench_cpu_pct: Option<f64>,
}

/// One run's figures. `--json` prints this object.
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    /// `relay` or `ceiling`.
    pub mode: &'static str,
    /// The viewers' port: `tcp` (dronecast) or `http` (MJPEG).
    pub protocol: &'static str,
    /// The viewers spoke TLS.
    pub tls: bool,
    /// Measuring viewers asked for.
    pub viewers: usize,
    /// Non-reading viewers.
    pub stalled: usize,
    /// Measuring viewers that connected and got at least one frame.
    pub connected: usize,
    /// Measurement window, seconds.
    pub duration_s: f64,
    /// Lowest per-viewer rate of new frames, fps.
    pub fps_min: f64,
    /// Median per-viewer rate.
    pub fps_p50: f64,
    /// Streams the viewers were spread over (1: the default stream, or one named).
    pub streams: usize,
    /// The lowest of the streams' median per-viewer rates, fps: "every stream held 30 fps"
    /// when this is 30 (the same as `fps_p50` for one stream).
    pub stream_fps_p50_min: f64,
    /// The stream with that lowest median; empty for the default stream.
    pub slowest_stream: String,
    /// Frame age on arrival, pooled over all viewers: median, ms.
    pub age_ms_p50: f64,
    /// 99th percentile.
    pub age_ms_p99: f64,
    /// Largest.
    pub age_ms_max: f64,
    /// Connect to first frame, median over viewers, ms.
    pub first_frame_ms_p50: f64,
    /// 99th percentile over viewers.
    pub first_frame_ms_p99: f64,
    /// Aggregate goodput to all viewers, Gbit/s.
    pub gbit_s: f64,
    /// Server CPU over the window, percent of one core.
    pub server_cpu_pct: Option<f64>,
    /// Largest server RSS seen, MiB.
    pub server_rss_mb: Option<f64>,
    /// Server RSS at the start of the window, MiB.
    pub server_rss_start_mb: Option<f64>,
    /// Server RSS at the end of the window, MiB.
    pub server_rss_end_mb: Option<f64>,
    /// This load generator's CPU, percent of one core (200 = both cores of this machine).
    pub bench_cpu_pct: Option<f64>,
    /// Frame age p99 in each of `intervals` equal slices of the window (to show whether
    /// age grows over time); empty when not asked for.
    pub age_ms_p99_series: Vec<f64>,
    /// Bytes of per-frame data (the source's `meta`) a counted frame carried, on average.
    pub meta_bytes_avg: f64,
    /// Percent of counted frames whose data was new at the source rather than repeated.
    pub meta_fresh_pct: f64,
    /// Messages each viewer was asked to send a second (0: none).
    pub messages_asked_per_viewer_s: f64,
    /// Messages all viewers sent the source in the window, per second.
    pub messages_per_s: f64,
    /// Viewers that were to send messages but whose source takes none (so sent none).
    pub messages_not_taken: usize,
    /// The quality layer the viewers were on at the end of the window (the one most were on,
    /// if they differ): its name, or its number when the source named none; empty when no
    /// viewer saw layers (HTTP viewers do not).
    pub layer: String,
    /// Frames whose layer differed from the frame before, all viewers together (a probe of
    /// the layer above, one frame, makes two).
    pub layer_switches: u64,
    /// Counted frames of each layer that had any, all viewers together. Frame ages and fps
    /// above are over every layer that arrived.
    pub layer_frames: BTreeMap<String, u64>,
    /// Those frames per second per viewer, by layer.
    pub layer_fps: BTreeMap<String, f64>,
    /// Layers the source named in its hello (0 when it named none, or the viewers did not
    /// learn: HTTP).
    pub source_layers: usize,
    /// TLS viewers that discarded their ciphertext unread ([`Load::decrypt_every`]); every
    /// figure above except `viewers`, `connected` and `gbit_s` is of the decrypting ones.
    pub undecrypted: usize,
    /// The undecrypted viewers' rates, fps, from their bytes: ciphertext per second over
    /// `ciphertext_bytes_per_frame`. The lowest.
    pub undecrypted_fps_min: f64,
    /// Their median.
    pub undecrypted_fps_p50: f64,
    /// What a frame costs in ciphertext: the decrypting viewers' mean bytes per frame, plus
    /// the overhead of the TLS records that carry it (counted high, so that the rates above
    /// come out low rather than high).
    pub ciphertext_bytes_per_frame: f64,
    /// The first few viewer errors, for diagnosis.
    pub errors: Vec<String>,
}

/// Bytes TLS 1.3 adds to a record: its 5-byte header, the inner content type and the 16-byte
/// AEAD tag.
const TLS_RECORD_OVERHEAD: f64 = 22.0;

/// Most plaintext in one TLS record.
const TLS_RECORD_PLAINTEXT: f64 = 16_384.0;

/// The ciphertext a frame of `wire` bytes takes, counted high: its records, plus one more for
/// the header if it goes in a record of its own.
fn ciphertext_per_frame(wire: f64) -> f64 {
    wire + TLS_RECORD_OVERHEAD * ((wire / TLS_RECORD_PLAINTEXT).ceil() + 1.0)
}

/// Largest value the histograms below tell apart: an hour in µs (a frame age, a first-frame
/// time), or 3.6 million fps in thousandths. Larger values count as this.
const HISTOGRAM_MAX: u64 = 3_600_000_000;

/// Values recorded in an HDR histogram: percentiles within 0.1% (three significant digits) in
/// constant memory, however many frames a run counts.
struct Distribution(Histogram<u64>);

impl Distribution {
    fn new() -> Distribution {
        let histogram = Histogram::new_with_bounds(1, HISTOGRAM_MAX, 3);
        Distribution(histogram.expect("1 to an hour in µs at 3 digits are valid bounds"))
    }

    fn of(values: impl IntoIterator<Item = u64>) -> Distribution {
        let mut d = Distribution::new();
        values.into_iter().for_each(|v| d.0.saturating_record(v));
        d
    }

    /// The value at quantile `q` (0.5 = median), 0 when nothing was recorded.
    fn quantile(&self, q: f64) -> u64 {
        if self.0.is_empty() { 0 } else { self.0.value_at_quantile(q) }
    }

    fn max(&self) -> u64 {
        if self.0.is_empty() { 0 } else { self.0.max() }
    }
}

/// µs (or milli-units) to the figure's unit.
fn thousandths(v: u64) -> f64 {
    v as f64 / 1000.0
}

/// Summarises a run of `load`.
pub fn summarize(
    mode: &'static str,
    load: &Load,
    results: &[ViewerResult],
    secs: f64,
    server: ServerSample,
) -> Figures {
    let (undecrypted, results): (Vec<&ViewerResult>, Vec<&ViewerResult>) =
        results.iter().partition(|r| r.undecrypted);
    let results = &results[..];
    let intervals = load.intervals;
    let fps: Vec<f64> = results.iter().map(|r| r.frames as f64 / secs).collect();
    let fps_min = fps.iter().copied().min_by(f64::total_cmp).unwrap_or(0.0);
    let streams = load.streams.len().max(1);
    let (slowest, stream_fps_p50_min) = (0..streams)
        .map(|stream| {
            let of_stream = fps.iter().zip(results).filter(|(_, r)| r.stream == stream);
            let median = Distribution::of(of_stream.map(|(f, _)| (f * 1000.0) as u64));
            (stream, thousandths(median.quantile(0.5)))
        })
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap_or((0, 0.0));
    let fps = Distribution::of(fps.iter().map(|f| (f * 1000.0) as u64));
    let ages =
        Distribution::of(results.iter().flat_map(|r| r.ages_us.iter().map(|&a| u64::from(a))));
    let first: Vec<f64> = results.iter().filter_map(|r| r.first_frame_ms).collect();
    let connected = first.len() + undecrypted.iter().filter(|r| r.ciphertext_bytes > 0).count();
    let first = Distribution::of(first.iter().map(|ms| (ms * 1000.0) as u64));
    let bytes: u64 = results.iter().map(|r| r.bytes).sum::<u64>()
        + undecrypted.iter().map(|r| r.ciphertext_bytes).sum::<u64>();
    let slice_ms = secs * 1000.0 / intervals.max(1) as f64;
    let age_ms_p99_series = if intervals > 1 {
        let mut slices: Vec<Distribution> = (0..intervals).map(|_| Distribution::new()).collect();
        for r in results {
            for (&age, &at) in r.ages_us.iter().zip(&r.arrivals_ms) {
                let i = ((f64::from(at) / slice_ms) as usize).min(intervals - 1);
                slices[i].0.saturating_record(u64::from(age));
            }
        }
        slices.iter().map(|s| thousandths(s.quantile(0.99))).collect()
    } else {
        Vec::new()
    };
    let counted: u64 = results.iter().map(|r| r.frames).sum();
    let per_frame = |total: u64| if counted == 0 { 0.0 } else { total as f64 / counted as f64 };
    let ciphertext_bytes_per_frame =
        ciphertext_per_frame(per_frame(results.iter().map(|r| r.bytes).sum()));
    let blind_fps: Vec<f64> = undecrypted
        .iter()
        .map(|r| match ciphertext_bytes_per_frame {
            0.0 => 0.0,
            per_frame => r.ciphertext_bytes as f64 / secs / per_frame,
        })
        .collect();
    let undecrypted_fps_min = blind_fps.iter().copied().min_by(f64::total_cmp).unwrap_or(0.0);
    let blind_fps = Distribution::of(blind_fps.iter().map(|f| (f * 1000.0) as u64));
    let meta_bytes_avg = per_frame(results.iter().map(|r| r.meta_bytes).sum());
    let meta_fresh_pct = 100.0 * per_frame(results.iter().map(|r| r.meta_fresh).sum());
    let messages: u64 = results.iter().map(|r| r.messages_sent).sum();
    let mut errors: Vec<String> = results.iter().filter_map(|r| r.error.clone()).collect();
    errors.dedup();
    errors.truncate(5);
    let layers = Layers::of(results, secs);
    Figures {
        mode,
        protocol: load.protocol.name(),
        tls: load.tls.is_some(),
        viewers: results.len() + undecrypted.len(),
        stalled: load.stalled,
        connected,
        duration_s: secs,
        fps_min,
        fps_p50: thousandths(fps.quantile(0.5)),
        streams,
        stream_fps_p50_min,
        slowest_stream: load.streams.get(slowest).cloned().unwrap_or_default(),
        age_ms_p50: thousandths(ages.quantile(0.5)),
        age_ms_p99: thousandths(ages.quantile(0.99)),
        age_ms_max: thousandths(ages.max()),
        first_frame_ms_p50: thousandths(first.quantile(0.5)),
        first_frame_ms_p99: thousandths(first.quantile(0.99)),
        gbit_s: bytes as f64 * 8.0 / secs / 1e9,
        server_cpu_pct: server.cpu_pct,
        server_rss_mb: server.rss_mb,
        server_rss_start_mb: server.rss_start_mb,
        server_rss_end_mb: server.rss_end_mb,
        bench_cpu_pct: server.bench_cpu_pct,
        age_ms_p99_series,
        meta_bytes_avg,
        meta_fresh_pct,
        messages_asked_per_viewer_s: load.messages_per_second,
        messages_per_s: messages as f64 / secs,
        messages_not_taken: results.iter().filter(|r| r.messages_not_taken).count(),
        layer: layers.at_end,
        layer_switches: layers.switches,
        layer_frames: layers.frames,
        layer_fps: layers.fps,
        source_layers: layers.named,
        undecrypted: undecrypted.len(),
        undecrypted_fps_min,
        undecrypted_fps_p50: thousandths(blind_fps.quantile(0.5)),
        ciphertext_bytes_per_frame,
        errors,
    }
}

/// The layer figures of a run.
struct Layers {
    named: usize,
    at_end: String,
    switches: u64,
    frames: BTreeMap<String, u64>,
    fps: BTreeMap<String, f64>,
}

impl Layers {
    fn of(results: &[&ViewerResult], secs: f64) -> Layers {
        let names = results.iter().map(|r| &r.layer_names).find(|n| !n.is_empty());
        let names = names.map_or(&[][..], Vec::as_slice);
        let mut on_at_end = [0usize; MAX_LAYERS];
        let mut per_layer = [0u64; MAX_LAYERS];
        for r in results {
            if let Some(layer) = r.layer_at_end {
                on_at_end[layer.min(MAX_LAYERS - 1)] += 1;
            }
            for (total, n) in per_layer.iter_mut().zip(r.layer_frames) {
                *total += n;
            }
        }
        // The most viewers' layer; on a tie, the higher quality (the lower number).
        let most =
            (0..MAX_LAYERS).rev().max_by_key(|&l| on_at_end[l]).filter(|&l| on_at_end[l] > 0);
        let viewers = results.len().max(1) as f64;
        let had = (0..MAX_LAYERS).filter(|&l| per_layer[l] > 0);
        Layers {
            named: names.len(),
            at_end: most.map(|l| layer_name(names, l)).unwrap_or_default(),
            switches: results.iter().map(|r| r.layer_switches).sum(),
            frames: had.clone().map(|l| (layer_name(names, l), per_layer[l])).collect(),
            fps: had
                .map(|l| (layer_name(names, l), per_layer[l] as f64 / secs / viewers))
                .collect(),
        }
    }
}

impl Figures {
    /// A readable table.
    pub fn table(&self) -> String {
        let opt = |v: Option<f64>, unit: &str| v.map_or("-".into(), |v| format!("{v:.1}{unit}"));
        // Named streams: each one's median rate, the lowest of them.
        let streams = match self.slowest_stream.as_str() {
            "" => String::new(),
            name => format!(
                "streams        {n}, lowest median fps {fps:.1} ({name})\n",
                n = self.streams,
                fps = self.stream_fps_p50_min,
            ),
        };
        let mut out = format!(
            "{mode} | {protocol}{tls} viewers {c}/{v} (+{s} stalled) over {d:.0} s\n\
             fps            min {fmin:.1}  p50 {fp50:.1}\n\
             {streams}\
             frame age ms   p50 {a50:.2}  p99 {a99:.2}  max {amax:.2}\n\
             first frame ms p50 {f50:.2}  p99 {f99:.2}\n\
             throughput     {g:.3} Gbit/s\n\
             server         cpu {cpu} of one core, rss {rss} (start {rs}, end {re})\n\
             load generator cpu {bench} of one core (this machine has 2 cores in all)\n",
            mode = self.mode,
            protocol = self.protocol,
            tls = if self.tls { "+tls" } else { "" },
            c = self.connected,
            v = self.viewers,
            s = self.stalled,
            d = self.duration_s,
            fmin = self.fps_min,
            fp50 = self.fps_p50,
            a50 = self.age_ms_p50,
            a99 = self.age_ms_p99,
            amax = self.age_ms_max,
            f50 = self.first_frame_ms_p50,
            f99 = self.first_frame_ms_p99,
            g = self.gbit_s,
            cpu = opt(self.server_cpu_pct, "%"),
            rss = opt(self.server_rss_mb, " MiB"),
            rs = opt(self.server_rss_start_mb, ""),
            re = opt(self.server_rss_end_mb, ""),
            bench = opt(self.bench_cpu_pct, "%"),
        );
        if self.bench_cpu_pct.is_some_and(|c| c > 150.0) {
            out.push_str(
                "warning: the load generator used most of the machine; figures may be its limit\n",
            );
        }
        if !self.age_ms_p99_series.is_empty() {
            let series: Vec<String> =
                self.age_ms_p99_series.iter().map(|a| format!("{a:.1}")).collect();
            out.push_str(&format!("age p99 by slice of the window, ms: {}\n", series.join(" ")));
        }
        if self.meta_bytes_avg > 0.0 {
            out.push_str(&format!(
                "frame data     {:.0} bytes a frame, new on {:.1}% of frames\n",
                self.meta_bytes_avg, self.meta_fresh_pct
            ));
        }
        if self.messages_asked_per_viewer_s > 0.0 {
            let per_viewer = self.messages_per_s / self.viewers.max(1) as f64;
            out.push_str(&format!(
                "messages       {:.1}/s sent in all, {per_viewer:.2}/s per viewer (asked {})\n",
                self.messages_per_s, self.messages_asked_per_viewer_s
            ));
        }
        if self.messages_not_taken > 0 {
            out.push_str(&format!(
                "warning: {} viewers sent no messages: the source takes none (a drone needs \
                 --messages-to)\n",
                self.messages_not_taken
            ));
        }
        if self.source_layers > 1 || self.layer_frames.len() > 1 || self.layer_switches > 0 {
            let fps: Vec<String> =
                self.layer_fps.iter().map(|(name, fps)| format!("{name} {fps:.1}")).collect();
            out.push_str(&format!(
                "layers         fps per viewer by layer: {}; {} switches; on {} at the end\n",
                fps.join(", "),
                self.layer_switches,
                self.layer
            ));
        }
        if self.undecrypted > 0 {
            out.push_str(&format!(
                "undecrypted    {n} of the viewers discarded their TLS unread; the figures above \
                 but throughput are the other {d}'s\n\
                 undecrypted    fps from bytes min {min:.1}  p50 {p50:.1} ({per:.0} bytes of TLS a frame)\n",
                n = self.undecrypted,
                d = self.viewers - self.undecrypted,
                min = self.undecrypted_fps_min,
                p50 = self.undecrypted_fps_p50,
                per = self.ciphertext_bytes_per_frame,
            ));
        }
        for err in &self.errors {
            out.push_str(&format!("viewer error: {err}\n"));
        }
        out
    }
}

/// The median, figure by figure, of several runs of the same measurement (each figure's
/// median is taken on its own, so the result need not equal any one run). `None` for no runs.
pub fn median(runs: &[Figures]) -> Option<Figures> {
    let mut out = runs.get(runs.len() / 2)?.clone();
    let mid = |f: &dyn Fn(&Figures) -> f64| {
        let mut v: Vec<f64> = runs.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let mid_opt = |f: &dyn Fn(&Figures) -> Option<f64>| {
        let mut v: Vec<f64> = runs.iter().filter_map(f).collect();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied()
    };
    out.fps_min = mid(&|s| s.fps_min);
    out.fps_p50 = mid(&|s| s.fps_p50);
    out.stream_fps_p50_min = mid(&|s| s.stream_fps_p50_min);
    out.age_ms_p50 = mid(&|s| s.age_ms_p50);
    out.age_ms_p99 = mid(&|s| s.age_ms_p99);
    out.age_ms_max = mid(&|s| s.age_ms_max);
    out.first_frame_ms_p50 = mid(&|s| s.first_frame_ms_p50);
    out.first_frame_ms_p99 = mid(&|s| s.first_frame_ms_p99);
    out.gbit_s = mid(&|s| s.gbit_s);
    out.server_cpu_pct = mid_opt(&|s| s.server_cpu_pct);
    out.server_rss_mb = mid_opt(&|s| s.server_rss_mb);
    out.server_rss_start_mb = mid_opt(&|s| s.server_rss_start_mb);
    out.server_rss_end_mb = mid_opt(&|s| s.server_rss_end_mb);
    out.bench_cpu_pct = mid_opt(&|s| s.bench_cpu_pct);
    out.meta_bytes_avg = mid(&|s| s.meta_bytes_avg);
    out.meta_fresh_pct = mid(&|s| s.meta_fresh_pct);
    out.messages_per_s = mid(&|s| s.messages_per_s);
    out.layer_switches = mid(&|s| s.layer_switches as f64) as u64;
    out.undecrypted_fps_min = mid(&|s| s.undecrypted_fps_min);
    out.undecrypted_fps_p50 = mid(&|s| s.undecrypted_fps_p50);
    out.ciphertext_bytes_per_frame = mid(&|s| s.ciphertext_bytes_per_frame);
    out.connected = runs.iter().map(|s| s.connected).min().unwrap_or(0);
    out.mode = "median";
    Some(out)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn viewer(frames: u64, ages_ms: &[u32]) -> ViewerResult {
        ViewerResult {
            first_frame_ms: Some(2.0),
            frames,
            bytes: frames * 65_000,
            ages_us: ages_ms.iter().map(|ms| ms * 1000).collect(),
            arrivals_ms: (0..ages_ms.len() as u32).map(|i| i * 100).collect(),
            ..ViewerResult::default()
        }
    }

    #[test]
    fn percentiles_are_within_a_thousandth() {
        // 100 ages of 1..=100 ms: p50 is 50 ms, p99 99 ms, the largest 100 ms.
        let ages: Vec<u32> = (1..=100).collect();
        let load = Load { intervals: 2, ..Load::new("x", 2, Duration::ZERO, Duration::ZERO) };
        let f = summarize(
            "relay",
            &load,
            &[viewer(300, &ages), viewer(290, &[])],
            10.0,
            ServerSample::default(),
        );
        let near = |got: f64, want: f64| (got - want).abs() <= want / 1000.0;
        assert!(near(f.age_ms_p50, 50.0), "{}", f.age_ms_p50);
        assert!(near(f.age_ms_p99, 99.0), "{}", f.age_ms_p99);
        assert!(near(f.age_ms_max, 100.0), "{}", f.age_ms_max);
        assert_eq!(f.fps_min, 29.0);
        assert!(near(f.first_frame_ms_p99, 2.0), "{}", f.first_frame_ms_p99);
        // Two slices of 5 s: the first 50 arrivals, then the rest.
        assert_eq!(f.age_ms_p99_series.len(), 2);
        assert!(near(f.age_ms_p99_series[0], 50.0), "{:?}", f.age_ms_p99_series);
        assert_eq!((f.viewers, f.connected), (2, 2));
    }

    #[test]
    fn layers_are_counted_by_name_and_the_layer_at_the_end_is_the_most_viewers_one() {
        let names = vec!["640x480".to_owned(), "small".to_owned()];
        let on = |layer, frames: [u64; MAX_LAYERS], switches| ViewerResult {
            layer_names: names.clone(),
            layer_frames: frames,
            layer_switches: switches,
            layer_at_end: Some(layer),
            ..viewer(frames.iter().sum(), &[])
        };
        let results = [on(1, [10, 290, 0, 0], 4), on(1, [300, 0, 0, 0], 0), on(0, [0; 4], 0)];
        let load = Load::new("x", 3, Duration::ZERO, Duration::ZERO);
        let f = summarize("relay", &load, &results, 10.0, ServerSample::default());
        assert_eq!((f.layer.as_str(), f.source_layers), ("small", 2));
        assert_eq!(f.layer_switches, 4);
        let frames: Vec<(&str, u64)> =
            f.layer_frames.iter().map(|(n, c)| (n.as_str(), *c)).collect();
        assert_eq!(frames, [("640x480", 310), ("small", 290)]);
        // Per viewer: 290 frames over 10 s and 3 viewers.
        assert!((f.layer_fps["small"] - 290.0 / 30.0).abs() < 1e-9, "{:?}", f.layer_fps);
        assert!(f.table().contains("small 9.7; 4 switches; on small at the end"), "{}", f.table());

        // A tie goes to the higher quality; a source without names gets numbers.
        let plain = |layer| ViewerResult { layer_at_end: Some(layer), ..ViewerResult::default() };
        let f = summarize("relay", &load, &[plain(1), plain(0)], 10.0, ServerSample::default());
        assert_eq!((f.layer.as_str(), f.source_layers), ("0", 0));
        // No layers seen (HTTP viewers): nothing.
        let f = summarize("relay", &load, &[viewer(3, &[])], 10.0, ServerSample::default());
        assert!(f.layer.is_empty() && f.layer_frames.is_empty() && !f.table().contains("layers"));
    }

    #[test]
    fn no_frames_give_zeros_and_no_runs_no_median() {
        let load = Load::new("x", 0, Duration::ZERO, Duration::ZERO);
        let f = summarize("relay", &load, &[], 10.0, ServerSample::default());
        assert_eq!((f.age_ms_p99, f.fps_p50, f.age_ms_max), (0.0, 0.0, 0.0));
        assert!(median(&[]).is_none());
        assert_eq!(median(&[f.clone(), f.clone(), f]).map(|m| m.mode), Some("median"));
    }

    #[test]
    fn each_streams_median_counts_and_the_lowest_is_reported() {
        let streams = ["a", "b"].map(String::from).to_vec();
        let load = Load { streams, ..Load::new("x", 5, Duration::ZERO, Duration::ZERO) };
        // Over 10 s: stream a's viewers got 30, 30, 10 fps (median 30); b's 25 and 26.
        let results: Vec<ViewerResult> = [(0, 300), (1, 250), (0, 300), (1, 260), (0, 100)]
            .into_iter()
            .map(|(stream, frames)| ViewerResult { stream, ..viewer(frames, &[]) })
            .collect();
        let f = summarize("relay", &load, &results, 10.0, ServerSample::default());
        assert_eq!((f.streams, f.slowest_stream.as_str(), f.fps_min), (2, "b", 10.0));
        assert!((f.stream_fps_p50_min - 25.0).abs() < 0.03, "{}", f.stream_fps_p50_min);
        assert!(
            f.table().contains("streams        2, lowest median fps 25.0 (b)"),
            "{}",
            f.table()
        );

        // The default stream: one, unnamed, and no line for it.
        let load = Load::new("x", 2, Duration::ZERO, Duration::ZERO);
        let results = [viewer(300, &[]), viewer(250, &[])];
        let f = summarize("relay", &load, &results, 10.0, ServerSample::default());
        assert_eq!((f.streams, f.slowest_stream.as_str()), (1, ""));
        assert_eq!(f.stream_fps_p50_min, f.fps_p50);
        assert!(!f.table().contains("streams "), "{}", f.table());
    }
}
