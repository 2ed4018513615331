//! What `MessageCodec` accepts and rejects, byte by byte, on plain `BytesMut` buffers.
//!
//! Each test is one sentence of the decoder's contract; `docs/PROTOCOL.md` is the prose
//! version. No sockets: a socket read only ever appends bytes to the buffer, which is what
//! these tests do by hand.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use framing::{
    DEFAULT_MAX_MESSAGE_LEN, Encoding, Frame, FrameHeader, FramingError, Hello, LENGTH_PREFIX_LEN,
    MAX_CONTROL_LEN, Message, MessageCodec, PROTOCOL_VERSION, Role, ViewerMessage, features,
};
use tokio_util::codec::Decoder;

type Result<T = ()> = std::result::Result<T, FramingError>;

/// Wire offset (from the first byte of the length prefix) of a frame's `meta_len` field.
const FRAME_META_LEN_AT: usize = 36;
/// Wire offset of a frame's metadata.
const FRAME_META_AT: usize = 40;

fn hello_wire() -> Bytes {
    Hello::new(Role::Source, "drone/0.1.0").to_bytes()
}

fn sample_header() -> FrameHeader {
    FrameHeader {
        seq: 42,
        capture_us: 1_700_000_000_123_456,
        encoding: Encoding::Jpeg,
        width: 1280,
        height: 720,
    }
}

fn sample_frame() -> Frame {
    let payload = Bytes::from_static(b"\xff\xd8\xff\xe0 not really a JPEG \xff\xd9");
    Frame::new(sample_header(), b"alt=12.5", payload)
}

/// The bytes a sender writes for `frame`.
fn wire_of(frame: &Frame) -> Bytes {
    let mut wire = frame.wire();
    wire.copy_to_bytes(wire.remaining())
}

fn prefix(len: u64) -> [u8; LENGTH_PREFIX_LEN] {
    len.to_be_bytes()
}

/// A codec and buffer that have already got past the peer's hello.
fn after_hello() -> (MessageCodec, BytesMut) {
    let mut codec = MessageCodec::new();
    let mut buf = BytesMut::from(&hello_wire()[..]);
    let first = codec.decode(&mut buf).expect("a valid hello");
    assert!(matches!(first, Some(Message::Hello(_))), "{first:?}");
    assert!(buf.is_empty());
    (codec, buf)
}

/// Decodes everything in `buf`, then signals end of stream.
fn decode_to_eof(codec: &mut MessageCodec, buf: &mut BytesMut) -> Result<Vec<Message>> {
    let mut out = Vec::new();
    while let Some(message) = codec.decode(buf)? {
        out.push(message);
    }
    while let Some(message) = codec.decode_eof(buf)? {
        out.push(message);
    }
    Ok(out)
}

fn not_dronecast(err: FramingError) -> String {
    match err {
        FramingError::NotDronecast(what) => what,
        other => panic!("expected NotDronecast, got {other:?}"),
    }
}

fn unhex(text: &str) -> Vec<u8> {
    text.split_whitespace().map(|byte| u8::from_str_radix(byte, 16).expect("hex byte")).collect()
}

// ---- well-formed streams -------------------------------------------------------------------

#[test]
fn hello_round_trips_every_field() -> Result {
    let sent = Hello {
        version: PROTOCOL_VERSION,
        role: Role::Viewer,
        agent: "client/0.1.0 (linux)".into(),
        token: Bytes::from_static(b"\x00s3cret\xff"),
        stream: "front-camera/é".into(),
        name: "ground-1".into(),
        features: 0x8000_0001,
        layers: "hd,vga,qvga".into(),
    };
    let mut buf = BytesMut::from(&sent.to_bytes()[..]);

    let Some(Message::Hello(got)) = MessageCodec::new().decode(&mut buf)? else {
        panic!("expected a hello");
    };
    assert_eq!(got.version, PROTOCOL_VERSION);
    assert_eq!(got.role, Role::Viewer);
    assert_eq!(got.agent, "client/0.1.0 (linux)");
    assert_eq!(&got.token[..], b"\x00s3cret\xff");
    assert_eq!(got.stream, "front-camera/é");
    assert_eq!((got.name.as_str(), got.features), ("ground-1", 0x8000_0001));
    assert_eq!(got, sent);
    assert!(buf.is_empty(), "the hello is consumed exactly");
    Ok(())
}

