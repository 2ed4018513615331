//! [`Link`]: the viewer's connection to a server, redialled when it drops (unless told not
//! to), as a sequence of [`Event`]s.

use std::time::Duration;

use framing::Frame;
use relay::{Backoff, SubscribeOptions, Subscription, subscribe};
use tokio::time::Instant;
use tracing::{info, warn};

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

/// A viewer's connection to a drone or cache-server.
#[derive(Debug)]
pub struct Link {
    addr: String,
    options: SubscribeOptions,
    reconnect: bool,
    sub: Option<Subscription>,
    failures: u32,
    backoff: Backoff,
}

impl Link {
    /// A link to `addr`; with `reconnect` false, losing the server ends it with an error.
    pub fn new(addr: &str, options: SubscribeOptions, reconnect: bool) -> Link {
        let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        Link { addr: addr.to_owned(), options, reconnect, sub: None, failures: 0, backoff }
    }

    /// The next event. Errors only when the link gives up: without `reconnect`, or when the
    /// server refuses us.
    pub async fn next(&mut self) -> anyhow::Result<Event> {
        loop {
            let Some(sub) = self.sub.as_mut() else {
                if self.failures > 0 {
                    self.backoff.wait().await;
                }
                match subscribe(&self.addr, &self.options).await {
                    Ok(sub) => {
                        self.failures = 0;
                        self.backoff.reset();
                        let agent = sub.source_hello().agent.clone();
                        info!(addr = %self.addr, %agent, "connected");
                        self.sub = Some(sub);
                        return Ok(Event::Connected(agent));
                    }
                    Err(err @ relay::SubscribeError::Refused { .. }) => return Err(err.into()),
                    Err(err) if !self.reconnect => return Err(err.into()),
                    Err(err) => {
                        if self.failures == 0 {
                            warn!(%err, "server unavailable; retrying");
                        }
                        self.failures += 1;
                        continue;
                    }
                }
            };
            let lost = match sub.next_frame().await {
                Ok(Some(frame)) => return Ok(Event::Frame(frame, Instant::now())),
                Ok(None) => format!("{} closed the stream", self.addr),
                Err(err) => err.to_string(),
            };
            self.sub = None;
            if !self.reconnect {
                anyhow::bail!("{lost}");
            }
            warn!(reason = %lost, "connection lost; reconnecting");
            self.failures = 1;
            return Ok(Event::Lost(lost));
        }
    }

    /// Says goodbye to the server, if connected.
    pub async fn close(mut self) {
        if let Some(sub) = self.sub.take() {
            sub.close().await;
        }
    }
}
