//! [`Server`]: serves the newest frame of a stream to every connected viewer.
//!
//! Each viewer gets one task that loops: wait until the watched frame changes, clone it out
//! (two reference counts), write it with one vectored write. While that write waits on a slow
//! socket, newer frames simply replace each other in the watch channel; when the write
//! completes the task takes the newest. So a slow viewer skips frames, never sees one twice,
//! never queues anything, and never slows another viewer.

use std::io;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use bytes::Buf;
use framing::message::{MAX_HOPS, MAX_VIEWER_MESSAGE_LEN};
use framing::{MAX_CONTROL_LEN, Message, MessageCodec, Role, ViewerMessage, features};
use futures_util::StreamExt;
use governor::clock::DefaultClock;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, watch};
use tokio::time::timeout;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::delivery::{Delivery, Ended, LinkProbe, Want};
use crate::hub::Hub;
use crate::pulse::Pulse;
use crate::stream::Stream;
use crate::viewers::{Protocol, ViewerGuard, ViewerIdentity};
use crate::{Backoff, socket};

/// How a [`Server`] treats its viewers.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Our name in the hello, for the viewers' logs (`"drone/0.1.0"`).
    pub agent: String,
    /// Viewers served at once; one more is told it is refused and closed.
    pub max_viewers: usize,
    /// Connections that may be in their handshake at once; more are closed at once. These do
    /// not take viewer places, so peers that never say hello cannot lock real viewers out.
    pub max_handshakes: usize,
    /// A peer that has not sent its hello by then is dropped.
    pub handshake_timeout: Duration,
    /// A viewer whose socket takes no frame for this long is dropped (a laptop gone to sleep).
    pub viewer_timeout: Duration,
    /// Kernel cap on unsent bytes per viewer socket (see [`socket::tune_sender`]).
    pub notsent_lowat: Option<u32>,
    /// Pick a viewer's next frame only once its link has carried the last one
    /// ([`crate::delivery`]); off, the next frame goes as soon as the socket takes it.
    pub pacing: bool,
    /// A viewer that got nothing for this long gets a heartbeat, so that it can tell a quiet
    /// source (drone restarting, camera unplugged) from a dead link.
    pub heartbeat_every: Duration,
    /// Messages a second each viewer may send its source (and as many at once); more are
    /// dropped and counted, never queued.
    pub messages_per_second: u32,
    /// Streams a hub may hold; more are refused.
    pub max_streams: usize,
    /// The tokens viewers must give, if any (TCP hello and HTTP alike).
    pub auth: Option<Arc<crate::auth::Auth>>,
    /// TLS on every port, if set: the certificate served.
    pub tls: Option<Arc<crate::tls::ServerTls>>,
    /// Stamped by the heartbeat ticker at each tick, first as the accept loop starts: how the
    /// program running the server learns that it serves, and that it still does.
    pub pulse: Pulse,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            agent: concat!("dronecast/", env!("CARGO_PKG_VERSION")).into(),
            max_viewers: 10_000,
            max_handshakes: 4096,
            handshake_timeout: Duration::from_secs(5),
            viewer_timeout: Duration::from_secs(30),
            notsent_lowat: Some(16 * 1024),
            pacing: true,
            heartbeat_every: Duration::from_millis(500),
            messages_per_second: 20,
            max_streams: 64,
            auth: None,
            tls: None,
            pulse: Pulse::new(),
        }
    }
}

