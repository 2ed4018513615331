//! The messages and their byte layout. Nothing here does I/O.

use bytes::{Buf, BufMut, Bytes, BytesMut, buf::Chain};

use crate::{LENGTH_PREFIX_LEN, MAGIC, PROTOCOL_VERSION, codec::FramingError};

pub(crate) const KIND_HELLO: u8 = b'H';
pub(crate) const KIND_FRAME: u8 = b'F';
pub(crate) const KIND_REFUSED: u8 = b'R';
pub(crate) const KIND_GOODBYE: u8 = b'B';
pub(crate) const KIND_HEARTBEAT: u8 = b'K';
pub(crate) const KIND_VIEWER_MESSAGE: u8 = b'M';
pub(crate) const KIND_STREAM_LIST: u8 = b'L';

/// Longest agent name a hello carries, in bytes.
pub const MAX_AGENT_LEN: usize = 255;
/// Longest access token a hello carries, in bytes.
pub const MAX_TOKEN_LEN: usize = 1024;
/// Longest stream name a hello carries, in bytes.
pub const MAX_STREAM_LEN: usize = 255;
/// Longest viewer name a hello or a viewer message carries, in bytes.
pub const MAX_NAME_LEN: usize = 64;
/// Largest payload of a viewer message, in bytes.
pub const MAX_PAYLOAD_LEN: usize = 4096;
/// Most relays a viewer message may pass through; one that has passed more is dropped (it
/// is going round in a loop of relays).
pub const MAX_HOPS: usize = 8;
/// Longest entry of a viewer message's path, in bytes.
pub const MAX_HOP_LEN: usize = 255;
/// Largest viewer message on the wire: payload, name and a full path, with their lengths.
pub const MAX_VIEWER_MESSAGE_LEN: usize =
    1 + 1 + MAX_NAME_LEN + 1 + MAX_HOPS * (1 + MAX_HOP_LEN) + MAX_PAYLOAD_LEN;

/// What a hello's `features` field says its sender does beyond the base protocol. A peer
/// uses a feature only when the other side's hello announces it; older peers send none.
pub mod features {
    /// A source that takes viewer messages ([`super::ViewerMessage`]) and hands them on.
    pub const VIEWER_MESSAGES: u32 = 1;
    /// A viewer that is a relay: it forwards the messages of its own viewers, each already
    /// rate-limited, so its source allows it their sum rather than one viewer's rate.
    pub const RELAY: u32 = 2;
    /// A source that lists its streams ([`super::Message::StreamList`]) to a viewer whose
    /// hello asks for the stream [`super::ALL_STREAMS`].
    pub const STREAM_LIST: u32 = 4;
    /// Quality layers ([`super::layers`]). From a source: its frames say which layer they are
    /// (in [`super::flags::LAYER_MASK`]) and its hello names its layers; it sends a layer
    /// other than the top only to a viewer that announces this too. From a viewer: it reads
    /// the layer of each frame and asks in its hello which layer it wants.
    pub const LAYERS: u32 = 8;
}

/// Quality layers: a source may send every capture several times, each a smaller JPEG of the
/// same picture (same `seq` and `capture_us`), layer 0 being the full picture.
pub mod layers {
    /// Most layers a stream has; a frame of a higher layer is malformed.
    pub const MAX_LAYERS: usize = 4;
    /// Longest `layer` field of a hello (a source's list of names, a viewer's request).
    pub const MAX_FIELD_LEN: usize = 255;
    /// A viewer's request for every layer (a relay).
    pub const ALL: &str = "*";
    /// A viewer's request for the server's choice, per link (also what an empty request
    /// means from a viewer that announces [`super::features::LAYERS`]).
    pub const AUTO: &str = "";
    /// Longest layer name.
    pub const MAX_NAME_LEN: usize = 16;

    /// A layer name: 1 to 16 ASCII letters, digits, `-`, `_` and `.`, not all digits (a
    /// number names a layer by position).
    pub fn valid_name(name: &str) -> bool {
        (1..=MAX_NAME_LEN).contains(&name.len())
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            && !name.bytes().all(|b| b.is_ascii_digit())
    }