#[test]
fn hello_new_sends_reserved_fields_empty() -> Result {
    let mut buf = BytesMut::from(&Hello::new(Role::Source, "drone/0.1.0").to_bytes()[..]);
    let Some(Message::Hello(got)) = MessageCodec::new().decode(&mut buf)? else {
        panic!("expected a hello");
    };
    assert_eq!((got.version, got.role, got.agent.as_str()), (1, Role::Source, "drone/0.1.0"));
    assert!(got.token.is_empty() && got.stream.is_empty());
    Ok(())
}

#[test]
fn frame_round_trips_header_meta_and_payload() -> Result {
    let sent = sample_frame();
    let wire = wire_of(&sent);
    let (mut codec, mut buf) = after_hello();
    buf.extend_from_slice(&wire);

    let Some(Message::Frame(got)) = codec.decode(&mut buf)? else {
        panic!("expected a frame");
    };
    assert_eq!(*got.header(), sample_header());
    assert_eq!(got.meta(), b"alt=12.5");
    assert_eq!(got.payload(), sent.payload());
    assert_eq!(got, sent);
    assert!(buf.is_empty());
    Ok(())
}

#[test]
fn a_relay_forwards_the_exact_bytes_it_decoded() -> Result {
    // Non-zero flags and an unknown codec: a relay must pass both through untouched.
    let mut wire = BytesMut::from(&wire_of(&sample_frame())[..]);
    wire[9] = 0x7f; // codec
    wire[10..12].copy_from_slice(&[0xa1, 0xcd]); // flags: unknown bits, and layer 1
    let wire = wire.freeze();
    let (mut codec, mut buf) = after_hello();
    buf.extend_from_slice(&wire);

    let Some(Message::Frame(got)) = codec.decode(&mut buf)? else {
        panic!("expected a frame");
    };
    assert_eq!(got.header().encoding, Encoding::Other(0x7f));
    assert_eq!(got.wire_len(), wire.len());
    assert_eq!(wire_of(&got), wire);
    Ok(())
}

#[test]
fn a_decoded_frame_shares_the_read_buffer_instead_of_copying() -> Result {
    let sent = sample_frame();
    let (mut codec, mut buf) = after_hello();
    buf.extend_from_slice(&wire_of(&sent));
    let start = buf.as_ptr() as usize;

    let Some(Message::Frame(got)) = codec.decode(&mut buf)? else {
        panic!("expected a frame");
    };
    let payload_at = FRAME_META_AT + sent.meta().len();
    assert_eq!(got.payload().as_ptr() as usize, start + payload_at);
    Ok(())
}

#[test]
fn a_refusal_may_be_the_first_message() -> Result {
    let mut buf = BytesMut::from(&Message::refused("server full (64 viewers)")[..]);
    let got = MessageCodec::new().decode(&mut buf)?;
    assert_eq!(got, Some(Message::Refused("server full (64 viewers)".into())));
    assert!(buf.is_empty());
    Ok(())
}

#[test]
fn goodbye_after_frames_ends_the_stream_cleanly() -> Result {
    let (mut codec, mut buf) = after_hello();
    buf.extend_from_slice(&wire_of(&sample_frame()));
    buf.extend_from_slice(&Message::goodbye("drone shutting down"));

    let got = decode_to_eof(&mut codec, &mut buf)?;
    assert_eq!(
        got,
        [Message::Frame(sample_frame()), Message::Goodbye("drone shutting down".into())]
    );
    Ok(())
}

#[test]
fn a_hello_with_bytes_after_the_stream_name_is_accepted() -> Result {
    // Room for fields a later version may add: the receiver ignores what it does not know.
    let mut body =
        BytesMut::from(&Hello::new(Role::Source, "drone").to_bytes()[LENGTH_PREFIX_LEN..]);
    body.put_slice(b"future field");
    let mut buf = BytesMut::new();
    buf.put_u64(body.len() as u64);
    buf.put_slice(&body);

    let got = MessageCodec::new().decode(&mut buf)?;
    assert_eq!(got, Some(Message::Hello(Hello::new(Role::Source, "drone"))));
    Ok(())
}

// ---- partial reads -------------------------------------------------------------------------

#[test]
fn a_message_appears_only_once_its_last_byte_has_arrived() -> Result {
    let hello = hello_wire();
    let frame = wire_of(&sample_frame());
    let stream = [&hello[..], &frame[..]].concat();

    let mut codec = MessageCodec::new();
    let mut buf = BytesMut::new();
    let mut seen = Vec::new();
    for (i, byte) in stream.iter().enumerate() {
        buf.put_u8(*byte);
        if let Some(message) = codec.decode(&mut buf)? {
            seen.push((i + 1, message.name()));
        }
    }
    assert_eq!(seen, [(hello.len(), "hello"), (stream.len(), "frame")]);
    assert!(buf.is_empty());
    Ok(())
}

