//! The HTTP viewer's side of MJPEG: the response head (parsed with `httparse`), chunked
//! transfer decoding and the `multipart/x-mixed-replace` part parser, as one push parser
//! ([`MjpegReader`]) that never holds a JPEG: payload bytes are counted and skipped, and every
//! buffer it keeps is bounded (a request line, a chunk-size line, a part's headers), so a
//! thousand viewers cost a thousand small buffers whatever the server sends.
//!
//! What it expects, as the relay's HTTP port (and µStreamer, mjpg-streamer) write it:
//!
//! ```text
//! HTTP/1.1 200 OK\r\n
//! content-type: multipart/x-mixed-replace;boundary=boundarydonotcross\r\n
//! transfer-encoding: chunked\r\n                (or no framing: the body runs to the close)
//! \r\n
//! --boundarydonotcross\r\n
//! Content-Type: image/jpeg\r\n
//! Content-Length: 65012\r\n
//! X-Timestamp: 1700000000.123456\r\n
//! X-Frame-Seq: 7\r\n
//! \r\n
//! <65012 bytes of JPEG>\r\n--boundarydonotcross\r\n
//! Content-Type: image/jpeg\r\n …
//! ```

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

use crate::dial::{self, Conn};

/// The path of the default stream's MJPEG; a named stream's is under its name.
pub const STREAM_PATH: &str = "/stream.mjpg";

/// Longest response head accepted (status line and headers).
pub const MAX_RESPONSE_HEAD: usize = 8 * 1024;

/// Longest part head accepted (a part's headers and the blank line after them).
pub const MAX_PART_HEAD: usize = 4 * 1024;

/// Longest line accepted between parts (a boundary, the CRLF before it) or as a chunk-size line.
const MAX_LINE: usize = 256;

/// Largest part payload accepted: the relay's own default frame limit.
pub const MAX_PART_LEN: usize = 16 * 1024 * 1024;

/// Headers read per response or part; more is an error (the relay sends six and five).
const MAX_HEADERS: usize = 32;

/// What the response head said about the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// Bytes of the head, blank line included; what follows in the buffer is body.
    pub len: usize,
    /// The multipart boundary, without the leading `--`.
    pub boundary: String,
    /// `Transfer-Encoding: chunked`; otherwise the body runs until the connection closes.
    pub chunked: bool,
}

/// Parses a response head from the start of `buf`: `Ok(None)` while it is incomplete (read
/// more, up to [`MAX_RESPONSE_HEAD`]); an error for anything but a `200` multipart stream,
/// saying what came instead.
pub fn parse_head(buf: &[u8]) -> anyhow::Result<Option<Head>> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(buf).context("not an HTTP response")? {
        httparse::Status::Complete(len) => len,
        httparse::Status::Partial if buf.len() >= MAX_RESPONSE_HEAD => {
            bail!("response head longer than {MAX_RESPONSE_HEAD} bytes")
        }
        httparse::Status::Partial => return Ok(None),
    };
    let code = response.code.unwrap_or(0);
    if code != 200 {
        // The relay answers "server full" and the like with a one-line body: show it.
        let body = String::from_utf8_lossy(&buf[len..]);
        let line = body.lines().next().unwrap_or("").trim();
        bail!("HTTP {code} {}: {line}", response.reason.unwrap_or(""));
    }
    let header = |name: &str| {
        response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).into_owned())
    };
    let content_type = header("content-type").unwrap_or_default();
    if !content_type.to_ascii_lowercase().starts_with("multipart/x-mixed-replace") {
        bail!("not an MJPEG stream: content-type '{content_type}'");
    }
    let boundary = content_type
        .split(';')
        .filter_map(|param| param.trim().split_once('='))
        .find(|(key, _)| key.trim().eq_ignore_ascii_case("boundary"))
        .map(|(_, value)| value.trim().trim_matches('"'))
        .map(|b| b.strip_prefix("--").unwrap_or(b).to_owned())
        .filter(|b| !b.is_empty() && b.len() <= 70)
        .with_context(|| format!("no usable boundary in content-type '{content_type}'"))?;
    let encoding = header("transfer-encoding").unwrap_or_default().to_ascii_lowercase();
    let chunked = match encoding.trim() {
        "" | "identity" => false,
        "chunked" => true,
        other => bail!("transfer-encoding '{other}' is not one this reader takes"),
    };
    Ok(Some(Head { len, boundary, chunked }))
}

