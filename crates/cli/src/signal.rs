//! Signals: SIGINT and SIGTERM shut down ([`shutdown_on_signal`]); SIGHUP asks for a reload
//! ([`reload_on_sighup`]).

use tokio_util::sync::CancellationToken;

/// A token cancelled on the first SIGINT (Ctrl-C) or SIGTERM. Must be called inside a tokio
/// runtime. The handlers are installed before this returns, so a signal that arrives as soon
/// as the program says it is ready is not lost (nor does it kill the process outright).
pub fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    let signals = Signals::install();
    tokio::spawn(async move {
        let name = signals.recv().await;
        tracing::info!("{name} received; shutting down");
        cancel.cancel();
    });
    token
}

#[cfg(unix)]
struct Signals {
    int: Option<tokio::signal::unix::Signal>,
    term: Option<tokio::signal::unix::Signal>,
}

#[cfg(unix)]
impl Signals {
    fn install() -> Signals {
        use tokio::signal::unix::{SignalKind, signal};
        Signals {
            int: signal(SignalKind::interrupt()).ok(),
            term: signal(SignalKind::terminate()).ok(),
        }
    }

    async fn recv(mut self) -> &'static str {
        async fn next(signal: Option<&mut tokio::signal::unix::Signal>) {
            match signal {
                Some(signal) => {
                    signal.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            _ = next(self.int.as_mut()) => "SIGINT",
            _ = next(self.term.as_mut()) => "SIGTERM",
        }
    }
}

#[cfg(not(unix))]
struct Signals;

#[cfg(not(unix))]
impl Signals {
    fn install() -> Signals {
        Signals
    }

    async fn recv(self) -> &'static str {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}

/// A counter bumped at every SIGHUP, the signal `systemctl reload` sends: the one place where
/// "re-read what can be re-read" starts. Whatever can be reloaded watches the receiver
/// (`changed().await`) and does so; the mains log each reload. Installing the handler means a
/// SIGHUP never ends the process (its default action). Must be called inside a tokio runtime.
pub fn reload_on_sighup() -> tokio::sync::watch::Receiver<u64> {
    let (count, reloads) = tokio::sync::watch::channel(0_u64);
    #[cfg(unix)]
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(mut hangups) => {
            tokio::spawn(async move {
                while hangups.recv().await.is_some() {
                    count.send_modify(|n| *n = n.wrapping_add(1));
                    if count.is_closed() {
                        return;
                    }
                }
            });
        }
        Err(err) => tracing::warn!(%err, "could not install a SIGHUP handler; reloads are off"),
    }
    #[cfg(not(unix))]
    drop(count);
    reloads
}