    /// The layer names in a source's hello (`vga,qvga`), top first: `None` when the field
    /// is not a list of at most [`MAX_LAYERS`] valid names.
    pub fn parse_names(field: &str) -> Option<Vec<String>> {
        if field.is_empty() {
            return Some(Vec::new());
        }
        let names: Vec<String> = field.split(',').map(str::to_owned).collect();
        let valid = names.len() <= MAX_LAYERS && names.iter().all(|n| valid_name(n));
        valid.then_some(names)
    }
}

/// The stream name a viewer asks for to be sent the source's list of streams, and every
/// change to it, instead of frames: how a relay mirrors all of another's streams.
pub const ALL_STREAMS: &str = "*";

/// Most streams a stream list names.
pub const MAX_LISTED_STREAMS: usize = 1024;

/// Bits of a frame's `flags` field.
pub mod flags {
    /// The frame's metadata arrived at the source since the previous frame. Without it the
    /// metadata (if any) is the newest the source had, repeated so that a viewer who skipped
    /// frames still has it.
    pub const META_FRESH: u16 = 1;
    /// Which quality layer the frame is (bits 8–11): 0 the full picture, 1 and up ever
    /// smaller ones ([`super::layers`]). Older receivers ignore these bits, which is why a
    /// source sends layers above 0 only to viewers that ask for them.
    pub const LAYER_MASK: u16 = 0x0f00;
    /// Shift of the layer within the flags.
    pub const LAYER_SHIFT: u16 = 8;
}

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
    /// Data from a viewer for the source, relayed upstream hop by hop.
    ViewerMessage(ViewerMessage),
    /// The names of the source's streams, sent to a viewer that asked for
    /// [`ALL_STREAMS`], at first and whenever they change.
    StreamList(Vec<String>),
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
            Message::ViewerMessage(_) => "viewer message",
            Message::StreamList(_) => "stream list",
        }
    }

    /// Encodes a stream list, length prefix included: the names, one per line (a name has
    /// no line break). Names past [`MAX_LISTED_STREAMS`] are left out.
    pub fn stream_list(names: &[String]) -> Bytes {
        let names = &names[..names.len().min(MAX_LISTED_STREAMS)];
        let mut body =
            BytesMut::with_capacity(1 + names.iter().map(|n| n.len() + 1).sum::<usize>());
        body.put_u8(KIND_STREAM_LIST);
        for (i, name) in names.iter().enumerate() {
            if i > 0 {
                body.put_u8(b'\n');
            }
            body.put_slice(utf8_prefix(name, MAX_STREAM_LEN).as_bytes());
        }
        prefixed(body)
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
#[derive(Clone, PartialEq, Eq)]
pub struct Hello {
    /// Protocol version of the sender.
    pub version: u16,
    /// Which end the sender is.
    pub role: Role,
    /// Free-form name of the sending program, for logs (`"client/0.1.0"`). As decoded, control
    /// characters are escaped ([`crate::text::printable`]).
    pub agent: String,
    /// A viewer's access token, when its source wants one; empty otherwise. Never logged.
    pub token: Bytes,
    /// Name of the stream asked for (empty: the source's default) or served.
    pub stream: String,
    /// A viewer's name for itself (`ground-1`), shown by servers in logs and `/state`; empty
    /// from a source. Escaped like the agent.
    pub name: String,
    /// What the sender does beyond the base protocol ([`features`]).
    pub features: u32,
    /// Quality layers ([`layers`]). From a source: the names of its layers, top first,
    /// separated by commas (empty when it has only the full picture or does not know yet).
    /// From a viewer: the layer it wants — a name, a number (`0` is the top), `*` for every
    /// layer (a relay), or empty for the server's choice. Ignored without
    /// [`features::LAYERS`].
    pub layers: String,
}

/// Shows every field but the token, which must never reach a log.
impl std::fmt::Debug for Hello {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hello")
            .field("version", &self.version)
            .field("role", &self.role)
            .field("agent", &self.agent)
            .field("token", &format_args!("<{} bytes>", self.token.len()))
            .field("stream", &self.stream)
            .field("name", &self.name)
            .field("features", &self.features)
            .field("layers", &self.layers)
            .finish()
    }
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
            name: String::new(),
            features: 0,
            layers: String::new(),
        }
    }

    /// Encodes the hello, length prefix included. Fields longer than their limits
    /// ([`MAX_AGENT_LEN`], [`MAX_TOKEN_LEN`], [`MAX_STREAM_LEN`]) are cut (text on a character
    /// boundary), so every hello written fits the decoder's first-message limit.
    pub fn to_bytes(&self) -> Bytes {
        let agent = utf8_prefix(&self.agent, MAX_AGENT_LEN);
        let token = &self.token[..self.token.len().min(MAX_TOKEN_LEN)];
        let stream = utf8_prefix(&self.stream, MAX_STREAM_LEN);
        let name = utf8_prefix(&self.name, MAX_NAME_LEN);
        let layers = utf8_prefix(&self.layers, layers::MAX_FIELD_LEN);
        let mut body = BytesMut::with_capacity(
            27 + agent.len() + token.len() + stream.len() + name.len() + layers.len(),
        );
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
        // Added after version 1's fields, which older peers read up to and ignore what follows.
        body.put_u8(name.len() as u8);
        body.put_slice(name.as_bytes());
        body.put_u32(self.features);
        body.put_u8(layers.len() as u8);
        body.put_slice(layers.as_bytes());
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
        // The fields added since: absent from an older peer's hello.
        let name = match body.first() {
            Some(&len) => {
                body.advance(1);
                take(&mut body, len as usize).ok_or(bad("name runs past the end"))?
            }
            None => &[],
        };
        let features = if body.remaining() >= 4 { body.get_u32() } else { 0 };
        let layers = match body.first() {
            Some(&len) => {
                body.advance(1);
                take(&mut body, len as usize).ok_or(bad("layers run past the end"))?
            }
            None => &[],
        };
        let layers = std::str::from_utf8(layers).map_err(|_| bad("layers are not UTF-8"))?;
        if !crate::text::is_printable(layers) {
            return Err(bad("layers have control characters"));
        }
        Ok(Hello {
            version,
            role,
            agent,
            token: Bytes::copy_from_slice(token),
            stream: stream.to_owned(),
            name: crate::text::printable(name),
            features,
            layers: layers.to_owned(),
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
        Frame::with_flags(header, 0, meta, payload)
    }

    /// [`Frame::new`] with `flags` set ([`flags`]).
    pub fn with_flags(header: FrameHeader, flags: u16, meta: &[u8], payload: Bytes) -> Frame {
        let body_len = 1 + FRAME_HEADER_LEN + meta.len() + payload.len();
        let mut head = BytesMut::with_capacity(FRAME_META_OFFSET + meta.len());
        head.put_u64(body_len as u64);
        head.put_u8(KIND_FRAME);
        head.put_u8(header.encoding.to_u8());
        head.put_u16(flags);
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
        let flags = h.get_u16();
        if usize::from((flags & flags::LAYER_MASK) >> flags::LAYER_SHIFT) >= layers::MAX_LAYERS {
            return Err(bad("layer above the highest a stream may have"));
        }
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

    /// The frame's flags ([`flags`]); bits this version does not know are kept.
    pub fn flags(&self) -> u16 {
        u16::from_be_bytes([self.head[LENGTH_PREFIX_LEN + 2], self.head[LENGTH_PREFIX_LEN + 3]])
    }

    /// True when the metadata arrived at the source since the previous frame
    /// ([`flags::META_FRESH`]); false when it is repeated, or there is none.
    pub fn meta_is_fresh(&self) -> bool {
        self.flags() & flags::META_FRESH != 0
    }

    /// Which quality layer this frame is: 0 the full picture, 1 and up smaller ones.
    pub fn layer(&self) -> usize {
        usize::from((self.flags() & flags::LAYER_MASK) >> flags::LAYER_SHIFT)
    }

    /// The flags for a frame of `layer` (below [`layers::MAX_LAYERS`]) with the other
    /// `flags` given.
    pub fn layer_flags(layer: usize, flags: u16) -> u16 {
        let layer = (layer.min(layers::MAX_LAYERS - 1) as u16) << flags::LAYER_SHIFT;
        (flags & !flags::LAYER_MASK) | layer
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

/// Data a viewer sends its source: a command, an acknowledgement, anything up to
/// [`MAX_PAYLOAD_LEN`] bytes. Each relay it passes through adds where it came from to its
/// `path`, so the source learns who said it however many relays away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewerMessage {
    /// The viewer's name, as its hello gave it; set by the first server that receives it
    /// (a viewer sends it empty). Escaped for printing.
    pub name: String,
    /// Where the message came from, one entry per hop, the viewer's own first
    /// (`client/0.1.0@10.0.0.5:50412`, then each relay's). Escaped for printing.
    pub path: Vec<String>,
    /// The data, untouched.
    pub payload: Bytes,
}

impl ViewerMessage {
    /// A message as a viewer sends it: just the payload (cut at [`MAX_PAYLOAD_LEN`]).
    pub fn new(payload: impl Into<Bytes>) -> ViewerMessage {
        let mut payload = payload.into();
        payload.truncate(MAX_PAYLOAD_LEN);
        ViewerMessage { name: String::new(), path: Vec::new(), payload }
    }

    /// Encodes the message, length prefix included. Fields over their limits are cut.
    pub fn to_bytes(&self) -> Bytes {
        let name = utf8_prefix(&self.name, MAX_NAME_LEN);
        let hops = &self.path[..self.path.len().min(MAX_HOPS)];
        let payload = &self.payload[..self.payload.len().min(MAX_PAYLOAD_LEN)];
        let mut body = BytesMut::with_capacity(4 + name.len() + hops.len() * 64 + payload.len());
        body.put_u8(KIND_VIEWER_MESSAGE);
        body.put_u8(name.len() as u8);
        body.put_slice(name.as_bytes());
        body.put_u8(hops.len() as u8);
        for hop in hops {
            let hop = utf8_prefix(hop, MAX_HOP_LEN);
            body.put_u8(hop.len() as u8);
            body.put_slice(hop.as_bytes());
        }
        body.put_slice(payload);
        prefixed(body)
    }

    /// Parses a viewer message's body (after the kind byte); `wire` is the whole message, for
    /// taking the payload without a copy.
    pub(crate) fn parse(wire: &Bytes, body_at: usize) -> Result<ViewerMessage, FramingError> {
        let bad = |why| FramingError::Malformed { what: "viewer message", why };
        let mut body = &wire[body_at..];
        let name_len = *body.first().ok_or(bad("too short"))? as usize;
        body.advance(1);
        let name = take(&mut body, name_len).ok_or(bad("name runs past the end"))?;
        if name.len() > MAX_NAME_LEN {
            return Err(bad("name longer than 64 bytes"));
        }
        let hops = *body.first().ok_or(bad("no path"))? as usize;
        body.advance(1);
        if hops > MAX_HOPS {
            return Err(bad("passed through more than 8 relays"));
        }
        let mut path = Vec::with_capacity(hops);
        for _ in 0..hops {
            let len = *body.first().ok_or(bad("path runs past the end"))? as usize;
            body.advance(1);
            path.push(crate::text::printable(
                take(&mut body, len).ok_or(bad("path runs past the end"))?,
            ));
        }
        if body.len() > MAX_PAYLOAD_LEN {
            return Err(bad("payload longer than 4096 bytes"));
        }
        let payload = wire.slice(wire.len() - body.len()..);
        Ok(ViewerMessage { name: crate::text::printable(name), path, payload })
    }
}

fn encode_text(kind: u8, text: &str) -> Bytes {
    let text = utf8_prefix(text, crate::MAX_CONTROL_LEN - 1);
    let mut body = BytesMut::with_capacity(1 + text.len());
    body.put_u8(kind);
    body.put_slice(text.as_bytes());
    prefixed(body)
}

/// Parses a stream list's body (after the kind byte).
pub(crate) fn parse_stream_list(body: &[u8]) -> Result<Vec<String>, FramingError> {
    let bad = |why| FramingError::Malformed { what: "stream list", why };
    if body.is_empty() {
        return Ok(Vec::new());
    }
    let names: Vec<String> = body
        .split(|&b| b == b'\n')
        .map(|name| {
            let name = std::str::from_utf8(name).map_err(|_| bad("a name that is not UTF-8"))?;
            if name.is_empty() || !crate::text::is_printable(name) {
                return Err(bad("an empty name, or one with control characters"));
            }
            Ok(name.to_owned())
        })
        .collect::<Result<_, _>>()?;
    if names.len() > MAX_LISTED_STREAMS {
        return Err(bad("more than 1024 streams"));
    }
    Ok(names)
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
