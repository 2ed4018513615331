//! The dronecast viewer: receives a stream from a cache-server (or a drone), decodes the JPEG
//! frames and shows them in a window, or measures them headless; hands on the data that comes
//! with the frames and sends the source messages.
//!
//! # Layout
//! - [`decode`] — bounded JPEG decoding into a reused buffer: only at the size the frame
//!   header says, within `framing::MAX_DIMENSION`; failures logged once per burst.
//! - [`meta`] — a frame's metadata as a JSON line (`--print-meta`, the recording's sidecar)
//!   or a short ASCII line (`--show-meta`).
//! - [`send`] — messages to the source: `--send`, `--send-stdin`, the window's keys.
//! - [`record`] — `--record`: the received JPEGs as an MJPEG file, their metadata beside it.
//! - [`report`] — per-viewer measurements (order, freshness, rate) in constant memory, and
//!   their report (JSON, or one line).
//! - [`servers`] — [`Servers`]: the server to watch, or several to fail over between.
//! - [`headless`] — receive N frames without a window, optionally recording them; the
//!   `--headless` program (report on stdout, exit status).
//! - [`window`] — the minifb window.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod decode;
pub mod headless;
pub mod meta;
pub mod record;
pub mod report;
pub mod send;
pub mod servers;
pub mod window;

use framing::message::MAX_NAME_LEN;
pub use report::Report;
pub use servers::Servers;

/// How the client dials: its agent (`client/0.1.0`), its name ([`default_name`]), and the
/// relay's choice of quality layer for its link.
pub fn subscribe_options() -> relay::SubscribeOptions {
    relay::SubscribeOptions {
        agent: concat!("client/", env!("CARGO_PKG_VERSION")).into(),
        name: default_name(),
        features: framing::features::LAYERS,
        layers: framing::layers::AUTO.to_owned(),
        ..relay::SubscribeOptions::default()
    }
}

/// The name a client gives itself when not told one: this machine's host name, made
/// printable and cut to [`MAX_NAME_LEN`] bytes; `client` if there is none.
pub fn default_name() -> String {
    let host = framing::text::printable(gethostname::gethostname().as_encoded_bytes());
    let mut end = host.len().min(MAX_NAME_LEN);
    while !host.is_char_boundary(end) {
        end -= 1;
    }
    match host[..end].trim() {
        "" => "client".to_owned(),
        name => name.to_owned(),
    }
}

/// Checks a name given with `--name`: 1 to [`MAX_NAME_LEN`] bytes, no control characters.
pub fn name(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        return Err("must not be empty".into());
    }
    if s.len() > MAX_NAME_LEN {
        return Err(format!("is {} bytes; a name has at most {MAX_NAME_LEN}", s.len()));
    }
    if !framing::text::is_printable(s) {
        return Err("must not contain control characters".into());
    }
    Ok(s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_and_the_default_is_usable() {
        assert_eq!(name("ground-1").as_deref(), Ok("ground-1"));
        assert!(name("").is_err());
        assert!(name("a\nb").is_err());
        assert_eq!(name(&"x".repeat(65)), Err("is 65 bytes; a name has at most 64".into()));
        let default = default_name();
        assert_eq!(name(&default), Ok(default.clone()), "the default passes its own check");
    }
}
