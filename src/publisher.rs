//! [`Publisher`]: serve frames you produce, receive what viewers send back.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use framing::{Encoding, FrameHeader, ViewerMessage};
use relay::viewers::ViewerSnapshot;
use relay::{
    FrameTooLarge, HttpConfig, HttpServer, Hub, Server, ServerConfig, SourceStatus, Stream,
};
use tokio::net::{TcpListener, ToSocketAddrs};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Messages from viewers that may wait for [`Publisher::next_message`]; more are dropped and
/// counted.
pub const MESSAGE_BACKLOG: usize = 1024;

/// Serves the frames you publish to any number of viewers over TCP (the dronecast protocol,
/// so cache-servers can relay them further) and optionally over HTTP (MJPEG for browsers),
/// and receives the messages viewers send back.
///
/// Dropping a publisher stops its servers; [`Publisher::shutdown`] also says goodbye to
/// every viewer first.
#[derive(Debug)]
pub struct Publisher {
    stream: Arc<Stream>,
    hub: Arc<Hub>,
    addr: SocketAddr,
    http_addr: Option<SocketAddr>,
    messages: mpsc::Receiver<ViewerMessage>,
    seq: u64,
    shutdown: CancellationToken,
    servers: JoinSet<()>,
}

/// How to set a [`Publisher`] up; from [`Publisher::builder`].
#[derive(Debug, Clone)]
pub struct PublisherBuilder {
    name: String,
    config: ServerConfig,
    max_frame_bytes: usize,
    http: Option<SocketAddr>,
}

