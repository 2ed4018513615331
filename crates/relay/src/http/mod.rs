//! [`HttpServer`]: a hub's streams over HTTP/1.1, for everything that is not a dronecast
//! client — browsers, VLC, ffmpeg, Home Assistant, OctoPrint — and the status and metrics
//! that dashboards read. The URLs and headers follow µStreamer and mjpg-streamer.
//!
//! | path | what |
//! |---|---|
//! | `/stream.mjpg`, `/stream`, `/video_feed`, `/?action=stream` | live MJPEG ([`mjpeg`]) |
//! | `/snapshot.jpg`, `/snapshot`, `/?action=snapshot` | the newest JPEG, byte for byte |
//! | `/` | a status page with the live picture and the viewers ([`page`]) |
//! | `/state` | the page's figures as JSON ([`state`]) |
//! | `/metrics` | Prometheus text format ([`crate::metrics`]) |
//! | `/healthz` | `200 ok`, or `503 unhealthy: why` when a source is down past a grace ([`health`]) |
//!
//! Each stream path also works under a stream's name (`/front/stream.mjpg`, and
//! `/front/healthz` for that stream alone); the un-prefixed paths mean the default stream
//! (`/healthz`: every stream). `/healthz` is the one path that needs no token.
//!
//! Live video is served with the same rule as the TCP port: a viewer is handed the newest
//! frame whenever its socket has taken the previous one, never a queue. hyper polls the MJPEG
//! body for its next part only once the previous part has left its write buffer (kept at the
//! 8 KiB minimum, so one frame fills it); the part is the frame's shared `Bytes` between a
//! small header and the boundary, written with one vectored write.

pub mod health;
pub mod mjpeg;
pub mod page;
pub mod state;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::buf::Chain;
use bytes::{Buf, Bytes};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{Instant, timeout};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::delivery::{Delivery, LinkProbe, Want};
use crate::hub::Hub;
use crate::server::accept_loop;
use crate::socket;
use crate::stream::Stream;

/// What a response body is made of: for a live part, its header, the frame's JPEG (shared,
/// never copied) and the boundary; for anything else, one buffer and two empty ones.
pub type Data = Chain<Chain<Bytes, Bytes>, Bytes>;

/// Every response body.
pub type Body = UnsyncBoxBody<Data, Infallible>;

/// Longest request head (request line and headers) accepted; a longer one gets 431.
pub const MAX_REQUEST_HEAD: usize = 8 * 1024;

/// How long a shutdown waits for an HTTP connection to finish what it is writing.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(300);

/// How long a stream's source may be down before `/healthz` says so, unless told otherwise.
pub const DEFAULT_HEALTH_GRACE: Duration = Duration::from_secs(3);

/// How the HTTP port describes itself.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Where this process's dronecast port is (`"port 9998"`), for the one-line answer a
    /// dronecast peer that dialled the HTTP port gets.
    pub dronecast_hint: Option<String>,
    /// How long a stream's source may be down (not up, not paused) before `/healthz` answers
    /// 503 ([`health`]).
    pub health_grace: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig { dronecast_hint: None, health_grace: DEFAULT_HEALTH_GRACE }
    }
}

/// Serves a hub's streams over HTTP.
#[derive(Debug)]
pub struct HttpServer {
    hub: Arc<Hub>,
    config: Arc<HttpConfig>,
}

impl HttpServer {
    /// An HTTP server for the streams of `hub`.
    pub fn new(hub: Arc<Hub>, config: HttpConfig) -> HttpServer {
        HttpServer { hub, config: Arc::new(config) }
    }

    /// Accepts connections on `listener` until `shutdown` is cancelled; then ends every live
    /// stream, lets each connection finish within a short grace, and returns.
    pub async fn run(self, listener: TcpListener, shutdown: CancellationToken) {
        let (hub, config) = (self.hub.clone(), self.config);
        let make_span = |peer: SocketAddr| tracing::info_span!("http", %peer);
        accept_loop(listener, self.hub, shutdown.clone(), make_span, move |tcp, peer, permit| {
            let conn = Conn {
                hub: hub.clone(),
                config: config.clone(),
                peer,
                shutdown: shutdown.clone(),
                in_flight: Arc::new(mjpeg::InFlight::default()),
                link: LinkProbe::none(),
                handshaking: Arc::new(Mutex::new(Some(permit))),
            };
            conn.run(tcp)
        })
        .await;
    }
}