/// Why a viewer connection ended badly.
#[derive(Debug, thiserror::Error)]
enum ViewerError {
    #[error("sent no complete hello within {wait:?} ({got} bytes received)")]
    HandshakeTimeout { wait: Duration, got: usize },
    #[error("closed the connection before its hello")]
    ClosedBeforeHello,
    #[error(transparent)]
    Protocol(#[from] framing::FramingError),
    #[error("sent a {0} message, which viewers must not send")]
    Unexpected(&'static str),
    #[error("hello says it is a source, not a viewer (two servers dialled each other?)")]
    NotAViewer,
    #[error("took no frame for {0:?}; dropping it (asleep or gone?)")]
    Stalled(Duration),
    #[error("write failed: {0}")]
    Io(#[from] io::Error),
}

impl ViewerError {
    /// The reason label of `dronecast_viewers_dropped_total`.
    fn reason(&self) -> &'static str {
        match self {
            ViewerError::HandshakeTimeout { .. } => "handshake_timeout",
            ViewerError::ClosedBeforeHello => "closed_in_handshake",
            ViewerError::Protocol(_) | ViewerError::Unexpected(_) | ViewerError::NotAViewer => {
                "protocol_error"
            }
            ViewerError::Stalled(_) => "stalled",
            ViewerError::Io(_) => "io_error",
        }
    }
}

/// Serves a [`Hub`]'s streams to viewers over TCP, in the dronecast protocol.
#[derive(Debug)]
pub struct Server {
    hub: Arc<Hub>,
    http_hint: Option<String>,
}

impl Server {
    /// A server for the streams of `hub`.
    pub fn new(hub: Arc<Hub>) -> Server {
        Server { hub, http_hint: None }
    }

    /// Where this process serves HTTP (`"port 8080"`), for the one-line answer a web browser
    /// that opens the dronecast port gets.
    pub fn with_http_hint(mut self, hint: impl Into<String>) -> Server {
        self.http_hint = Some(hint.into());
        self
    }

    /// Accepts viewers on `listener` and serves each the newest frame of the stream it asks
    /// for, until `shutdown` is cancelled; then says goodbye to every viewer and returns once
    /// all their tasks have ended.
    pub async fn run(self, listener: TcpListener, shutdown: CancellationToken) {
        let config = self.hub.config();
        let beats = heartbeats(config.heartbeat_every, config.pulse.clone(), shutdown.clone());
        let http_hint: Option<Arc<str>> = self.http_hint.map(Into::into);
        let hub = self.hub.clone();
        let make_span = |peer: SocketAddr| info_span!("viewer", %peer);
        accept_loop(
            listener,
            self.hub,
            shutdown.clone(),
            make_span,
            move |stream, peer, permit| {
                let viewer = Viewer {
                    hub: hub.clone(),
                    beats: beats.clone(),
                    shutdown: shutdown.clone(),
                    http_hint: http_hint.clone(),
                };
                viewer.run(stream, peer, permit)
            },
        )
        .await;
    }
}

/// Accepts connections on `listener` until `shutdown`, each with a handshake place from the
/// hub (closed at once when there is none), and runs `serve` for each in a task of its own
/// inside the span `make_span` gives for the peer's address. Pauses after accept errors (typically
/// EMFILE: out of file descriptors) rather than spinning. Returns once every task has ended.
pub(crate) async fn accept_loop<F, Fut>(
    listener: TcpListener,
    hub: Arc<Hub>,
    shutdown: CancellationToken,
    make_span: fn(SocketAddr) -> tracing::Span,
    serve: F,
) where
    F: Fn(TcpStream, SocketAddr, OwnedSemaphorePermit) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let tasks = TaskTracker::new();
    let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(1));
    loop {
        let accepted = tokio::select! {
            // Shutdown first: a connection that arrives with it is not served.
            biased;
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(conn) => {
                backoff.reset();
                conn
            }
            Err(err) => {
                let pause = backoff.next_pause();
                warn!(%err, ?pause, "accept failed; retrying after a pause");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(pause) => {}
                }
                continue;
            }
        };
        let span = make_span(peer);
        let Ok(handshaking) = hub.handshakes().clone().try_acquire_owned() else {
            let max = hub.config().max_handshakes;
            warn!(parent: &span, max, "closing connection: too many still in their handshake");
            hub.refused.add("too_many_handshakes");
            continue;
        };
        tasks.spawn(serve(stream, peer, handshaking).instrument(span));
    }
    // Stop accepting now: a connection attempted during the goodbyes is refused at once
    // instead of waiting in the backlog until the process exits.
    drop(listener);
    debug!("listener closed; waiting for connections to end");
    tasks.close();
    tasks.wait().await;
}

/// Sends a refusal instead of our hello and closes our side; within a second, and at once on
/// shutdown. The peer's hello has been read, so the close is a clean FIN, not a reset that
/// could make the peer discard the refusal unread.
async fn refuse<W: AsyncWrite + Unpin>(write: &mut W, reason: &str, shutdown: &CancellationToken) {
    let send = async {
        write.write_all(&Message::refused(reason)).await?;
        write.shutdown().await
    };
    tokio::select! {
        _ = timeout(Duration::from_secs(1), send) => {}
        _ = shutdown.cancelled() => {}
    }
}

