//! The upstream link: dial the drone (or another cache-server), publish every frame it sends,
//! and redial with capped exponential backoff whenever it is absent or drops. Viewers never
//! notice beyond a pause in fresh frames: they are served from the watch channel, not from
//! this connection.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use framing::ViewerMessage;
use relay::{Backoff, Hub, Stream, SubscribeError, SubscribeOptions, Target, subscribe};
use tokio::sync::mpsc;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// State of the upstream link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamState {
    /// Dialling for the first time.
    Connecting,
    /// Connected and receiving.
    Up,
    /// Lost or never reached; redialling.
    Down,
    /// Shut down.
    Stopped,
}

impl fmt::Display for UpstreamState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UpstreamState::Connecting => "connecting",
            UpstreamState::Up => "up",
            UpstreamState::Down => "down",
            UpstreamState::Stopped => "stopped",
        })
    }
}

/// Counters of the upstream link, and the stream it feeds.
#[derive(Debug)]
pub struct UpstreamStats {
    stream: Arc<Stream>,
    state: watch::Sender<UpstreamState>,
    connects: AtomicU64,
    dials: AtomicU64,
}

impl UpstreamStats {
    pub(crate) fn new(stream: Arc<Stream>) -> UpstreamStats {
        UpstreamStats {
            stream,
            state: watch::Sender::new(UpstreamState::Connecting),
            connects: AtomicU64::new(0),
            dials: AtomicU64::new(0),
        }
    }

    /// The link's state now.
    pub fn state(&self) -> UpstreamState {
        *self.state.borrow()
    }

    /// A receiver that sees every change of state.
    pub fn watch_state(&self) -> watch::Receiver<UpstreamState> {
        self.state.subscribe()
    }

    /// Frames received from upstream so far.
    pub fn frames_in(&self) -> u64 {
        self.stream.totals().frames_in
    }

    /// Bytes received from upstream so far (wire bytes).
    pub fn bytes_in(&self) -> u64 {
        self.stream.totals().bytes_in
    }

    /// Successful connections so far (1 + reconnections).
    pub fn connects(&self) -> u64 {
        self.connects.load(Ordering::Relaxed)
    }

    /// Connection attempts so far, whether or not they got past the handshake.
    pub fn dials(&self) -> u64 {
        self.dials.load(Ordering::Relaxed)
    }

    /// The link's state changes; the stream's source status follows, for `/state` and
    /// `/metrics`.
    fn set_state(&self, state: UpstreamState, agent: Option<&str>) {
        self.state.send_replace(state);
        let reconnects = self.connects().saturating_sub(1);
        self.stream.update_source(|source| {
            source.state = match state {
                UpstreamState::Connecting => "connecting",
                UpstreamState::Up => "up",
                UpstreamState::Down => "down",
                UpstreamState::Stopped => "stopped",
            };
            if let Some(agent) = agent {
                source.agent = agent.to_owned();
            }
            source.reconnects = reconnects;
        });
    }
}

/// One upstream link: where it dials, and the stream it feeds.
pub(crate) struct Link {
    /// The upstream and the stream asked of it.
    pub target: Target,
    /// How to dial it.
    pub options: SubscribeOptions,
    /// How to pace redials.
    pub backoff: Backoff,
    /// Its counters and the stream it publishes into.
    pub stats: Arc<UpstreamStats>,
    /// Messages from the stream's viewers, for the upstream.
    pub inbox: mpsc::Receiver<ViewerMessage>,
    /// For a bare `HOST:PORT`: the hub in which the name the upstream reports for its stream
    /// becomes an alias of ours.
    pub alias_in: Option<Arc<Hub>>,
}

/// Runs the link until `shutdown`.
pub(crate) async fn run(link: Link, shutdown: CancellationToken) {
    let Link { target, mut options, mut backoff, stats, mut inbox, alias_in } = link;
    options.stream = target.stream.clone();
    let addr = target.addr.clone();
    stats.stream.update_source(|source| source.from = target.to_string());
    let mut down_since: Option<Instant> = None;
    let mut attempts = 0u64;
    loop {
        attempts += 1;
        stats.dials.fetch_add(1, Ordering::Relaxed);
        let dialled = tokio::select! {
            _ = shutdown.cancelled() => break,
            dialled = subscribe(&addr, &options) => dialled,
        };
        match dialled {
            Ok(mut sub) => {
                let agent = sub.source_hello().agent.clone();
                if let Some(hub) = &alias_in {
                    hub.set_alias(&sub.source_hello().stream, stats.stream.name());
                }
                let layers = &sub.source_hello().layers;
                match framing::layers::parse_names(layers) {
                    Some(names) => stats.stream.set_layer_names(names),
                    None => {
                        let layers = framing::text::printable(layers.as_bytes());
                        warn!(%layers, "upstream names its layers wrongly; using their numbers");
                        stats.stream.set_layer_names(Vec::new());
                    }
                }
                match down_since.take() {
                    Some(since) => info!(
                        %agent, down_for = ?since.elapsed(), attempts, "upstream back"
                    ),
                    None => info!(%agent, "upstream connected"),
                }
                attempts = 0;
                stats.connects.fetch_add(1, Ordering::Relaxed);
                stats.set_state(UpstreamState::Up, Some(&agent));
                // What viewers said while the upstream was away is stale: not handed on.
                while inbox.try_recv().is_ok() {
                    stats.stream.count_dropped_message();
                }
                let mut warned_no_messages = false;
                let mut received = 0u64;
                let ended = loop {
                    let next = tokio::select! {
                        _ = shutdown.cancelled() => {
                            sub.close().await;
                            stats.set_state(UpstreamState::Stopped, None);
                            return;
                        }
                        next = sub.next_frame() => next,
                        Some(message) = inbox.recv() => {
                            match sub.send_message(&message).await {
                                Ok(()) => {}
                                Err(err @ SubscribeError::NoMessages { .. }) => {
                                    stats.stream.count_dropped_message();
                                    if !std::mem::replace(&mut warned_no_messages, true) {
                                        warn!(%err, "viewer messages dropped");
                                    }
                                }
                                Err(err) => {
                                    stats.stream.count_dropped_message();
                                    break err.to_string();
                                }
                            }
                            continue;
                        }
                    };
                    match next {
                        Ok(Some(frame)) => {
                            received += 1;
                            // Never too large: the subscription has the same limit.
                            if let Err(err) = stats.stream.publish(frame) {
                                warn!(%err, "frame from upstream not relayed");
                            }
                        }
                        Ok(None) => break "upstream closed the stream".to_owned(),
                        Err(err) => break err.to_string(),
                    }
                };
                warn!(reason = %ended, frames = received, "upstream lost; redialling");
                if received > 0 {
                    backoff.reset();
                }
                down_since = Some(Instant::now());
            }
            Err(err) => {
                if attempts == 1 {
                    warn!(%err, "upstream unavailable; redialling with backoff up to {:?}", backoff.max);
                } else {
                    debug!(%err, attempts, "upstream still unavailable");
                }
                down_since.get_or_insert_with(Instant::now);
            }
        }
        stats.set_state(UpstreamState::Down, None);
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = backoff.wait() => {}
        }
    }
    stats.set_state(UpstreamState::Stopped, None);
}
