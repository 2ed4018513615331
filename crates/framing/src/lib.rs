//! The dronecast wire format.
//!
//! Every message on a dronecast connection is a big-endian `u64` length followed by that many
//! bytes of body. The first body byte says what the message is:
//!
//! ```text
//! +----------------------+------+---------------------------------+
//! | length: u64 (BE)     | kind | rest of the body                |
//! | 8 bytes              | 1 B  | length - 1 bytes                |
//! +----------------------+------+---------------------------------+
//!                          'H'   hello: magic, version, role, agent, token, stream
//!                          'F'   frame: 31-byte header, metadata, encoded image
//!                          'R'   refused: UTF-8 reason, then the server closes
//!                          'B'   goodbye: UTF-8 reason, then the sender closes
//!                          'K'   heartbeat: nothing more; a quiet source is still there
//!                          'M'   viewer message: name, path, payload (viewer → source)
//!                          'L'   stream list: the source's stream names, one a line
//! ```
//!
//! Both ends open with a [`Hello`]; after that a source (drone or cache-server) sends only
//! [`Frame`]s (and heartbeats while it has nothing new to send), and at the end a goodbye. `docs/PROTOCOL.md` in the repository has the byte-level
//! layout of each message.
//!
//! # Layout
//! - [`message`] — the messages and how each is laid out on the wire (no I/O).
//! - [`codec`] — [`MessageCodec`], a `tokio_util::codec::Decoder` that turns a byte stream
//!   into [`Message`]s, checking every length before it allocates.
//! - [`sniff`] — names what a peer that does not speak dronecast sent instead.
//! - [`text`] — peer text made safe to print: control characters escaped.
//!
//! # Example
//! ```
//! use bytes::{Buf, Bytes, BytesMut};
//! use framing::{Encoding, Frame, FrameHeader, Hello, Message, MessageCodec, Role};
//! use tokio_util::codec::Decoder;
//!
//! let mut wire = BytesMut::new();
//! wire.extend_from_slice(&Hello::new(Role::Source, "drone/0.1").to_bytes());
//! let header = FrameHeader { seq: 7, capture_us: 1, encoding: Encoding::Jpeg, width: 2, height: 2 };
//! let mut frame = Frame::new(header, b"", Bytes::from_static(b"\xff\xd8..."));
//! wire.extend_from_slice(&frame.wire().copy_to_bytes(frame.wire_len()));
//!
//! let mut codec = MessageCodec::new();
//! assert!(matches!(codec.decode(&mut wire)?, Some(Message::Hello(_))));
//! let Some(Message::Frame(got)) = codec.decode(&mut wire)? else { panic!() };
//! assert_eq!(got.header().seq, 7);
//! # Ok::<(), framing::FramingError>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod codec;
pub mod message;
pub mod sniff;
pub mod text;

pub use codec::{FramingError, MessageCodec};
pub use message::{
    ALL_STREAMS, Encoding, Frame, FrameHeader, Hello, Message, Role, ViewerMessage, features,
    flags, layers,
};

/// The protocol version this build speaks. Peers with another version are refused.
pub const PROTOCOL_VERSION: u16 = 1;

/// The four bytes after the kind byte of every hello.
pub const MAGIC: [u8; 4] = *b"DCST";

/// Size of the length prefix in front of every message.
pub const LENGTH_PREFIX_LEN: usize = 8;

/// Default maximum body length of one message: 16 MiB, far above a 4K JPEG.
pub const DEFAULT_MAX_MESSAGE_LEN: usize = 16 * 1024 * 1024;

/// Largest width or height, in pixels, that a dronecast program accepts for a picture: 8192
/// (an 8K frame). A viewer refuses to decode a frame whose header or JPEG claims more, before
/// allocating anything for it.
pub const MAX_DIMENSION: u32 = 8192;

/// Maximum body length of a control message (hello, refused, goodbye). A first message longer
/// than this is not a hello, whatever it claims to be.
pub const MAX_CONTROL_LEN: usize = 4096;
