//! The messages and their byte layout. Nothing here does I/O.

use bytes::{Buf, BufMut, Bytes, BytesMut, buf::Chain};

use crate::{LENGTH_PREFIX_LEN, MAGIC, PROTOCOL_VERSION, codec::FramingError};

pub(crate) const KIND_HELLO: u8 = b'H';
pub(crate) const KIND_FRAME: u8 = b'F';
pub(crate) const KIND_REFUSED: u8 = b'R';
pub(crate) const KIND_GOODBYE: u8 = b'B';
pub(crate) const KIND_HEARTBEAT: u8 = b'K';

/// Longest agent name a hello carries, in bytes.
pub const MAX_AGENT_LEN: usize = 255;
/// Longest access token a hello carries, in bytes.
pub const MAX_TOKEN_LEN: usize = 1024;
/// Longest stream name a hello carries, in bytes.
pub const MAX_STREAM_LEN: usize = 255;

/// Bytes of the frame header that follow the kind byte:
/// encoding, flags, seq, capture time, width, height, metadata length.
pub const FRAME_HEADER_LEN: usize = 1 + 2 + 8 + 8 + 4 + 4 + 4;

/// Offset of the metadata inside a frame's wire bytes (prefix + kind + header).
const FRAME_META_OFFSET: usize = LENGTH_PREFIX_LEN + 1 + FRAME_HEADER_LEN;

/// One decoded message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// The first message of each side of every connection.
    Hello(Hello),
    /// One encoded video frame.
    Frame(Frame),
    /// The server will not serve this peer (full, wrong version …); it closes next.
    Refused(String),
    /// The sender is shutting down cleanly; it closes next.
    Goodbye(String),
    /// "Still here": a source sends one whenever it has sent nothing for a while (no fresh
    /// frames), so a viewer can tell a quiet source from a dead link.
    Heartbeat,
}

impl Message {
    /// A short name for logs ("hello", "frame" …).
    pub fn name(&self) -> &'static str {
        match self {
            Message::Hello(_) => "hello",
            Message::Frame(_) => "frame",
            Message::Refused(_) => "refused",
            Message::Goodbye(_) => "goodbye",
            Message::Heartbeat => "heartbeat",
        }
    }

    /// Encodes a refusal, length prefix included.
    pub fn refused(reason: &str) -> Bytes {
        encode_text(KIND_REFUSED, reason)
    }

    /// Encodes a goodbye, length prefix included.
    pub fn goodbye(reason: &str) -> Bytes {
        encode_text(KIND_GOODBYE, reason)
    }

    /// The encoded heartbeat, length prefix included (always the same nine bytes).
    pub fn heartbeat() -> Bytes {
        Bytes::from_static(&[0, 0, 0, 0, 0, 0, 0, 1, KIND_HEARTBEAT])
    }
}

/// Which end of a connection sent a hello.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Serves frames: a drone or a cache-server's viewer port.
    Source = 1,
    /// Receives frames: a client, a bench viewer, or a cache-server dialling its upstream.
    Viewer = 2,
}

/// The opening message of each side of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// Protocol version of the sender.
    pub version: u16,
    /// Which end the sender is.
    pub role: Role,
    /// Free-form name of the sending program, for logs (`"client/0.1.0"`). As decoded, control
    /// characters are escaped ([`crate::text::printable`]).
    pub agent: String,
    /// Access token. Reserved: sent empty and ignored by this version.
    pub token: Bytes,
    /// Name of the stream asked for or served. Reserved: sent empty and ignored by this version.
    pub stream: String,
}

impl Hello {
    /// A hello of this protocol version with no token and the default stream.
    pub fn new(role: Role, agent: &str) -> Hello {
        Hello {
            version: PROTOCOL_VERSION,
            role,
            agent: agent.to_owned(),
            token: Bytes::new(),
            stream: String::new(),
        }
    }

