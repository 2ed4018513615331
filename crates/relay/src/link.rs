//! [`Link`]: a viewer's connection to a source, redialled when it drops (unless told not
//! to), as a sequence of [`Event`]s; and [`Outbox`], through which any task sends the source
//! messages over it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use framing::{Frame, ViewerMessage};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::{Backoff, SubscribeError, SubscribeOptions, Subscription, subscribe};

/// Messages that may wait for the link at once; more are dropped and counted.
pub const OUTBOX_CAPACITY: usize = 64;

/// What happened on the link.
#[derive(Debug)]
pub enum Event {
    /// Connected (again); carries the server's agent name.
    Connected(String),
    /// A frame arrived.
    Frame(Frame, Instant),
    /// The connection was lost; a redial follows. Carries the reason.
    Lost(String),
}

/// Messages sent and dropped over a link.
#[derive(Debug, Default)]
pub struct MessageCounts {
    sent: AtomicU64,
    dropped: AtomicU64,
}

impl MessageCounts {
    /// Messages written to the source.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Messages dropped: the outbox was full, the link was down, or the source takes none.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn count(&self, sent: bool) {
        let counter = if sent { &self.sent } else { &self.dropped };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// A handle for sending the source messages over a [`Link`], from any task. Sending never
/// waits: a message that finds the outbox full is dropped and counted.
#[derive(Debug, Clone)]
pub struct Outbox {
    tx: mpsc::Sender<Bytes>,
    counts: Arc<MessageCounts>,
}

impl Outbox {
    /// Queues `payload` (cut at 4 KiB) for the source; false when it was dropped.
    pub fn send(&self, payload: impl Into<Bytes>) -> bool {
        let queued = self.tx.try_send(payload.into()).is_ok();
        if !queued {
            self.counts.count(false);
        }
        queued
    }

    /// What became of the messages sent so far.
    pub fn counts(&self) -> &MessageCounts {
        &self.counts
    }
}

/// A viewer's connection to a drone or cache-server.
#[derive(Debug)]
pub struct Link {
    addr: String,
    options: SubscribeOptions,
    reconnect: bool,
    sub: Option<Subscription>,
    failures: u32,
    backoff: Backoff,
    outbox: mpsc::Receiver<Bytes>,
    sender: Outbox,
    /// Said once per connection to a source that takes no messages.
    warned_no_messages: bool,
    /// The source's names for its quality layers, top first, as its last hello gave them.
    layer_names: Vec<String>,
}

impl Link {
    /// A link to `addr`; with `reconnect` false, losing the server ends it with an error.
    pub fn new(addr: &str, options: SubscribeOptions, reconnect: bool) -> Link {
        let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let (tx, outbox) = mpsc::channel(OUTBOX_CAPACITY);
        let sender = Outbox { tx, counts: Arc::default() };
        Link {
            addr: addr.to_owned(),
            options,
            reconnect,
            sub: None,
            failures: 0,
            backoff,
            outbox,
            sender,
            warned_no_messages: false,
            layer_names: Vec::new(),
        }
    }

    /// How many quality layers the source named (0 or 1: just the full picture).
    pub fn layer_count(&self) -> usize {
        self.layer_names.len()
    }

    /// The name of quality layer `layer` of the source, or its number when the source named
    /// none.
    pub fn layer_name(&self, layer: usize) -> String {
        self.layer_names.get(layer).cloned().unwrap_or_else(|| layer.to_string())
    }

    /// A handle for sending the source messages while the link runs.
    pub fn outbox(&self) -> Outbox {
        self.sender.clone()
    }

    /// The address dialled.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The next event; meanwhile, messages in the outbox go to the source. Errors only when
    /// the link gives up: without `reconnect`, or when the server refuses us.
    pub async fn next(&mut self) -> Result<Event, SubscribeError> {
        loop {
            let Some(sub) = self.sub.as_mut() else {
                if self.failures > 0 {
                    self.backoff.wait().await;
                }
                // Messages sent while there was no connection are stale: drop them.
                while self.outbox.try_recv().is_ok() {
                    self.sender.counts.count(false);
                }
                match subscribe(&self.addr, &self.options).await {
                    Ok(sub) => {
                        self.failures = 0;
                        self.backoff.reset();
                        self.warned_no_messages = false;
                        let agent = sub.source_hello().agent.clone();
                        info!(addr = %self.addr, %agent, "connected");
                        let layers = &sub.source_hello().layers;
                        self.layer_names = framing::layers::parse_names(layers).unwrap_or_default();
                        self.sub = Some(sub);
                        return Ok(Event::Connected(agent));
                    }
                    // Redialling changes neither: the server said no, or its certificate is
                    // not the one trusted.
                    Err(err @ (SubscribeError::Refused { .. } | SubscribeError::Tls { .. })) => {
                        return Err(err);
                    }
                    Err(err) if !self.reconnect => return Err(err),
                    Err(err) => {
                        if self.failures == 0 {
                            warn!(%err, "server unavailable; retrying");
                        }
                        self.failures += 1;
                        continue;
                    }
                }
            };
            let next = tokio::select! {
                next = sub.next_frame() => next,
                Some(payload) = self.outbox.recv() => {
                    match sub.send_message(&ViewerMessage::new(payload)).await {
                        Ok(()) => self.sender.counts.count(true),
                        Err(err @ SubscribeError::NoMessages { .. }) => {
                            self.sender.counts.count(false);
                            if !std::mem::replace(&mut self.warned_no_messages, true) {
                                warn!(%err, "message dropped");
                            }
                        }
                        Err(err) => {
                            self.sender.counts.count(false);
                            self.lost(err.to_string())?;
                            return Ok(Event::Lost(err.to_string()));
                        }
                    }
                    continue;
                }
            };
            let lost = match next {
                Ok(Some(frame)) => return Ok(Event::Frame(frame, Instant::now())),
                Ok(None) => format!("{} closed the stream", self.addr),
                Err(err) => {
                    if !self.reconnect {
                        return Err(err);
                    }
                    err.to_string()
                }
            };
            self.lost(lost.clone())?;
            return Ok(Event::Lost(lost));
        }
    }

    /// The connection is gone: redial next time, or give up without `reconnect`.
    fn lost(&mut self, why: String) -> Result<(), SubscribeError> {
        self.sub = None;
        if !self.reconnect {
            return Err(SubscribeError::Closed { addr: self.addr.clone(), why });
        }
        warn!(reason = %why, "connection lost; reconnecting");
        self.failures = 1;
        Ok(())
    }

    /// Says goodbye to the server, if connected.
    pub async fn close(mut self) {
        if let Some(sub) = self.sub.take() {
            sub.close().await;
        }
    }
}
