//! `/healthz` and `/NAME/healthz`: whether a load balancer should send this server new
//! viewers.
//!
//! A stream is healthy while its source is up (or paused: a drone nobody watches), and for a
//! grace period after it stops being so ([`crate::HttpConfig::health_grace`]), so that a
//! short upstream blip — the drone restarting, a redial — does not take every relay of a tier
//! out of the balancer at once. `/healthz` is healthy when every stream of the server is (and
//! there is at least one); `/NAME/healthz` judges the one stream.
//!
//! The answer is `200 ok` or `503 unhealthy: why`, one line. Balancers ask without a token, so
//! on a server that wants tokens the health check needs none but says only `ok` or
//! `unhealthy` — no stream names, no durations — and an unknown stream name gets the same
//! `503 unhealthy` as a sick one, so that names cannot be probed.

use std::time::Duration;

use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};

use super::{Body, NO_STORE, text};
use crate::hub::Hub;
use crate::stream::Stream;

/// Why a stream is not healthy, for the one-line answer.
fn problem(stream: &Stream, grace: Duration) -> Option<String> {
    let down = stream.down_for().filter(|down| *down > grace)?;
    let state = stream.source().state;
    Some(format!(
        "stream '{}': source {state} for {:.1} s (grace {} s)",
        stream.name(),
        down.as_secs_f64(),
        grace.as_secs_f64()
    ))
}

/// The verdict on `stream_name` (every stream for `None`): `Ok` when healthy, else why not.
/// `Err(None)`: there is no such stream.
fn verdict(hub: &Hub, stream_name: Option<&str>, grace: Duration) -> Result<(), Option<String>> {
    let streams = match stream_name {
        Some(name) => vec![hub.stream(name).ok_or(None)?],
        None => hub.streams(),
    };
    if streams.is_empty() {
        return Err(Some("no streams to serve".to_owned()));
    }
    let problems: Vec<String> = streams.iter().filter_map(|s| problem(s, grace)).collect();
    match problems.as_slice() {
        [] => Ok(()),
        [one] => Err(Some(one.clone())),
        [first, rest @ ..] => Err(Some(format!("{first}, and {} more", rest.len()))),
    }
}

/// The answer to `/healthz` (`stream_name` `None`) or `/NAME/healthz`; `detail` false on a
/// server that wants tokens.
pub fn response(
    hub: &Hub,
    stream_name: Option<&str>,
    grace: Duration,
    detail: bool,
) -> Response<Body> {
    let mut response = match verdict(hub, stream_name, grace) {
        Ok(()) => text(StatusCode::OK, "ok"),
        Err(_) if !detail => text(StatusCode::SERVICE_UNAVAILABLE, "unhealthy"),
        Err(Some(why)) => text(StatusCode::SERVICE_UNAVAILABLE, &format!("unhealthy: {why}")),
        Err(None) => {
            let name = stream_name.unwrap_or("");
            let known = hub.names_for_people();
            text(
                StatusCode::NOT_FOUND,
                &format!("no stream named '{name}' here; this server has: {known}"),
            )
        }
    };
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static(NO_STORE));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ServerConfig;

    fn hub_with(names: &[&str]) -> std::sync::Arc<Hub> {
        let hub = Hub::new(ServerConfig::default());
        for name in names {
            hub.add_stream(Stream::with_default_limit(name)).expect("added");
        }
        hub
    }

    fn up(hub: &Hub, name: &str, state: &'static str) {
        hub.stream(name).expect("a stream").update_source(|s| s.state = state);
    }

    #[test]
    fn healthy_while_up_or_within_the_grace_unhealthy_after_it() {
        let hub = hub_with(&["front", "back"]);
        let long = Duration::from_secs(3600);
        assert_eq!(verdict(&hub, None, long), Ok(()), "connecting, within the grace");
        let err = verdict(&hub, None, Duration::ZERO).expect_err("down beyond a zero grace");
        let why = err.expect("a reason");
        assert!(why.starts_with("stream 'back': source connecting for"), "{why}");
        assert!(why.ends_with("(grace 0 s), and 1 more"), "{why}");

        up(&hub, "front", "up");
        up(&hub, "back", "paused");
        assert_eq!(verdict(&hub, None, Duration::ZERO), Ok(()));
        up(&hub, "back", "down");
        assert!(verdict(&hub, None, Duration::ZERO).is_err(), "one stream down: all unhealthy");
        assert_eq!(verdict(&hub, Some("front"), Duration::ZERO), Ok(()), "per stream");
        assert!(verdict(&hub, Some("back"), Duration::ZERO).is_err());
        assert_eq!(verdict(&hub, Some("side"), Duration::ZERO), Err(None), "no such stream");
        assert_eq!(verdict(&hub_with(&[]), None, long), Err(Some("no streams to serve".into())));
    }

    #[test]
    fn without_detail_the_answer_names_nothing() {
        let hub = hub_with(&["front"]);
        let answer = |name, detail| {
            let r = response(&hub, name, Duration::ZERO, detail);
            r.status()
        };
        assert_eq!(answer(None, true), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(answer(Some("nope"), true), StatusCode::NOT_FOUND);
        assert_eq!(answer(Some("nope"), false), StatusCode::SERVICE_UNAVAILABLE, "no probing");
        up(&hub, "front", "up");
        assert_eq!(answer(None, false), StatusCode::OK);
    }
}