/// One HTTP connection, shared by its requests.
#[derive(Clone)]
struct Conn {
    hub: Arc<Hub>,
    config: Arc<HttpConfig>,
    peer: SocketAddr,
    shutdown: CancellationToken,
    /// When the MJPEG part being written was handed to hyper, if one is.
    in_flight: Arc<mjpeg::InFlight>,
    /// The connection's socket, for freshness pacing of a live stream.
    link: LinkProbe,
    /// The connection's handshake place, until one of its requests becomes a live stream and
    /// takes a viewer place instead.
    handshaking: Arc<Mutex<Option<OwnedSemaphorePermit>>>,
}

impl Conn {
    async fn run(mut self, tcp: TcpStream) {
        let config = self.hub.config().clone();
        if let Err(err) = socket::tune_sender(&tcp, config.notsent_lowat) {
            debug!(%err, "could not set socket options");
        }
        #[cfg(unix)]
        if config.pacing {
            // The socket stays open as long as the connection, which outlives its bodies.
            self.link = LinkProbe::of(std::os::fd::AsRawFd::as_raw_fd(&tcp));
        }
        if let Some(left) = config.auth.as_ref().and_then(|a| a.penalty(self.peer.ip())) {
            debug!(?left, "closing a connection from an address that gave wrong tokens");
            self.hub.refused.add("penalised");
            return;
        }
        // Before HTTP parsing: a dronecast peer that dialled this port is told where to go.
        let mut first = [0u8; 16];
        let peeked = tokio::select! {
            _ = self.shutdown.cancelled() => return,
            peeked = timeout(config.handshake_timeout, tcp.peek(&mut first)) => peeked,
        };
        match peeked {
            Err(_) => {
                self.hub.dropped.add("handshake_timeout");
                return warn!(wait = ?config.handshake_timeout, "HTTP connection sent nothing; dropped");
            }
            Ok(Ok(0)) => {
                self.hub.dropped.add("closed_in_handshake");
                return warn!("HTTP connection closed before its request; dropped");
            }
            Ok(Err(err)) => {
                self.hub.dropped.add("io_error");
                return warn!(%err, "HTTP connection failed before its request; dropped");
            }
            Ok(Ok(n)) if framing::sniff::is_dronecast(&first[..n]) => {
                return self.answer_dronecast(tcp).await;
            }
            Ok(Ok(n)) => {
                let tls_hello = crate::tls::looks_like_tls(&first[..n]);
                match (&config.tls, tls_hello) {
                    (None, false) => {}
                    (Some(tls), true) => {
                        let handshake = timeout(config.handshake_timeout, tls.accept(tcp));
                        let accepted = tokio::select! {
                            _ = self.shutdown.cancelled() => return,
                            accepted = handshake => accepted,
                        };
                        return match accepted {
                            Ok(Ok(tls)) => self.serve(TokioIo::new(tls)).await,
                            Ok(Err(err)) => {
                                self.hub.dropped.add("tls_handshake");
                                warn!(%err, "dropped peer during the TLS handshake")
                            }
                            Err(_) => {
                                self.hub.dropped.add("handshake_timeout");
                                warn!("dropped peer: no TLS handshake in time")
                            }
                        };
                    }
                    (Some(_), false) => return self.answer_plain_on_tls(tcp).await,
                    (None, true) => {
                        self.hub.dropped.add("protocol_error");
                        return warn!(
                            "a TLS handshake on a plain HTTP port (no --tls-cert here); dropped"
                        );
                    }
                }
            }
        }
        self.serve(TokioIo::new(tcp)).await;
    }

