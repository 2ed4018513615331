//! [`Link`]: a viewer's connection to a source, redialled when it drops (unless told not
//! to), as a sequence of [`Event`]s; and [`Outbox`], through which any task sends the source
//! messages over it.
//!
//! A link may be given several addresses — relays of the same drone, typically — and then
//! fails over: when a connection is lost it dials the next address at once, and each address
//! that cannot be reached passes on to the next; it pauses ([`Backoff`]) only after a whole
//! round of them has failed. A connection that ends within a second of being made counts as
//! a failure too, so that a server that accepts and drops at once cannot make it spin. Frames
//! pass through a [`FrameOrder`]: after a reconnect or a failover, a frame that is not newer
//! than one already handed out is dropped (and counted), never handed out.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use framing::{Frame, ViewerMessage};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::order::{Admit, FrameOrder};
use crate::{Backoff, SubscribeError, SubscribeOptions, Subscription, subscribe};

/// A connection that lasted less than this and then ended counts as a failed attempt.
const STEADY: Duration = Duration::from_secs(1);

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

/// One address a link dials, and how.
#[derive(Debug)]
struct Dest {
    addr: String,
    options: SubscribeOptions,
}

/// A viewer's connection to a drone or cache-server — or to the first that answers of
/// several.
#[derive(Debug)]
pub struct Link {
    dests: Vec<Dest>,
    /// The address connected to, or to be dialled next.
    at: usize,
    reconnect: bool,
    sub: Option<Subscription>,
    /// When the current connection was made.
    connected_at: Option<Instant>,
    /// Attempts in a row that failed: dials, and connections that did not last.
    failures: u32,
    /// Attempts in a row that were refused (or failed TLS): a whole round of them gives up.
    refusals: u32,
    backoff: Backoff,
    outbox: mpsc::Receiver<Bytes>,
    sender: Outbox,
    /// Said once per connection to a source that takes no messages.
    warned_no_messages: bool,
    /// The source's names for its quality layers, top first, as its last hello gave them.
    layer_names: Vec<String>,
    order: FrameOrder,
    /// The address of the last connection made, if one was.
    last_connected: Option<usize>,
    connects: u64,
    failovers: u64,
    stale: u64,
}

impl Link {
    /// A link to `addr`; with `reconnect` false, losing the server ends it with an error.
    /// `addr` may list several addresses separated by commas (`a:9998,b:9998`), dialled with
    /// the same `options`: the link fails over from one to the next.
    pub fn new(addr: &str, options: SubscribeOptions, reconnect: bool) -> Link {
        let mut addrs: Vec<&str> =
            addr.split(',').map(str::trim).filter(|a| !a.is_empty()).collect();
        if addrs.is_empty() {
            addrs.push(addr);
        }
        let dests = addrs.into_iter().map(|a| (a.to_owned(), options.clone()));
        Link::failover(dests.collect(), reconnect)
    }

