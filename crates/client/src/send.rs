//! Messages from the viewer to the source: `--send TEXT` (each once, after the first
//! connection), `--send-stdin` (each line typed, as it comes) and the window's
//! `--send-on-key K=TEXT`.
//!
//! Everything goes through the link's [`Outbox`], which never waits: a message that finds it
//! full, or the link down, or a source that takes no messages (an older server, a drone
//! without `--messages-to`) is dropped and counted, and the link says why in the log. A
//! payload is at most [`MAX_PAYLOAD_LEN`] bytes; longer input is refused here with an error,
//! never cut short.

use std::io::BufRead;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use framing::message::MAX_PAYLOAD_LEN;
use relay::Link;
use relay::link::{Event, Outbox};
use tracing::{debug, warn};

/// What to send.
#[derive(Debug, Clone, Default)]
pub struct Sending {
    /// Sent once each, in order, as soon as the first connection is up (`--send`).
    pub once: Vec<Bytes>,
    /// Send each line read from standard input, as it comes (`--send-stdin`).
    pub stdin: bool,
}

/// Checks that `text` fits in one message: the value parser of `--send`.
pub fn payload(text: &str) -> Result<Bytes, String> {
    match text.len() {
        n if n > MAX_PAYLOAD_LEN => {
            Err(format!("is {n} bytes; a message carries at most {MAX_PAYLOAD_LEN}"))
        }
        _ => Ok(Bytes::copy_from_slice(text.as_bytes())),
    }
}

/// Sends messages over a link from any thread, and keeps count of them: each one handed over
/// is, some time later, either sent or dropped ([`Messenger::pending`] says how many are
/// neither yet).
#[derive(Debug, Clone)]
pub struct Messenger {
    outbox: Outbox,
    attempted: Arc<AtomicU64>,
}

impl Messenger {
    /// A messenger for `link`.
    pub fn new(link: &Link) -> Messenger {
        Messenger { outbox: link.outbox(), attempted: Arc::default() }
    }

    /// Hands `payload` to the link; false when it was dropped at once (the outbox is full).
    pub fn send(&self, payload: Bytes) -> bool {
        self.attempted.fetch_add(1, Ordering::Relaxed);
        let len = payload.len();
        let queued = self.outbox.send(payload);
        if queued {
            debug!(bytes = len, "message handed to the link");
        } else {
            warn!(bytes = len, "message dropped: too many waiting to be sent");
        }
        queued
    }

    /// Messages written to the source.
    pub fn sent(&self) -> u64 {
        self.outbox.counts().sent()
    }

    /// Messages dropped.
    pub fn dropped(&self) -> u64 {
        self.outbox.counts().dropped()
    }

    /// Messages handed over that are neither sent nor dropped yet.
    pub fn pending(&self) -> u64 {
        // Read the outcomes first: a message counted in them was attempted before.
        let done = self.sent() + self.dropped();
        self.attempted.load(Ordering::Relaxed).saturating_sub(done)
    }

    /// Sends each line of standard input as it comes, from a thread of its own (a blocking
    /// read that nothing waits for: the program exits whether or not a line is being typed).
    /// Blank lines are skipped; a line over [`MAX_PAYLOAD_LEN`] bytes is refused with an error
    /// in the log. Stdin ending stops the sending, not the program.
    pub fn send_stdin(&self) -> std::io::Result<()> {
        let messenger = self.clone();
        std::thread::Builder::new().name("send-stdin".into()).spawn(move || {
            let stdin = std::io::stdin();
            let ended = for_each_line(stdin.lock(), MAX_PAYLOAD_LEN, |line| match line {
                Line::Text([]) => {}
                Line::Text(text) => {
                    messenger.send(Bytes::copy_from_slice(text));
                }
                Line::TooLong => warn!(
                    "line from stdin not sent: it is longer than {MAX_PAYLOAD_LEN} bytes, the \
                     most a message carries"
                ),
            });
            match ended {
                Ok(()) => debug!("stdin ended: no more messages from it"),
                Err(err) => warn!(%err, "could not read stdin; no more messages from it"),
            }
        })?;
        Ok(())
    }
}

/// Hands the link what [`Sending::once`] holds, the first time it is called.
#[derive(Debug)]
pub struct Once(Option<Vec<Bytes>>);

impl Once {
    /// The messages to send at the first connection.
    pub fn new(messages: Vec<Bytes>) -> Once {
        Once(Some(messages).filter(|m| !m.is_empty()))
    }