/// One shared clock for every viewer's heartbeat, rather than a timer per viewer: it ticks
/// every `every` until shutdown (the first tick at once), and stamps `pulse` at each tick.
/// It runs on the runtime that serves the viewers, so a stalled runtime stops the pulse.
fn heartbeats(every: Duration, pulse: Pulse, shutdown: CancellationToken) -> watch::Receiver<()> {
    let (tick, beats) = watch::channel(());
    tokio::spawn(async move {
        let mut clock = tokio::time::interval(every);
        clock.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = clock.tick() => {
                    tick.send_replace(());
                    pulse.beat();
                }
            }
        }
    });
    beats
}

/// One viewer connection.
struct Viewer {
    hub: Arc<Hub>,
    beats: watch::Receiver<()>,
    shutdown: CancellationToken,
    http_hint: Option<Arc<str>>,
}

/// A viewer past its hello: who it is and the stream it asked for.
struct Hello {
    agent: String,
    name: String,
    stream: String,
    token: bytes::Bytes,
    /// A relay forwarding its own viewers' messages.
    relay: bool,
    /// The quality layer it wants.
    want: Want,
}

impl Viewer {
    async fn run(self, stream: TcpStream, peer: SocketAddr, handshaking: OwnedSemaphorePermit) {
        if let Err(err) = socket::tune_sender(&stream, self.hub.config().notsent_lowat) {
            debug!(%err, "could not set socket options");
        }
        let link = link_probe(&stream, self.hub.config().pacing);
        if let Some(left) = self.hub.config().auth.as_ref().and_then(|a| a.penalty(peer.ip())) {
            // Slows down guessing: this address gave wrong tokens lately.
            debug!(?left, "closing a connection from an address that gave wrong tokens");
            self.hub.refused.add("penalised");
            return;
        }
        let Some(tls) = self.hub.config().tls.clone() else {
            let (read, write) = stream.into_split();
            return self.serve(read, write, peer, handshaking, link).await;
        };
        let wait = self.hub.config().handshake_timeout;
        let handshake = async {
            let mut first = [0u8; 2];
            let n = stream.peek(&mut first).await?;
            if !crate::tls::looks_like_tls(&first[..n]) {
                return Ok(Err(stream));
            }
            tls.accept(stream).await.map(Ok)
        };
        let accepted = tokio::select! {
            _ = self.shutdown.cancelled() => return,
            accepted = timeout(wait, handshake) => accepted,
        };
        match accepted {
            Ok(Ok(Ok(tls))) => {
                let (read, write) = tokio::io::split(tls);
                self.serve(read, write, peer, handshaking, link).await;
            }
            Ok(Ok(Err(mut plain))) => {
                // Its hello read first, so that closing does not reset the connection and
                // lose the answer.
                let mut hello = [0u8; MAX_CONTROL_LEN];
                let _ = timeout(Duration::from_millis(100), plain.read(&mut hello)).await;
                warn!("a plain peer on the TLS port; told it to use TLS");
                self.hub.refused.add("plain_on_tls_port");
                let reason = "this port speaks TLS: connect with tls://HOST:PORT";
                refuse(&mut plain, reason, &self.shutdown).await;
            }
            Ok(Err(err)) => {
                warn!(%err, "dropped peer during the TLS handshake");
                self.hub.dropped.add("tls_handshake");
            }
            Err(_) => {
                warn!(?wait, "dropped peer: no TLS handshake in time");
                self.hub.dropped.add("handshake_timeout");
            }
        }
    }

