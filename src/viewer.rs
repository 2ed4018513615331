//! [`Viewer`]: receive the newest frame with its data, send messages back, reconnect by
//! itself.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use relay::link::{Event, Link, Outbox};
use relay::{SubscribeError, SubscribeOptions};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A frame as a [`Viewer`] receives it: the JPEG, the data that came with it, and when and in
/// which order it was captured. Cloning it copies no bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame(framing::Frame);

impl Frame {
    /// The source's sequence number (from 0, +1 per frame; gaps are frames skipped for this
    /// viewer).
    pub fn seq(&self) -> u64 {
        self.0.header().seq
    }

    /// When it was captured, µs since the Unix epoch, on the source's clock.
    pub fn capture_us(&self) -> u64 {
        self.0.header().capture_us
    }

    /// Its width in pixels.
    pub fn width(&self) -> u32 {
        self.0.header().width
    }

    /// Its height in pixels.
    pub fn height(&self) -> u32 {
        self.0.header().height
    }

    /// The JPEG, exactly as the source published it.
    pub fn jpeg(&self) -> &Bytes {
        self.0.payload()
    }

    /// The data that came with it (empty when none).
    pub fn data(&self) -> &[u8] {
        self.0.meta()
    }

    /// True when the data is new with this frame; false when the source repeated its newest
    /// data (a drone's `--meta-from` does, so that a viewer who skipped frames still has it).
    pub fn data_is_fresh(&self) -> bool {
        self.0.meta_is_fresh()
    }

    /// Milliseconds since it was captured (as exact as the two clocks agree).
    pub fn age_ms(&self) -> f64 {
        relay::clock::age_ms(self.capture_us())
    }

    /// The frame as it travels on the wire.
    pub fn as_wire(&self) -> &framing::Frame {
        &self.0
    }
}

/// A connection to a publisher, a drone or a cache-server, kept up by a task of its own: it
/// redials whenever the link drops, and keeps the newest frame for [`Viewer::next_frame`]. A
/// viewer that reads slowly skips frames rather than falling behind.
#[derive(Debug)]
pub struct Viewer {
    frames: watch::Receiver<Option<framing::Frame>>,
    outbox: Outbox,
    connected: watch::Receiver<bool>,
    ended: Arc<Mutex<Option<SubscribeError>>>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// How to connect a [`Viewer`]; from [`Viewer::builder`].
#[derive(Debug, Clone)]
pub struct ViewerBuilder {
    addr: String,
    options: SubscribeOptions,
    reconnect: bool,
}

impl Viewer {
    /// Connects to `addr` (`HOST:PORT`) with the defaults of [`Viewer::builder`]. Returns at
    /// once; the connection is made (and remade) in the background. Must be called inside a
    /// tokio runtime. `addr` may name several relays of one drone separated by commas
    /// (`"relay1:9998,relay2:9998"`): the viewer fails over from one to the next, and never
    /// returns a frame older than one it returned ([`relay::Link`]).
    pub fn connect(addr: &str) -> Viewer {
        Viewer::builder(addr).connect()
    }

    /// Settings beyond the defaults: a name, an agent, the frame size limit.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// # let publisher = dronecast::Publisher::bind("127.0.0.1:0").await?;
    /// # let addr = publisher.local_addr().to_string();
    /// let mut viewer = dronecast::Viewer::builder(&addr).name("ground-2").connect();
    /// viewer.connected().await;
    /// assert_eq!(publisher.viewers()[0].name, "ground-2");
    /// viewer.close().await;
    /// # Ok(())
    /// # }
    /// ```
    pub fn builder(addr: &str) -> ViewerBuilder {
        ViewerBuilder {
            addr: addr.to_owned(),
            options: SubscribeOptions {
                agent: concat!("dronecast/", env!("CARGO_PKG_VERSION")).into(),
                ..SubscribeOptions::default()
            },
            reconnect: true,
        }
    }

    /// The newest frame not yet returned, waiting for one if need be; `None` once the viewer
    /// has given up (the server refused it, or it was told not to reconnect and lost the
    /// link: [`Viewer::error`] says why).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let mut publisher = dronecast::Publisher::bind("127.0.0.1:0").await?;
    /// # publisher.publish(&b"\xff\xd8\xff\xd9"[..], 2, 2, b"{}")?;
    /// # let addr = publisher.local_addr().to_string();
    /// let mut viewer = dronecast::Viewer::connect(&addr);
    /// if let Some(frame) = viewer.next_frame().await {
    ///     println!("frame {} ({} bytes), {:.0} ms old", frame.seq(), frame.jpeg().len(), frame.age_ms());
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn next_frame(&mut self) -> Option<Frame> {
        loop {
            self.frames.changed().await.ok()?;
            if let Some(frame) = self.frames.borrow_and_update().clone() {
                return Some(Frame(frame));
            }
        }
    }