    /// How many are still waiting for a first connection.
    pub fn unsent(&self) -> u64 {
        self.0.as_ref().map_or(0, |m| m.len() as u64)
    }

    /// Call on every connection: sends the messages the first time.
    pub fn connected(&mut self, messenger: &Messenger) {
        for payload in self.0.take().unwrap_or_default() {
            messenger.send(payload);
        }
    }
}

/// Longest a client that is done waits for its messages to go out.
pub const DRAIN_WITHIN: Duration = Duration::from_secs(1);

/// Keeps the link going until every message handed to it is sent or dropped, or for
/// [`DRAIN_WITHIN`]: so that `--send` reaches the source even when the frames asked for
/// arrived first. The link sends messages only while it is asked for its next event; the
/// events meanwhile are ignored.
pub async fn drain(link: &mut Link, messenger: &Messenger) {
    let deadline = tokio::time::Instant::now() + DRAIN_WITHIN;
    while messenger.pending() > 0 {
        match tokio::time::timeout_at(deadline, link.next()).await {
            Ok(Ok(Event::Frame(..) | Event::Connected(_) | Event::Lost(_))) => {}
            Ok(Err(_)) => return,
            Err(_) => {
                return warn!(
                    pending = messenger.pending(),
                    "messages not sent before the client stopped"
                );
            }
        }
    }
}

/// One line of input.
#[derive(Debug, PartialEq, Eq)]
enum Line<'a> {
    /// The line, without its line break (`\n` or `\r\n`).
    Text(&'a [u8]),
    /// A line longer than the limit. Skipped, never held whole.
    TooLong,
}

/// Calls `each` with every line of `input`, holding at most `max` bytes of one at a time.
fn for_each_line(
    mut input: impl BufRead,
    max: usize,
    mut each: impl FnMut(Line<'_>),
) -> std::io::Result<()> {
    let mut line = Vec::with_capacity(256);
    let mut over = false;
    loop {
        let chunk = match input.fill_buf() {
            Ok(chunk) => chunk,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        let (taken, end) = match chunk.iter().position(|&b| b == b'\n') {
            Some(at) => (&chunk[..at], true),
            None => (chunk, false),
        };
        let eof = chunk.is_empty();
        let used = taken.len() + usize::from(end);
        // One byte over the limit is kept for the `\r` of a `\r\n`, not part of the line.
        if !over && line.len() + taken.len() > max + 1 {
            over = true;
            line.clear();
        } else if !over {
            line.extend_from_slice(taken);
        }
        input.consume(used);
        if end || (eof && (!line.is_empty() || over)) {
            let text = line.strip_suffix(b"\r").unwrap_or(&line);
            if std::mem::take(&mut over) || text.len() > max {
                each(Line::TooLong);
            } else {
                each(Line::Text(text));
            }
            line.clear();
        }
        if eof {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], max: usize) -> Vec<String> {
        let mut out = Vec::new();
        // A tiny buffer, so that lines arrive in pieces.
        let reader = std::io::BufReader::with_capacity(3, input);
        for_each_line(reader, max, |line| {
            out.push(match line {
                Line::Text(text) => String::from_utf8_lossy(text).into_owned(),
                Line::TooLong => "<too long>".to_owned(),
            })
        })
        .expect("reads");
        out
    }

    #[test]
    fn lines_come_without_their_breaks_and_long_ones_are_refused() {
        assert_eq!(lines(b"one\r\ntwo\n\nthree", 8), ["one", "two", "", "three"]);
        assert_eq!(lines(b"12345678\n123456789\nok\n", 8), ["12345678", "<too long>", "ok"]);
        assert_eq!(lines(b"12345678\r\n", 8), ["12345678"]);
        assert_eq!(lines(b"123456789\r\n", 8), ["<too long>"]);
        assert_eq!(lines(b"far too long for it\nshort", 8), ["<too long>", "short"]);
        assert_eq!(lines(b"far too long for it", 8), ["<too long>"]);
        assert!(lines(b"", 8).is_empty());
    }

    #[test]
    fn a_payload_over_4_kib_is_refused() {
        assert_eq!(payload("hello"), Ok(Bytes::from_static(b"hello")));
        assert!(payload(&"x".repeat(MAX_PAYLOAD_LEN)).is_ok());
        let err = payload(&"x".repeat(MAX_PAYLOAD_LEN + 1)).expect_err("too long");
        assert_eq!(err, "is 4097 bytes; a message carries at most 4096");
    }
}
