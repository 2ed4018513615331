//! `GET /`: a status page that needs nothing from outside the LAN — the live picture, the
//! source's state, the rates in and out, the frame's age and a table of viewers, refreshed
//! every second from `/state`. Peer text reaches it only through `textContent`, never as
//! HTML.

use hyper::Response;
use hyper::header::{self, HeaderValue};

use super::{Body, whole};

/// The page, built into the binary: no file is ever read from disk.
const PAGE: &str = include_str!("page.html");

/// The page; it finds the stream it shows from its own path (`/front/`).
pub fn response(_stream: Option<&str>) -> Response<Body> {
    let mut response = Response::new(whole(bytes::Bytes::from_static(PAGE.as_bytes())));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}