#[test]
fn a_body_split_across_reads_is_reassembled() -> Result {
    let frame = wire_of(&sample_frame());
    let (mut codec, mut buf) = after_hello();
    let (first, rest) = frame.split_at(LENGTH_PREFIX_LEN + 5);

    buf.extend_from_slice(first);
    assert_eq!(codec.decode(&mut buf)?, None);
    assert_eq!(codec.decode(&mut buf)?, None, "asking again without new bytes changes nothing");
    buf.extend_from_slice(rest);
    assert_eq!(codec.decode(&mut buf)?, Some(Message::Frame(sample_frame())));
    Ok(())
}

#[test]
fn room_for_the_whole_message_is_reserved_once_its_prefix_is_read() -> Result {
    let (mut codec, mut buf) = after_hello();
    buf.extend_from_slice(&prefix(100_000));
    assert_eq!(codec.decode(&mut buf)?, None);
    assert!(buf.capacity() >= LENGTH_PREFIX_LEN + 100_000, "capacity {}", buf.capacity());
    Ok(())
}

#[test]
fn several_messages_in_one_read_decode_in_order() -> Result {
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&hello_wire());
    let frames: Vec<Frame> = (0..3)
        .map(|seq| {
            let header = FrameHeader { seq, ..sample_header() };
            Frame::new(header, b"", Bytes::from(vec![seq as u8; 10]))
        })
        .collect();
    for frame in &frames {
        buf.extend_from_slice(&wire_of(frame));
    }

    let got = decode_to_eof(&mut MessageCodec::new(), &mut buf)?;
    assert_eq!(got[0], Message::Hello(Hello::new(Role::Source, "drone/0.1.0")));
    assert_eq!(got[1..], frames.into_iter().map(Message::Frame).collect::<Vec<_>>());
    Ok(())
}

// ---- lengths -------------------------------------------------------------------------------

#[test]
fn an_oversized_length_is_too_long_and_allocates_nothing() {
    let (mut codec, _) = after_hello();
    let mut buf = BytesMut::with_capacity(64);
    buf.extend_from_slice(&prefix(1 << 40));
    buf.extend_from_slice(b"F and then some");
    let capacity = buf.capacity();

    let err = codec.decode(&mut buf).expect_err("1 TiB is above the limit");
    assert!(
        matches!(err, FramingError::TooLong { len: 0x100_0000_0000, max: DEFAULT_MAX_MESSAGE_LEN }),
        "{err:?}"
    );
    assert_eq!(buf.capacity(), capacity, "nothing may be reserved for a refused length");
}

#[test]
fn the_limit_is_inclusive() {
    let mut codec = MessageCodec::with_max_len(1000);
    let mut buf = BytesMut::from(&hello_wire()[..]);
    codec.decode(&mut buf).expect("hello");

    buf.extend_from_slice(&prefix(1000));
    assert_eq!(codec.decode(&mut buf).expect("exactly the limit"), None);

    let mut codec = MessageCodec::with_max_len(1000);
    let mut buf = BytesMut::from(&hello_wire()[..]);
    codec.decode(&mut buf).expect("hello");
    buf.extend_from_slice(&prefix(1001));
    let err = codec.decode(&mut buf).expect_err("above the limit");
    assert!(matches!(err, FramingError::TooLong { len: 1001, max: 1000 }), "{err:?}");
}

#[test]
fn lengths_of_2_pow_63_and_u64_max_are_too_long() {
    for len in [1u64 << 63, u64::MAX] {
        let (mut codec, mut buf) = after_hello();
        buf.extend_from_slice(&prefix(len));
        let capacity = buf.capacity();
        match codec.decode(&mut buf) {
            Err(FramingError::TooLong { len: got, max }) => {
                assert_eq!((got, max), (len, DEFAULT_MAX_MESSAGE_LEN));
            }
            other => panic!("length {len:#x}: expected TooLong, got {other:?}"),
        }
        assert_eq!(buf.capacity(), capacity);
    }
}

#[test]
fn a_zero_length_is_malformed() {
    let (mut codec, mut buf) = after_hello();
    buf.extend_from_slice(&prefix(0));
    let err = codec.decode(&mut buf).expect_err("empty message");
    assert!(matches!(err, FramingError::Malformed { what: "empty", .. }), "{err:?}");
}