    /// Serves one viewer over the two halves of its connection.
    async fn serve<R, W>(
        self,
        read: R,
        mut write: W,
        peer: SocketAddr,
        handshaking: OwnedSemaphorePermit,
        link: LinkProbe,
    ) where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let mut read = FramedRead::new(read, MessageCodec::with_max_len(MAX_CONTROL_LEN));
        // A peer still in its handshake must not hold up a shutdown for the handshake timeout.
        let handshake = tokio::select! {
            biased;
            _ = self.shutdown.cancelled() => {
                debug!("closing a connection still in its handshake: shutting down");
                return;
            }
            handshake = self.read_hello(&mut read) => handshake,
        };
        let hello = match handshake {
            Ok(hello) => hello,
            Err(err) => {
                warn!(%err, "dropped peer during handshake");
                self.hub.dropped.add(err.reason());
                if framing::sniff::is_http_request(read.read_buffer()) {
                    self.answer_http(&mut write).await;
                }
                return;
            }
        };
        drop(handshaking);
        let Hello { agent, name, stream, token, relay, want } = hello;
        if let Some(auth) = &self.hub.config().auth {
            if auth.penalty(peer.ip()).is_some() {
                // Wrong tokens came from this address while this hello was on its way.
                self.hub.refused.add("penalised");
                return debug!("closing a connection from an address that gave wrong tokens");
            }
            let verdict = auth.check(&token);
            if verdict != crate::auth::Verdict::Accepted {
                // The address, never the token.
                let wrong = verdict == crate::auth::Verdict::Wrong;
                warn!(%agent, "refusing viewer: {}", if wrong { "wrong token" } else { "no token" });
                self.hub.refused.add(if wrong { "wrong_token" } else { "no_token" });
                auth.failed(peer.ip());
                refuse(&mut write, verdict.refusal(), &self.shutdown).await;
                return;
            }
            auth.succeeded(peer.ip());
        }
        if stream == framing::ALL_STREAMS {
            return self.serve_stream_list(read, write, peer, agent).await;
        }
        let Some(stream) = self.hub.stream(&stream) else {
            let known = self.hub.names_for_people();
            warn!(%agent, %stream, "refusing viewer: no such stream");
            self.hub.refused.add("unknown_stream");
            let reason = format!("no stream named '{stream}' here; this server has: {known}");
            refuse(&mut write, &reason, &self.shutdown).await;
            return;
        };
        if let Err(reason) = want.check(&stream) {
            warn!(%agent, "refusing viewer: {reason}");
            self.hub.refused.add("unknown_layer");
            refuse(&mut write, &reason, &self.shutdown).await;
            return;
        }
        let Ok(_slot) = self.hub.slots().clone().try_acquire_owned() else {
            let max = self.hub.config().max_viewers;
            warn!(%agent, max, "refusing viewer: server full");
            self.hub.refused.add("full");
            let reason = format!("server full ({max} viewers); try again later");
            refuse(&mut write, &reason, &self.shutdown).await;
            return;
        };
        let messages = if stream.takes_messages() { features::VIEWER_MESSAGES } else { 0 };
        let ours = framing::Hello {
            stream: stream.name().to_owned(),
            features: features::STREAM_LIST | features::LAYERS | messages,
            layers: stream.layer_names().join(","),
            ..framing::Hello::new(Role::Source, &self.hub.config().agent)
        };
        let mut ours = ours.to_bytes();
        match self.send(&mut write, &mut ours).await {
            Ok(Sent::Whole) => {}
            Ok(Sent::Stopped) => return debug!("shutting down during the handshake"),
            Err(err) => {
                self.hub.dropped.add(err.reason());
                return warn!(%err, "dropped peer during handshake");
            }
        }
        // Viewers may now send messages, which are larger than a hello.
        read.decoder_mut().set_max_len(MAX_VIEWER_MESSAGE_LEN);
        let identity = ViewerIdentity {
            peer,
            protocol: Protocol::Tcp,
            agent: agent.clone(),
            name: name.clone(),
        };
        let place = stream.viewers().join(identity);
        info!(%agent, %name, viewers = stream.viewers().count(), "viewer joined");
        let delivery = Delivery::new(
            stream.clone(),
            place.shared_entry(),
            want,
            link,
            self.hub.config().viewer_timeout,
        );
        let outcome =
            self.stream_frames(&stream, &place, delivery, relay, &mut read, &mut write).await;
        let frames = place.entry().frames_sent();
        drop(place);
        let viewers = stream.viewers().count();
        match outcome {
            Ok(why) => info!(%peer, %name, frames, viewers, "viewer left: {why}"),
            Err(err) => {
                self.hub.dropped.add(err.reason());
                warn!(%peer, %name, frames, viewers, %err, "viewer dropped");
            }
        }
    }

    /// A viewer that asked for every stream (a relay mirroring this one): it is sent the
    /// list of stream names now and whenever it changes, and heartbeats in between.
    async fn serve_stream_list<R, W>(
        &self,
        mut read: FramedRead<R, MessageCodec>,
        mut write: W,
        peer: SocketAddr,
        agent: String,
    ) where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let Ok(_slot) = self.hub.slots().clone().try_acquire_owned() else {
            let max = self.hub.config().max_viewers;
            self.hub.refused.add("full");
            let reason = format!("server full ({max} viewers); try again later");
            return refuse(&mut write, &reason, &self.shutdown).await;
        };
        let ours = framing::Hello {
            stream: framing::ALL_STREAMS.to_owned(),
            features: features::STREAM_LIST,
            ..framing::Hello::new(Role::Source, &self.hub.config().agent)
        };
        if !matches!(self.send(&mut write, &mut ours.to_bytes()).await, Ok(Sent::Whole)) {
            return;
        }
        info!(%agent, "viewer following the stream list joined");
        let mut changes = self.hub.watch_changes();
        changes.mark_changed();
        let mut beats = self.beats.clone();
        let mut sent_since_beat = false;
        let why = loop {
            let mut list = tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => {
                    goodbye(&mut write, "server shutting down").await;
                    break Ok("server shutting down");
                }
                message = read.next() => match message {
                    None => break Ok("closed the connection"),
                    Some(Ok(Message::Goodbye(_))) => break Ok("said goodbye"),
                    Some(Ok(Message::Heartbeat)) => continue,
                    Some(Ok(other)) => break Err(ViewerError::Unexpected(other.name())),
                    Some(Err(err)) => break Err(err.into()),
                },
                _ = changes.changed() => Message::stream_list(&self.hub.stream_names()),
                _ = beats.changed() => {
                    if std::mem::take(&mut sent_since_beat) {
                        continue;
                    }
                    Message::heartbeat()
                }
            };
            match self.send(&mut write, &mut list).await {
                Ok(Sent::Whole) => sent_since_beat = true,
                Ok(Sent::Stopped) => break Ok("server shutting down"),
                Err(err) => break Err(err),
            }
        };
        match why {
            Ok(why) => info!(%peer, "viewer following the stream list left: {why}"),
            Err(err) => {
                self.hub.dropped.add(err.reason());
                warn!(%peer, %err, "viewer following the stream list dropped");
            }
        }
    }

    /// Reads and checks the viewer's hello.
    async fn read_hello<R: AsyncRead + Unpin>(
        &self,
        read: &mut FramedRead<R, MessageCodec>,
    ) -> Result<Hello, ViewerError> {
        let wait = self.hub.config().handshake_timeout;
        let hello = match timeout(wait, read.next()).await {
            Err(_) => {
                let got = read.read_buffer().len();
                return Err(ViewerError::HandshakeTimeout { wait, got });
            }
            Ok(None) => return Err(ViewerError::ClosedBeforeHello),
            Ok(Some(message)) => message?,
        };
        let hello = match hello {
            Message::Hello(hello) => hello,
            other => return Err(ViewerError::Unexpected(other.name())),
        };
        if hello.role != Role::Viewer {
            return Err(ViewerError::NotAViewer);
        }
        let relay = hello.features & features::RELAY != 0;
        let want = Want::from_hello(&hello);
        Ok(Hello {
            want,
            agent: hello.agent,
            name: hello.name,
            stream: hello.stream,
            token: hello.token,
            relay,
        })
    }

    /// A web browser opened the dronecast port: one line in HTTP saying where to go instead.
    async fn answer_http<W: AsyncWrite + Unpin>(&self, write: &mut W) {
        let hint = match &self.http_hint {
            Some(hint) => format!("open the HTTP {hint} in a browser instead"),
            None => "this server has no HTTP port".to_owned(),
        };
        let text = format!("This is a dronecast viewer port, not HTTP: {hint}.\n");
        let answer = crate::http::bad_request(&text);
        let send = async {
            write.write_all(answer.as_bytes()).await?;
            write.shutdown().await
        };
        let _ = timeout(SHUTDOWN_GRACE, send).await;
    }

    /// Writes the newest frame (of the viewer's layer) whenever its link can take one.
    /// Returns why it stopped.
    async fn stream_frames<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
        &self,
        stream: &Stream,
        place: &ViewerGuard,
        mut delivery: Delivery,
        relay: bool,
        read: &mut FramedRead<R, MessageCodec>,
        write: &mut W,
    ) -> Result<&'static str, ViewerError> {
        let mut beats = self.beats.clone();
        // A relay carries many viewers' messages, each already held to the rate by it.
        let per_second = self.hub.config().messages_per_second;
        let rate = if relay { per_second.saturating_mul(RELAY_RATE_FACTOR) } else { per_second };
        let mut inbound = Inbound::new(rate);
        let mut wrote_since_beat = false;
        loop {
            tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => {
                    goodbye(write, "server shutting down").await;
                    return Ok("server shutting down");
                }
                message = read.next() => match message {
                    None => return Ok("closed the connection"),
                    Some(Ok(Message::Goodbye(_))) => return Ok("said goodbye"),
                    Some(Ok(Message::Heartbeat)) => continue,
                    Some(Ok(Message::ViewerMessage(message))) => {
                        inbound.take(stream, place, message);
                        continue;
                    }
                    Some(Ok(other)) => return Err(ViewerError::Unexpected(other.name())),
                    Some(Err(err)) => return Err(err.into()),
                },
                ready = delivery.ready() => match ready {
                    Ok(()) => {}
                    Err(Ended::StreamGone) => {
                        goodbye(write, "stream ended").await;
                        return Ok("stream ended");
                    }
                    Err(Ended::Stalled(after)) => return Err(ViewerError::Stalled(after)),
                },
                beat = beats.changed() => {
                    // Only a viewer that got nothing since the last tick needs one.
                    if beat.is_ok() && !std::mem::take(&mut wrote_since_beat) {
                        if let Sent::Stopped = self.send(write, &mut Message::heartbeat()).await? {
                            return Ok("server shutting down");
                        }
                    }
                    continue;
                }
            }
            let Some(picked) = delivery.pick() else { continue };
            if let Sent::Stopped = self.send(write, &mut picked.frame.wire()).await? {
                return Ok("server shutting down");
            }
            wrote_since_beat = true;
            delivery.sent(&picked, picked.frame.wire_len());
        }
    }

    /// Writes one whole message. Every write to a viewer goes through here, so none can hold
    /// up a shutdown: on shutdown the message in flight gets a short grace to finish (so the
    /// goodbye lands on a message boundary), then the viewer is let go. A socket that takes
    /// nothing for the viewer timeout is an error.
    async fn send<W: AsyncWrite + Unpin>(
        &self,
        write: &mut W,
        message: &mut impl Buf,
    ) -> Result<Sent, ViewerError> {
        let limit = self.hub.config().viewer_timeout;
        tokio::select! {
            written = timeout(limit, socket::write_whole(write, &mut *message)) => match written {
                Err(_) => Err(ViewerError::Stalled(limit)),
                Ok(result) => result.map(|()| Sent::Whole).map_err(ViewerError::from),
            },
            _ = self.shutdown.cancelled() => {
                let finish = async {
                    write.write_all_buf(message).await?;
                    socket::write_whole(write, Message::goodbye("server shutting down")).await
                };
                let _ = timeout(SHUTDOWN_GRACE, finish).await;
                Ok(Sent::Stopped)
            }
        }
    }
}

