//! Talking to the HTTP port from a test: plain requests over a socket (so that a test sees
//! exactly what was sent), `/state`, a live MJPEG viewer that parses every part, and the real
//! clients from Debian (`ffmpeg`, `curl`, `chromium` …), which are skipped with a message when
//! missing unless `DRONECAST_REQUIRE_HTTP_CLIENTS=1` (CI sets it).

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::PATIENCE;

/// The boundary the server puts between parts.
pub const BOUNDARY: &str = "boundarydonotcross";

/// Largest response head or part header a test accepts.
const MAX_HEAD: usize = 64 * 1024;

/// Largest part a test accepts.
const MAX_PART: usize = 16 * 1024 * 1024;

// ---- the real clients -----------------------------------------------------------------------

/// True when every one of `tools` is on the PATH. When one is missing: fails if
/// `DRONECAST_REQUIRE_HTTP_CLIENTS=1`, else prints `SKIPPED: …` and returns false, so that
/// the test can return early.
pub fn have_tools(test: &str, tools: &[&str]) -> anyhow::Result<bool> {
    let missing: Vec<&str> = tools.iter().copied().filter(|tool| !on_path(tool)).collect();
    if missing.is_empty() {
        return Ok(true);
    }
    let why = format!(
        "{test}: {} not installed (Debian: ffmpeg curl chromium prometheus imagemagick)",
        missing.join(", ")
    );
    if std::env::var("DRONECAST_REQUIRE_HTTP_CLIENTS").is_ok_and(|v| v == "1") {
        bail!("{why}, and DRONECAST_REQUIRE_HTTP_CLIENTS=1");
    }
    eprintln!("SKIPPED: {why}");
    Ok(false)
}

fn on_path(tool: &str) -> bool {
    let Some(path) = std::env::var_os("PATH") else { return false };
    std::env::split_paths(&path).any(|dir| dir.join(tool).is_file())
}

/// Runs `cmd` to its end, within `patience` (killed after), with `input` on its stdin (closed
/// if `None`) and its output collected. Blocking: call it from `spawn_blocking` in an async
/// test.
pub fn run_tool(
    cmd: &mut Command,
    input: Option<Vec<u8>>,
    patience: Duration,
) -> anyhow::Result<Output> {
    let what = format!("{cmd:?}");
    let stdin = if input.is_some() { Stdio::piped() } else { Stdio::null() };
    let mut child = cmd
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("could not start {what}"))?;
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = drain(Box::new(child.stdout.take().context("no stdout")?));
    let stderr = drain(Box::new(child.stderr.take().context("no stderr")?));
    if let (Some(input), Some(mut pipe)) = (input, child.stdin.take()) {
        std::thread::spawn(move || pipe.write_all(&input));
    }
    let deadline = Instant::now() + patience;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{what} still running after {patience:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    Ok(Output { status, stdout, stderr })
}

/// [`run_tool`] from async code, stdin closed.
pub async fn run_tool_async(mut cmd: Command, patience: Duration) -> anyhow::Result<Output> {
    tokio::task::spawn_blocking(move || run_tool(&mut cmd, None, patience)).await?
}

/// [`run_tool`] from async code, with `input` on stdin.
pub async fn run_tool_with_input(
    mut cmd: Command,
    input: Vec<u8>,
    patience: Duration,
) -> anyhow::Result<Output> {
    tokio::task::spawn_blocking(move || run_tool(&mut cmd, Some(input), patience)).await?
}

// ---- plain requests -------------------------------------------------------------------------

/// A whole response.
#[derive(Debug, Clone)]
pub struct Response {
    /// `200`, `404` …
    pub status: u16,
    /// The status line and headers as received.
    pub head: String,
    /// Header names (lower case) and values.
    pub headers: Vec<(String, String)>,
    /// Everything after the head, as received (de-chunked if the response was chunked).
    pub body: Vec<u8>,
}