#[test]
fn a_limit_changed_in_flight_applies_from_the_next_prefix() -> Result {
    let frame = wire_of(&sample_frame());
    let (mut codec, mut buf) = after_hello();

    // The prefix of the first frame is read under the default limit …
    buf.extend_from_slice(&frame[..LENGTH_PREFIX_LEN + 1]);
    assert_eq!(codec.decode(&mut buf)?, None);
    // … so lowering the limit now does not cut that frame short.
    codec.set_max_len(10);
    assert_eq!(codec.max_len(), 10);
    buf.extend_from_slice(&frame[LENGTH_PREFIX_LEN + 1..]);
    assert_eq!(codec.decode(&mut buf)?, Some(Message::Frame(sample_frame())));

    // The next prefix meets the new limit.
    buf.extend_from_slice(&frame);
    let body_len = (frame.len() - LENGTH_PREFIX_LEN) as u64;
    match codec.decode(&mut buf) {
        Err(FramingError::TooLong { len, max: 10 }) if len == body_len => {}
        other => panic!("expected TooLong, got {other:?}"),
    }

    // Raising it again lets the same bytes through.
    codec.set_max_len(frame.len());
    assert_eq!(codec.decode(&mut buf)?, Some(Message::Frame(sample_frame())));
    Ok(())
}

#[test]
fn a_first_message_longer_than_max_control_len_is_not_a_hello() -> Result {
    // A hello padded (through its reserved token) to a body of exactly MAX_CONTROL_LEN bytes:
    // kind 1 + magic 4 + version 2 + role 1 + agent 1+1 + token 2+T + stream 2+0.
    // Built by hand: Hello::to_bytes caps the token so that it never writes such a hello.
    let padded = |token_len: usize| {
        let mut wire = Vec::new();
        wire.extend_from_slice(&((14 + token_len) as u64).to_be_bytes());
        wire.extend_from_slice(b"HDCST\x00\x01\x01\x01x");
        wire.extend_from_slice(&(token_len as u16).to_be_bytes());
        wire.extend(std::iter::repeat_n(b't', token_len));
        wire.extend_from_slice(&[0, 0]);
        wire
    };
    let largest = padded(MAX_CONTROL_LEN - 14);
    assert_eq!(largest.len(), LENGTH_PREFIX_LEN + MAX_CONTROL_LEN);
    let mut codec = MessageCodec::with_max_len(1 << 30);
    let got = codec.decode(&mut BytesMut::from(&largest[..]))?;
    assert!(matches!(got, Some(Message::Hello(_))), "{got:?}");

    // One byte more is refused as soon as the prefix arrives, whatever the codec's own limit.
    let too_long = padded(MAX_CONTROL_LEN - 13);
    let mut codec = MessageCodec::with_max_len(1 << 30);
    let err = codec.decode(&mut BytesMut::from(&too_long[..LENGTH_PREFIX_LEN]));
    not_dronecast(err.expect_err("a 4097-byte first message"));
    Ok(())
}

// ---- peers that do not speak dronecast -----------------------------------------------------

#[test]
fn a_frame_before_the_hello_is_not_dronecast() {
    let mut buf = BytesMut::from(&wire_of(&sample_frame())[..]);
    not_dronecast(MessageCodec::new().decode(&mut buf).expect_err("frame first"));
}

#[test]
fn a_goodbye_before_the_hello_is_not_dronecast() {
    let mut buf = BytesMut::from(&Message::goodbye("bye")[..]);
    not_dronecast(MessageCodec::new().decode(&mut buf).expect_err("goodbye first"));
}

#[test]
fn a_hello_with_the_wrong_magic_is_not_dronecast() {
    let mut buf = BytesMut::from(&hello_wire()[..]);
    buf[LENGTH_PREFIX_LEN + 1..LENGTH_PREFIX_LEN + 5].copy_from_slice(b"DCSX");
    not_dronecast(MessageCodec::new().decode(&mut buf).expect_err("wrong magic"));
}