    /// Serves HTTP on `io` (a plain or a TLS connection) until it ends.
    async fn serve<I>(self, io: TokioIo<I>)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let config = self.hub.config().clone();
        let this = self.clone();
        let service = service_fn(move |request| {
            let this = this.clone();
            async move { Ok::<_, Infallible>(this.respond(request).await) }
        });
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(config.handshake_timeout)
            .max_buf_size(MAX_REQUEST_HEAD)
            .writev(true);
        let conn = builder.serve_connection(io, service);
        tokio::pin!(conn);
        let mut deadline: Option<Instant> = None;
        let mut check = tokio::time::interval(Duration::from_secs(1));
        let outcome = loop {
            tokio::select! {
                served = conn.as_mut() => break served.err(),
                _ = self.shutdown.cancelled(), if deadline.is_none() => {
                    conn.as_mut().graceful_shutdown();
                    deadline = Some(Instant::now() + SHUTDOWN_GRACE);
                }
                _ = sleep_until(deadline) => return debug!("shutting down: connection let go"),
                _ = check.tick() => {
                    if let Some(stuck) = self.in_flight.stuck_for() {
                        if stuck > config.viewer_timeout {
                            self.hub.dropped.add("stalled");
                            let limit = config.viewer_timeout;
                            return warn!(?stuck, "http viewer dropped: took no frame for {limit:?} (asleep or gone?)");
                        }
                    }
                }
            }
        };
        if let Some(err) = outcome {
            if err.is_timeout()
                || err.is_parse()
                || err.is_parse_too_large()
                || err.is_incomplete_message()
            {
                self.hub.dropped.add(if err.is_timeout() {
                    "handshake_timeout"
                } else {
                    "protocol_error"
                });
                warn!(%err, "HTTP connection dropped");
            } else {
                debug!(%err, "HTTP connection ended");
            }
        }
    }

    /// Plain HTTP on a TLS port: one line of HTTP saying to use https://.
    async fn answer_plain_on_tls(&self, mut tcp: TcpStream) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        warn!("plain HTTP on the HTTPS port; told it to use https://");
        self.hub.refused.add("plain_on_tls_port");
        let mut request = [0u8; MAX_REQUEST_HEAD];
        let _ = timeout(Duration::from_millis(100), tcp.read(&mut request)).await;
        let answer = bad_request("This port speaks HTTPS: open https://… instead of http://….\n");
        let send = async {
            tcp.write_all(answer.as_bytes()).await?;
            tcp.shutdown().await
        };
        let _ = timeout(SHUTDOWN_GRACE, send).await;
    }

    /// A dronecast peer dialled the HTTP port: a dronecast refusal, which its client prints.
    async fn answer_dronecast(&self, mut tcp: TcpStream) {
        use tokio::io::AsyncWriteExt;
        let hint = match &self.config.dronecast_hint {
            Some(hint) => format!("dronecast viewers connect to {hint}"),
            None => "this server has no dronecast port".to_owned(),
        };
        warn!("a dronecast peer dialled the HTTP port; told it where to go");
        self.hub.refused.add("wrong_port");
        let reason = format!("this is the HTTP port, not dronecast: {hint}");
        let send = async {
            tcp.write_all(&framing::Message::refused(&reason)).await?;
            tcp.shutdown().await
        };
        let _ = timeout(SHUTDOWN_GRACE, send).await;
    }

    async fn respond(&self, request: Request<hyper::body::Incoming>) -> Response<Body> {
        let route = Route::parse(request.uri().path(), request.uri().query());
        let head = match *request.method() {
            Method::GET => false,
            Method::HEAD => true,
            _ => {
                let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD here");
                response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
                return response;
            }
        };
        // Before the token check: a balancer's health check carries no secret. Without
        // tokens the answer says why; with them, only ok or unhealthy.
        if route.endpoint == Endpoint::Health {
            let detail = self.hub.config().auth.is_none();
            let grace = self.config.health_grace;
            return health::response(&self.hub, route.stream_name, grace, detail);
        }
        if let Some(auth) = &self.hub.config().auth {
            if auth.penalty(self.peer.ip()).is_some() {
                self.hub.refused.add("penalised");
                return unauthorized(crate::auth::Verdict::Wrong);
            }
            let verdict = auth.check(&token_of(&request));
            if verdict != crate::auth::Verdict::Accepted {
                let wrong = verdict == crate::auth::Verdict::Wrong;
                warn!("refusing HTTP request: {}", if wrong { "wrong token" } else { "no token" });
                self.hub.refused.add(if wrong { "wrong_token" } else { "no_token" });
                auth.failed(self.peer.ip());
                return unauthorized(verdict);
            }
            auth.succeeded(self.peer.ip());
        }
        let stream = match route.stream_name {
            None => self.hub.default_stream(),
            Some(name) => self.hub.stream(name),
        };
        let agent = request
            .headers()
            .get(header::USER_AGENT)
            .map(|v| framing::text::printable(v.as_bytes()))
            .unwrap_or_default();
        match (route.endpoint, stream) {
            (Endpoint::NotFound, _) => text(StatusCode::NOT_FOUND, "no such page here; try /"),
            (Endpoint::Health, _) => {
                health::response(&self.hub, route.stream_name, self.config.health_grace, false)
            }
            (Endpoint::Metrics, _) => crate::metrics::response(&self.hub),
            (Endpoint::State, _) => state::response(&self.hub),
            (Endpoint::Page, _) => page::response(route.stream_name),
            (_, None) => {
                let known = self.hub.names_for_people();
                let name = route.stream_name.unwrap_or("");
                text(
                    StatusCode::NOT_FOUND,
                    &format!("no stream named '{name}' here; this server has: {known}"),
                )
            }
            (Endpoint::Snapshot | Endpoint::Mjpeg, Some(stream)) => {
                // `?layer=NAME|N|top|auto`: live streams default to the choice per link,
                // snapshots to the full picture.
                let asked = query_value(request.uri().query(), "layer");
                let default = if route.endpoint == Endpoint::Mjpeg { "auto" } else { "top" };
                let want = Want::parse(&asked.unwrap_or_else(|| default.to_owned()));
                if let Err(reason) = want.check(&stream) {
                    return text(StatusCode::NOT_FOUND, &reason);
                }
                match route.endpoint {
                    Endpoint::Snapshot => {
                        let layer = Delivery::layer_of(&want, &stream);
                        snapshot(&stream, layer, &self.shutdown).await
                    }
                    _ if head => mjpeg::head_response(),
                    _ => self.start_mjpeg(stream, agent, want),
                }
            }
        }
    }

    /// A live stream takes a viewer place (shared with the TCP port) instead of the
    /// connection's handshake place.
    fn start_mjpeg(&self, stream: Arc<Stream>, agent: String, want: Want) -> Response<Body> {
        let Ok(slot) = self.hub.slots().clone().try_acquire_owned() else {
            let max = self.hub.config().max_viewers;
            warn!(%agent, max, "refusing viewer: server full");
            self.hub.refused.add("full");
            let mut response = text(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("server full ({max} viewers); try again later"),
            );
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            return response;
        };
        if let Ok(mut handshaking) = self.handshaking.lock() {
            handshaking.take();
        }
        let identity = crate::viewers::ViewerIdentity {
            peer: self.peer,
            protocol: crate::Protocol::Http,
            agent,
            name: String::new(),
        };
        let live =
            mjpeg::Live { want, link: self.link, stall_after: self.hub.config().viewer_timeout };
        let (in_flight, shutdown) = (self.in_flight.clone(), self.shutdown.clone());
        mjpeg::response(stream, identity, live, slot, in_flight, shutdown)
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Mjpeg,
    Snapshot,
    Page,
    State,
    Metrics,
    Health,
    NotFound,
}

