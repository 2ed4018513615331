//! Support shared by the client's binary tests: the real drone, a program's stdout read line
//! by line, a hostile source that speaks the dronecast protocol, a memory cap for the client
//! under test, and its peak resident memory.

// Each test binary uses its own part of this module.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use bytes::Bytes;
use drone::Format;
use drone::source::Source;
use drone::source::pattern::TestPattern;
use framing::{Encoding, Frame, FrameHeader, Hello, MAX_CONTROL_LEN, Role};
use harness::Running;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Upper bound for anything a test waits on; generous for a loaded 2-core machine.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// The size of the real drone's frames in these tests: small, so that two cores keep up.
pub const DRONE_SIZE: (u32, u32) = (320, 240);

/// Starts the real `drone` binary on an ephemeral loopback port with `flags`, its stdin and
/// stdout as given, and waits until it serves. The binary is the one built beside this test
/// (`cargo build --bins`, or `cargo test --workspace`; `cargo test -p client` alone does
/// not rebuild it).
pub fn start_drone(
    flags: &[&str],
    stdin: Stdio,
    stdout: Stdio,
) -> anyhow::Result<(Running, SocketAddr)> {
    let (width, height) = (DRONE_SIZE.0.to_string(), DRONE_SIZE.1.to_string());
    let mut command = Command::new(harness::sibling_bin("drone")?);
    command
        .args(["--listen", "127.0.0.1:0", "--width", &width, "--height", &height])
        .args(flags)
        .stdin(stdin)
        .stdout(stdout);
    let drone = Running::start(&mut command)?;
    let addr = drone.blocking_wait_for_addr("drone serving", PATIENCE)?;
    Ok((drone, addr))
}

/// The lines a program writes on its stdout, read by a thread as they come.
pub struct StdoutLines {
    lines: mpsc::Receiver<String>,
}

impl StdoutLines {
    /// Reads `program`'s stdout, which must have been piped.
    pub fn of(program: &mut Running) -> anyhow::Result<StdoutLines> {
        let stdout = program.take_stdout().context("stdout was not piped")?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Ok(StdoutLines { lines })
    }

    /// The next line; `None` once the program closed its stdout. Fails after [`PATIENCE`].
    pub fn next(&self) -> anyhow::Result<Option<String>> {
        match self.lines.recv_timeout(PATIENCE) {
            Ok(line) => Ok(Some(line)),
            Err(mpsc::RecvTimeoutError::Disconnected) => Ok(None),
            Err(mpsc::RecvTimeoutError::Timeout) => bail!("no line on stdout for {PATIENCE:?}"),
        }
    }

    /// The next line, which must come.
    pub fn expect(&self) -> anyhow::Result<String> {
        self.next()?.context("stdout closed")
    }

    /// Every line up to the end of stdout.
    pub fn rest(&self) -> anyhow::Result<Vec<String>> {
        let mut lines = Vec::new();
        while let Some(line) = self.next()? {
            lines.push(line);
        }
        Ok(lines)
    }
}

/// The size the hostile frames' JPEGs claim: 60000×60000, 10.8 GB as RGB.
pub const CLAIMED: u16 = 60_000;

/// Address space a client under test may reserve: 4 GiB. Far above what it uses (about
/// 200 MiB, nearly all of it reserved and never touched), far below the 10.8 GB a 60000×60000
/// picture takes: a client that trusts the JPEG then fails its allocation at once instead of
/// taking the shared test machine's memory.
const ADDRESS_SPACE_KIB: u64 = 4 * 1024 * 1024;

/// A command that runs `program` with its address space capped (see [`ADDRESS_SPACE_KIB`]).
/// The shell `exec`s the program, so the child's process id is the program's.
pub fn capped(program: &str) -> Command {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(format!("ulimit -v {ADDRESS_SPACE_KIB} && exec \"$0\" \"$@\""))
        .arg(program)
        // Keep the reserved address space independent of the machine's core count: glibc
        // reserves 64 MiB per malloc arena, up to 8 arenas a core.
        .env("MALLOC_ARENA_MAX", "2")
        .env("TOKIO_WORKER_THREADS", "2");
    command
}

/// The peak resident memory of process `pid` so far (`VmHWM`), in KiB.
pub fn peak_rss_kib(pid: u32) -> anyhow::Result<u64> {
    Ok(harness::usage::Pid::Other(pid).peak_rss_bytes()? / 1024)
}