#[test]
fn a_hello_of_another_version_is_a_version_mismatch() {
    let theirs = Hello { version: 2, ..Hello::new(Role::Source, "drone/9.0") };
    let mut buf = BytesMut::from(&theirs.to_bytes()[..]);
    let err = MessageCodec::new().decode(&mut buf).expect_err("version 2");
    assert!(
        matches!(err, FramingError::VersionMismatch { theirs: 2, ours: PROTOCOL_VERSION }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains("version 2") && text.contains("version 1"), "{text}");
}

#[test]
fn an_http_request_is_named_in_the_error() {
    let mut buf = BytesMut::from(&b"GET /stream HTTP/1.1\r\nHost: drone:5000\r\n\r\n"[..]);
    let err = MessageCodec::new().decode(&mut buf).expect_err("HTTP");
    let text = err.to_string();
    assert!(text.contains("HTTP request"), "{text}");
    assert!(text.contains("GET /stream HTTP/1.1"), "{text}");
}

#[test]
fn the_python_tutorial_stream_is_named_in_the_error() {
    // The tutorial sends `struct.pack("Q", len(data)) + pickle.dumps(frame)`: a native
    // (little-endian on x86 and ARM) u64 length, then a pickle of protocol 4.
    let mut buf = BytesMut::new();
    buf.put_u64_le(921_765);
    buf.put_slice(&[0x80, 0x04, 0x95, 0x9a, 0x10, 0x0e, 0x00, 0x00, 0x00, 0x00, 0x00]);
    let text = MessageCodec::new().decode(&mut buf).expect_err("pickle").to_string();
    assert!(text.contains("pickle"), "{text}");
    assert!(text.contains("921765"), "{text}");
}

#[test]
fn the_python_tutorial_stream_is_named_when_its_length_arrives_alone() {
    // A sender that writes the length and the pickle separately: the prefix alone could be
    // anything little-endian, so the decoder waits for the byte that says "pickle".
    let mut codec = MessageCodec::new();
    let mut buf = BytesMut::new();
    buf.put_u64_le(921_765);
    assert_eq!(codec.decode(&mut buf).expect("undecided"), None);
    buf.put_slice(&[0x80, 0x04, 0x95]);
    let what = not_dronecast(codec.decode(&mut buf).expect_err("pickle"));
    assert!(what.contains("Python pickle stream") && what.contains("921765"), "{what}");

    // If the stream ends right after the prefix, that prefix is still named.
    let mut codec = MessageCodec::new();
    let mut buf = BytesMut::new();
    buf.put_u64_le(921_765);
    let what = not_dronecast(codec.decode_eof(&mut buf).expect_err("a lone prefix"));
    assert!(what.contains("little-endian it would be 921765"), "{what}");
}

#[test]
fn a_first_length_of_2_pow_63_is_named_in_the_error() {
    let mut buf = BytesMut::from(&prefix(1 << 63)[..]);
    buf.put_u8(b'F');
    let what = not_dronecast(MessageCodec::new().decode(&mut buf).expect_err("2^63"));
    assert!(what.contains("length prefix of 9223372036854775808 bytes"), "{what}");
}

#[test]
fn an_http_response_is_named_as_a_response() {
    let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\n\r\n"[..]);
    let what = not_dronecast(MessageCodec::new().decode(&mut buf).expect_err("HTTP"));
    assert_eq!(what, "an HTTP response (HTTP/1.1 200 OK)");
}

#[test]
fn the_wrong_magic_is_named_in_the_error() {
    let mut buf = BytesMut::from(&hello_wire()[..]);
    buf[LENGTH_PREFIX_LEN + 1..LENGTH_PREFIX_LEN + 5].copy_from_slice(b"XXXX");
    let what = not_dronecast(MessageCodec::new().decode(&mut buf).expect_err("wrong magic"));
    assert!(what.starts_with("a hello with the wrong magic 58 58 58 58"), "{what}");
}

#[test]
fn only_a_frame_receiver_is_told_to_raise_its_limit() {
    let mut codec = MessageCodec::with_max_len(MAX_CONTROL_LEN);
    let mut buf = BytesMut::from(&hello_wire()[..]);
    codec.decode(&mut buf).expect("hello");
    buf.extend_from_slice(&prefix(1 << 63));
    let text = codec.decode(&mut buf).expect_err("too long").to_string();
    assert!(!text.contains("--max-frame-bytes"), "{text}");

    let (mut codec, mut buf) = after_hello();
    buf.extend_from_slice(&prefix(1 << 63));
    let text = codec.decode(&mut buf).expect_err("too long").to_string();
    assert!(text.contains("--max-frame-bytes"), "{text}");
}

#[test]
fn a_tls_handshake_is_named_in_the_error() {
    let mut buf = BytesMut::from(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc][..]);
    let what = not_dronecast(MessageCodec::new().decode(&mut buf).expect_err("TLS"));
    assert!(what.contains("TLS"), "{what}");
}

// ---- malformed messages after the hello ----------------------------------------------------

#[test]
fn metadata_running_past_the_end_is_malformed() {
    // The body holds 4 bytes of metadata and 3 of payload: any meta_len above 7 is a lie.
    for meta_len in [4u32 + 3 + 1, 1 << 20, u32::MAX] {
        let frame = Frame::new(sample_header(), b"abcd", Bytes::from_static(b"jpg"));
        let mut wire = BytesMut::from(&wire_of(&frame)[..]);
        wire[FRAME_META_LEN_AT..FRAME_META_AT].copy_from_slice(&meta_len.to_be_bytes());
        let (mut codec, mut buf) = after_hello();
        buf.extend_from_slice(&wire);

        let err = codec.decode(&mut buf).expect_err("meta_len past the end");
        assert!(
            matches!(
                err,
                FramingError::Malformed { what: "frame", why: "metadata runs past the end" }
            ),
            "meta_len {meta_len}: {err:?}"
        );
    }
}