/// A request path, taken apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Route<'a> {
    /// The stream named in the path (`/front/stream.mjpg`); `None` for the default stream.
    stream_name: Option<&'a str>,
    endpoint: Endpoint,
}

impl<'a> Route<'a> {
    fn parse(path: &'a str, query: Option<&'a str>) -> Route<'a> {
        let action = query.and_then(|q| q.split('&').find_map(|pair| pair.strip_prefix("action=")));
        let (stream_name, rest) = match path.trim_start_matches('/').split_once('/') {
            Some((name, rest)) if crate::hub::valid_stream_name(name) => (Some(name), rest),
            _ => (None, path.trim_start_matches('/')),
        };
        let endpoint = match (rest, action) {
            ("" | "index.html", Some("stream")) => Endpoint::Mjpeg,
            ("" | "index.html", Some("snapshot")) => Endpoint::Snapshot,
            ("stream.mjpg" | "stream" | "video_feed", _) => Endpoint::Mjpeg,
            ("snapshot.jpg" | "snapshot", _) => Endpoint::Snapshot,
            ("" | "index.html", _) => Endpoint::Page,
            ("state", None) if stream_name.is_none() => Endpoint::State,
            ("metrics", None) if stream_name.is_none() => Endpoint::Metrics,
            ("healthz", None) => Endpoint::Health,
            _ => Endpoint::NotFound,
        };
        Route { stream_name, endpoint }
    }
}

