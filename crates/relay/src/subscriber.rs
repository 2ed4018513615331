//! [`subscribe`]: dial a source (drone or cache-server), say hello, read its frames.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use framing::{
    DEFAULT_MAX_MESSAGE_LEN, Frame, FramingError, Hello, Message, MessageCodec, Role,
    ViewerMessage, features,
};
use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};
use tokio_util::codec::FramedRead;

use crate::socket;

/// How to dial a source.
#[derive(Debug, Clone)]
pub struct SubscribeOptions {
    /// Our name in the hello, for the source's logs (`"client/0.1.0"`).
    pub agent: String,
    /// The name we give ourselves (`"ground-1"`), which servers show and put on our messages.
    pub name: String,
    /// What our hello announces ([`framing::features`]): a cache-server says it is a relay.
    pub features: u32,
    /// The stream to ask for; empty for the source's default stream, [`framing::ALL_STREAMS`]
    /// for its list of streams.
    pub stream: String,
    /// The token the source wants, if it wants one (sent in the hello; never logged).
    pub token: bytes::Bytes,
    /// The quality layer asked for, with [`framing::features::LAYERS`] in `features`: empty
    /// for the source's choice, a name or number to pin one, `*` for all (a relay).
    pub layers: String,
    /// TLS to the source: how to trust it. `None`: plain TCP.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Largest message accepted from the source.
    pub max_message_len: usize,
    /// Time allowed for one TCP connect. Long enough for one SYN retransmission (at 1 s), short
    /// enough that after an outage a fresh SYN goes out soon, rather than the kernel's
    /// backed-off retransmission of an old one (at 3 s, 7 s …).
    pub connect_timeout: Duration,
    /// Time allowed for the source's hello.
    pub handshake_timeout: Duration,
    /// A source that sends no byte at all for this long is given up on. A live source sends a
    /// frame or a heartbeat at least every half second, so silence means a dead link or a hung
    /// peer (also one that stalls in the middle of a message).
    pub idle_timeout: Duration,
}

impl Default for SubscribeOptions {
    fn default() -> Self {
        SubscribeOptions {
            agent: concat!("dronecast/", env!("CARGO_PKG_VERSION")).into(),
            name: String::new(),
            features: 0,
            stream: String::new(),
            token: bytes::Bytes::new(),
            layers: String::new(),
            tls: None,
            max_message_len: DEFAULT_MAX_MESSAGE_LEN,
            connect_timeout: Duration::from_millis(1500),
            handshake_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(3),
        }
    }
}

/// Why a subscription failed or ended badly. Each says which address and what to check.
#[derive(Debug, thiserror::Error)]
pub enum SubscribeError {
    /// TCP connect failed.
    #[error("could not connect to {addr}: {cause} (is the drone or cache-server running there?)")]
    Connect {
        /// Where we dialled.
        addr: String,
        /// Why.
        cause: io::Error,
    },
    /// The source did not finish connecting or say hello in time.
    #[error("{addr} did not complete the dronecast handshake within {wait:?}")]
    HandshakeTimeout {
        /// Where we dialled.
        addr: String,
        /// How long we waited.
        wait: Duration,
    },
    /// The source sent a refusal.
    #[error("{addr} refused the connection: {reason}")]
    Refused {
        /// Where we dialled.
        addr: String,
        /// Its reason.
        reason: String,
    },
    /// The source closed before saying hello.
    #[error("{addr} closed the connection during the handshake")]
    ClosedEarly {
        /// Where we dialled.
        addr: String,
    },
    /// The source sent something that is not valid dronecast.
    #[error("{addr}: {cause}")]
    Protocol {
        /// Where we dialled.
        addr: String,
        /// What was wrong.
        cause: FramingError,
    },
    /// The source sent a message a source must not send at this point.
    #[error("{addr} sent an unexpected {kind} message")]
    Unexpected {
        /// Where we dialled.
        addr: String,
        /// The message's name.
        kind: &'static str,
    },
    /// The source's hello says it is a viewer.
    #[error("{addr} is a viewer, not a source (wrong port?)")]
    NotASource {
        /// Where we dialled.
        addr: String,
    },
    /// The source closed the stream, or the link broke, and the viewer was told not to
    /// reconnect.
    #[error("{why}")]
    Closed {
        /// Where we dialled.
        addr: String,
        /// What happened.
        why: String,
    },
    /// The TLS handshake with the source failed.
    #[error("{addr}: TLS failed: {why}")]
    Tls {
        /// Where we dialled.
        addr: String,
        /// What went wrong, and what to check.
        why: String,
    },
    /// The source takes no viewer messages.
    #[error(
        "{addr} takes no viewer messages (an older server, or a source with nowhere to send them)"
    )]
    NoMessages {
        /// Where we dialled.
        addr: String,
    },
    /// The source went quiet, or stalled in the middle of a message.
    #[error("{addr} {}; giving up on it", idle_what(*.wait, *.pending))]
    Idle {
        /// Where we dialled.
        addr: String,
        /// How long it was quiet.
        wait: Duration,
        /// Bytes of an unfinished message received before it went quiet.
        pending: usize,
    },
}

