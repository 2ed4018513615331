//! `--meta-from`: data to send along with frames, from any local program — JSON lines on
//! stdin, on a Unix socket, or in UDP datagrams. The newest line goes on the next frame with
//! the fresh flag set, and stays on the frames after it, flagged as repeated, until a newer
//! line replaces it. Repeating it means a viewer that skipped frames (latest-frame delivery)
//! still has the newest data; the flag lets one that wants events tell new data from old.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::AsyncRead;
use tokio::net::{UdpSocket, UnixListener};
use tokio_util::codec::{FramedRead, LinesCodec, LinesCodecError};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Longest line of data, in bytes: frames carry it to every viewer, so it is kept small.
pub const MAX_META_LEN: usize = 64 * 1024;

/// Where the data comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetaFrom {
    /// JSON lines on the drone's standard input.
    Stdin,
    /// JSON lines from programs that connect to a Unix socket the drone makes at this path.
    Unix(PathBuf),
    /// One JSON object per UDP datagram to this address (a local one: `127.0.0.1:PORT`).
    Udp(SocketAddr),
}

impl std::str::FromStr for MetaFrom {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once(':') {
            _ if s == "stdin" => Ok(MetaFrom::Stdin),
            Some(("unix", path)) if !path.is_empty() => Ok(MetaFrom::Unix(path.into())),
            Some(("udp", addr)) => addr.parse().map(MetaFrom::Udp).map_err(|_| {
                format!("'{addr}' is not an address to listen on (udp:127.0.0.1:PORT)")
            }),
            _ => Err("must be `stdin`, `unix:PATH` or `udp:127.0.0.1:PORT`".into()),
        }
    }
}

impl std::fmt::Display for MetaFrom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MetaFrom::Stdin => f.write_str("stdin"),
            MetaFrom::Unix(path) => write!(f, "unix:{}", path.display()),
            MetaFrom::Udp(addr) => write!(f, "udp:{addr}"),
        }
    }
}

/// The newest data, shared by the reader and the capture thread.
#[derive(Debug, Default)]
pub struct Newest(Mutex<(Bytes, bool)>);

impl Newest {
    /// The data for the next frame, and whether it is new since the previous frame.
    pub fn for_frame(&self) -> (Bytes, bool) {
        match self.0.lock() {
            Ok(mut newest) => {
                let fresh = std::mem::replace(&mut newest.1, false);
                (newest.0.clone(), fresh)
            }
            Err(_) => (Bytes::new(), false),
        }
    }

    /// Takes `line` as the newest data if it is JSON; says why not otherwise.
    fn offer(&self, line: &[u8]) -> Result<(), String> {
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(()); // blank lines between objects are harmless
        }
        if let Err(err) = serde_json::from_slice::<serde::de::IgnoredAny>(line) {
            return Err(format!("not JSON ({err}); skipped"));
        }
        if let Ok(mut newest) = self.0.lock() {
            *newest = (Bytes::copy_from_slice(line), true);
        }
        Ok(())
    }
}

/// Starts reading data from `from` until `stop`; returns where the newest line is kept.
/// Fails at once when the socket cannot be made.
pub async fn start(from: &MetaFrom, stop: CancellationToken) -> anyhow::Result<Arc<Newest>> {
    let newest = Arc::new(Newest::default());
    match from {
        MetaFrom::Stdin => {
            let lines = read_lines(tokio::io::stdin(), newest.clone(), "stdin".into());
            tokio::spawn(until(stop, lines));
        }
        MetaFrom::Unix(path) => {
            // A socket left by a previous run would make bind fail.
            if path.exists() {
                std::fs::remove_file(path).with_context(|| {
                    format!("could not remove the old socket {}", path.display())
                })?;
            }
            let listener = UnixListener::bind(path)
                .with_context(|| format!("could not make the socket {}", path.display()))?;
            info!(path = %path.display(), "taking data for frames on a Unix socket");
            tokio::spawn(until(stop, accept_unix(listener, newest.clone())));
        }
        MetaFrom::Udp(addr) => {
            let socket = UdpSocket::bind(addr)
                .await
                .with_context(|| format!("could not listen for data on udp:{addr}"))?;
            info!(%addr, "taking data for frames in UDP datagrams");
            tokio::spawn(until(stop, read_datagrams(socket, newest.clone())));
        }
    }
    Ok(newest)
}