/// The path of `stream`'s MJPEG: [`STREAM_PATH`] for the default stream (empty), else under
/// the stream's name (`/front/stream.mjpg`).
pub fn stream_path(stream: &str) -> String {
    match stream {
        "" => STREAM_PATH.to_owned(),
        name => format!("/{name}{STREAM_PATH}"),
    }
}

/// The request an HTTP viewer sends for `stream` (a stalled one sends it too, then never
/// reads), with `Authorization: Bearer` when there is a token. The token must hold no control
/// characters (the command line checks).
pub fn request(server: &str, stream: &str, agent: &str, token: &str) -> String {
    let path = stream_path(stream);
    let auth = match token {
        "" => String::new(),
        token => format!("Authorization: Bearer {token}\r\n"),
    };
    format!(
        "GET {path} HTTP/1.1\r\nHost: {server}\r\nUser-Agent: {agent}\r\n{auth}\
         Accept: multipart/x-mixed-replace, image/jpeg\r\n\r\n"
    )
}

/// Connects to `server` (over TLS with `tls`), sends `request` and reads the response head,
/// each step within `wait`. Returns the connection, a reader for the body and the body bytes
/// that came with the head (feed those first).
pub async fn open(
    server: &str,
    request: &str,
    tls: Option<&Arc<rustls::ClientConfig>>,
    wait: Duration,
) -> anyhow::Result<(Conn, MjpegReader, Vec<u8>)> {
    let mut stream = dial::connect(server, tls, wait).await?;
    timeout(wait, stream.write_all(request.as_bytes()))
        .await
        .context("request not taken in time")??;
    let mut buf = vec![0u8; MAX_RESPONSE_HEAD];
    let mut filled = 0;
    let head = loop {
        let n = timeout(wait, stream.read(&mut buf[filled..]))
            .await
            .with_context(|| format!("no response head from {server} within {wait:?}"))??;
        if n == 0 {
            bail!("{server} closed the connection before its response head");
        }
        filled += n;
        if let Some(head) = parse_head(&buf[..filled])? {
            break head;
        }
    };
    let rest = buf.get(head.len..filled).unwrap_or_default().to_vec();
    Ok((stream, MjpegReader::new(&head), rest))
}

/// One part whose payload has been read in full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    /// `X-Frame-Seq`, if the part had one.
    pub seq: Option<u64>,
    /// `X-Timestamp` (capture time) in µs since the Unix epoch, if the part had one.
    pub capture_us: Option<u64>,
    /// `Content-Length`: the JPEG's size.
    pub payload_len: usize,
    /// Body bytes this part took: the boundary before it, its headers and its payload
    /// (chunked framing not included).
    pub wire_len: usize,
}

/// A bounded line buffer: bytes up to a `\n`, at most `max` of them.
#[derive(Debug, Default)]
struct Line(Vec<u8>);

impl Line {
    /// Takes bytes from `input` up to and including a `\n`. Returns how many it took and
    /// whether the line is complete.
    fn take(&mut self, input: &[u8], max: usize, what: &str) -> anyhow::Result<(usize, bool)> {
        let (n, done) = match input.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (input.len(), false),
        };
        if self.0.len() + n > max {
            bail!("{what} longer than {max} bytes");
        }
        self.0.extend_from_slice(&input[..n]);
        Ok((n, done))
    }

    /// The line without its `\r\n` (or `\n`), and clears it for the next.
    fn finish(&mut self) -> Vec<u8> {
        let mut line = std::mem::take(&mut self.0);
        while matches!(line.last(), Some(b'\n' | b'\r')) {
            line.pop();
        }
        line
    }
}

/// Where the chunked decoder is.
#[derive(Debug)]
enum Chunk {
    /// Reading a chunk-size line.
    Size(Line),
    /// Inside a chunk: this many data bytes left.
    Data(usize),
    /// After a chunk's data: its CRLF (bytes of it seen so far).
    DataEnd(u8),
    /// After the last (zero) chunk: trailer lines until a blank one.
    Trailer(Line),
    /// The body is over.
    Done,
}

/// Where the part parser is.
#[derive(Debug)]
enum PartState {
    /// Between parts: blank lines, then `--boundary`.
    Delimiter(Line),
    /// A part's headers, until the blank line.
    Headers(Vec<u8>),
    /// A part's payload: this many bytes left.
    Payload { left: usize, part: Part },
    /// `--boundary--` seen: no more parts.
    Closed,
}

