//! The command-line glue every dronecast binary shares, kept out of the network library so
//! that a program embedding `relay` does not pull in clap or tracing-subscriber.
//!
//! # Layout
//! - [`args`] — flags shared by the servers ([`ServeArgs`]) and value parsers with one rule
//!   each for seconds, sizes and counts, checked when the command line is parsed.
//! - [`security`] — token and TLS flags: [`security::Protect`] for servers, [`security::Dial`]
//!   for dialers.
//! - [`logging`] — the tracing subscriber: stderr, `RUST_LOG`, no colours off a terminal.
//! - [`signal`] — a cancellation token fired by SIGINT or SIGTERM; a reload count SIGHUP bumps.
//! - [`exit_code`] — how `main` reports an error: the whole chain of causes on one line.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod args;
pub mod logging;
pub mod security;
pub mod signal;

pub use args::ServeArgs;
pub use logging::init_logging;
pub use signal::{reload_on_sighup, shutdown_on_signal};

/// A listener on `addr`, or an error that says which address and what to check.
pub fn listen(addr: std::net::SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    use anyhow::Context;
    relay::socket::listen(addr)
        .with_context(|| format!("could not listen on {addr} (port in use, or not this host's?)"))
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
