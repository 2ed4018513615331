//! Properties of `MessageCodec` over generated streams: whatever a sender encodes decodes to
//! the same messages however the reads split it, and no input makes the decoder panic or
//! allocate beyond the control-message limit before a hello.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use framing::{
    Encoding, Frame, FrameHeader, Hello, LENGTH_PREFIX_LEN, MAX_CONTROL_LEN, Message, MessageCodec,
    PROTOCOL_VERSION, Role, ViewerMessage,
};
use proptest::collection::vec;
use proptest::prelude::*;
use tokio_util::codec::Decoder;

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::Source), Just(Role::Viewer)]
}

fn hello() -> impl Strategy<Value = Hello> {
    // Printable ASCII: control characters are escaped on decoding (framing::text).
    let agent =
        vec(0x20u8..0x7f, 0..=255).prop_map(|ascii| String::from_utf8(ascii).expect("ascii"));
    let token = vec(any::<u8>(), 0..=32).prop_map(Bytes::from);
    let name = "\\PC{0,16}";
    (role(), agent, token, "\\PC{0,16}", name, any::<u32>(), "\\PC{0,16}").prop_map(
        |(role, agent, token, stream, name, features, layers)| Hello {
            version: PROTOCOL_VERSION,
            role,
            agent,
            token,
            stream,
            name,
            features,
            layers,
        },
    )
}

/// A viewer message as a relay forwards it: a name, a path, a payload.
fn viewer_message() -> impl Strategy<Value = ViewerMessage> {
    let hop = "\\PC{0,40}";
    ("\\PC{0,16}", vec(hop, 0..=8), vec(any::<u8>(), 0..=4096)).prop_map(|(name, path, payload)| {
        ViewerMessage { name, path, payload: Bytes::from(payload) }
    })
}

fn encoding() -> impl Strategy<Value = Encoding> {
    // The byte 1 is JPEG, every other byte an unknown codec kept as is.
    any::<u8>().prop_map(|n| if n == 1 { Encoding::Jpeg } else { Encoding::Other(n) })
}

fn frame() -> impl Strategy<Value = Frame> {
    let header = (any::<u64>(), any::<u64>(), encoding(), any::<u32>(), any::<u32>()).prop_map(
        |(seq, capture_us, encoding, width, height)| FrameHeader {
            seq,
            capture_us,
            encoding,
            width,
            height,
        },
    );
    let flags = (0..framing::layers::MAX_LAYERS, any::<u16>())
        .prop_map(|(layer, flags)| Frame::layer_flags(layer, flags));
    (header, flags, vec(any::<u8>(), 0..=64), vec(any::<u8>(), 0..=4096)).prop_map(
        |(header, flags, meta, payload)| {
            Frame::with_flags(header, flags, &meta, Bytes::from(payload))
        },
    )
}

/// A whole connection as a source sends it: hello, frames and heartbeats, maybe a goodbye.
fn session() -> impl Strategy<Value = Vec<Message>> {
    let frame_or_beat = prop_oneof![
        4 => frame().prop_map(Message::Frame),
        1 => Just(Message::Heartbeat),
        1 => viewer_message().prop_map(Message::ViewerMessage),
        1 => vec("[a-z0-9._-]{1,20}", 0..5).prop_map(Message::StreamList),
    ];
    (hello(), vec(frame_or_beat, 0..8), proptest::option::of("\\PC{0,32}")).prop_map(
        |(hello, frames, goodbye)| {
            let mut messages = vec![Message::Hello(hello)];
            messages.extend(frames);
            messages.extend(goodbye.map(Message::Goodbye));
            messages
        },
    )
}

fn encode(message: &Message) -> Bytes {
    match message {
        Message::Hello(hello) => hello.to_bytes(),
        Message::Frame(frame) => {
            let mut wire = frame.wire();
            wire.copy_to_bytes(wire.remaining())
        }
        Message::Refused(reason) => Message::refused(reason),
        Message::Goodbye(reason) => Message::goodbye(reason),
        Message::Heartbeat => Message::heartbeat(),
        Message::ViewerMessage(message) => message.to_bytes(),
        Message::StreamList(names) => Message::stream_list(names),
    }
}

/// Bytes that look a little like dronecast: small length prefixes, known kind bytes, whole
/// refusals, and noise. There is no magic among them, so no hello can form; the codec stays
/// in its before-the-hello state with its 4 KiB limit.
fn garbage_piece() -> impl Strategy<Value = Vec<u8>> {
    let kind = prop_oneof![Just(b'H'), Just(b'F'), Just(b'R'), Just(b'B'), Just(b'K'), any::<u8>()];
    prop_oneof![
        vec(any::<u8>(), 0..64),
        (0u64..=(MAX_CONTROL_LEN as u64 + 16), kind, vec(any::<u8>(), 0..64)).prop_map(
            |(len, kind, rest)| {
                let mut piece = len.to_be_bytes().to_vec();
                piece.push(kind);
                piece.extend(rest);
                piece
            }
        ),
        "\\PC{0,32}".prop_map(|reason| Message::refused(&reason).to_vec()),
        Just(b"GET / HTTP/1.1\r\n\r\n".to_vec()),
    ]
}

fn garbage() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        vec(any::<u8>(), 0..=MAX_CONTROL_LEN),
        vec(garbage_piece(), 0..16).prop_map(|pieces| {
            let mut bytes = pieces.concat();
            bytes.truncate(MAX_CONTROL_LEN);
            bytes
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn a_hello_round_trips(sent in hello()) {
        let mut buf = BytesMut::from(&sent.to_bytes()[..]);
        let got = MessageCodec::new().decode(&mut buf);
        prop_assert!(matches!(&got, Ok(Some(Message::Hello(h))) if *h == sent), "{:?}", got);
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn a_session_decodes_to_the_same_messages_however_the_reads_split_it(
        sent in session(),
        chunks in vec(1usize..=2048, 1..16),
    ) {
        let wire: Vec<u8> = sent.iter().flat_map(|m| encode(m).to_vec()).collect();
        let mut codec = MessageCodec::new();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        let mut rest = &wire[..];
        for chunk in chunks.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (read, after) = rest.split_at((*chunk).min(rest.len()));
            rest = after;
            buf.put_slice(read);
            while let Some(message) = codec.decode(&mut buf)? {
                got.push(message);
            }
        }
        prop_assert_eq!(codec.decode_eof(&mut buf)?, None);
        prop_assert!(buf.is_empty());
        prop_assert_eq!(got, sent);
    }

    #[test]
    fn garbage_never_panics_nor_reserves_beyond_the_control_limit(input in garbage()) {
        let bound = input.len() + LENGTH_PREFIX_LEN + MAX_CONTROL_LEN;
        let mut codec = MessageCodec::new();
        let mut buf = BytesMut::with_capacity(input.len());
        buf.put_slice(&input);
        loop {
            let result = codec.decode(&mut buf);
            prop_assert!(buf.capacity() <= bound, "capacity {} > {}", buf.capacity(), bound);
            match result {
                Ok(Some(Message::Refused(_))) => continue,
                Ok(Some(other)) => prop_assert!(false, "garbage decoded to {:?}", other),
                Ok(None) | Err(_) => break,
            }
        }
        // End of stream on whatever is left: a message, None or an error, never a panic.
        let _ = codec.decode_eof(&mut buf);
        prop_assert!(buf.capacity() <= bound, "capacity {} > {}", buf.capacity(), bound);
    }
}
