//! The network side that every dronecast binary shares.
//!
//! A *source* (the drone, or a cache-server's upstream link) publishes its newest frame into
//! a [`Stream`]; a [`Hub`] holds a process's streams and the limits its ports share; the
//! [`Server`] (dronecast protocol over TCP) and the [`HttpServer`] (MJPEG, snapshots, status
//! page, metrics) serve them. Every viewer gets its own task that writes the newest frame
//! whenever that viewer's socket can take one. A *viewer* (the client, a cache-server
//! dialling upstream, the bench) uses [`subscribe`].
//!
//! Because both the drone and the cache-server serve through the same [`Server`], a
//! cache-server can take another cache-server as its upstream.
//!
//! # Layout
//! - [`stream`] — [`Stream`]: the newest frame, the source's status, counters and viewers.
//! - [`viewers`] — [`ViewerTable`]: who watches a stream and how it is going for each.
//! - [`hub`] — [`Hub`]: the streams of a process and the viewer places all ports share.
//! - [`server`] — [`Server`]: accept loop, handshake, per-viewer latest-frame writer.
//! - [`delivery`] — [`delivery::Delivery`]: which frame a viewer gets next (its quality layer)
//!   and when (once its link has carried the last one).
//! - [`http`] — [`HttpServer`]: the same streams as MJPEG over HTTP, and the status pages.
//! - [`metrics`] — the Prometheus text exposition of a hub.
//! - [`pulse`] — [`Pulse`]: when the server's ticker last ticked, for readiness and watchdogs.
//! - [`subscriber`] — [`subscribe`] and [`Subscription`]: dial a source, read its frames.
//! - [`link`] — [`Link`]: a subscription redialled when it drops (failing over between
//!   several addresses), with an [`Outbox`] for messages to the source.
//! - [`order`] — [`order::FrameOrder`]: never a frame older than one already handed out,
//!   across reconnects and failovers.
//! - [`target`] — [`Target`]: `HOST:PORT[/STREAM]`, where a viewer connects.
//! - [`tls`] — TLS with rustls: a server's certificate, a self-signed one, how viewers trust.
//! - [`socket`] — the TCP options every connection gets (no-delay, keepalive, low watermark).
//! - [`auth`] — [`auth::Auth`]: the tokens a server accepts, checked in constant time.
//! - [`backoff`] — capped exponential pauses between retries.
//! - [`clock`] — capture timestamps in µs since the Unix epoch.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod auth;
pub mod backoff;
pub mod clock;
pub mod delivery;
pub mod http;
pub mod hub;
pub mod link;
pub mod metrics;
pub mod order;
pub mod pulse;
pub mod server;
pub mod socket;
pub mod stream;
pub mod subscriber;
pub mod target;
pub mod tls;
pub mod viewers;

pub use backoff::Backoff;
pub use http::{HttpConfig, HttpServer};
pub use hub::Hub;
pub use link::{Event, Link, Outbox};
pub use pulse::Pulse;
pub use server::{Server, ServerConfig};
pub use stream::{FrameTooLarge, SourceStatus, Stream};
pub use subscriber::{SubscribeError, SubscribeOptions, Subscription, subscribe};
pub use target::Target;
pub use viewers::{Protocol, ViewerTable};

/// The newest frame of a stream, shared by every viewer task. `None` until the first frame.
pub type Latest = tokio::sync::watch::Receiver<Option<framing::Frame>>;
