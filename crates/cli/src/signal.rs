//! The shutdown signal.

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

/// A receiver whose value goes up at every SIGHUP: what a server re-reads on it (its stream
/// configuration, a token file, a certificate) watches this. Installed before this returns, so
/// a SIGHUP does not kill the process once it runs. Must be called inside a tokio runtime.
pub fn reload_on_sighup() -> tokio::sync::watch::Receiver<u64> {
    let (tx, rx) = tokio::sync::watch::channel(0u64);
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::hangup()) {
            Ok(mut hup) => {
                tokio::spawn(async move {
                    while hup.recv().await.is_some() {
                        tracing::info!("SIGHUP received; reloading");
                        tx.send_modify(|n| *n += 1);
                    }
                });
            }
            Err(err) => tracing::warn!(%err, "cannot catch SIGHUP; reloading is off"),
        }
    }
    #[cfg(not(unix))]
    drop(tx);
    rx
}
