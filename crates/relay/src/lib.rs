//! The network side that every dronecast binary shares.
//!
//! A *source* (the drone, or a cache-server's viewer port) publishes its newest frame into a
//! `tokio::sync::watch` channel and runs a [`Server`] over it; every connected viewer gets
//! its own task that writes the newest frame whenever that viewer's socket can take one. A
//! *viewer* (the client, a cache-server dialling upstream, the bench) uses [`subscribe`].
//!
//! Because both the drone and the cache-server serve through the same [`Server`], a
//! cache-server can take another cache-server as its upstream.
//!
//! # Layout
//! - [`server`] — [`Server`]: accept loop, handshake, per-viewer latest-frame writer, limits.
//! - [`publish`] — [`Publisher`]: where a source puts its newest frame; refuses oversized ones.
//! - [`subscriber`] — [`subscribe`] and [`Subscription`]: dial a source, read its frames.
//! - [`socket`] — the TCP options every connection gets (no-delay, keepalive, low watermark).
//! - [`backoff`] — capped exponential pauses between retries.
//! - [`clock`] — capture timestamps in µs since the Unix epoch.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod backoff;
pub mod clock;
pub mod publish;
pub mod server;
pub mod socket;
pub mod subscriber;

pub use backoff::Backoff;
pub use publish::{FrameTooLarge, Publisher};
pub use server::{Server, ServerConfig, ServerStats};
pub use subscriber::{SubscribeError, SubscribeOptions, Subscription, subscribe};

/// The newest frame of a stream, shared by every viewer task. `None` until the first frame.
pub type Latest = tokio::sync::watch::Receiver<Option<framing::Frame>>;
