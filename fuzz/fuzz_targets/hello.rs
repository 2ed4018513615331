//! Arbitrary bytes as the body of a hello (after the kind byte and magic), and as a whole first
//! message. Nothing may panic, and any hello that decodes must survive `to_bytes` and decode
//! again as the same role and version.
//!
//! Input layout: byte 0 chooses the mode (even: the rest is a hello body behind a valid
//! prefix, kind and magic; odd: the rest is the first bytes of the stream, as sent).

#![no_main]

use bytes::{BufMut, BytesMut};
use framing::{MAGIC, Message, MessageCodec};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let mut buf = BytesMut::new();
    if mode % 2 == 0 {
        buf.put_u64((1 + MAGIC.len() + rest.len()) as u64);
        buf.put_u8(b'H');
        buf.put_slice(&MAGIC);
    }
    buf.put_slice(rest);

    let mut codec = MessageCodec::new();
    let got = match codec.decode(&mut buf) {
        Ok(None) => codec.decode_eof(&mut buf),
        other => other,
    };
    if let Ok(Some(Message::Hello(hello))) = got {
        let mut again = BytesMut::from(&hello.to_bytes()[..]);
        match MessageCodec::new().decode(&mut again) {
            Ok(Some(Message::Hello(back))) => {
                assert_eq!((back.version, back.role), (hello.version, hello.role));
                // The fields added after version 1 survive a round trip too: the name is
                // escaped once on decoding (a second pass leaves it as it is), and a sender
                // cuts it at 64 bytes.
                assert!(hello.name.starts_with(&back.name), "{hello:?} came back as {back:?}");
                assert_eq!(back.features, hello.features);
                assert!(again.is_empty());
            }
            other => panic!("re-encoded hello {hello:?} decodes to {other:?}"),
        }
    }
});