/// A push parser for an MJPEG response body: feed it what the socket gives, get each part
/// as its payload completes.
#[derive(Debug)]
pub struct MjpegReader {
    /// `--boundary`, as it appears at the start of a delimiter line.
    delimiter: Vec<u8>,
    /// `None`: the body is not chunked.
    chunk: Option<Chunk>,
    state: PartState,
    /// Body bytes taken by the part in progress so far.
    part_bytes: usize,
    /// Lines skipped before the first boundary (a preamble), bounded.
    preamble: usize,
    /// True once any part started: after that, only boundaries may stand between parts.
    started: bool,
}

impl MjpegReader {
    /// A reader for a body described by `head`.
    pub fn new(head: &Head) -> MjpegReader {
        MjpegReader {
            delimiter: format!("--{}", head.boundary).into_bytes(),
            chunk: head.chunked.then(|| Chunk::Size(Line::default())),
            state: PartState::Delimiter(Line::default()),
            part_bytes: 0,
            preamble: 0,
            started: false,
        }
    }

    /// True once the body has ended (the last chunk, or the closing boundary).
    pub fn ended(&self) -> bool {
        matches!(self.chunk, Some(Chunk::Done)) || matches!(self.state, PartState::Closed)
    }

    /// Parses `input`, calling `on_part` for each part whose payload completes in it.
    pub fn feed(&mut self, mut input: &[u8], on_part: &mut impl FnMut(Part)) -> anyhow::Result<()> {
        if self.chunk.is_none() {
            return self.body(input, on_part);
        }
        while !input.is_empty() {
            let Some(chunk) = self.chunk.as_mut() else { break };
            match chunk {
                Chunk::Size(line) => {
                    let (n, done) = line.take(input, MAX_LINE, "chunk-size line")?;
                    input = &input[n..];
                    if done {
                        let size = chunk_size(&line.finish())?;
                        *chunk = if size == 0 {
                            Chunk::Trailer(Line::default())
                        } else {
                            Chunk::Data(size)
                        };
                    }
                }
                Chunk::Data(left) => {
                    let n = (*left).min(input.len());
                    *left -= n;
                    if *left == 0 {
                        *chunk = Chunk::DataEnd(0);
                    }
                    let (data, rest) = input.split_at(n);
                    input = rest;
                    self.body(data, on_part)?;
                }
                Chunk::DataEnd(seen) => {
                    let want = if *seen == 0 { b'\r' } else { b'\n' };
                    if input[0] != want {
                        bail!("chunk data not followed by CRLF");
                    }
                    input = &input[1..];
                    *seen += 1;
                    if *seen == 2 {
                        *chunk = Chunk::Size(Line::default());
                    }
                }
                Chunk::Trailer(line) => {
                    let (n, done) = line.take(input, MAX_LINE, "chunked trailer line")?;
                    input = &input[n..];
                    if done && line.finish().is_empty() {
                        *chunk = Chunk::Done;
                    }
                }
                Chunk::Done => break,
            }
        }
        Ok(())
    }

    /// Parses body bytes (chunked framing already removed).
    fn body(&mut self, mut input: &[u8], on_part: &mut impl FnMut(Part)) -> anyhow::Result<()> {
        while !input.is_empty() {
            let taken = match &mut self.state {
                PartState::Delimiter(line) => {
                    let (n, done) = line.take(input, MAX_LINE, "line between parts")?;
                    if done {
                        let line = line.finish();
                        self.delimiter_line(&line)?;
                    }
                    n
                }
                PartState::Headers(head) => {
                    let before = head.len();
                    let n = input.len().min(MAX_PART_HEAD - before);
                    head.extend_from_slice(&input[..n]);
                    match parse_part_head(head)? {
                        Some((len, part)) => {
                            self.state = PartState::Payload { left: part.payload_len, part };
                            len.saturating_sub(before)
                        }
                        None if head.len() >= MAX_PART_HEAD => {
                            bail!("part headers longer than {MAX_PART_HEAD} bytes")
                        }
                        None => n,
                    }
                }
                PartState::Payload { left, .. } => {
                    let n = (*left).min(input.len());
                    *left -= n;
                    n
                }
                PartState::Closed => input.len(),
            };
            self.part_bytes += taken;
            input = &input[taken..];
            self.finish_payload_if_empty(on_part);
        }
        Ok(())
    }

