//! Logging for the binaries.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Logs to stderr; `RUST_LOG` overrides the default level (`info`). Colours only when stderr
/// is a terminal, so that a journal or a log file gets plain lines.
pub fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
