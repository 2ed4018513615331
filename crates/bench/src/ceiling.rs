//! The loopback ceiling: a trivial writer that sends one static frame to every viewer as
//! fast as its socket takes it. No watch channel, no pacing, no timeouts: what is left is
//! what the kernel and the machine can carry, to compare the relay against in the same run.
//!
//! The writer runs in a child process, as the relay runs in its own, so that its CPU is
//! measured apart from the load generator's: [`measure`] starts this same program with the
//! hidden subcommand [`WRITER_SUBCOMMAND`], which calls [`serve_child`].

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use framing::{Encoding, Frame, FrameHeader, Hello, Message, MessageCodec, Role};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::FramedRead;

use crate::figures::Figures;
use crate::load::Load;

/// The hidden subcommand that runs the writer: `relay-bench ceiling-writer --frame-bytes N`.
pub const WRITER_SUBCOMMAND: &str = "ceiling-writer";

/// Runs the writer in a child process and loads it with `viewers` viewers, like the relay.
pub async fn measure(
    viewers: usize,
    duration: Duration,
    warmup: Duration,
    frame_bytes: usize,
) -> anyhow::Result<Figures> {
    let exe = std::env::current_exe().context("cannot find this program's path")?;
    let mut child = Command::new(exe)
        .args([WRITER_SUBCOMMAND, "--frame-bytes", &frame_bytes.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .context("could not start the ceiling writer")?;
    let stdout = child.stdout.take().context("no stdout from the ceiling writer")?;
    // Its first line is its address; read on the blocking pool, off the load's runtime.
    let first_line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    });
    let line = first_line.await?.context("the ceiling writer said nothing")?;
    let load = Load { count_repeats: true, ..Load::new(line.trim(), viewers, warmup, duration) };
    let figures = crate::measure("ceiling", &load, Some(child.id())).await;
    let _ = child.kill();
    let _ = child.wait();
    Ok(figures)
}

/// The child's side: listens on an ephemeral loopback port, prints its address as the first
/// line on stdout, and serves until killed.
pub async fn serve_child(frame_bytes: usize) -> anyhow::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    println!("{}", listener.local_addr()?);
    serve(listener, frame_bytes).await
}

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