    /// Encodes the hello, length prefix included. Fields longer than their limits
    /// ([`MAX_AGENT_LEN`], [`MAX_TOKEN_LEN`], [`MAX_STREAM_LEN`]) are cut (text on a character
    /// boundary), so every hello written fits the decoder's first-message limit.
    pub fn to_bytes(&self) -> Bytes {
        let agent = utf8_prefix(&self.agent, MAX_AGENT_LEN);
        let token = &self.token[..self.token.len().min(MAX_TOKEN_LEN)];
        let stream = utf8_prefix(&self.stream, MAX_STREAM_LEN);
        let mut body = BytesMut::with_capacity(16 + agent.len() + token.len() + stream.len());
        body.put_u8(KIND_HELLO);
        body.put_slice(&MAGIC);
        body.put_u16(self.version);
        body.put_u8(self.role as u8);
        body.put_u8(agent.len() as u8);
        body.put_slice(agent.as_bytes());
        body.put_u16(token.len() as u16);
        body.put_slice(token);
        body.put_u16(stream.len() as u16);
        body.put_slice(stream.as_bytes());
        prefixed(body)
    }

    /// Parses a hello body (after the kind byte). The magic has been checked by the caller.
    pub(crate) fn parse(mut body: &[u8]) -> Result<Hello, FramingError> {
        let bad = |why| FramingError::Malformed { what: "hello", why };
        if body.remaining() < MAGIC.len() + 2 + 1 + 1 {
            return Err(bad("too short"));
        }
        body.advance(MAGIC.len());
        let version = body.get_u16();
        if version != PROTOCOL_VERSION {
            return Err(FramingError::VersionMismatch { theirs: version, ours: PROTOCOL_VERSION });
        }
        let role = match body.get_u8() {
            1 => Role::Source,
            2 => Role::Viewer,
            _ => return Err(bad("unknown role")),
        };
        let agent_len = body.get_u8() as usize;
        let agent = take(&mut body, agent_len).ok_or(bad("agent runs past the end"))?;
        let agent = crate::text::printable(agent);
        let token = take_short(&mut body).ok_or(bad("token runs past the end"))?;
        let stream = take_short(&mut body).ok_or(bad("stream name runs past the end"))?;
        let stream = std::str::from_utf8(stream).map_err(|_| bad("stream name is not UTF-8"))?;
        if !crate::text::is_printable(stream) {
            return Err(bad("stream name has control characters"));
        }
        Ok(Hello {
            version,
            role,
            agent,
            token: Bytes::copy_from_slice(token),
            stream: stream.to_owned(),
        })
    }
}

/// How a frame's image is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// A baseline or progressive JPEG (what MJPEG cameras produce).
    Jpeg,
    /// An encoding this version does not know. Relays forward it untouched; viewers skip it.
    Other(u8),
}

impl Encoding {
    fn to_u8(self) -> u8 {
        match self {
            Encoding::Jpeg => 1,
            Encoding::Other(n) => n,
        }
    }

    fn from_u8(n: u8) -> Encoding {
        match n {
            1 => Encoding::Jpeg,
            n => Encoding::Other(n),
        }
    }
}

/// The fixed fields of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Sequence number, counted by the source from 0; relays keep it.
    pub seq: u64,
    /// Capture time in µs since the Unix epoch, set once at the source; relays keep it.
    pub capture_us: u64,
    /// How the image is encoded.
    pub encoding: Encoding,
    /// Image width in pixels.
    pub width: u32,
    /// Image height in pixels.
    pub height: u32,
}

/// One encoded frame, held as its exact wire bytes.
///
/// The bytes are two reference-counted pieces: a small head (length prefix, kind, header,
/// metadata) and the image payload. Cloning a `Frame` copies neither, so a frame received
/// once is handed to any number of viewers as reference counts, and a relay forwards the very
/// bytes it received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    header: FrameHeader,
    head: Bytes,
    payload: Bytes,
}