#[test]
fn metadata_may_fill_the_body_leaving_an_empty_payload() -> Result {
    let frame = Frame::new(sample_header(), b"only meta", Bytes::new());
    let (mut codec, mut buf) = after_hello();
    buf.extend_from_slice(&wire_of(&frame));
    let Some(Message::Frame(got)) = codec.decode(&mut buf)? else {
        panic!("expected a frame");
    };
    assert_eq!((got.meta(), got.payload().len()), (&b"only meta"[..], 0));
    Ok(())
}

#[test]
fn a_frame_shorter_than_its_header_is_malformed() {
    let (mut codec, mut buf) = after_hello();
    buf.extend_from_slice(&prefix(10));
    buf.extend_from_slice(b"F123456789");
    let err = codec.decode(&mut buf).expect_err("short frame");
    assert!(matches!(err, FramingError::Malformed { what: "frame", .. }), "{err:?}");
}

#[test]
fn an_unknown_kind_byte_after_the_hello_is_malformed() {
    let (mut codec, mut buf) = after_hello();
    buf.extend_from_slice(&prefix(3));
    buf.extend_from_slice(b"Zab");
    let err = codec.decode(&mut buf).expect_err("kind Z");
    assert!(matches!(err, FramingError::Malformed { why: "unknown kind byte", .. }), "{err:?}");
}

#[test]
fn a_hello_with_an_unknown_role_is_malformed() {
    let mut buf = BytesMut::from(&hello_wire()[..]);
    buf[LENGTH_PREFIX_LEN + 7] = 3;
    let err = MessageCodec::new().decode(&mut buf).expect_err("role 3");
    assert!(
        matches!(err, FramingError::Malformed { what: "hello", why: "unknown role" }),
        "{err:?}"
    );
}

// ---- end of stream -------------------------------------------------------------------------

#[test]
fn end_of_stream_on_an_empty_buffer_is_clean() -> Result {
    assert_eq!(MessageCodec::new().decode_eof(&mut BytesMut::new())?, None);
    let (mut codec, mut buf) = after_hello();
    buf.extend_from_slice(&wire_of(&sample_frame()));
    assert!(matches!(codec.decode_eof(&mut buf)?, Some(Message::Frame(_))));
    assert_eq!(codec.decode_eof(&mut buf)?, None);
    Ok(())
}

#[test]
fn end_of_stream_inside_a_body_is_truncated() {
    let frame = wire_of(&sample_frame());
    let cut = frame.len() - 3;

    // Whether or not `decode` saw the prefix before the stream ended.
    for decode_first in [true, false] {
        let (mut codec, mut buf) = after_hello();
        buf.extend_from_slice(&frame[..cut]);
        if decode_first {
            assert_eq!(codec.decode(&mut buf).expect("incomplete"), None);
        }
        match codec.decode_eof(&mut buf) {
            Err(FramingError::Truncated { have, need }) => {
                assert_eq!((have, need), (cut, frame.len() as u64));
            }
            other => panic!("expected Truncated, got {other:?}"),
        }
    }
}

#[test]
fn end_of_stream_inside_a_length_prefix_is_truncated() {
    let (mut codec, mut buf) = after_hello();
    buf.extend_from_slice(&wire_of(&sample_frame())[..5]);
    let err = codec.decode_eof(&mut buf).expect_err("5 of 8 prefix bytes");
    assert!(matches!(err, FramingError::Truncated { have: 5, need: 8 }), "{err:?}");
    assert!(err.to_string().contains("5 of 8 bytes"), "{err}");
}

// ---- the worked examples in docs/PROTOCOL.md -----------------------------------------------

#[test]
fn the_hello_example_in_the_protocol_doc_is_exact() -> Result {
    let doc = unhex(
        "00 00 00 00 00 00 00 27  48  44 43 53 54  00 01  02  0c \
         63 6c 69 65 6e 74 2f 30 2e 31 2e 30  00 00  00 00  04  67 6e 64 31  00 00 00 08 \
         04 71 76 67 61",
    );
    let hello = Hello {
        name: "gnd1".into(),
        features: features::LAYERS,
        layers: "qvga".into(),
        ..Hello::new(Role::Viewer, "client/0.1.0")
    };
    assert_eq!(&hello.to_bytes()[..], &doc[..]);
    let got = MessageCodec::new().decode(&mut BytesMut::from(&doc[..]))?;
    assert_eq!(got, Some(Message::Hello(hello)));
    Ok(())
}