impl Publisher {
    /// A publisher serving viewers on `addr` (`"127.0.0.1:0"` for any free port), with the
    /// defaults of [`Publisher::builder`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let publisher = dronecast::Publisher::bind("127.0.0.1:0").await?;
    /// assert!(publisher.local_addr().port() > 0);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn bind(addr: impl ToSocketAddrs) -> std::io::Result<Publisher> {
        Publisher::builder().bind(addr).await
    }

    /// Settings beyond the defaults: the stream's name, the viewer limit, an HTTP port.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let publisher = dronecast::Publisher::builder()
    ///     .name("front-door")
    ///     .max_viewers(100)
    ///     .http("127.0.0.1:0".parse().expect("an address"))
    ///     .bind("127.0.0.1:0")
    ///     .await?;
    /// assert!(publisher.http_addr().is_some());
    /// # Ok(())
    /// # }
    /// ```
    pub fn builder() -> PublisherBuilder {
        PublisherBuilder {
            name: "default".into(),
            config: ServerConfig {
                agent: concat!("dronecast/", env!("CARGO_PKG_VERSION")).into(),
                ..ServerConfig::default()
            },
            max_frame_bytes: framing::DEFAULT_MAX_MESSAGE_LEN,
            http: None,
        }
    }

    /// Where viewers connect.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where browsers connect, if there is an HTTP port.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// Makes a JPEG of `width`×`height` the newest frame, with `data` (any bytes; JSON by
    /// convention, empty for none) going along with it, and returns its sequence number.
    /// Never waits: viewers get the newest frame whenever they can take one. A frame larger
    /// than viewers accept (16 MiB by default) is refused, not sent.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let mut publisher = dronecast::Publisher::bind("127.0.0.1:0").await?;
    /// let jpeg = std::fs::read("frame.jpg").unwrap_or_else(|_| b"\xff\xd8\xff\xd9".to_vec());
    /// let seq = publisher.publish(jpeg, 640, 480, br#"{"battery":0.87}"#)?;
    /// assert_eq!(seq, 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn publish(
        &mut self,
        jpeg: impl Into<Bytes>,
        width: u32,
        height: u32,
        data: impl AsRef<[u8]>,
    ) -> Result<u64, FrameTooLarge> {
        let seq = self.seq;
        let header = FrameHeader {
            seq,
            capture_us: relay::clock::now_us(),
            encoding: Encoding::Jpeg,
            width,
            height,
        };
        // Each frame carries its own data: it is new on every frame it is given to.
        let data = data.as_ref();
        let flags = if data.is_empty() { 0 } else { framing::flags::META_FRESH };
        self.stream.publish(framing::Frame::with_flags(header, flags, data, jpeg.into()))?;
        self.seq += 1;
        Ok(seq)
    }

    /// The next message a viewer sent, with its name and the path it came by (the viewer
    /// first, then each relay); `None` once the publisher is shut down. Messages wait here
    /// (up to 1024, `MESSAGE_BACKLOG`; more are dropped and counted) until taken.
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let mut publisher = dronecast::Publisher::bind("0.0.0.0:9999").await?;
    /// while let Some(message) = publisher.next_message().await {
    ///     println!("{} via {:?}: {:?}", message.name, message.path, message.payload);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn next_message(&mut self) -> Option<ViewerMessage> {
        self.messages.recv().await
    }

    /// A message waiting now, if there is one.
    pub fn try_next_message(&mut self) -> Option<ViewerMessage> {
        self.messages.try_recv().ok()
    }

    /// The viewers connected now, over TCP and HTTP, with what each was sent.
    pub fn viewers(&self) -> Vec<ViewerSnapshot> {
        self.stream.viewers().snapshot(|layer| self.stream.frames_published_on(layer))
    }

    /// Messages dropped so far: over a viewer's rate, or with the backlog full.
    pub fn messages_dropped(&self) -> u64 {
        self.stream.totals().messages_dropped
    }

    /// The hub behind the servers: counters, the stream, the limits.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// Says goodbye to every viewer and stops the servers.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        while self.servers.join_next().await.is_some() {}
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl PublisherBuilder {
    /// The stream's name, which viewers may ask for and relays report (`default`).
    pub fn name(mut self, name: &str) -> Self {
        self.name = name.to_owned();
        self
    }

    /// Our name in viewers' logs (`dronecast/VERSION`).
    pub fn agent(mut self, agent: &str) -> Self {
        self.config.agent = agent.to_owned();
        self
    }

    /// Viewers served at once (10,000).
    pub fn max_viewers(mut self, n: usize) -> Self {
        self.config.max_viewers = n.max(1);
        self
    }

    /// A viewer whose socket takes nothing for this long is dropped (30 s).
    pub fn viewer_timeout(mut self, timeout: Duration) -> Self {
        self.config.viewer_timeout = timeout;
        self
    }

    /// Messages a second each viewer may send (20); more are dropped and counted.
    pub fn messages_per_second(mut self, n: u32) -> Self {
        self.config.messages_per_second = n;
        self
    }

    /// Also serve HTTP on `addr`: live MJPEG, snapshots, a status page, metrics.
    pub fn http(mut self, addr: SocketAddr) -> Self {
        self.http = Some(addr);
        self
    }

    /// Listens on `addr` and starts serving.
    pub async fn bind(self, addr: impl ToSocketAddrs) -> std::io::Result<Publisher> {
        let listener = TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let http = match self.http {
            Some(addr) => Some(relay::socket::listen(addr)?),
            None => None,
        };
        let http_addr = http.as_ref().map(TcpListener::local_addr).transpose()?;
        let stream = Stream::new(&self.name, self.max_frame_bytes);
        stream.set_source(SourceStatus {
            state: "up",
            from: "a program".into(),
            agent: self.config.agent.clone(),
            reconnects: 0,
        });
        let (hub, stream) = Hub::single(self.config, stream);
        let messages = stream.take_messages(MESSAGE_BACKLOG);
        let shutdown = CancellationToken::new();
        let mut servers = JoinSet::new();
        let mut tcp = Server::new(hub.clone());
        if let Some(http) = http {
            tcp = tcp.with_http_hint(format!("port {}", http.local_addr()?.port()));
            let config = HttpConfig {
                dronecast_hint: Some(format!("port {}", local.port())),
                ..HttpConfig::default()
            };
            servers.spawn(HttpServer::new(hub.clone(), config).run(http, shutdown.clone()));
        }
        servers.spawn(tcp.run(listener, shutdown.clone()));
        Ok(Publisher { stream, hub, addr: local, http_addr, messages, seq: 0, shutdown, servers })
    }
}
