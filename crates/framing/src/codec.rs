//! [`MessageCodec`]: bytes in, [`Message`]s out, with every length checked before it is
//! allocated.

use bytes::{Buf, BytesMut};
use tokio_util::codec::Decoder;

use crate::message::{
    Frame, Hello, KIND_FRAME, KIND_GOODBYE, KIND_HEARTBEAT, KIND_HELLO, KIND_REFUSED,
    KIND_STREAM_LIST, KIND_VIEWER_MESSAGE, Message, ViewerMessage, parse_stream_list, parse_text,
};
use crate::{DEFAULT_MAX_MESSAGE_LEN, LENGTH_PREFIX_LEN, MAGIC, MAX_CONTROL_LEN, sniff};

/// Everything that can be wrong with what a peer sent.
#[derive(Debug, thiserror::Error)]
pub enum FramingError {
    /// The length prefix announced more than the limit; nothing was allocated for it.
    #[error("peer announced a {len}-byte message, above the {max}-byte limit{}", too_long_hint(*.max))]
    TooLong {
        /// What the prefix said.
        len: u64,
        /// The limit in force.
        max: usize,
    },
    /// The stream ended inside a message.
    #[error("connection closed in the middle of a message ({have} of {need} bytes received)")]
    Truncated {
        /// Bytes of the message that arrived.
        have: usize,
        /// Bytes the message needed, length prefix included.
        need: u64,
    },
    /// The first message was not a dronecast hello.
    #[error("peer does not speak dronecast: it sent {0}")]
    NotDronecast(String),
    /// The peer speaks another version of the protocol.
    #[error(
        "peer speaks dronecast protocol version {theirs}, this build speaks version {ours}; \
         run the same dronecast release on both ends"
    )]
    VersionMismatch {
        /// The peer's version.
        theirs: u16,
        /// Ours.
        ours: u16,
    },
    /// A message with the right framing but an impossible body.
    #[error("malformed {what} message: {why}")]
    Malformed {
        /// Which message.
        what: &'static str,
        /// What was wrong with it.
        why: &'static str,
    },
    /// The socket failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// What to do about [`FramingError::TooLong`]: only a receiver of frames has a limit to raise.
fn too_long_hint(max: usize) -> &'static str {
    if max > crate::message::MAX_VIEWER_MESSAGE_LEN {
        " (raise --max-frame-bytes if its frames really are that large)"
    } else {
        " (this side accepts only control messages from it)"
    }
}

#[derive(Debug, Clone, Copy)]
enum DecodeState {
    /// Waiting for a length prefix.
    Head,
    /// Prefix read and checked; waiting for this many body bytes.
    Body(usize),
}

/// Decodes a dronecast byte stream into [`Message`]s.
///
/// The first message must be a [`Hello`] (or a refusal); anything else is reported as
/// [`FramingError::NotDronecast`] with a description of what the peer sent instead. Frames
/// are split off the read buffer without copying.
#[derive(Debug)]
pub struct MessageCodec {
    max_len: usize,
    state: DecodeState,
    awaiting_hello: bool,
}

impl Default for MessageCodec {
    fn default() -> Self {
        Self::new()
    }
}

impl MessageCodec {
    /// A codec for a new connection, with the default 16 MiB limit.
    pub fn new() -> MessageCodec {
        Self::with_max_len(DEFAULT_MAX_MESSAGE_LEN)
    }

    /// A codec for a new connection that refuses messages longer than `max_len` bytes.
    pub fn with_max_len(max_len: usize) -> MessageCodec {
        MessageCodec { max_len, state: DecodeState::Head, awaiting_hello: true }
    }

    /// The current limit on a message body.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Changes the limit; it applies from the next length prefix on.
    pub fn set_max_len(&mut self, max_len: usize) {
        self.max_len = max_len;
    }