async fn until(stop: CancellationToken, work: impl Future<Output = ()>) {
    tokio::select! {
        _ = stop.cancelled() => {}
        _ = work => {}
    }
}

async fn accept_unix(listener: UnixListener, newest: Arc<Newest>) {
    let mut writer = 0u64;
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                writer += 1;
                tokio::spawn(read_lines(stream, newest.clone(), format!("unix writer {writer}")));
            }
            Err(err) => {
                warn!(%err, "could not accept a data writer");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

/// Reads JSON lines; a line over [`MAX_META_LEN`] is refused with an error and skipped (the
/// codec discards up to the next newline without buffering it).
async fn read_lines(input: impl AsyncRead + Unpin, newest: Arc<Newest>, what: String) {
    let mut lines = FramedRead::new(input, LinesCodec::new_with_max_length(MAX_META_LEN));
    while let Some(line) = lines.next().await {
        match line {
            Ok(line) => {
                if let Err(why) = newest.offer(line.as_bytes()) {
                    warn!(from = %what, "data line {why}");
                }
            }
            Err(LinesCodecError::MaxLineLengthExceeded) => {
                warn!(from = %what, max = MAX_META_LEN, "data line longer than the limit; skipped");
            }
            Err(LinesCodecError::Io(err)) => {
                warn!(from = %what, %err, "could not read data");
                return;
            }
        }
    }
    info!(from = %what, "data input closed");
}

async fn read_datagrams(socket: UdpSocket, newest: Arc<Newest>) {
    // One byte over the limit shows a datagram that was too long.
    let mut buf = vec![0u8; MAX_META_LEN + 1];
    loop {
        match socket.recv_from(&mut buf).await {
            Ok((n, _)) if n > MAX_META_LEN => {
                warn!(max = MAX_META_LEN, "data datagram longer than the limit; skipped");
            }
            Ok((n, from)) => {
                let line = buf[..n].strip_suffix(b"\n").unwrap_or(&buf[..n]);
                if let Err(why) = newest.offer(line) {
                    warn!(%from, "data datagram {why}");
                }
            }
            Err(err) => warn!(%err, "could not receive data"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_parse() {
        assert_eq!("stdin".parse(), Ok(MetaFrom::Stdin));
        assert_eq!("unix:/run/t.sock".parse(), Ok(MetaFrom::Unix("/run/t.sock".into())));
        assert_eq!("udp:127.0.0.1:7000".parse(), Ok(MetaFrom::Udp(([127, 0, 0, 1], 7000).into())));
        assert!("udp:nowhere".parse::<MetaFrom>().is_err());
        assert!("file:x".parse::<MetaFrom>().is_err());
    }

    #[test]
    fn the_newest_line_is_fresh_once_then_repeated() {
        let newest = Newest::default();
        assert_eq!(newest.for_frame(), (Bytes::new(), false));
        newest.offer(br#"{"alt":1}"#).expect("JSON");
        newest.offer(br#"{"alt":2}"#).expect("JSON");
        assert_eq!(newest.for_frame(), (Bytes::from_static(br#"{"alt":2}"#), true));
        assert_eq!(newest.for_frame(), (Bytes::from_static(br#"{"alt":2}"#), false));
        assert!(newest.offer(b"alt=3").is_err(), "not JSON");
        assert_eq!(newest.for_frame().0, Bytes::from_static(br#"{"alt":2}"#));
    }
}
