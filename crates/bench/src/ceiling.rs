//! The loopback ceiling: a trivial writer that sends one static frame to every viewer as
//! fast as its socket takes it. No watch channel, no pacing, no timeouts: what is left is
//! what the kernel and the machine can carry, to compare the relay against in the same run.

use std::time::Duration;

use bytes::Bytes;
use framing::{Encoding, Frame, FrameHeader, Hello, Message, MessageCodec, Role};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::FramedRead;

/// Serves `frame_bytes`-byte frames on `listener` until the process is killed.
pub async fn serve(listener: TcpListener, frame_bytes: usize) -> anyhow::Result<()> {
    let header = FrameHeader {
        seq: 0,
        capture_us: relay::clock::now_us(),
        encoding: Encoding::Jpeg,
        width: 640,
        height: 480,
    };
    let frame = Frame::new(header, &[], Bytes::from(vec![0x5a; frame_bytes]));
    loop {
        let (stream, _) = listener.accept().await?;
        let frame = frame.clone();
        tokio::spawn(async move {
            let _ = writer(stream, frame).await;
        });
    }
}

async fn writer(stream: TcpStream, frame: Frame) -> anyhow::Result<()> {
    stream.set_nodelay(true)?;
    let (read, mut write) = stream.into_split();
    let mut read = FramedRead::new(read, MessageCodec::new());
    match tokio::time::timeout(Duration::from_secs(30), read.next()).await {
        Ok(Some(Ok(Message::Hello(_)))) => {}
        _ => anyhow::bail!("no hello"),
    }
    write.write_all(&Hello::new(Role::Source, "relay-bench/ceiling").to_bytes()).await?;
    loop {
        write.write_all_buf(&mut frame.wire()).await?;
    }
}
