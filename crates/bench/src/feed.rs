//! `relay-bench feed`: data for every frame. Sends a JSON object of an exact size, as one UDP
//! datagram, at a steady rate to a drone started with `--meta-from udp:127.0.0.1:PORT`; the
//! drone puts the newest on its next frame. At the drone's frame rate, every frame carries
//! data that is new (`meta_fresh`); slower, the drone repeats the last one on the frames
//! between.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::net::UdpSocket;
use tokio::time::MissedTickBehavior;

/// Largest datagram sent: the drone takes up to 64 KiB a line.
pub const MAX_BYTES: usize = 64 * 1024;

/// What to send.
#[derive(Debug, Clone)]
pub struct Feed {
    /// The drone's `--meta-from udp:` address (loopback only).
    pub to: SocketAddr,
    /// Size of each datagram, bytes.
    pub bytes: usize,
    /// Datagrams a second.
    pub rate: f64,
    /// Stop after this long (`None`: until killed).
    pub duration: Option<Duration>,
}

/// One datagram: `{"seq":N,"sent_us":T,"pad":"xxx…"}`, padded to exactly `bytes` bytes.
pub fn datagram(seq: u64, sent_us: u64, bytes: usize) -> anyhow::Result<Vec<u8>> {
    let head = format!(r#"{{"seq":{seq},"sent_us":{sent_us},"pad":""#);
    let tail = "\"}";
    let Some(pad) = bytes.checked_sub(head.len() + tail.len()) else {
        bail!("{bytes} bytes is too small for the data object (at least {})", head.len() + 2);
    };
    let mut out = Vec::with_capacity(bytes);
    out.extend_from_slice(head.as_bytes());
    out.resize(head.len() + pad, b'x');
    out.extend_from_slice(tail.as_bytes());
    Ok(out)
}

/// Sends datagrams until `duration` is up (or forever); returns how many were sent. A send
/// that fails (no drone listening yet: ICMP port unreachable) is counted and retried on the
/// next tick.
pub async fn run(feed: &Feed) -> anyhow::Result<u64> {
    if !feed.to.ip().is_loopback() {
        bail!("feed only sends to this machine (127.0.0.0/8 or ::1), not {}", feed.to);
    }
    if feed.bytes > MAX_BYTES {
        bail!("--bytes {} is over the drone's limit of {MAX_BYTES}", feed.bytes);
    }
    if !(feed.rate > 0.0 && feed.rate <= 10_000.0) {
        bail!("--rate must be above 0 and at most 10000 a second");
    }
    // Checked with the longest numbers there can be, so no later datagram can miss the size.
    datagram(u64::MAX, u64::MAX, feed.bytes)?;
    let local: SocketAddr =
        if feed.to.is_ipv4() { ([127, 0, 0, 1], 0).into() } else { "[::1]:0".parse()? };
    let socket = UdpSocket::bind(local).await.context("could not open a UDP socket")?;
    socket.connect(feed.to).await.with_context(|| format!("could not address {}", feed.to))?;
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / feed.rate));
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let end = feed.duration.map(|d| tokio::time::Instant::now() + d);
    let (mut sent, mut failed) = (0u64, 0u64);
    loop {
        let at = ticks.tick().await;
        if end.is_some_and(|end| at >= end) {
            break;
        }
        let data = datagram(sent + failed, relay::clock::now_us(), feed.bytes)?;
        match socket.send(&data).await {
            Ok(_) => sent += 1,
            Err(err) => {
                if failed == 0 {
                    tracing::warn!(%err, to = %feed.to, "could not send data (is the drone up?)");
                }
                failed += 1;
            }
        }
    }
    tracing::info!(sent, failed, "feed done");
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagrams_are_json_of_the_exact_size() {
        for bytes in [64, 1024, MAX_BYTES] {
            let data = datagram(12_345, 1_700_000_000_123_456, bytes).expect("fits");
            assert_eq!(data.len(), bytes);
            let json: serde_json::Value = serde_json::from_slice(&data).expect("JSON");
            assert_eq!(json["seq"], 12_345);
        }
        assert!(datagram(1, 1_700_000_000_123_456, 20).is_err());
    }

    #[tokio::test]
    async fn it_sends_at_the_rate_and_only_to_this_machine() {
        let drone = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let to = drone.local_addr().expect("addr");
        let feed =
            Feed { to, bytes: 1024, rate: 100.0, duration: Some(Duration::from_millis(200)) };
        let sent = run(&feed).await.expect("runs");
        assert!((15..=21).contains(&sent), "{sent}");
        let mut buf = [0u8; 2048];
        let n = drone.recv(&mut buf).await.expect("a datagram");
        assert_eq!(n, 1024);
        let remote = Feed { to: ([192, 0, 2, 1], 9).into(), ..feed };
        assert!(run(&remote).await.is_err());
    }
}