fn idle_what(wait: Duration, pending: usize) -> String {
    match pending {
        0 => format!("sent nothing for {wait:?}"),
        n => format!("sent nothing for {wait:?} (stalled after {n} bytes of one message)"),
    }
}

/// A connection to a source, past the handshake.
pub struct Subscription {
    addr: String,
    hello: Hello,
    idle_timeout: Duration,
    read: FramedRead<LastArrival<Reader>, MessageCodec>,
    write: Writer,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("addr", &self.addr)
            .field("hello", &self.hello)
            .finish()
    }
}

/// The receiving half of a connection, plain or TLS.
type Reader = Box<dyn AsyncRead + Send + Unpin>;
/// The sending half of a connection, plain or TLS.
type Writer = Box<dyn AsyncWrite + Send + Unpin>;

/// What a failed TLS handshake means, in words that say what to check.
fn tls_failure(err: &io::Error) -> String {
    match err.kind() {
        io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset => {
            "the source closed the connection during the TLS handshake: it does not speak TLS \
             there (a plain port? drop tls://)"
                .to_owned()
        }
        _ => err.to_string(),
    }
}

/// A reader that notes when bytes last arrived, so that "idle" means no bytes at all rather
/// than no complete message (a large frame on a slow link takes a while to complete).
#[derive(Debug)]
struct LastArrival<R> {
    inner: R,
    last: Instant,
}

impl<R: AsyncRead + Unpin> AsyncRead for LastArrival<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.last = Instant::now();
        }
        polled
    }
}

/// Dials `addr` (`host:port`), exchanges hellos, and returns the subscription.
pub async fn subscribe(
    addr: &str,
    options: &SubscribeOptions,
) -> Result<Subscription, SubscribeError> {
    let connect_failed = |cause| SubscribeError::Connect { addr: addr.to_owned(), cause };
    let stream = timeout(options.connect_timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| connect_failed(io::ErrorKind::TimedOut.into()))?
        .map_err(connect_failed)?;
    let _ = socket::tune_receiver(&stream);
    let wait = options.handshake_timeout;
    let timed_out = || SubscribeError::HandshakeTimeout { addr: addr.to_owned(), wait };
    let (read, mut write): (Reader, Writer) = match &options.tls {
        None => {
            let (read, write) = stream.into_split();
            (Box::new(read), Box::new(write))
        }
        Some(config) => {
            let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
            let tls = timeout(wait, crate::tls::connect(config.clone(), host, stream))
                .await
                .map_err(|_| timed_out())?
                .map_err(|err| SubscribeError::Tls {
                    addr: addr.to_owned(),
                    why: tls_failure(&err),
                })?;
            let (read, write) = tokio::io::split(tls);
            (Box::new(read), Box::new(write))
        }
    };
    let read = LastArrival { inner: read, last: Instant::now() };
    let mut read = FramedRead::new(read, MessageCodec::with_max_len(options.max_message_len));
    let io_err = |err: io::Error| SubscribeError::Protocol {
        addr: addr.to_owned(),
        cause: FramingError::Io(err),
    };
    let ours = Hello {
        name: options.name.clone(),
        features: options.features,
        stream: options.stream.clone(),
        token: options.token.clone(),
        layers: options.layers.clone(),
        ..Hello::new(Role::Viewer, &options.agent)
    };
    let ours = ours.to_bytes();
    let send = socket::write_whole(&mut write, ours);
    timeout(wait, send).await.map_err(|_| timed_out())?.map_err(io_err)?;
    let hello = match timeout(wait, read.next()).await.map_err(|_| timed_out())? {
        None => return Err(SubscribeError::ClosedEarly { addr: addr.to_owned() }),
        Some(Err(cause)) => {
            return Err(SubscribeError::Protocol { addr: addr.to_owned(), cause });
        }
        Some(Ok(Message::Hello(hello))) => hello,
        Some(Ok(Message::Refused(reason))) => {
            return Err(SubscribeError::Refused { addr: addr.to_owned(), reason });
        }
        Some(Ok(other)) => {
            return Err(SubscribeError::Unexpected { addr: addr.to_owned(), kind: other.name() });
        }
    };
    if hello.role != Role::Source {
        return Err(SubscribeError::NotASource { addr: addr.to_owned() });
    }
    Ok(Subscription {
        addr: addr.to_owned(),
        hello,
        idle_timeout: options.idle_timeout,
        read,
        write,
    })
}