/// How long a snapshot keeps a paused source (a drone nobody watches) capturing, so that
/// a camera polled for stills every few seconds stays awake.
const SNAPSHOT_INTEREST: Duration = Duration::from_secs(10);

/// How long a snapshot waits for a paused source's first frame.
const SNAPSHOT_WAIT: Duration = Duration::from_secs(2);

/// The newest frame of `layer`, byte for byte; 503 while there is none (after waking a
/// paused source and waiting briefly for its first frame).
async fn snapshot(stream: &Stream, layer: usize, shutdown: &CancellationToken) -> Response<Body> {
    stream.want_frames_for(SNAPSHOT_INTEREST);
    if stream.latest_of(layer).is_none() {
        let mut latest = stream.subscribe_layer(layer);
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = timeout(SNAPSHOT_WAIT, latest.wait_for(Option::is_some)) => {}
        }
    }
    let jpeg = |f: &framing::Frame| f.header().encoding == framing::Encoding::Jpeg;
    let Some(frame) = stream.latest_of(layer).filter(jpeg) else {
        let source = stream.source();
        let mut response = text(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("no frame yet: the source is {}", source.state),
        );
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return response;
    };
    let mut response = Response::new(whole(frame.payload().clone()));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/jpeg"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(NO_STORE));
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    if let Ok(stamp) = HeaderValue::from_str(&mjpeg::timestamp(frame.header().capture_us)) {
        headers.insert("x-timestamp", stamp);
    }
    headers.insert("x-frame-seq", HeaderValue::from(frame.header().seq));
    response
}

/// The token a request gives: `Authorization: Bearer TOKEN`, HTTP Basic with the token as
/// password (what Home Assistant and OctoPrint send), or `?token=` (for a plain `<img>` URL).
fn token_of<B>(request: &Request<B>) -> Vec<u8> {
    use base64::Engine;
    if let Some(value) = request.headers().get(header::AUTHORIZATION) {
        let value = value.as_bytes();
        if let Some(token) = value.strip_prefix(b"Bearer ") {
            return token.trim_ascii().to_vec();
        }
        if let Some(encoded) = value.strip_prefix(b"Basic ") {
            let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim_ascii());
            if let Some(at) = decoded.as_ref().ok().and_then(|d| d.iter().position(|&b| b == b':'))
            {
                return decoded.map(|d| d[at + 1..].to_vec()).unwrap_or_default();
            }
        }
    }
    let query = request.uri().query().unwrap_or("");
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="))
        .map(|token| percent_decode(token.as_bytes()))
        .unwrap_or_default()
}