/// A hello as the release before layers wrote it, with a name and features but no layers:
/// it decodes to no layers.
#[test]
fn a_hello_without_layers_decodes_with_none() -> Result {
    let before = unhex(
        "00 00 00 00 00 00 00 22  48  44 43 53 54  00 01  02  0c \
         63 6c 69 65 6e 74 2f 30 2e 31 2e 30  00 00  00 00  04  67 6e 64 31  00 00 00 00",
    );
    let hello = Hello { name: "gnd1".into(), ..Hello::new(Role::Viewer, "client/0.1.0") };
    let got = MessageCodec::new().decode(&mut BytesMut::from(&before[..]))?;
    assert_eq!(got, Some(Message::Hello(hello)));
    Ok(())
}

/// A hello as the first release wrote it, without the name and features that later ones
/// append: it still decodes, to an empty name and no features.
#[test]
fn an_older_peers_hello_decodes_with_no_name_and_no_features() -> Result {
    let old = unhex(
        "00 00 00 00 00 00 00 19  48  44 43 53 54  00 01  02  0c \
         63 6c 69 65 6e 74 2f 30 2e 31 2e 30  00 00  00 00",
    );
    let got = MessageCodec::new().decode(&mut BytesMut::from(&old[..]))?;
    assert_eq!(got, Some(Message::Hello(Hello::new(Role::Viewer, "client/0.1.0"))));
    Ok(())
}

#[test]
fn the_viewer_message_example_in_the_protocol_doc_is_exact() -> Result {
    let doc = unhex(
        "00 00 00 00 00 00 00 17  4d  04 67 6e 64 31  02  05 61 40 31 3a 32  05 62 40 33 3a 34 \
         68 6f 6d 65",
    );
    let message = ViewerMessage {
        name: "gnd1".into(),
        path: vec!["a@1:2".into(), "b@3:4".into()],
        payload: Bytes::from_static(b"home"),
    };
    assert_eq!(&message.to_bytes()[..], &doc[..]);
    let (mut codec, mut buf) = after_hello();
    buf.extend_from_slice(&doc);
    assert_eq!(codec.decode(&mut buf)?, Some(Message::ViewerMessage(message)));
    Ok(())
}

#[test]
fn viewer_messages_over_their_limits_are_malformed() {
    let payload = Bytes::from(vec![b'x'; framing::message::MAX_PAYLOAD_LEN + 1]);
    let cases: [(&str, Vec<u8>); 3] = [
        ("a payload of 4097 bytes", {
            let mut body = vec![b'M', 0, 0];
            body.extend_from_slice(&payload);
            body
        }),
        ("nine hops", {
            let mut body = vec![b'M', 0, 9];
            body.extend(std::iter::repeat_n([1, b'h'], 9).flatten());
            body
        }),
        ("a name running past the end", vec![b'M', 200, b'a']),
    ];
    for (what, body) in cases {
        let (mut codec, mut buf) = after_hello();
        buf.extend_from_slice(&(body.len() as u64).to_be_bytes());
        buf.extend_from_slice(&body);
        let err = codec.decode(&mut buf).expect_err(what);
        assert!(
            matches!(err, FramingError::Malformed { what: "viewer message", .. }),
            "{what}: {err:?}"
        );
    }
    // What a sender writes always fits: over-long fields are cut.
    let message = ViewerMessage::new(payload);
    assert_eq!(message.payload.len(), framing::message::MAX_PAYLOAD_LEN);
}

#[test]
fn frame_flags_travel_and_say_whether_the_metadata_is_fresh() -> Result {
    let (mut codec, mut buf) = after_hello();
    let header = sample_frame().header().to_owned();
    let fresh = Frame::with_flags(header, framing::flags::META_FRESH | 0x8000, b"{}", Bytes::new());
    buf.extend_from_slice(&wire_of(&fresh));
    buf.extend_from_slice(&wire_of(&Frame::new(header, b"{}", Bytes::new())));
    let Some(Message::Frame(got)) = codec.decode(&mut buf)? else { panic!("a frame") };
    assert!(got.meta_is_fresh());
    assert_eq!(got.flags(), 0x8001, "unknown bits are kept for relays");
    let Some(Message::Frame(got)) = codec.decode(&mut buf)? else { panic!("a frame") };
    assert!(!got.meta_is_fresh());
    Ok(())
}