/// A real, small JPEG whose SOF0 header is rewritten to claim `width`×`height`: a few hundred
/// bytes that a decoder trusting the header sizes its buffer from.
pub fn jpeg_claiming(width: u16, height: u16) -> anyhow::Result<Bytes> {
    let picture =
        image::RgbImage::from_fn(16, 16, |x, y| image::Rgb([x as u8 * 16, y as u8 * 16, 99]));
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 80).encode_image(&picture)?;
    // Walk the marker segments from SOI to SOF0: FF C0 len(2) precision(1) height(2) width(2).
    let mut pos = 2;
    loop {
        let segment = jpeg.get(pos..pos + 4).context("no SOF0 in the encoder's JPEG")?;
        ensure!(segment[0] == 0xff && segment[1] != 0xda, "no SOF0 before the scan");
        if segment[1] == 0xc0 {
            jpeg[pos + 5..pos + 7].copy_from_slice(&height.to_be_bytes());
            jpeg[pos + 7..pos + 9].copy_from_slice(&width.to_be_bytes());
            break;
        }
        pos += 2 + usize::from(u16::from_be_bytes([segment[2], segment[3]]));
    }
    let claims = drone::jpeg::dimensions(&jpeg);
    ensure!(claims == Some((width.into(), height.into())), "patched JPEG claims {claims:?}");
    Ok(Bytes::from(jpeg))
}

/// One frame of a [`HostileSource`]'s script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shot {
    /// The next test-pattern frame, a real JPEG of the source's format.
    Good,
    /// A frame header of the source's format around a JPEG that claims 60000×60000.
    LyingJpeg,
    /// A frame header and a JPEG that both claim 60000×60000.
    HugeHeader,
}

/// An in-process source that speaks the dronecast protocol and plays a script of good and
/// hostile frames, over and over, on a runtime of its own (so that sync and async tests can
/// use it alike). Every frame is written, none skipped: the viewer receives the script exactly.
pub struct HostileSource {
    /// Where it listens (loopback).
    pub addr: SocketAddr,
    /// The good frames' size.
    pub format: Format,
    gate: Arc<watch::Sender<bool>>,
    _runtime: tokio::runtime::Runtime,
}

impl HostileSource {
    /// Starts serving `script` at `format.fps` frames a second. With `hold_after`, each
    /// connection stops after that many frames until [`HostileSource::release`].
    pub fn start(
        format: Format,
        script: &'static [Shot],
        hold_after: Option<u64>,
    ) -> anyhow::Result<HostileSource> {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
        let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0"))?;
        let addr = listener.local_addr()?;
        let gate = Arc::new(watch::channel(hold_after.is_none()).0);
        let play = Play { format, script, hold_after, lying: jpeg_claiming(CLAIMED, CLAIMED)? };
        let opened = gate.clone();
        runtime.spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (play, gate) = (play.clone(), opened.subscribe());
                tokio::spawn(async move {
                    // The viewer hanging up ends the connection; that is how every test ends.
                    let _ = play.serve(stream, gate).await;
                });
            }
        });
        Ok(HostileSource { addr, format, gate, _runtime: runtime })
    }

    /// Lets held connections go on.
    pub fn release(&self) {
        self.gate.send_replace(true);
    }
}

#[derive(Clone)]
struct Play {
    format: Format,
    script: &'static [Shot],
    hold_after: Option<u64>,
    lying: Bytes,
}

impl Play {
    async fn serve(
        self,
        mut stream: TcpStream,
        mut gate: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        // The viewer's hello first: a length prefix, then that many bytes.
        let len = stream.read_u64().await?;
        ensure!(len <= MAX_CONTROL_LEN as u64, "a {len}-byte hello");
        let mut hello = vec![0; len as usize];
        stream.read_exact(&mut hello).await?;
        stream.write_all(&Hello::new(Role::Source, "hostile-source/0").to_bytes()).await?;

        let mut pattern = TestPattern::new(self.format)?;
        let mut pace = tokio::time::interval(Duration::from_secs(1) / self.format.fps);
        for (seq, shot) in (0u64..).zip(self.script.iter().cycle()) {
            if Some(seq) == self.hold_after {
                gate.wait_for(|open| *open).await?;
            }
            pace.tick().await;
            let (width, height, jpeg) = match shot {
                Shot::Good => {
                    let good = pattern.next_frame()?;
                    (good.width, good.height, good.jpeg)
                }
                Shot::LyingJpeg => (self.format.width, self.format.height, self.lying.clone()),
                Shot::HugeHeader => (CLAIMED.into(), CLAIMED.into(), self.lying.clone()),
            };
            let capture_us = relay::clock::now_us();
            let header = FrameHeader { seq, capture_us, encoding: Encoding::Jpeg, width, height };
            stream.write_all_buf(&mut Frame::new(header, b"", jpeg).wire()).await?;
        }
        Ok(())
    }
}