impl Response {
    /// The value of header `name` (any case), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Parses a response head (up to, without, the blank line).
fn parse_head(head: &str) -> anyhow::Result<(u16, Vec<(String, String)>)> {
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| status_line.strip_prefix("HTTP/1.0 "))
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("not an HTTP status line: {status_line:?}"))?;
    let mut headers = Vec::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').with_context(|| format!("bad header {line:?}"))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    Ok((status, headers))
}

/// Sends `request` (whole, as written, which should ask for `Connection: close`) and reads the
/// response until the server closes. The body is returned as received, not de-chunked: the
/// server answers every finite request with a `Content-Length`.
pub async fn raw_request(addr: SocketAddr, request: &[u8]) -> anyhow::Result<Response> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await?;
        stream.write_all(request).await?;
        let mut bytes = Vec::new();
        stream.read_to_end(&mut bytes).await?;
        anyhow::Ok(bytes)
    };
    let bytes = tokio::time::timeout(PATIENCE, exchange)
        .await
        .with_context(|| format!("{addr} did not answer and close within {PATIENCE:?}"))??;
    let end = find(&bytes, b"\r\n\r\n").with_context(|| {
        format!("no complete response head from {addr}: {:?}", String::from_utf8_lossy(&bytes))
    })?;
    let head = String::from_utf8_lossy(&bytes[..end]).into_owned();
    let (status, headers) = parse_head(&head)?;
    Ok(Response { status, head, headers, body: bytes[end + 4..].to_vec() })
}

/// `METHOD path` with `Connection: close`.
pub async fn request(addr: SocketAddr, method: &str, path: &str) -> anyhow::Result<Response> {
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: dronecast-test\r\n\
         Connection: close\r\n\r\n"
    );
    raw_request(addr, request.as_bytes()).await
}

/// `GET path`.
pub async fn get(addr: SocketAddr, path: &str) -> anyhow::Result<Response> {
    request(addr, "GET", path).await
}

/// `GET /state`, parsed.
pub async fn state(addr: SocketAddr) -> anyhow::Result<Value> {
    let response = get(addr, "/state").await?;
    ensure!(response.status == 200, "/state answered {}", response.head);
    serde_json::from_slice(&response.body).context("/state is not JSON")
}