impl Subscription {
    /// The source's hello (its agent name is useful in logs).
    pub fn source_hello(&self) -> &Hello {
        &self.hello
    }

    /// The address this subscription dialled.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The next list of the source's streams, for a subscription to
    /// [`framing::ALL_STREAMS`]; `Ok(None)` when the source said goodbye or closed.
    pub async fn next_stream_list(&mut self) -> Result<Option<Vec<String>>, SubscribeError> {
        match self.next_message().await? {
            None => Ok(None),
            Some(Message::StreamList(names)) => Ok(Some(names)),
            Some(other) => Err(self.unexpected(other)),
        }
    }

    /// True when the source takes viewer messages (its hello says so).
    pub fn takes_messages(&self) -> bool {
        self.hello.features & features::VIEWER_MESSAGES != 0
    }

    /// Sends the source a message. Fails with [`SubscribeError::NoMessages`] when the source
    /// takes none (an older server), and like [`Subscription::next_frame`] when the link is
    /// dead: a source that takes no byte of it within the idle timeout.
    pub async fn send_message(&mut self, message: &ViewerMessage) -> Result<(), SubscribeError> {
        if !self.takes_messages() {
            return Err(SubscribeError::NoMessages { addr: self.addr.clone() });
        }
        let wait = self.idle_timeout;
        match timeout(wait, socket::write_whole(&mut self.write, message.to_bytes())).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => {
                Err(SubscribeError::Protocol { addr: self.addr.clone(), cause: err.into() })
            }
            Err(_) => Err(SubscribeError::Idle { addr: self.addr.clone(), wait, pending: 0 }),
        }
    }

    /// The next frame; `Ok(None)` when the source said goodbye or closed cleanly between
    /// messages.
    pub async fn next_frame(&mut self) -> Result<Option<Frame>, SubscribeError> {
        match self.next_message().await? {
            None => Ok(None),
            Some(Message::Frame(frame)) => Ok(Some(frame)),
            Some(other) => Err(self.unexpected(other)),
        }
    }

    /// The next message other than a heartbeat; `Ok(None)` when the source said goodbye or
    /// closed cleanly between messages. A source silent for the idle timeout is a dead link.
    async fn next_message(&mut self) -> Result<Option<Message>, SubscribeError> {
        let wait = self.idle_timeout;
        loop {
            let quiet_until = self.read.get_ref().last + wait;
            let next = tokio::select! {
                next = self.read.next() => next,
                _ = tokio::time::sleep_until(quiet_until) => {
                    if self.read.get_ref().last + wait > Instant::now() {
                        continue; // bytes arrived meanwhile: part of a message in progress
                    }
                    let pending = self.read.read_buffer().len();
                    return Err(SubscribeError::Idle { addr: self.addr.clone(), wait, pending });
                }
            };
            return match next {
                Some(Ok(Message::Heartbeat)) => continue,
                None | Some(Ok(Message::Goodbye(_))) => Ok(None),
                Some(Ok(message)) => Ok(Some(message)),
                Some(Err(cause)) => {
                    Err(SubscribeError::Protocol { addr: self.addr.clone(), cause })
                }
            };
        }
    }

    /// The error for a message the caller did not expect here: a refusal says why.
    fn unexpected(&self, message: Message) -> SubscribeError {
        match message {
            Message::Refused(reason) => SubscribeError::Refused { addr: self.addr.clone(), reason },
            other => SubscribeError::Unexpected { addr: self.addr.clone(), kind: other.name() },
        }
    }

    /// Says goodbye and closes.
    pub async fn close(mut self) {
        let bye = Message::goodbye("viewer leaving");
        let _ = timeout(Duration::from_millis(300), self.write.write_all(&bye)).await;
        let _ = self.write.shutdown().await;
    }
}