impl Frame {
    /// Builds a frame around an encoded image. Only the head (≈ 40 bytes plus `meta`) is
    /// written here; `payload` is kept by reference.
    pub fn new(header: FrameHeader, meta: &[u8], payload: Bytes) -> Frame {
        let body_len = 1 + FRAME_HEADER_LEN + meta.len() + payload.len();
        let mut head = BytesMut::with_capacity(FRAME_META_OFFSET + meta.len());
        head.put_u64(body_len as u64);
        head.put_u8(KIND_FRAME);
        head.put_u8(header.encoding.to_u8());
        head.put_u16(0); // flags: none defined yet
        head.put_u64(header.seq);
        head.put_u64(header.capture_us);
        head.put_u32(header.width);
        head.put_u32(header.height);
        head.put_u32(meta.len() as u32);
        head.put_slice(meta);
        Frame { header, head: head.freeze(), payload }
    }

    /// Splits a complete frame message (length prefix included) without copying it.
    pub(crate) fn parse(wire: Bytes) -> Result<Frame, FramingError> {
        let bad = |why| FramingError::Malformed { what: "frame", why };
        if wire.len() < FRAME_META_OFFSET {
            return Err(bad("shorter than the frame header"));
        }
        let mut h = &wire[LENGTH_PREFIX_LEN + 1..FRAME_META_OFFSET];
        let encoding = Encoding::from_u8(h.get_u8());
        let _flags = h.get_u16();
        let seq = h.get_u64();
        let capture_us = h.get_u64();
        let width = h.get_u32();
        let height = h.get_u32();
        let meta_len = h.get_u32() as usize;
        if meta_len > wire.len() - FRAME_META_OFFSET {
            return Err(bad("metadata runs past the end"));
        }
        let split = FRAME_META_OFFSET + meta_len;
        let header = FrameHeader { seq, capture_us, encoding, width, height };
        Ok(Frame { header, head: wire.slice(..split), payload: wire.slice(split..) })
    }

    /// The fixed fields.
    pub fn header(&self) -> &FrameHeader {
        &self.header
    }

    /// Per-frame metadata (telemetry and the like); empty when the source sent none.
    pub fn meta(&self) -> &[u8] {
        &self.head[FRAME_META_OFFSET..]
    }

    /// The encoded image.
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// The complete wire bytes as a two-piece buffer, ready for a vectored write
    /// (`AsyncWriteExt::write_all_buf`). Costs two reference-count increments.
    pub fn wire(&self) -> Chain<Bytes, Bytes> {
        self.head.clone().chain(self.payload.clone())
    }

    /// Length of [`Frame::wire`] in bytes.
    pub fn wire_len(&self) -> usize {
        self.head.len() + self.payload.len()
    }
}

fn encode_text(kind: u8, text: &str) -> Bytes {
    let text = utf8_prefix(text, crate::MAX_CONTROL_LEN - 1);
    let mut body = BytesMut::with_capacity(1 + text.len());
    body.put_u8(kind);
    body.put_slice(text.as_bytes());
    prefixed(body)
}

/// Parses the reason of a refused or goodbye message, escaped for printing.
pub(crate) fn parse_text(body: &[u8]) -> String {
    crate::text::printable(body)
}

fn prefixed(body: BytesMut) -> Bytes {
    let mut out = BytesMut::with_capacity(LENGTH_PREFIX_LEN + body.len());
    out.put_u64(body.len() as u64);
    out.put_slice(&body);
    out.freeze()
}

fn take<'a>(buf: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if buf.len() < n {
        return None;
    }
    let (head, rest) = buf.split_at(n);
    *buf = rest;
    Some(head)
}

fn take_short<'a>(buf: &mut &'a [u8]) -> Option<&'a [u8]> {
    if buf.len() < 2 {
        return None;
    }
    let n = buf.get_u16() as usize;
    take(buf, n)
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn utf8_prefix(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
