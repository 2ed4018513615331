//! Life as a systemd service (`Type=notify`, `WatchdogSec=`), through the `sd-notify` crate.
//! Does nothing unless systemd (or a test) set `NOTIFY_SOCKET`.
//!
//! - `READY=1` (with a `STATUS=` line for `systemctl status`) once the server's serving loop
//!   runs: the first beat of its [`Pulse`], which comes as its accept loop starts. The drone
//!   gets there after its listener is bound and its source is open; the cache-server once it
//!   serves viewers, whether or not its upstream is up yet (viewers then see "source offline"
//!   until it is, which is what they should see).
//!   systemd arms the watchdog only then (systemd.service(5), `WatchdogSec=`), so nothing is
//!   owed before.
//! - `WATCHDOG=1` every half `WATCHDOG_USEC`, from a thread of its own, but only while the
//!   pulse is fresh: the heartbeat ticker that stamps it runs on the runtime that serves the
//!   viewers, so when that runtime stalls (every worker blocked, a deadlock) the pings stop and
//!   systemd restarts the service. A stopped process (`SIGSTOP`) pings nothing either.
//! - `STOPPING=1` as soon as shutdown begins.

use std::time::{Duration, Instant};

use relay::{Pulse, ServerConfig};
use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// How many heartbeat periods the pulse may miss before the serving loop counts as stalled.
const MISSED_BEATS: u32 = 3;

/// Tells systemd, if it is listening, when the server described by `config` is ready, that it
/// is still alive, and when it stops (see the [module](self) documentation). `status` is the
/// line `systemctl status` shows once it is ready. Must be called inside a tokio runtime.
pub fn notify(config: &ServerConfig, shutdown: &CancellationToken, status: String) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    let pulse = config.pulse.clone();
    let mut beats = pulse.subscribe();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = stop.cancelled() => {}
            first = async { beats.wait_for(Option::is_some).await.is_ok() } => {
                if first {
                    send(&[NotifyState::Ready, NotifyState::Status(&status)]);
                    debug!("told systemd: ready");
                }
                stop.cancelled().await;
            }
        }
        send(&[NotifyState::Stopping, NotifyState::Status("shutting down")]);
    });
    if let Some(timeout) = sd_notify::watchdog_enabled().filter(|t| !t.is_zero()) {
        let stale_after = config.heartbeat_every.saturating_mul(MISSED_BEATS);
        let watchdog = Watchdog { pulse, stale_after };
        let every = (timeout / 2).max(Duration::from_millis(10));
        let stop = shutdown.clone();
        let spawned = std::thread::Builder::new()
            .name("watchdog".into())
            .spawn(move || watchdog.run(every, &stop));
        if let Err(err) = spawned {
            warn!(%err, "could not start the watchdog thread; systemd will restart the service");
        }
    }
}

/// Decides, at each ping, whether the serving loop is alive.
#[derive(Debug)]
pub struct Watchdog {
    /// The server's pulse.
    pub pulse: Pulse,
    /// How old the last beat may be for the loop to count as alive.
    pub stale_after: Duration,
}

impl Watchdog {
    /// Whether to ping now: the pulse has beaten, and not longer than `stale_after` ago.
    /// Before the first beat (the source still opening) there is nothing to vouch for.
    pub fn alive(&self, now: Instant) -> bool {
        self.pulse
            .last_beat()
            .is_some_and(|at| now.saturating_duration_since(at) <= self.stale_after)
    }

    /// Pings every `every` while [`alive`](Self::alive), until `stop`; says once per stall
    /// that it holds the pings back.
    fn run(self, every: Duration, stop: &CancellationToken) {
        let mut stalled = false;
        loop {
            std::thread::sleep(every);
            if stop.is_cancelled() {
                return;
            }
            if self.alive(Instant::now()) {
                stalled = false;
                send(&[NotifyState::Watchdog]);
            } else if self.pulse.last_beat().is_some() && !std::mem::replace(&mut stalled, true) {
                let stale_after = self.stale_after;
                warn!(
                    ?stale_after,
                    "the serving loop has stopped ticking; not pinging the watchdog"
                );
            }
        }
    }
}

/// Sends `states` to systemd; a failure is logged (at most once a minute) and otherwise
/// ignored: systemd then acts as if nothing had been said (a start timeout, a watchdog restart).
fn send(states: &[NotifyState<'_>]) {
    static LAST_WARNING: std::sync::Mutex<Option<Instant>> = std::sync::Mutex::new(None);
    if let Err(err) = sd_notify::notify(states) {
        let mut last = LAST_WARNING.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.is_none_or(|at| at.elapsed() > Duration::from_secs(60)) {
            *last = Some(Instant::now());
            warn!(%err, "could not notify systemd (NOTIFY_SOCKET)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// Polls `check` until it holds, for up to 10 s.
    fn eventually(check: impl Fn() -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if check() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    /// A server whose runtime stalls stops the pulse, and with it the pings; once it runs
    /// again the pulse is fresh again. The runtime is blocked from inside, as a stuck task
    /// would block it.
    #[test]
    fn pings_stop_while_the_serving_runtime_is_blocked() -> anyhow::Result<()> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let config =
            ServerConfig { heartbeat_every: Duration::from_millis(20), ..ServerConfig::default() };
        let watchdog = Watchdog {
            pulse: config.pulse.clone(),
            stale_after: config.heartbeat_every * MISSED_BEATS,
        };
        assert!(!watchdog.alive(Instant::now()), "no ping before the server runs");
        let (block, blocked) = tokio::sync::oneshot::channel::<()>();
        let (unblock, until) = mpsc::channel::<()>();
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        let serving = std::thread::spawn(move || -> anyhow::Result<()> {
            runtime.block_on(async move {
                let listener = relay::socket::listen("127.0.0.1:0".parse()?)?;
                let (hub, _stream) = relay::Hub::single(config, relay::Stream::new("s", 1 << 20));
                let server = tokio::spawn(relay::Server::new(hub).run(listener, stop.clone()));
                let _ = blocked.await;
                // A blocking wait inside the runtime: every task on it is stuck behind this.
                let _ = until.recv();
                stop.cancelled().await;
                server.await?;
                Ok(())
            })
        });
        assert!(eventually(|| watchdog.alive(Instant::now())), "serving: the pulse is fresh");
        let _ = block.send(());
        assert!(eventually(|| !watchdog.alive(Instant::now())), "blocked: the pulse went stale");
        std::thread::sleep(Duration::from_millis(200));
        assert!(!watchdog.alive(Instant::now()), "still blocked, still stale");
        unblock.send(())?;
        assert!(eventually(|| watchdog.alive(Instant::now())), "unblocked: fresh again");
        shutdown.cancel();
        serving.join().map_err(|_| anyhow::anyhow!("the serving thread panicked"))??;
        Ok(())
    }
}