    /// A line between parts: blank lines are the CRLF that ends a payload (or padding);
    /// `--boundary` starts a part, `--boundary--` ends the body.
    fn delimiter_line(&mut self, line: &[u8]) -> anyhow::Result<()> {
        let line = line.trim_ascii_end();
        if line.is_empty() {
            return Ok(());
        }
        if let Some(rest) = line.strip_prefix(self.delimiter.as_slice()) {
            match rest {
                b"" => {
                    self.started = true;
                    self.state = PartState::Headers(Vec::new());
                    return Ok(());
                }
                b"--" => {
                    self.state = PartState::Closed;
                    return Ok(());
                }
                _ => {}
            }
        }
        if self.started {
            bail!("expected a boundary after a part, got '{}'", String::from_utf8_lossy(line));
        }
        // A preamble before the first part is allowed, if short.
        self.preamble += line.len();
        if self.preamble > MAX_PART_HEAD {
            bail!("no boundary within the first {MAX_PART_HEAD} bytes of the body");
        }
        Ok(())
    }

    /// Ends the part if its payload is complete, handing it to `on_part`.
    fn finish_payload_if_empty(&mut self, on_part: &mut impl FnMut(Part)) {
        if let PartState::Payload { left: 0, part } = self.state {
            let wire_len = self.part_bytes;
            self.part_bytes = 0;
            self.state = PartState::Delimiter(Line::default());
            on_part(Part { wire_len, ..part });
        }
    }
}

/// A chunk-size line: hex digits, then optional `;extensions`.
fn chunk_size(line: &[u8]) -> anyhow::Result<usize> {
    let digits = line.split(|&b| b == b';').next().unwrap_or_default().trim_ascii();
    let text = std::str::from_utf8(digits).ok().filter(|t| !t.is_empty() && t.len() <= 8);
    let size = text
        .and_then(|t| usize::from_str_radix(t, 16).ok())
        .with_context(|| format!("bad chunk-size line '{}'", String::from_utf8_lossy(line)))?;
    // A chunk holds at most one part here (the relay writes a part per chunk).
    if size > MAX_PART_LEN + MAX_PART_HEAD + MAX_LINE {
        bail!("chunk of {size} bytes is larger than any part");
    }
    Ok(size)
}

/// A part's headers: `Ok(None)` while incomplete, else their length and what they say.
fn parse_part_head(buf: &[u8]) -> anyhow::Result<Option<(usize, Part)>> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let (len, headers) =
        match httparse::parse_headers(buf, &mut headers).context("malformed part headers")? {
            httparse::Status::Complete(done) => done,
            httparse::Status::Partial => return Ok(None),
        };
    let mut part = Part { seq: None, capture_us: None, payload_len: 0, wire_len: 0 };
    let mut length = None;
    for header in headers {
        let value = std::str::from_utf8(header.value).unwrap_or("").trim();
        if header.name.eq_ignore_ascii_case("content-length") {
            length = value.parse::<usize>().ok();
            if length.is_none() {
                bail!("bad Content-Length '{value}' in a part");
            }
        } else if header.name.eq_ignore_ascii_case("x-timestamp") {
            part.capture_us = Some(timestamp_us(value)?);
        } else if header.name.eq_ignore_ascii_case("x-frame-seq") {
            let seq = value.parse().ok().with_context(|| format!("bad X-Frame-Seq '{value}'"))?;
            part.seq = Some(seq);
        }
    }
    // Without a length the JPEG's end would have to be searched for; the relay always sends it.
    part.payload_len = length.context("a part without Content-Length")?;
    if part.payload_len > MAX_PART_LEN {
        bail!("part of {} bytes is over the {MAX_PART_LEN}-byte limit", part.payload_len);
    }
    Ok(Some((len, part)))
}

