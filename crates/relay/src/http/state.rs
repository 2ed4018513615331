//! `GET /state`: everything the status page shows, as JSON (documented in the README). It
//! is also what scripts and dashboards read.

use hyper::Response;
use hyper::header::{self, HeaderValue};
use serde::Serialize;

use super::{Body, NO_STORE, whole};
use crate::hub::Hub;
use crate::stream::{Rates, SourceStatus, Stream, Totals};
use crate::viewers::ViewerSnapshot;

/// The whole `/state` document.
#[derive(Debug, Serialize)]
pub struct State {
    /// The server's agent name (`cache-server/0.1.0`).
    pub agent: String,
    /// The dronecast protocol version it speaks.
    pub protocol_version: u16,
    /// Seconds since it started.
    pub uptime_s: f64,
    /// Viewers connected now, every stream and protocol.
    pub viewers: usize,
    /// Its viewer limit.
    pub max_viewers: usize,
    /// Viewers refused since start, by reason.
    pub refused: std::collections::BTreeMap<&'static str, u64>,
    /// Connections dropped since start, by reason.
    pub dropped: std::collections::BTreeMap<&'static str, u64>,
    /// Every stream.
    pub streams: Vec<StreamState>,
}

/// One stream in `/state`.
#[derive(Debug, Serialize)]
pub struct StreamState {
    /// Its name.
    pub name: String,
    /// True for the stream that un-prefixed paths serve.
    pub default: bool,
    /// What its source is doing.
    pub source: SourceStatus,
    /// The newest frame, if there is one.
    pub frame: Option<FrameState>,
    /// The quality layers, top first (just the full picture unless the source makes
    /// smaller ones): each one's name and newest frame.
    pub layers: Vec<LayerState>,
    /// Rates over the last second.
    pub rates: Rates,
    /// Counters since start.
    pub totals: Totals,
    /// Its viewers, oldest first.
    pub viewers: Vec<ViewerSnapshot>,
}

/// One quality layer of a stream.
#[derive(Debug, Serialize)]
pub struct LayerState {
    /// Its name (`qvga`, `320x240`), or its number when the source named none.
    pub name: String,
    /// Its newest frame, if there is one.
    pub frame: Option<FrameState>,
}

/// The newest frame of a stream.
#[derive(Debug, Serialize)]
pub struct FrameState {
    /// Its sequence number.
    pub seq: u64,
    /// Width, pixels.
    pub width: u32,
    /// Height, pixels.
    pub height: u32,
    /// JPEG bytes.
    pub bytes: usize,
    /// Age now (now − capture time), ms.
    pub age_ms: f64,
}

impl State {
    /// The state of `hub` now.
    pub fn of(hub: &Hub) -> State {
        let default = hub.default_stream().map(|s| s.name().to_owned());
        State {
            agent: hub.config().agent.clone(),
            protocol_version: framing::PROTOCOL_VERSION,
            uptime_s: hub.uptime_s(),
            viewers: hub.viewers(),
            max_viewers: hub.config().max_viewers,
            refused: hub.refused.snapshot().into_iter().collect(),
            dropped: hub.dropped.snapshot().into_iter().collect(),
            streams: hub
                .streams()
                .iter()
                .map(|s| StreamState::of(s, default.as_deref() == Some(s.name())))
                .collect(),
        }
    }
}

impl StreamState {
    fn of(stream: &Stream, default: bool) -> StreamState {
        StreamState {
            name: stream.name().to_owned(),
            default,
            source: stream.source(),
            frame: stream.latest().as_ref().map(FrameState::of),
            layers: (0..stream.layer_count())
                .map(|layer| LayerState {
                    name: stream.layer_name(layer),
                    frame: stream.latest_of(layer).as_ref().map(FrameState::of),
                })
                .collect(),
            rates: stream.rates(),
            totals: stream.totals(),
            viewers: stream.viewers().snapshot(|layer| stream.frames_published_on(layer)),
        }
    }
}

impl FrameState {
    fn of(f: &framing::Frame) -> FrameState {
        FrameState {
            seq: f.header().seq,
            width: f.header().width,
            height: f.header().height,
            bytes: f.payload().len(),
            age_ms: crate::clock::age_ms(f.header().capture_us),
        }
    }
}

/// `/state` as a response.
pub fn response(hub: &Hub) -> Response<Body> {
    let json = serde_json::to_vec(&State::of(hub)).unwrap_or_default();
    let mut response = Response::new(whole(json.into()));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(NO_STORE));
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    response
}