/// Polls `/state` until `ready` holds for it (at most [`PATIENCE`]); returns that state.
pub async fn wait_state(
    addr: SocketAddr,
    what: &str,
    ready: impl Fn(&Value) -> bool,
) -> anyhow::Result<Value> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let state = state(addr).await?;
        if ready(&state) {
            return Ok(state);
        }
        ensure!(tokio::time::Instant::now() < deadline, "waited {PATIENCE:?} for {what}: {state}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The default stream's viewers in a `/state` document.
pub fn viewers(state: &Value) -> Vec<Value> {
    default_stream(state)
        .and_then(|s| s.get("viewers"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// The default stream in a `/state` document.
pub fn default_stream(state: &Value) -> Option<&Value> {
    state.get("streams")?.as_array()?.iter().find(|s| s["default"] == Value::Bool(true))
}

/// The viewer whose peer is `peer`, in a `/state` document.
pub fn viewer_at(state: &Value, peer: SocketAddr) -> Option<Value> {
    viewers(state).into_iter().find(|v| v["peer"] == Value::String(peer.to_string()))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

// ---- a live MJPEG viewer --------------------------------------------------------------------

/// One part of a live stream.
#[derive(Debug, Clone)]
pub struct Part {
    /// `X-Frame-Seq`.
    pub seq: u64,
    /// `X-Timestamp`, as sent.
    pub timestamp: String,
    /// The JPEG.
    pub jpeg: Vec<u8>,
}

/// A viewer of `/stream.mjpg` that reads the response as a browser would (HTTP/1.1, chunked
/// or not) and checks every part's framing.
pub struct MjpegViewer {
    read: BufReader<OwnedReadHalf>,
    /// Kept open: dropping it would half-close the connection.
    _write: OwnedWriteHalf,
    /// Our address, as the server's `/state` and logs name us.
    pub local: SocketAddr,
    /// The response head.
    pub response: Response,
    chunked: bool,
    /// Bytes left in the current chunk.
    chunk_left: usize,
    /// Body bytes received and not yet parsed.
    buf: Vec<u8>,
    first: bool,
}

impl MjpegViewer {
    /// Opens `path` (`/stream.mjpg`) as `agent`; fails unless the answer is a live stream.
    pub async fn open(addr: SocketAddr, path: &str, agent: &str) -> anyhow::Result<MjpegViewer> {
        let stream = TcpStream::connect(addr).await.with_context(|| format!("connect {addr}"))?;
        let local = stream.local_addr()?;
        let (read, mut write) = stream.into_split();
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: {agent}\r\n\r\n");
        write.write_all(request.as_bytes()).await?;
        let mut read = BufReader::new(read);
        let mut head = String::new();
        let read_head = async {
            loop {
                let before = head.len();
                let n = read.read_line(&mut head).await?;
                ensure!(n > 0, "the server closed before the end of the response head");
                ensure!(head.len() <= MAX_HEAD, "response head longer than {MAX_HEAD} bytes");
                if &head[before..] == "\r\n" {
                    return Ok(());
                }
            }
        };
        tokio::time::timeout(PATIENCE, read_head).await.context("no response head")??;
        let head = head.trim_end().to_owned();
        let (status, headers) = parse_head(&head)?;
        let response = Response { status, head, headers, body: Vec::new() };
        ensure!(status == 200, "{path} answered {}", response.head);
        let content_type = response.header("content-type").unwrap_or_default();
        ensure!(
            content_type == format!("multipart/x-mixed-replace;boundary={BOUNDARY}"),
            "{path} is {content_type:?}"
        );
        let chunked = response.header("transfer-encoding").is_some_and(|te| te.contains("chunked"));
        Ok(MjpegViewer {
            read,
            _write: write,
            local,
            response,
            chunked,
            chunk_left: 0,
            buf: Vec::new(),
            first: true,
        })
    }

    /// The next part, within [`PATIENCE`].
    pub async fn next_part(&mut self) -> anyhow::Result<Part> {
        tokio::time::timeout(PATIENCE, self.part()).await.context("no part")?
    }

    /// The next part; waits as long as it takes.
    pub async fn part(&mut self) -> anyhow::Result<Part> {
        if std::mem::take(&mut self.first) {
            let line = self.line().await?;
            ensure!(line == format!("--{BOUNDARY}"), "the body starts with {line:?}");
        }
        let (mut length, mut seq, mut timestamp, mut content_type) = (None, None, None, None);
        loop {
            let line = self.line().await?;
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').with_context(|| format!("{line:?}"))?;
            let value = value.trim().to_owned();
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = Some(value.parse::<usize>()?),
                "x-frame-seq" => seq = Some(value.parse::<u64>()?),
                "x-timestamp" => timestamp = Some(value),
                "content-type" => content_type = Some(value),
                _ => {}
            }
        }
        ensure!(content_type.as_deref() == Some("image/jpeg"), "part is {content_type:?}");
        let length = length.context("a part without Content-Length")?;
        ensure!(length <= MAX_PART, "a {length}-byte part");
        let jpeg = self.take(length).await?;
        ensure!(jpeg.starts_with(&[0xff, 0xd8]) && jpeg.ends_with(&[0xff, 0xd9]), "not a JPEG");
        // The end of the part and the next boundary come with the JPEG, not with the next frame.
        let end = self.take(2).await?;
        ensure!(end == b"\r\n", "the JPEG is followed by {end:?}, not CRLF");
        let line = self.line().await?;
        ensure!(line == format!("--{BOUNDARY}"), "the part ends with {line:?}");
        Ok(Part {
            seq: seq.context("a part without X-Frame-Seq")?,
            timestamp: timestamp.context("a part without X-Timestamp")?,
            jpeg,
        })
    }

    /// One header line of the body, without its CRLF.
    async fn line(&mut self) -> anyhow::Result<String> {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                self.buf.drain(..end + 2);
                return Ok(line);
            }
            ensure!(self.buf.len() <= MAX_HEAD, "a part header longer than {MAX_HEAD} bytes");
            self.fill().await?;
        }
    }

    /// The next `n` body bytes.
    async fn take(&mut self, n: usize) -> anyhow::Result<Vec<u8>> {
        while self.buf.len() < n {
            self.fill().await?;
        }
        Ok(self.buf.drain(..n).collect())
    }

    /// Reads more of the body into `buf`, de-chunking.
    async fn fill(&mut self) -> anyhow::Result<()> {
        let mut scratch = [0u8; 64 * 1024];
        if !self.chunked {
            let n = self.read.read(&mut scratch).await?;
            ensure!(n > 0, "the stream ended");
            self.buf.extend_from_slice(&scratch[..n]);
            return Ok(());
        }
        if self.chunk_left == 0 {
            let mut size = String::new();
            ensure!(self.read.read_line(&mut size).await? > 0, "the stream ended");
            let hex = size.trim_end().split(';').next().unwrap_or_default();
            let len = usize::from_str_radix(hex, 16).with_context(|| format!("chunk {size:?}"))?;
            ensure!(len > 0, "the stream ended (last chunk)");
            ensure!(len <= MAX_PART, "a {len}-byte chunk");
            self.chunk_left = len;
        }
        let want = self.chunk_left.min(scratch.len());
        let n = self.read.read(&mut scratch[..want]).await?;
        ensure!(n > 0, "the stream ended inside a chunk");
        self.buf.extend_from_slice(&scratch[..n]);
        self.chunk_left -= n;
        if self.chunk_left == 0 {
            let mut crlf = [0u8; 2];
            self.read.read_exact(&mut crlf).await?;
            ensure!(&crlf == b"\r\n", "a chunk is followed by {crlf:?}");
        }
        Ok(())
    }

    /// Reads parts in a task of its own until [`Reading::finish`], checking that each is newer
    /// than the last.
    pub fn read_on(mut self) -> Reading {
        let (parts, longest_gap_us) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let stop = CancellationToken::new();
        let (count, gap, stopped) = (parts.clone(), longest_gap_us.clone(), stop.clone());
        let local = self.local;
        let task = tokio::spawn(async move {
            let (mut last, mut at) = (None, tokio::time::Instant::now());
            loop {
                let part = tokio::select! {
                    _ = stopped.cancelled() => return Ok(()),
                    part = self.next_part() => part?,
                };
                if let Some(last) = last {
                    ensure!(part.seq > last, "part {} after part {last}: not newer", part.seq);
                }
                last = Some(part.seq);
                let now = tokio::time::Instant::now();
                gap.fetch_max((now - at).as_micros() as u64, Ordering::Relaxed);
                at = now;
                count.fetch_add(1, Ordering::Relaxed);
            }
        });
        Reading { local, parts, longest_gap_us, stop, task }
    }
}

/// An [`MjpegViewer`] reading in a task of its own.
pub struct Reading {
    /// The viewer's address.
    pub local: SocketAddr,
    parts: Arc<AtomicU64>,
    longest_gap_us: Arc<AtomicU64>,
    stop: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Reading {
    /// Parts received so far.
    pub fn parts(&self) -> u64 {
        self.parts.load(Ordering::Relaxed)
    }

    /// The longest wait between two parts so far (and before the first).
    pub fn longest_gap(&self) -> Duration {
        Duration::from_micros(self.longest_gap_us.load(Ordering::Relaxed))
    }

    /// True while it is still reading (no error, not stopped).
    pub fn is_reading(&self) -> bool {
        !self.task.is_finished()
    }

    /// Stops reading; fails if the stream failed or ended before.
    pub async fn finish(self) -> anyhow::Result<u64> {
        self.stop.cancel();
        let parts = self.parts();
        self.task.await?.with_context(|| format!("HTTP viewer {}", self.local))?;
        Ok(parts)
    }
}
