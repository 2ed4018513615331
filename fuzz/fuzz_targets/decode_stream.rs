//! Arbitrary bytes, cut into arbitrary reads, through `MessageCodec` as `FramedRead` drives it:
//! `decode` after every read, `decode_eof` at the end. Nothing may panic, the buffer may never
//! grow beyond what was fed plus one message of the limit, and every frame must be consistent.
//!
//! Input layout: byte 0 picks the limit, bytes 1..4 are read sizes (cycled), the rest is the
//! stream.

#![no_main]

use bytes::BytesMut;
use framing::{LENGTH_PREFIX_LEN, MAX_CONTROL_LEN, Message, MessageCodec};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let Some((&[limit, a, b, c], stream)) = data.split_first_chunk::<4>() else { return };
    let max_len = match limit % 4 {
        0 => 64,
        1 => MAX_CONTROL_LEN,
        2 => 64 * 1024,
        _ => 1 << 20,
    };
    let reads = [a, b, c].map(|n| usize::from(n) + 1);
    // `reserve` may round up to twice what it is asked for.
    let bound = 2 * (stream.len() + LENGTH_PREFIX_LEN + max_len.max(MAX_CONTROL_LEN)) + 64;

    let mut codec = MessageCodec::with_max_len(max_len);
    let mut buf = BytesMut::new();
    let mut rest = stream;
    let mut hello_seen = false;
    for read in reads.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (chunk, after) = rest.split_at((*read).min(rest.len()));
        rest = after;
        buf.extend_from_slice(chunk);
        loop {
            let result = codec.decode(&mut buf);
            assert!(buf.capacity() <= bound, "capacity {} > {bound}", buf.capacity());
            match result {
                Ok(Some(message)) => check(&message, &mut hello_seen, max_len),
                Ok(None) => break,
                // FramedRead stops at the first error; so do we.
                Err(_) => return,
            }
        }
    }
    // End of stream: whatever is left is a message, nothing, or an error; never a panic.
    while let Ok(Some(message)) = codec.decode_eof(&mut buf) {
        check(&message, &mut hello_seen, max_len);
    }
    assert!(buf.capacity() <= bound, "capacity {} > {bound}", buf.capacity());
});

fn check(message: &Message, hello_seen: &mut bool, max_len: usize) {
    match message {
        Message::Hello(_) => *hello_seen = true,
        Message::Frame(frame) => {
            assert!(*hello_seen, "a frame decoded before any hello");
            assert!(frame.wire_len() <= LENGTH_PREFIX_LEN + max_len, "frame above the limit");
            assert!(frame.meta().len() + frame.payload().len() < frame.wire_len());
        }
        Message::Refused(reason) | Message::Goodbye(reason) => {
            // Escaping a control character takes up to 10 characters (`\u{10ffff}`).
            let most = 10 * max_len.max(MAX_CONTROL_LEN);
            assert!(reason.len() <= most, "reason of {}", reason.len());
        }
        Message::Heartbeat => assert!(*hello_seen, "a heartbeat decoded before any hello"),
        Message::StreamList(names) => {
            assert!(*hello_seen, "a stream list decoded before any hello");
            assert!(names.len() <= framing::message::MAX_LISTED_STREAMS);
            assert!(names.iter().all(|n| !n.is_empty() && !n.contains('\n')));
        }
        Message::ViewerMessage(message) => {
            assert!(*hello_seen, "a viewer message decoded before any hello");
            assert!(message.payload.len() <= framing::message::MAX_PAYLOAD_LEN);
            assert!(message.path.len() <= framing::message::MAX_HOPS);
            // What a relay forwards decodes again, with the same path and payload.
            let again = message.to_bytes();
            let mut codec = MessageCodec::new();
            let mut buf = BytesMut::from(&framing::Hello::new(framing::Role::Viewer, "f").to_bytes()[..]);
            buf.extend_from_slice(&again);
            assert!(matches!(codec.decode(&mut buf), Ok(Some(Message::Hello(_)))));
            match codec.decode(&mut buf) {
                Ok(Some(Message::ViewerMessage(back))) => {
                    assert_eq!(back.payload, message.payload);
                    assert_eq!(back.path.len(), message.path.len());
                }
                other => panic!("a forwarded viewer message did not decode: {other:?}"),
            }
        }
    }
}
