//! What the limit and fault tests share: starting the real binaries, an in-process drone, and
//! a raw viewer that speaks the protocol message by message. Everything that waits is async:
//! the tests run on a two-worker runtime that also hosts the in-process servers.
#![allow(dead_code)] // each test file uses its own subset

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context;
use framing::{Hello, MAX_CONTROL_LEN, Message, MessageCodec, Role};
use futures_util::StreamExt;
use harness::Running;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

/// Upper bound for anything a test waits on; generous for a loaded 2-core machine.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// The `cache-server` binary under test.
pub fn cache_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_cache-server"))
}

/// The `drone` binary, built beside this test by `cargo test --workspace`.
pub fn drone_bin() -> anyhow::Result<PathBuf> {
    harness::sibling_bin("drone")
}

/// The `client` binary, built beside this test by `cargo test --workspace`.
pub fn client_bin() -> anyhow::Result<PathBuf> {
    harness::sibling_bin("client")
}

/// Starts the real cache-server relaying `upstream` on `listen` (`127.0.0.1:0` for any port)
/// with `extra` flags, and waits until it serves viewers.
pub async fn start_cache(
    upstream: &str,
    listen: &str,
    extra: &[&str],
) -> anyhow::Result<(Running, SocketAddr)> {
    let cmd = cache_cmd(upstream, listen, extra);
    let (cache, addr, _) = start_cache_at(cmd).await?;
    Ok((cache, addr))
}

/// Starts the real cache-server relaying `upstream` with its HTTP port on an ephemeral
/// loopback port, and `extra` flags; waits until it serves both. Returns it, its dronecast
/// address and its HTTP address.
pub async fn start_cache_with_http(
    upstream: &str,
    extra: &[&str],
) -> anyhow::Result<(Running, SocketAddr, SocketAddr)> {
    let flags = [&["--http", "127.0.0.1:0"], extra].concat();
    let (cache, addr, _) = start_cache_at(cache_cmd(upstream, "127.0.0.1:0", &flags)).await?;
    // "serving HTTP on http://127.0.0.1:PORT/", logged once the HTTP listener is bound.
    let line = cache.wait_for_line("serving HTTP on http://", PATIENCE).await?;
    let http = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .with_context(|| format!("no address in {line:?}"))?;
    let http = http.parse().with_context(|| format!("bad address in {line:?}"))?;
    Ok((cache, addr, http))
}

/// Starts `cmd` (a cache-server) and returns it, its address and when it said it was ready.
pub async fn start_cache_at(mut cmd: Command) -> anyhow::Result<(Running, SocketAddr, Instant)> {
    let cache = Running::start(&mut cmd)?;
    let (addr, ready) = cache.wait_for_addr_at("serving viewers", PATIENCE).await?;
    Ok((cache, addr, ready))
}

/// The command [`start_cache`] runs.
pub fn cache_cmd(upstream: &str, listen: &str, extra: &[&str]) -> Command {
    let mut cmd = Command::new(cache_bin());
    cmd.args(["--upstream", upstream, "--listen", listen, "--summary-every", "0"]);
    // The HTTP port's default (0.0.0.0:8080) is one port for every test: off unless asked for.
    if !extra.contains(&"--http") {
        cmd.args(["--http", "off"]);
    }
    cmd.args(extra);
    cmd
}

/// Starts the real drone (test pattern, 320×240 unless `extra` says otherwise) on `listen`
/// and waits until it serves.
pub async fn start_drone(listen: &str, extra: &[&str]) -> anyhow::Result<(Running, SocketAddr)> {
    start_drone_at(listen, extra).await.map(|(drone, addr, _)| (drone, addr))
}

/// [`start_drone`], also returning when the drone said it was ready.
pub async fn start_drone_at(
    listen: &str,
    extra: &[&str],
) -> anyhow::Result<(Running, SocketAddr, Instant)> {
    let mut cmd = Command::new(drone_bin()?);
    cmd.args(["--listen", listen, "--source", "test"]);
    if !extra.contains(&"--width") {
        cmd.args(["--width", "320", "--height", "240"]);
    }
    let drone = Running::start(cmd.args(extra))?;
    let (addr, ready) = drone.wait_for_addr_at("drone serving", PATIENCE).await?;
    Ok((drone, addr, ready))
}

/// A test-pattern drone in this process at `fps`, 320×240, on an ephemeral loopback port.
/// Runs until the test's runtime ends.
pub async fn inprocess_drone(fps: u32) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let mut config = drone::Config::default();
    config.format = drone::Format { width: 320, height: 240, fps, ..config.format };
    tokio::spawn(drone::run(config, listener, CancellationToken::new()));
    Ok(addr)
}

/// A viewer that speaks the protocol by hand, so a test can tell a goodbye from a plain
/// close and see every message.
pub struct RawViewer {
    pub read: FramedRead<OwnedReadHalf, MessageCodec>,
    pub write: OwnedWriteHalf,
}

impl RawViewer {
    /// Connects, says hello as a viewer and reads the server's hello.
    pub async fn connect(addr: SocketAddr) -> anyhow::Result<RawViewer> {
        let stream = TcpStream::connect(addr).await.with_context(|| format!("connect {addr}"))?;
        let (read, mut write) = stream.into_split();
        write.write_all(&Hello::new(Role::Viewer, "test/raw").to_bytes()).await?;
        let mut read = FramedRead::new(read, MessageCodec::with_max_len(MAX_CONTROL_LEN));
        match tokio::time::timeout(PATIENCE, read.next()).await? {
            Some(Ok(Message::Hello(hello))) if hello.role == Role::Source => {}
            other => anyhow::bail!("expected the server's hello, got {other:?}"),
        }
        read.decoder_mut().set_max_len(framing::DEFAULT_MAX_MESSAGE_LEN);
        Ok(RawViewer { read, write })
    }

    /// The next message other than a heartbeat; `None` at a clean end of stream.
    pub async fn next(&mut self, patience: Duration) -> anyhow::Result<Option<Message>> {
        loop {
            match tokio::time::timeout(patience, self.read.next()).await {
                Err(_) => anyhow::bail!("no message within {patience:?}"),
                Ok(None) => return Ok(None),
                // "Still here" while the source has nothing new: not what tests wait for.
                Ok(Some(Ok(Message::Heartbeat))) => continue,
                Ok(Some(message)) => return Ok(Some(message?)),
            }
        }
    }
}
