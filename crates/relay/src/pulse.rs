//! [`Pulse`]: the sign of life a [`Server`](crate::Server) gives the program that runs it.
//!
//! The server's shared heartbeat ticker — the task that paces every viewer's heartbeat, on the
//! runtime that serves the viewers — stamps the pulse at each tick (every
//! [`ServerConfig::heartbeat_every`](crate::ServerConfig::heartbeat_every)); the first stamp
//! comes as the accept loop starts. So a program can tell "serving" from "not yet" (the first
//! beat) and "still serving" from "stalled" (the age of the last beat) without knowing anything
//! of the server's insides, and the library knows nothing of who listens: a service manager's
//! readiness and watchdog (the `cli` crate's `systemd` module), a health check, nothing at all.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;

/// When the serving loop last ticked; `None` until it first does. Cheap to clone: clones share
/// the one pulse.
#[derive(Debug, Clone)]
pub struct Pulse(Arc<watch::Sender<Option<Instant>>>);

impl Pulse {
    /// A pulse that has not beaten yet.
    pub fn new() -> Pulse {
        Pulse(Arc::new(watch::Sender::new(None)))
    }

    /// Follows the beats: the receiver's value is the instant of the last one.
    pub fn subscribe(&self) -> watch::Receiver<Option<Instant>> {
        self.0.subscribe()
    }

    /// The instant of the last beat, if there was one.
    pub fn last_beat(&self) -> Option<Instant> {
        *self.0.borrow()
    }

    /// Stamps the pulse with now. Never waits, whoever listens (or nobody).
    pub(crate) fn beat(&self) {
        self.0.send_replace(Some(Instant::now()));
    }
}

impl Default for Pulse {
    fn default() -> Self {
        Pulse::new()
    }
}