/// `X-Timestamp` (`<secs>.<fraction>`, as µStreamer and the relay send it) in µs since the
/// Unix epoch; digits past the sixth are dropped.
pub fn timestamp_us(value: &str) -> anyhow::Result<u64> {
    let bad = || format!("bad X-Timestamp '{value}'");
    let (secs, fraction) = value.split_once('.').unwrap_or((value, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if secs.is_empty() || !all_digits(secs) || !all_digits(fraction) {
        bail!(bad());
    }
    let secs: u64 = secs.parse().ok().with_context(bad)?;
    let mut micros = 0u64;
    for i in 0..6 {
        let digit = fraction.as_bytes().get(i).map_or(0, |d| u64::from(d - b'0'));
        micros = micros * 10 + digit;
    }
    secs.checked_mul(1_000_000).and_then(|us| us.checked_add(micros)).with_context(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &[u8] = b"HTTP/1.1 200 OK\r\n\
        content-type: multipart/x-mixed-replace;boundary=boundarydonotcross\r\n\
        cache-control: no-store\r\ntransfer-encoding: chunked\r\n\r\n";

    /// The body the relay writes for `frames` (seq, capture µs, payload), one part per chunk.
    fn body(frames: &[(u64, u64, &[u8])], chunked: bool) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, (seq, capture_us, payload)) in frames.iter().enumerate() {
            let mut part = Vec::new();
            if i == 0 {
                part.extend_from_slice(b"--boundarydonotcross\r\n");
            }
            part.extend_from_slice(
                format!(
                    "Content-Type: image/jpeg\r\nContent-Length: {}\r\nX-Timestamp: {}.{:06}\r\n\
                     X-Frame-Seq: {seq}\r\n\r\n",
                    payload.len(),
                    capture_us / 1_000_000,
                    capture_us % 1_000_000
                )
                .as_bytes(),
            );
            part.extend_from_slice(payload);
            part.extend_from_slice(b"\r\n--boundarydonotcross\r\n");
            if chunked {
                out.extend_from_slice(format!("{:X}\r\n", part.len()).as_bytes());
                out.extend_from_slice(&part);
                out.extend_from_slice(b"\r\n");
            } else {
                out.extend_from_slice(&part);
            }
        }
        out
    }

    fn parts_of(head: &Head, body: &[u8], step: usize) -> anyhow::Result<Vec<Part>> {
        let mut reader = MjpegReader::new(head);
        let mut parts = Vec::new();
        for piece in body.chunks(step.max(1)) {
            reader.feed(piece, &mut |p| parts.push(p))?;
        }
        Ok(parts)
    }

    #[test]
    fn the_relay_head_is_understood_and_the_body_follows_it() {
        let mut bytes = HEAD.to_vec();
        bytes.extend_from_slice(b"1A\r\n");
        assert_eq!(parse_head(&HEAD[..40]).ok(), Some(None), "incomplete");
        let head = parse_head(&bytes).expect("valid").expect("complete");
        assert_eq!(head.len, HEAD.len());
        assert_eq!(head.boundary, "boundarydonotcross");
        assert!(head.chunked);
    }

    #[test]
    fn anything_but_a_200_multipart_stream_is_refused_with_what_came() {
        let full = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 30\r\n\r\nserver full (2 viewers); try\n";
        let err = parse_head(full).expect_err("503").to_string();
        assert!(err.contains("503") && err.contains("server full"), "{err}");
        let html = b"HTTP/1.1 200 OK\r\ncontent-type: text/html\r\n\r\n";
        assert!(parse_head(html).is_err());
        assert!(parse_head(b"DCST\0\0\0garbage\r\n\r\n").is_err());
        let huge = [b'x'; MAX_RESPONSE_HEAD];
        assert!(parse_head(&huge).is_err());
        let mut long = b"HTTP/1.1 200 OK\r\nx: ".to_vec();
        long.resize(MAX_RESPONSE_HEAD, b'a');
        assert!(parse_head(&long).expect_err("too long").to_string().contains("longer"));
    }

    #[test]
    fn parts_come_out_whole_however_the_bytes_are_split() {
        let jpeg_a = vec![0xa5; 3000];
        let jpeg_b = b"\xff\xd8\r\n--boundarydonotcross\r\n\xff\xd9".to_vec(); // boundary inside
        let frames: [(u64, u64, &[u8]); 3] = [
            (7, 1_700_000_000_123_456, &jpeg_a),
            (8, 1_700_000_000_156_789, &jpeg_b),
            (10, 1_700_000_000_190_000, b""),
        ];
        for chunked in [true, false] {
            let head = Head { len: 0, boundary: "boundarydonotcross".into(), chunked };
            let bytes = body(&frames, chunked);
            for step in [1, 2, 3, 7, 64, 1000, bytes.len()] {
                let parts = parts_of(&head, &bytes, step).expect("valid body");
                let got: Vec<_> =
                    parts.iter().map(|p| (p.seq, p.capture_us, p.payload_len)).collect();
                assert_eq!(
                    got,
                    [
                        (Some(7), Some(1_700_000_000_123_456), 3000),
                        (Some(8), Some(1_700_000_000_156_789), jpeg_b.len()),
                        (Some(10), Some(1_700_000_000_190_000), 0),
                    ],
                    "chunked {chunked}, step {step}"
                );
                assert!(parts[0].wire_len > 3000 + 60, "{:?}", parts[0]);
            }
        }
    }

    #[test]
    fn the_end_of_the_body_is_seen() {
        let head = Head { len: 0, boundary: "b".into(), chunked: true };
        let mut reader = MjpegReader::new(&head);
        reader.feed(b"0\r\n\r\n", &mut |_| {}).expect("last chunk");
        assert!(reader.ended());
        let head = Head { chunked: false, ..head };
        let mut reader = MjpegReader::new(&head);
        reader.feed(b"--b\r\nContent-Length: 1\r\n\r\nx\r\n--b--\r\n", &mut |_| {}).expect("ok");
        assert!(reader.ended());
    }

    #[test]
    fn hostile_bodies_fail_within_their_bounds() {
        let head = Head { len: 0, boundary: "b".into(), chunked: false };
        let feed = |bytes: &[u8]| MjpegReader::new(&head).feed(bytes, &mut |_| {});
        // Headers that never end, in small pieces: refused at the cap, not buffered.
        let mut reader = MjpegReader::new(&head);
        reader.feed(b"--b\r\n", &mut |_| {}).expect("boundary");
        let endless = vec![b'a'; 100];
        let failed = (0..100).find_map(|_| reader.feed(&endless, &mut |_| {}).err());
        assert!(failed.is_some_and(|e| e.to_string().contains("longer")));
        assert!(feed(b"--b\r\nContent-Type: image/jpeg\r\n\r\n").is_err(), "no length");
        assert!(feed(b"--b\r\nContent-Length: -1\r\n\r\n").is_err());
        assert!(feed(b"--b\r\nContent-Length: 99999999999\r\n\r\n").is_err());
        assert!(feed(b"--b\r\nContent-Length: 1\r\nX-Timestamp: soon\r\n\r\n").is_err());
        assert!(feed(b"--b\r\nContent-Length: 1\r\n\r\nx\r\nnot a boundary\r\n").is_err());
        assert!(feed(&[b'-'; 1000]).is_err(), "a line that never ends");
        let chunked = Head { chunked: true, ..head.clone() };
        let feed = |bytes: &[u8]| MjpegReader::new(&chunked).feed(bytes, &mut |_| {});
        assert!(feed(b"zz\r\n").is_err());
        assert!(feed(b"FFFFFFFFF\r\n").is_err());
        assert!(feed(b"2\r\nabXY").is_err(), "no CRLF after the data");
    }

    #[test]
    fn timestamps_keep_microseconds() {
        assert_eq!(timestamp_us("1700000000.123456").ok(), Some(1_700_000_000_123_456));
        assert_eq!(timestamp_us("1.5").ok(), Some(1_500_000));
        assert_eq!(timestamp_us("2").ok(), Some(2_000_000));
        assert_eq!(timestamp_us("3.1234567").ok(), Some(3_123_456));
        for bad in ["", ".5", "1.-5", "x", "1e9", "99999999999999999999.0"] {
            assert!(timestamp_us(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn requests_name_the_stream_and_carry_the_token() {
        let plain = request("127.0.0.1:1", "", "a/1", "");
        assert!(plain.starts_with("GET /stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1:1\r\n"), "{plain}");
        assert!(!plain.contains("Authorization") && plain.ends_with("\r\n\r\n"));
        let named = request("127.0.0.1:1", "front", "a/1", "s3cret");
        assert!(named.starts_with("GET /front/stream.mjpg HTTP/1.1\r\n"), "{named}");
        assert!(named.contains("\r\nAuthorization: Bearer s3cret\r\n"), "{named}");
        // The whole request parses as one, headers and all.
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Request::new(&mut headers);
        assert!(
            matches!(parsed.parse(named.as_bytes()), Ok(httparse::Status::Complete(n)) if n == named.len())
        );
        assert_eq!(parsed.path, Some("/front/stream.mjpg"));
    }
}
