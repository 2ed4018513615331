//! Cost of the frame header on the hot paths: building a frame at the source, decoding one at a
//! relay or viewer, and handing one to a viewer task (`Frame::wire`).

#![allow(missing_docs)] // criterion_group! generates an undocumented pub fn

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use framing::{Encoding, Frame, FrameHeader, Hello, Message, MessageCodec, Role};
use tokio_util::codec::Decoder;

const PAYLOAD: usize = 65_000; // a 640×480 q80 JPEG

fn header(seq: u64) -> FrameHeader {
    FrameHeader {
        seq,
        capture_us: 1_700_000_000_000_000,
        encoding: Encoding::Jpeg,
        width: 640,
        height: 480,
    }
}

fn benches(c: &mut Criterion) {
    let payload = Bytes::from(vec![0xa5; PAYLOAD]);
    c.bench_function("encode frame header (Frame::new)", |b| {
        b.iter(|| Frame::new(black_box(header(7)), &[], payload.clone()))
    });

    let frame = Frame::new(header(7), &[], payload.clone());
    let wire = {
        let mut w = BytesMut::new();
        let mut buf = frame.wire();
        while bytes::Buf::has_remaining(&buf) {
            let chunk = bytes::Buf::chunk(&buf).to_vec();
            w.extend_from_slice(&chunk);
            bytes::Buf::advance(&mut buf, chunk.len());
        }
        w
    };
    let mut codec = MessageCodec::new();
    let mut hello = BytesMut::from(&Hello::new(Role::Source, "bench").to_bytes()[..]);
    let _ = codec.decode(&mut hello);
    c.bench_function("decode frame header (MessageCodec::decode)", |b| {
        b.iter_batched_ref(
            || wire.clone(),
            |buf| match codec.decode(buf) {
                Ok(Some(Message::Frame(f))) => black_box(f),
                other => panic!("{other:?}"),
            },
            BatchSize::SmallInput,
        )
    });

    c.bench_function("hand a frame to a viewer (Frame::wire)", |b| {
        b.iter(|| black_box(frame.wire()))
    });
}

criterion_group!(name = header_benches; config = Criterion::default().measurement_time(std::time::Duration::from_secs(3)); targets = benches);
criterion_main!(header_benches);
