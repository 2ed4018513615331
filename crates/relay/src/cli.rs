//! What every binary's `main` shares: logging, the shutdown signal, and the server flags.

use std::io::IsTerminal;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

use crate::ServerConfig;

/// Flags of every program that serves viewers (drone, cache-server).
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Most viewers served at once (connections still in their handshake count); one more is
    /// sent a "server full" refusal and closed.
    #[arg(long, env = "DRONECAST_MAX_VIEWERS", default_value_t = 10_000)]
    pub max_viewers: usize,
    /// Seconds a new connection has to send its complete hello; then it is dropped.
    #[arg(long, env = "DRONECAST_HANDSHAKE_TIMEOUT", default_value_t = 5.0)]
    pub handshake_timeout: f64,
    /// Seconds a viewer's socket may take to accept one frame; a viewer that takes nothing
    /// for this long (a laptop gone to sleep, a stuck program) is dropped.
    #[arg(long, env = "DRONECAST_VIEWER_TIMEOUT", default_value_t = 30.0)]
    pub viewer_timeout: f64,
    /// Bytes of unsent data the kernel may hold per viewer (TCP_NOTSENT_LOWAT). A small cap
    /// makes a slow viewer's writer pick its next frame late, so it gets a fresh one rather
    /// than one that waited behind a deep buffer. 0 leaves the kernel default.
    #[arg(long, env = "DRONECAST_NOTSENT_LOWAT", default_value_t = 16 * 1024)]
    pub notsent_lowat: u32,
}

impl ServeArgs {
    /// The server configuration these flags describe.
    pub fn config(&self, agent: &str) -> Result<ServerConfig, String> {
        let secs = |name: &str, v: f64| {
            Duration::try_from_secs_f64(v)
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or_else(|| format!("--{name} must be a positive number of seconds, not {v}"))
        };
        Ok(ServerConfig {
            agent: agent.to_owned(),
            max_viewers: self.max_viewers,
            handshake_timeout: secs("handshake-timeout", self.handshake_timeout)?,
            viewer_timeout: secs("viewer-timeout", self.viewer_timeout)?,
            notsent_lowat: (self.notsent_lowat > 0).then_some(self.notsent_lowat),
            ..ServerConfig::default()
        })
    }
}

/// The exit code for how `main` went; an error is printed with its whole chain of causes
/// (`error: could not open source 'x': …`), never as a debug dump.
pub fn exit_code<E: std::fmt::Display>(outcome: Result<(), E>) -> std::process::ExitCode {
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Logs to stderr; `RUST_LOG` overrides the default level (`info`).
pub fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

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
