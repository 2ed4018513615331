//! `GET /metrics`: a hub's figures in the Prometheus text format. The counters are the hub's
//! own atomics, read at scrape time by a `prometheus-client` collector, so serving frames
//! costs nothing extra for metrics.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `dronecast_build_info` | gauge (1) | `agent`, `protocol_version` |
//! | `dronecast_uptime_seconds` | gauge | |
//! | `dronecast_frames_received_total` | counter: frames published by the source | `stream` |
//! | `dronecast_received_bytes_total` | counter | `stream` |
//! | `dronecast_frames_sent_total` | counter: frames written to viewers | `stream` |
//! | `dronecast_sent_bytes_total` | counter | `stream` |
//! | `dronecast_frames_skipped_total` | counter: frames a slow viewer skipped | `stream` |
//! | `dronecast_viewers` | gauge | `stream`, `protocol` (`tcp`, `http`) |
//! | `dronecast_viewers_refused_total` | counter | `reason` |
//! | `dronecast_viewers_dropped_total` | counter | `reason` |
//! | `dronecast_source_up` | gauge: 1 while the source (a cache-server's upstream) is up | `stream` |
//! | `dronecast_source_reconnects_total` | counter | `stream` |
//! | `dronecast_frame_age_seconds` | histogram: age of each frame on arrival here | `stream` |

use std::sync::Arc;

use hyper::Response;
use hyper::header::{self, HeaderValue};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::http::{Body, whole};
use crate::hub::Hub;
use crate::viewers::Protocol;

/// Reads a hub at scrape time.
#[derive(Debug)]
struct HubCollector(Arc<Hub>);

/// One labelled sample per stream.
fn per_stream(
    encoder: &mut DescriptorEncoder,
    hub: &Hub,
    name: &str,
    help: &str,
    kind: MetricType,
    value: impl Fn(&crate::Stream) -> u64,
) -> std::fmt::Result {
    let mut family = encoder.encode_descriptor(name, help, None, kind)?;
    for stream in hub.streams() {
        let labels = [("stream", stream.name())];
        let sample = family.encode_family(&labels)?;
        match kind {
            MetricType::Counter => ConstCounter::new(value(&stream)).encode(sample)?,
            _ => ConstGauge::new(value(&stream) as i64).encode(sample)?,
        }
    }
    Ok(())
}

impl Collector for HubCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let hub = &self.0;
        let mut info = encoder.encode_descriptor(
            "dronecast_build_info",
            "The program and the dronecast protocol version it speaks.",
            None,
            MetricType::Gauge,
        )?;
        let version = framing::PROTOCOL_VERSION.to_string();
        let labels = [("agent", hub.config().agent.as_str()), ("protocol_version", &version)];
        ConstGauge::new(1i64).encode(info.encode_family(&labels)?)?;
        let uptime = encoder.encode_descriptor(
            "dronecast_uptime_seconds",
            "Seconds since the server started.",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(hub.uptime_s()).encode(uptime)?;

        let e = &mut encoder;
        use MetricType::{Counter, Gauge};
        per_stream(
            e,
            hub,
            "dronecast_frames_received",
            "Frames published by the source.",
            Counter,
            |s| s.totals().frames_in,
        )?;
        per_stream(
            e,
            hub,
            "dronecast_received_bytes",
            "Bytes of the frames published.",
            Counter,
            |s| s.totals().bytes_in,
        )?;
        per_stream(e, hub, "dronecast_frames_sent", "Frames written to viewers.", Counter, |s| {
            s.totals().frames_out
        })?;
        per_stream(e, hub, "dronecast_sent_bytes", "Bytes written to viewers.", Counter, |s| {
            s.totals().bytes_out
        })?;
        per_stream(
            e,
            hub,
            "dronecast_frames_skipped",
            "Frames a viewer skipped: its socket was busy while newer ones came.",
            Counter,
            |s| s.totals().frames_skipped,
        )?;
        per_stream(
            e,
            hub,
            "dronecast_source_up",
            "1 while the stream's source (a cache-server's upstream) is up.",
            Gauge,
            |s| u64::from(s.source().is_up()),
        )?;
        per_stream(
            e,
            hub,
            "dronecast_source_reconnects",
            "Times the source came back after it was lost.",
            Counter,
            |s| s.source().reconnects,
        )?;

        let mut viewers = encoder.encode_descriptor(
            "dronecast_viewers",
            "Viewers connected now.",
            None,
            MetricType::Gauge,
        )?;
        for stream in hub.streams() {
            for protocol in [Protocol::Tcp, Protocol::Http] {
                let labels = [("stream", stream.name()), ("protocol", protocol.as_str())];
                let count = stream.viewers().count_of(protocol) as i64;
                ConstGauge::new(count).encode(viewers.encode_family(&labels)?)?;
            }
        }
        for (name, help, counts) in [
            ("dronecast_viewers_refused", "Viewers refused, by reason.", &hub.refused),
            ("dronecast_viewers_dropped", "Connections dropped, by reason.", &hub.dropped),
        ] {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (reason, count) in counts.snapshot() {
                ConstCounter::new(count).encode(family.encode_family(&[("reason", reason)])?)?;
            }
        }

        let mut ages = encoder.encode_descriptor(
            "dronecast_frame_age_seconds",
            "Age of each frame on arrival at this server (now minus capture time).",
            None,
            MetricType::Histogram,
        )?;
        for stream in hub.streams() {
            let labels = [("stream", stream.name())];
            stream.age_histogram().encode(ages.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// The Prometheus text of `hub` now.
pub fn render(hub: &Arc<Hub>) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(HubCollector(hub.clone())));
    let mut text = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, &registry);
    text
}

/// `/metrics` as a response.
pub fn response(hub: &Arc<Hub>) -> Response<Body> {
    let mut response = Response::new(whole(render(hub).into()));
    let content_type = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