/// The probe of a viewer's socket for freshness pacing, when pacing is on.
fn link_probe(stream: &TcpStream, pacing: bool) -> LinkProbe {
    #[cfg(unix)]
    if pacing {
        return LinkProbe::of(std::os::fd::AsRawFd::as_raw_fd(stream));
    }
    let _ = (stream, pacing);
    LinkProbe::none()
}

/// How many viewers' worth of messages a relay (a downstream cache-server) may send: its
/// own viewers are each held to the rate already; this still bounds what one connection can
/// ask of the source.
const RELAY_RATE_FACTOR: u32 = 100;

/// What a viewer sends its source: rate-limited, stamped with who sent it, handed on.
struct Inbound {
    limit: RateLimiter<NotKeyed, InMemoryState, DefaultClock>,
    per_second: u32,
    /// Said once per connection, so a flood makes one log line, not thousands.
    warned: bool,
}

impl Inbound {
    fn new(per_second: u32) -> Inbound {
        let rate = NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN);
        Inbound { limit: RateLimiter::direct(Quota::per_second(rate)), per_second, warned: false }
    }

    /// Adds this hop to the message's path (and the viewer's name, if the message has none
    /// yet) and offers it to the source; over the viewer's rate, or with the source's inbox
    /// full, it is dropped and counted.
    fn take(&mut self, stream: &Stream, place: &ViewerGuard, mut message: ViewerMessage) {
        let entry = place.entry();
        let identity = entry.identity();
        if self.limit.check().is_err() {
            entry.message(false);
            stream.count_dropped_message();
            if !std::mem::replace(&mut self.warned, true) {
                let per_second = self.per_second;
                warn!(per_second, "viewer sends messages faster than allowed; dropping the excess");
            }
            return;
        }
        if message.path.len() >= MAX_HOPS {
            entry.message(false);
            stream.count_dropped_message();
            return warn!(path = ?message.path, "viewer message dropped: it has passed {MAX_HOPS} relays (a loop?)");
        }
        if message.name.is_empty() {
            message.name = identity.name.clone();
        }
        message.path.push(format!("{}@{}", identity.agent, identity.peer));
        match stream.offer_message(message) {
            Ok(()) => entry.message(true),
            Err(err) => {
                entry.message(false);
                if !std::mem::replace(&mut self.warned, true) {
                    warn!(%err, "viewer message dropped");
                }
            }
        }
    }
}