    /// Sends the source `payload` (up to 4 KiB; longer is cut). Never waits: a message is
    /// dropped, and counted, when too many wait already or the link is down. Returns whether
    /// it was queued. Servers pass at most 20 a second per viewer by default.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// # let mut publisher = dronecast::Publisher::bind("127.0.0.1:0").await?;
    /// # let addr = publisher.local_addr().to_string();
    /// let mut viewer = dronecast::Viewer::connect(&addr);
    /// viewer.connected().await;
    /// viewer.send(r#"{"cmd":"return-home"}"#);
    /// let message = publisher.next_message().await.expect("a message");
    /// assert_eq!(&message.payload[..], br#"{"cmd":"return-home"}"#);
    /// # Ok(())
    /// # }
    /// ```
    pub fn send(&self, payload: impl Into<Bytes>) -> bool {
        self.outbox.send(payload)
    }

    /// A handle for sending from another task while this one reads frames; it sends through
    /// this viewer's link, like [`Viewer::send`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// # let mut publisher = dronecast::Publisher::bind("127.0.0.1:0").await?;
    /// let mut viewer = dronecast::Viewer::connect(&publisher.local_addr().to_string());
    /// viewer.connected().await;
    /// let sender = viewer.sender();
    /// tokio::spawn(async move { sender.send("hello from a task") });
    /// assert_eq!(&publisher.next_message().await.expect("one").payload[..], b"hello from a task");
    /// # Ok(())
    /// # }
    /// ```
    pub fn sender(&self) -> Outbox {
        self.outbox.clone()
    }

    /// Messages written to the source so far.
    pub fn messages_sent(&self) -> u64 {
        self.outbox.counts().sent()
    }

    /// Messages dropped so far: too many waiting, the link down, or a source that takes none.
    pub fn messages_dropped(&self) -> u64 {
        self.outbox.counts().dropped()
    }

    /// True while connected.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// # let publisher = dronecast::Publisher::bind("127.0.0.1:0").await?;
    /// let mut viewer = dronecast::Viewer::connect(&publisher.local_addr().to_string());
    /// viewer.connected().await;
    /// assert!(viewer.is_connected());
    /// publisher.shutdown().await; // says goodbye: the viewer starts redialling
    /// # Ok(())
    /// # }
    /// ```
    pub fn is_connected(&self) -> bool {
        *self.connected.borrow()
    }

    /// Waits until connected (again).
    pub async fn connected(&mut self) {
        let _ = self.connected.wait_for(|up| *up).await;
    }

    /// Why the viewer gave up, once it has.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// // Nothing listens on a port just freed: without redialling, the viewer gives up.
    /// let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    /// let mut viewer = dronecast::Viewer::builder(&format!("127.0.0.1:{port}")).no_reconnect().connect();
    /// assert!(viewer.next_frame().await.is_none());
    /// assert!(viewer.error().is_some_and(|e| e.contains("could not connect")));
    /// # Ok(())
    /// # }
    /// ```
    pub fn error(&self) -> Option<String> {
        self.ended.lock().ok().and_then(|e| e.as_ref().map(ToString::to_string))
    }

    /// Says goodbye to the server and stops.
    pub async fn close(mut self) {
        self.stop.cancel();
        let _ = (&mut self.task).await;
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl ViewerBuilder {
    /// Our name, which servers show and put on our messages (none by default).
    pub fn name(mut self, name: &str) -> Self {
        self.options.name = name.to_owned();
        self
    }

    /// Our program's name in the servers' logs (`dronecast/VERSION`).
    pub fn agent(mut self, agent: &str) -> Self {
        self.options.agent = agent.to_owned();
        self
    }

    /// The largest frame accepted, in bytes (16 MiB).
    pub fn max_frame_bytes(mut self, n: usize) -> Self {
        self.options.max_message_len = n;
        self
    }

    /// Gives up when the link drops instead of redialling.
    pub fn no_reconnect(mut self) -> Self {
        self.reconnect = false;
        self
    }

    /// Starts the viewer. Must be called inside a tokio runtime.
    pub fn connect(self) -> Viewer {
        let mut link = Link::new(&self.addr, self.options, self.reconnect);
        let outbox = link.outbox();
        let (frames_tx, frames) = watch::channel(None);
        let (connected_tx, connected) = watch::channel(false);
        let ended = Arc::new(Mutex::new(None));
        let stop = CancellationToken::new();
        let (ended_in, stop_in) = (ended.clone(), stop.clone());
        let task = tokio::spawn(async move {
            loop {
                let event = tokio::select! {
                    _ = stop_in.cancelled() => break,
                    event = link.next() => event,
                };
                match event {
                    Ok(Event::Frame(frame, _)) => {
                        frames_tx.send_replace(Some(frame));
                    }
                    Ok(Event::Connected(_)) => {
                        connected_tx.send_replace(true);
                    }
                    Ok(Event::Lost(_)) => {
                        connected_tx.send_replace(false);
                    }
                    Err(err) => {
                        if let Ok(mut ended) = ended_in.lock() {
                            *ended = Some(err);
                        }
                        connected_tx.send_replace(false);
                        // Dropping the frame sender ends `next_frame` with `None`.
                        return;
                    }
                }
            }
            link.close().await;
        });
        Viewer { frames, outbox, connected, ended, stop, task }
    }
}