    /// A link to the first of `dests` (address, and how to dial it) that answers, failing
    /// over to the next whenever a connection is lost; with `reconnect` false, losing the
    /// server ends it with an error (after a first round of dials that found none). An empty
    /// list fails at the first [`Link::next`].
    pub fn failover(dests: Vec<(String, SubscribeOptions)>, reconnect: bool) -> Link {
        let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let (tx, outbox) = mpsc::channel(OUTBOX_CAPACITY);
        let sender = Outbox { tx, counts: Arc::default() };
        Link {
            dests: dests.into_iter().map(|(addr, options)| Dest { addr, options }).collect(),
            at: 0,
            reconnect,
            sub: None,
            connected_at: None,
            failures: 0,
            refusals: 0,
            backoff,
            outbox,
            sender,
            warned_no_messages: false,
            layer_names: Vec::new(),
            order: FrameOrder::new(),
            last_connected: None,
            connects: 0,
            failovers: 0,
            stale: 0,
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

    /// The address connected to, or to be dialled next.
    pub fn addr(&self) -> &str {
        self.dests.get(self.at).map_or("", |d| d.addr.as_str())
    }

    /// Every address the link dials, in order.
    pub fn addrs(&self) -> impl Iterator<Item = &str> {
        self.dests.iter().map(|d| d.addr.as_str())
    }

    /// The address of the connection in use; `None` while there is none.
    pub fn current(&self) -> Option<&str> {
        self.sub.as_ref().map(|_| self.addr())
    }

    /// Connections made so far.
    pub fn connects(&self) -> u64 {
        self.connects
    }

    /// Connections made to another address than the connection before them.
    pub fn failovers(&self) -> u64 {
        self.failovers
    }

    /// Frames dropped because they were not newer than one handed out already (a relay's
    /// cached frame again after a reconnect, a lagging relay's after a failover).
    pub fn stale_frames(&self) -> u64 {
        self.stale
    }

    /// Dials the next address (after a pause if a whole round has failed). `Ok(None)`: it
    /// failed, dial again.
    async fn dial(&mut self) -> Result<Option<Event>, SubscribeError> {
        let n = self.dests.len();
        let Some(dest) = self.dests.get(self.at) else {
            let cause = std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address given");
            return Err(SubscribeError::Connect { addr: String::new(), cause });
        };
        if self.failures > 0 && (self.failures as usize).is_multiple_of(n) {
            self.backoff.wait().await;
        }
        // Messages sent while there was no connection are stale: drop them.
        while self.outbox.try_recv().is_ok() {
            self.sender.counts.count(false);
        }
        let err = match subscribe(&dest.addr, &dest.options).await {
            Ok(sub) => {
                self.failures = 0;
                self.refusals = 0;
                self.backoff.reset();
                self.warned_no_messages = false;
                let agent = sub.source_hello().agent.clone();
                self.order.connected(&sub.source_hello().stream);
                let layers = &sub.source_hello().layers;
                self.layer_names = framing::layers::parse_names(layers).unwrap_or_default();
                let previous = self.last_connected.replace(self.at);
                match previous.filter(|&p| p != self.at) {
                    Some(p) => {
                        self.failovers += 1;
                        let from = &self.dests[p].addr;
                        info!(addr = %dest.addr, %agent, %from, "connected (failed over)");
                    }
                    None => info!(addr = %dest.addr, %agent, "connected"),
                }
                self.connects += 1;
                self.connected_at = Some(Instant::now());
                self.sub = Some(sub);
                return Ok(Some(Event::Connected(agent)));
            }
            Err(err) => err,
        };
        // Redialling changes neither: the server said no, or its certificate is not the one
        // trusted. Another address may say yes; when every one of a round says no, give up.
        let fatal = matches!(err, SubscribeError::Refused { .. } | SubscribeError::Tls { .. });
        self.refusals = if fatal { self.refusals + 1 } else { 0 };
        self.failures += 1;
        if (fatal && self.refusals as usize >= n)
            || (!self.reconnect && self.failures as usize >= n)
        {
            return Err(err);
        }
        if (self.failures as usize) <= n {
            match n {
                1 => warn!(%err, "server unavailable; retrying"),
                _ => warn!(%err, "server unavailable; trying the next"),
            }
        } else {
            debug!(%err, "server still unavailable");
        }
        self.at = (self.at + 1) % n;
        Ok(None)
    }

    /// The next event; meanwhile, messages in the outbox go to the source. Errors only when
    /// the link gives up: without `reconnect`, or when the server (every server) refuses us.
    pub async fn next(&mut self) -> Result<Event, SubscribeError> {
        loop {
            let Some(sub) = self.sub.as_mut() else {
                if let Some(event) = self.dial().await? {
                    return Ok(event);
                }
                continue;
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
                Ok(Some(frame)) => {
                    let now = Instant::now();
                    match self.order.admit(frame.header(), now) {
                        Admit::Newer => return Ok(Event::Frame(frame, now)),
                        Admit::Stale => {
                            self.stale += 1;
                            continue;
                        }
                        Admit::Restarted => {
                            let after = FrameOrder::GIVE_UP_AFTER;
                            info!(
                                "frames older than the last one shown for {after:?}: taking the source as restarted"
                            );
                            return Ok(Event::Frame(frame, now));
                        }
                    }
                }
                Ok(None) => format!("{} closed the stream", self.addr()),
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

    /// The connection is gone: dial the next address, or give up without `reconnect`.
    fn lost(&mut self, why: String) -> Result<(), SubscribeError> {
        self.sub = None;
        if !self.reconnect {
            return Err(SubscribeError::Closed { addr: self.addr().to_owned(), why });
        }
        let lasted = self.connected_at.take().is_some_and(|at| at.elapsed() >= STEADY);
        self.failures = if lasted { 0 } else { self.failures + 1 };
        self.at = (self.at + 1) % self.dests.len().max(1);
        if self.dests.len() > 1 {
            warn!(reason = %why, next = %self.addr(), "connection lost; failing over");
        } else {
            warn!(reason = %why, "connection lost; reconnecting");
        }
        Ok(())
    }

    /// Says goodbye to the server, if connected.
    pub async fn close(mut self) {
        if let Some(sub) = self.sub.take() {
            sub.close().await;
        }
    }
}