/// The value of `key` in a query string, `%XX` escapes undone.
fn query_value(query: Option<&str>, key: &str) -> Option<String> {
    let value = query?.split('&').find_map(|pair| pair.strip_prefix(key)?.strip_prefix('='))?;
    Some(String::from_utf8_lossy(&percent_decode(value.as_bytes())).into_owned())
}

/// `%XX` escapes of a query value undone (a token may hold characters a URL must escape).
fn percent_decode(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (s[i], s.get(i + 1).copied().and_then(hex), s.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// 401, with the two ways a client may answer: Basic (browsers ask for it) and Bearer.
fn unauthorized(verdict: crate::auth::Verdict) -> Response<Body> {
    let mut response = text(StatusCode::UNAUTHORIZED, verdict.refusal());
    let headers = response.headers_mut();
    headers.append(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"dronecast\", charset=\"UTF-8\""),
    );
    headers
        .append(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"dronecast\""));
    response
}

/// What every live response says about caching: never.
const NO_STORE: &str = "no-store, no-cache, must-revalidate, max-age=0";

/// A body of one buffer.
pub(crate) fn whole(bytes: Bytes) -> Body {
    let data: Data = bytes.chain(Bytes::new()).chain(Bytes::new());
    Full::new(data).boxed_unsync()
}

/// An empty body.
fn empty() -> Body {
    Empty::new().boxed_unsync()
}

/// A one-line plain-text answer.
fn text(status: StatusCode, line: &str) -> Response<Body> {
    let mut response = Response::new(whole(Bytes::from(format!("{line}\n"))));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

/// A whole `400 Bad Request` response saying `text`, for a peer answered outside hyper (on the
/// wrong port, or in clear on a TLS port), after which the connection closes.
pub(crate) fn bad_request(text: &str) -> String {
    format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(path: &str, query: Option<&str>) -> (Option<&'static str>, Endpoint) {
        let path: &'static str = Box::leak(path.to_owned().into_boxed_str());
        let query: Option<&'static str> = query.map(|q| &*Box::leak(q.to_owned().into_boxed_str()));
        let r = Route::parse(path, query);
        (r.stream_name, r.endpoint)
    }

    #[test]
    fn the_usual_urls_of_mjpeg_servers_are_understood() {
        for path in ["/stream.mjpg", "/stream", "/video_feed"] {
            assert_eq!(route(path, None), (None, Endpoint::Mjpeg), "{path}");
        }
        assert_eq!(route("/", Some("action=stream")), (None, Endpoint::Mjpeg));
        assert_eq!(route("/", Some("x=1&action=snapshot")), (None, Endpoint::Snapshot));
        assert_eq!(route("/snapshot.jpg", None), (None, Endpoint::Snapshot));
        assert_eq!(route("/", None), (None, Endpoint::Page));
        assert_eq!(route("/state", None), (None, Endpoint::State));
        assert_eq!(route("/metrics", None), (None, Endpoint::Metrics));
        assert_eq!(route("/etc/passwd", None).1, Endpoint::NotFound);
        assert_eq!(route("/../state", None).1, Endpoint::NotFound);
        assert_eq!(route("/stream.mjpg/..", None).1, Endpoint::NotFound);
    }

    #[test]
    fn stream_paths_work_under_a_stream_name() {
        assert_eq!(route("/front/stream.mjpg", None), (Some("front"), Endpoint::Mjpeg));
        assert_eq!(route("/front/snapshot.jpg", None), (Some("front"), Endpoint::Snapshot));
        assert_eq!(route("/front/", Some("action=stream")), (Some("front"), Endpoint::Mjpeg));
        assert_eq!(route("/front/", None), (Some("front"), Endpoint::Page));
        assert_eq!(route("/front/state", None), (Some("front"), Endpoint::NotFound));
    }

    #[test]
    fn health_is_asked_of_the_server_or_of_one_stream() {
        assert_eq!(route("/healthz", None), (None, Endpoint::Health));
        assert_eq!(route("/front/healthz", None), (Some("front"), Endpoint::Health));
        assert_eq!(route("/a/b/healthz", None).1, Endpoint::NotFound);
    }
}