#[test]
fn a_frame_says_its_layer_and_a_layer_past_the_last_is_malformed() -> Result {
    let (mut codec, mut buf) = after_hello();
    let header = sample_frame().header().to_owned();
    let flags = Frame::layer_flags(2, framing::flags::META_FRESH);
    assert_eq!(flags, 0x0201);
    buf.extend_from_slice(&wire_of(&Frame::with_flags(header, flags, b"", Bytes::new())));
    let Some(Message::Frame(got)) = codec.decode(&mut buf)? else { panic!("a frame") };
    assert_eq!((got.layer(), got.meta_is_fresh()), (2, true));
    let mut wire = BytesMut::from(&wire_of(&sample_frame())[..]);
    wire[10] = 0x04; // layer 4: a stream has at most 4 layers, 0 to 3
    buf.extend_from_slice(&wire);
    let err = codec.decode(&mut buf).expect_err("layer 4 is malformed");
    assert!(err.to_string().contains("layer above the highest"), "{err}");
    Ok(())
}

#[test]
fn the_frame_example_in_the_protocol_doc_is_exact() -> Result {
    let doc = unhex(
        "00 00 00 00 00 00 00 24  46  01  00 00  00 00 00 00 00 00 00 07 \
         00 06 0a 24 18 1e 40 00  00 00 02 80  00 00 01 e0  00 00 00 00  ff d8 ff d9",
    );
    let header = FrameHeader {
        seq: 7,
        capture_us: 1_700_000_000_000_000,
        encoding: Encoding::Jpeg,
        width: 640,
        height: 480,
    };
    let frame = Frame::new(header, b"", Bytes::from_static(&[0xff, 0xd8, 0xff, 0xd9]));
    assert_eq!(&wire_of(&frame)[..], &doc[..]);

    let (mut codec, mut buf) = after_hello();
    buf.extend_from_slice(&doc);
    assert_eq!(codec.decode(&mut buf)?, Some(Message::Frame(frame)));
    Ok(())
}

#[test]
fn the_layered_frame_example_in_the_protocol_doc_is_exact() -> Result {
    let doc_head = unhex(
        "00 00 00 00 00 00 0b d8  46 01  01 00  00 00 00 00 00 00 00 07 \
         00 06 0a 24 18 1e 40 00  00 00 01 40 00 00 00 f0  00 00 00 00",
    );
    let header = FrameHeader {
        seq: 7,
        capture_us: 1_700_000_000_000_000,
        encoding: Encoding::Jpeg,
        width: 320,
        height: 240,
    };
    let frame =
        Frame::with_flags(header, Frame::layer_flags(1, 0), b"", Bytes::from(vec![0; 3000]));
    assert_eq!(&wire_of(&frame)[..doc_head.len()], &doc_head[..]);
    assert_eq!(frame.layer(), 1);
    Ok(())
}

#[test]
fn the_refused_example_in_the_protocol_doc_is_exact() {
    let doc = unhex("00 00 00 00 00 00 00 05  52  66 75 6c 6c");
    assert_eq!(&Message::refused("full")[..], &doc[..]);
}

#[test]
fn every_hello_that_to_bytes_writes_is_accepted() {
    // Oversized fields are cut (text on a character boundary) so the hello still fits.
    let hello = Hello {
        agent: "é".repeat(200),
        token: Bytes::from(vec![0u8; 5000]),
        stream: "ß".repeat(3000),
        ..Hello::new(Role::Viewer, "client")
    };
    let mut buf = BytesMut::from(&hello.to_bytes()[..]);
    let Some(Message::Hello(got)) = MessageCodec::new().decode(&mut buf).expect("decodes") else {
        panic!("not a hello");
    };
    assert_eq!((got.agent.len(), got.token.len(), got.stream.len()), (254, 1024, 254));
}

#[test]
fn eight_zero_bytes_as_a_first_message_are_not_dronecast() {
    let mut buf = BytesMut::from(&[0u8; 8][..]);
    let err = MessageCodec::new().decode(&mut buf).expect_err("not a hello");
    assert!(matches!(err, FramingError::NotDronecast(_)), "{err:?}");
}

#[test]
fn a_heartbeat_is_nine_bytes_and_decodes() -> Result {
    let (mut codec, mut buf) = after_hello();
    assert_eq!(&Message::heartbeat()[..], &[0, 0, 0, 0, 0, 0, 0, 1, b'K']);
    buf.extend_from_slice(&Message::heartbeat());
    assert_eq!(codec.decode(&mut buf)?, Some(Message::Heartbeat));
    assert!(buf.is_empty());
    Ok(())
}
