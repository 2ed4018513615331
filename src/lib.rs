//! dronecast: live video from one small machine to many screens, with data both ways.
//!
//! Add `dronecast` to a program to do what a drone and its ground stations do, in a few
//! lines: a [`Publisher`] serves the frames you produce (JPEG bytes, plus any data that goes
//! with each one) to any number of viewers, straight or through any chain of cache-servers,
//! and hands you what viewers send back; a [`Viewer`] connects to a publisher, a drone or a
//! cache-server under a name, receives the newest frame with its data, sends messages back,
//! and reconnects by itself.
//!
//! ```
//! use dronecast::{Publisher, Viewer};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut publisher = Publisher::bind("127.0.0.1:0").await?;
//! let mut viewer = Viewer::builder(&publisher.local_addr().to_string()).name("ground-1").connect();
//!
//! // Publish until the viewer has a frame (a new viewer gets the newest frame at once).
//! let jpeg = &b"\xff\xd8 a JPEG \xff\xd9"[..];
//! publisher.publish(jpeg, 640, 480, br#"{"alt":12.5}"#)?;
//! let frame = viewer.next_frame().await.expect("a frame");
//! assert_eq!(frame.data(), br#"{"alt":12.5}"#);
//!
//! viewer.send("land");
//! let message = publisher.next_message().await.expect("a message");
//! assert_eq!((message.name.as_str(), &message.payload[..]), ("ground-1", &b"land"[..]));
//! # Ok(())
//! # }
//! ```
//!
//! Frames follow the same rule everywhere in dronecast: each viewer gets the newest frame
//! whenever it can take one — a slow viewer skips frames, never falls behind, never slows
//! another. Messages from viewers are rate-limited per viewer (20 a second by default) and
//! dropped, counted, when they come faster; nothing queues without bound.
//!
//! The building blocks are re-exported: [`framing`] (the wire format) and [`relay`] (the
//! servers, the subscriber, the reconnecting link). See `ARCHITECTURE.md` for how a frame
//! travels from camera to window, and `examples/telemetry.rs` for a whole telemetry loop.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod publisher;
mod viewer;

pub use framing;
pub use framing::ViewerMessage as Message;
pub use publisher::{Publisher, PublisherBuilder};
pub use relay;
pub use relay::FrameTooLarge;
pub use relay::link::Outbox;
pub use viewer::{Frame, Viewer, ViewerBuilder};
