//! dronecast: live camera video from one small machine to many screens over TCP.
//!
//! This root crate holds the demo (`examples/demo.rs`) and the end-to-end tests (`tests/`);
//! it re-exports the workspace's crates so both can start every part in-process:
//!
//! - [`framing`] — the wire format.
//! - [`relay`] — the fan-out server and the subscriber every binary shares.
//! - [`drone`] — capture and serve (binary `drone`).
//! - [`cache_server`] — relay one stream to many viewers (binary `cache-server`).
//! - [`client`] — the viewer (binary `client`).
//!
//! See `ARCHITECTURE.md` for how a frame travels from camera to window.

#![forbid(unsafe_code)]

pub use cache_server;
pub use client;
pub use drone;
pub use framing;
pub use relay;