    fn decode_head(&mut self, src: &mut BytesMut) -> Result<Option<usize>, FramingError> {
        if src.len() < LENGTH_PREFIX_LEN {
            return Ok(None);
        }
        let len = (&src[..LENGTH_PREFIX_LEN]).get_u64();
        let max = if self.awaiting_hello { MAX_CONTROL_LEN } else { self.max_len };
        if len > max as u64 {
            if self.awaiting_hello {
                // The byte after a little-endian length tells the Python tutorial's pickle
                // stream apart: when a sender wrote the length on its own, wait for it.
                if src.len() == LENGTH_PREFIX_LEN && sniff::little_endian_len(src).is_some() {
                    return Ok(None);
                }
                return Err(FramingError::NotDronecast(sniff::describe(src)));
            }
            return Err(FramingError::TooLong { len, max });
        }
        if len == 0 {
            if self.awaiting_hello {
                return Err(FramingError::NotDronecast(sniff::describe(src)));
            }
            return Err(FramingError::Malformed { what: "empty", why: "length prefix of zero" });
        }
        let len = len as usize;
        // Checked against the limit above, so this reservation is bounded.
        src.reserve((LENGTH_PREFIX_LEN + len).saturating_sub(src.len()));
        Ok(Some(len))
    }
}

impl Decoder for MessageCodec {
    type Item = Message;
    type Error = FramingError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Message>, FramingError> {
        let len = match self.state {
            DecodeState::Head => match self.decode_head(src)? {
                Some(len) => {
                    self.state = DecodeState::Body(len);
                    len
                }
                None => return Ok(None),
            },
            DecodeState::Body(len) => len,
        };
        if src.len() < LENGTH_PREFIX_LEN + len {
            return Ok(None);
        }
        self.state = DecodeState::Head;

        let kind = src[LENGTH_PREFIX_LEN];
        if self.awaiting_hello {
            let body = &src[LENGTH_PREFIX_LEN..LENGTH_PREFIX_LEN + len];
            let magic = body.get(1..).unwrap_or_default();
            let magic = &magic[..magic.len().min(MAGIC.len())];
            if kind == KIND_HELLO && magic != MAGIC {
                return Err(FramingError::NotDronecast(sniff::wrong_magic(magic)));
            }
            if kind != KIND_HELLO && kind != KIND_REFUSED {
                return Err(FramingError::NotDronecast(sniff::describe(src)));
            }
        }
        let wire = src.split_to(LENGTH_PREFIX_LEN + len).freeze();
        let body = &wire[LENGTH_PREFIX_LEN + 1..];
        let message = match kind {
            KIND_HELLO => {
                self.awaiting_hello = false;
                Message::Hello(Hello::parse(body)?)
            }
            KIND_FRAME => Message::Frame(Frame::parse(wire)?),
            KIND_REFUSED => Message::Refused(parse_text(body)),
            KIND_GOODBYE => Message::Goodbye(parse_text(body)),
            KIND_HEARTBEAT => Message::Heartbeat,
            KIND_STREAM_LIST => Message::StreamList(parse_stream_list(body)?),
            KIND_VIEWER_MESSAGE => {
                Message::ViewerMessage(ViewerMessage::parse(&wire, LENGTH_PREFIX_LEN + 1)?)
            }
            _ => return Err(FramingError::Malformed { what: "unknown", why: "unknown kind byte" }),
        };
        Ok(Some(message))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Message>, FramingError> {
        match self.decode(src)? {
            Some(message) => Ok(Some(message)),
            None if src.is_empty() => Ok(None),
            // A first prefix held back to see the byte after it (see `decode_head`).
            None if self.awaiting_hello
                && matches!(self.state, DecodeState::Head)
                && src.len() >= LENGTH_PREFIX_LEN =>
            {
                Err(FramingError::NotDronecast(sniff::describe(src)))
            }
            None => {
                let need = match self.state {
                    DecodeState::Body(len) => (LENGTH_PREFIX_LEN + len) as u64,
                    DecodeState::Head => LENGTH_PREFIX_LEN as u64,
                };
                Err(FramingError::Truncated { have: src.len(), need })
            }
        }
    }
}
