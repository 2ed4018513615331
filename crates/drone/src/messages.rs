//! `--messages-to`: what viewers send the drone, handed to a local program as JSON lines —
//! on standard output, or to every program connected to a Unix socket the drone makes.
//!
//! ```json
//! {"received_us":1700000000123456,"name":"ground-1","path":["client/0.1.0@10.0.0.7:50412","cache-server/0.1.0@10.0.0.2:40112"],"payload":"{\"cmd\":\"home\"}"}
//! ```
//!
//! `path` lists where the message came from, the viewer first, one entry per hop. A payload
//! that is not UTF-8 comes as `"payload_base64"` instead of `"payload"`.

use std::path::PathBuf;

use anyhow::Context;
use base64::Engine;
use framing::ViewerMessage;
use serde::Serialize;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::UnixListener;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Messages that may wait for a slow reader; more are dropped for it (and counted in the log).
pub const BACKLOG: usize = 1024;

/// Where viewer messages go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessagesTo {
    /// JSON lines on standard output.
    Stdout,
    /// JSON lines to every program connected to a Unix socket the drone makes at this path.
    Unix(PathBuf),
}

impl std::str::FromStr for MessagesTo {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once(':') {
            _ if s == "stdout" => Ok(MessagesTo::Stdout),
            Some(("unix", path)) if !path.is_empty() => Ok(MessagesTo::Unix(path.into())),
            _ => Err("must be `stdout` or `unix:PATH`".into()),
        }
    }
}

impl std::fmt::Display for MessagesTo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MessagesTo::Stdout => f.write_str("stdout"),
            MessagesTo::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// One viewer message as a JSON line.
#[derive(Debug, Serialize)]
pub struct Line<'a> {
    /// When the drone received it, µs since the Unix epoch.
    pub received_us: u64,
    /// The viewer's name.
    pub name: &'a str,
    /// Where it came from, the viewer first.
    pub path: &'a [String],
    /// The payload, if it is UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<&'a str>,
    /// The payload in base64, if it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload_base64: Option<String>,
}

/// `message` as one JSON line, newline included.
pub fn to_line(message: &ViewerMessage) -> String {
    let text = std::str::from_utf8(&message.payload).ok();
    let line = Line {
        received_us: relay::clock::now_us(),
        name: &message.name,
        path: &message.path,
        payload: text,
        payload_base64: text
            .is_none()
            .then(|| base64::engine::general_purpose::STANDARD.encode(&message.payload)),
    };
    let mut json = serde_json::to_string(&line).unwrap_or_default();
    json.push('\n');
    json
}

/// Hands every message from `inbox` to `to` until `stop`. Fails at once when the socket
/// cannot be made.
pub async fn start(
    to: &MessagesTo,
    mut inbox: mpsc::Receiver<ViewerMessage>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    match to {
        MessagesTo::Stdout => {
            tokio::spawn(async move {
                let mut out = tokio::io::stdout();
                loop {
                    let message = tokio::select! {
                        _ = stop.cancelled() => return,
                        message = inbox.recv() => message,
                    };
                    let Some(message) = message else { return };
                    if let Err(err) = write_line(&mut out, &to_line(&message)).await {
                        return warn!(%err, "could not write viewer messages to stdout");
                    }
                }
            });
        }
        MessagesTo::Unix(path) => {
            if path.exists() {
                std::fs::remove_file(path).with_context(|| {
                    format!("could not remove the old socket {}", path.display())
                })?;
            }
            let listener = UnixListener::bind(path)
                .with_context(|| format!("could not make the socket {}", path.display()))?;
            info!(path = %path.display(), "handing viewer messages to readers of a Unix socket");
            let (lines, _) = broadcast::channel::<String>(BACKLOG);
            let fan_out = lines.clone();
            let stop_accept = stop.clone();
            tokio::spawn(async move {
                loop {
                    let accepted = tokio::select! {
                        _ = stop_accept.cancelled() => return,
                        accepted = listener.accept() => accepted,
                    };
                    match accepted {
                        Ok((stream, _)) => {
                            tokio::spawn(serve_reader(stream, fan_out.subscribe()));
                        }
                        Err(err) => warn!(%err, "could not accept a message reader"),
                    }
                }
            });
            tokio::spawn(async move {
                loop {
                    let message = tokio::select! {
                        _ = stop.cancelled() => return,
                        message = inbox.recv() => message,
                    };
                    let Some(message) = message else { return };
                    // No reader connected: the message is dropped, as a full inbox would.
                    let _ = lines.send(to_line(&message));
                }
            });
        }
    }
    Ok(())
}

async fn write_line(out: &mut (impl AsyncWrite + Unpin), line: &str) -> std::io::Result<()> {
    out.write_all(line.as_bytes()).await?;
    out.flush().await
}

/// Writes the lines to one reader; a reader that falls more than [`BACKLOG`] behind loses
/// the oldest.
async fn serve_reader(mut stream: tokio::net::UnixStream, mut lines: broadcast::Receiver<String>) {
    loop {
        match lines.recv().await {
            Ok(line) => {
                if write_line(&mut stream, &line).await.is_err() {
                    return;
                }
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                warn!(missed, "a message reader fell behind; it missed messages");
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn a_message_is_one_json_line_with_its_path() {
        let message = ViewerMessage {
            name: "ground-1".into(),
            path: vec!["client/0.1.0@127.0.0.1:5".into()],
            payload: Bytes::from_static(br#"{"cmd":"home"}"#),
        };
        let line = to_line(&message);
        assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
        let json: serde_json::Value = serde_json::from_str(&line).expect("JSON");
        assert_eq!(json["name"], "ground-1");
        assert_eq!(json["path"][0], "client/0.1.0@127.0.0.1:5");
        assert_eq!(json["payload"], r#"{"cmd":"home"}"#);
        let binary = ViewerMessage { payload: Bytes::from_static(b"\xff\x00"), ..message };
        let json: serde_json::Value = serde_json::from_str(&to_line(&binary)).expect("JSON");
        assert_eq!(json["payload_base64"], "/wA=");
        assert!(json.get("payload").is_none());
    }

    #[test]
    fn destinations_parse() {
        assert_eq!("stdout".parse(), Ok(MessagesTo::Stdout));
        assert_eq!("unix:/tmp/m".parse(), Ok(MessagesTo::Unix("/tmp/m".into())));
        assert!("tcp:1".parse::<MessagesTo>().is_err());
    }
}
