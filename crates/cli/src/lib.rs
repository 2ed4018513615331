//! The command-line glue every dronecast binary shares, kept out of the network library so
//! that a program embedding `relay` does not pull in clap or tracing-subscriber.
//!
//! # Layout
//! - [`args`] — flags shared by the servers ([`ServeArgs`]) and value parsers with one rule
//!   each for seconds, sizes and counts, checked when the command line is parsed.
//! - [`security`] — token and TLS flags: [`security::Protect`] for servers, [`security::Dial`]
//!   for dialers.
//! - [`logging`] — the tracing subscriber: stderr, `RUST_LOG`, `--log-format text|json`, one
//!   line per event, no colours off a terminal, syslog priorities into the journal.
//! - [`signal`] — a cancellation token fired by SIGINT or SIGTERM; a reload counter bumped by
//!   SIGHUP.
//! - [`systemd`] — `Type=notify` readiness, the watchdog fed by the server's pulse, stopping.
//! - [`version`] — what `--version` prints: the program's and the protocol's version.
//! - [`exit_code`] — how `main` reports an error: the whole chain of causes on one line.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod args;
pub mod logging;
pub mod security;
pub mod signal;
pub mod systemd;

pub use args::ServeArgs;
pub use logging::{LogArgs, LogFormat, init_logging};
pub use signal::{reload_on_sighup, shutdown_on_signal};

/// What `--version` prints after the program's name: `0.1.0 (dronecast protocol 1)`, from the
/// program's own crate version (`env!("CARGO_PKG_VERSION")` in its `main.rs`) and
/// [`framing::PROTOCOL_VERSION`], which must match on both ends of a connection.
pub fn version(crate_version: &str) -> String {
    format!("{crate_version} (dronecast protocol {})", framing::PROTOCOL_VERSION)
}

/// A listener on `addr`, or an error that says which address and what to check.
pub fn listen(addr: std::net::SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    use anyhow::Context;
    relay::socket::listen(addr)
        .with_context(|| format!("could not listen on {addr} (port in use, or not this host's?)"))
}

/// The exit code for how `main` went; an error is printed with its whole chain of causes
/// (`error: could not open source 'x': …`), never as a debug dump, on one line: with
/// `--log-format json` as one more JSON log line (level `ERROR`), so that every line parses.
pub fn exit_code<E: std::fmt::Display>(outcome: Result<(), E>) -> std::process::ExitCode {
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            let text = format!("{err:#}").replace('\n', "\\n");
            match logging::format() {
                LogFormat::Text => eprintln!("error: {text}"),
                LogFormat::Json => tracing::error!("error: {text}"),
            }
            std::process::ExitCode::FAILURE
        }
    }
}