/// How a [`Viewer::send`] ended.
enum Sent {
    /// The message went out whole.
    Whole,
    /// The server is shutting down; the viewer has been sent a goodbye if its socket took one.
    Stopped,
}

/// Longest a shutdown waits on one viewer to take the end of a message and the goodbye. Every
/// viewer waits at the same time, so this bounds the whole shutdown's wait on viewers.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(300);

async fn goodbye<W: AsyncWrite + Unpin>(write: &mut W, reason: &str) {
    let goodbye = socket::write_whole(write, Message::goodbye(reason));
    let _ = timeout(SHUTDOWN_GRACE, goodbye).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    /// A viewer that never reads, behind a pipe that holds our hello and two heartbeats, while
    /// the source is quiet: its task is stuck writing the third heartbeat when shutdown comes,
    /// and must end at once, not after the viewer timeout (30 s).
    #[tokio::test(start_paused = true)]
    async fn shutdown_does_not_wait_on_a_heartbeat_to_a_stalled_viewer() {
        let config = ServerConfig::default();
        assert_eq!(config.viewer_timeout, Duration::from_secs(30));
        let shutdown = CancellationToken::new();
        let (hub, _stream) = Hub::single(config, Stream::with_default_limit("quiet"));
        let (ours, theirs) = tokio::io::duplex(64);
        let (_their_read, mut their_write) = tokio::io::split(theirs);
        let hello = framing::Hello::new(Role::Viewer, "stalled").to_bytes();
        their_write.write_all(&hello).await.expect("the pipe takes a hello");
        let viewer = Viewer {
            beats: heartbeats(hub.config().heartbeat_every, Pulse::new(), shutdown.clone()),
            hub: hub.clone(),
            shutdown: shutdown.clone(),
            http_hint: None,
        };
        let permit = hub.handshakes().clone().try_acquire_owned().expect("a free permit");
        let (read, write) = tokio::io::split(ours);
        let peer = SocketAddr::from(([127, 0, 0, 1], 1));
        let task = tokio::spawn(viewer.serve(read, write, peer, permit, LinkProbe::none()));
        // Virtual time: long enough for the heartbeats to fill the pipe.
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!task.is_finished(), "a stalled viewer is kept until the viewer timeout");
        let stopping = Instant::now();
        shutdown.cancel();
        task.await.expect("the viewer task ends cleanly");
        let took = stopping.elapsed();
        assert!(took < Duration::from_secs(1), "the viewer task took {took:?} to stop");
    }
}
