//! TCP options for every dronecast connection, and the one way a whole message is written.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Buf;
use socket2::{SockRef, TcpKeepalive};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// Writes `message` and flushes it. Over TLS a write is done once rustls has taken the
/// plaintext, and when the socket is full the last records it sealed stay in its buffer until
/// the next write — the next frame, or a heartbeat a quiet source sends half a second later;
/// flushing sends them now. On a plain socket the flush costs nothing.
pub(crate) async fn write_whole<W: AsyncWrite + Unpin>(
    write: &mut W,
    mut message: impl Buf,
) -> std::io::Result<()> {
    write.write_all_buf(&mut message).await?;
    write.flush().await
}

/// Pending connections the kernel queues for a listener. Tokio's default (1024) overflows
/// when a thousand viewers join at once; the kernel caps this at `net.core.somaxconn`.
const BACKLOG: u32 = 4096;

/// A listener for viewers: `SO_REUSEADDR` (a restarted server gets its port back at once) and
/// a backlog deep enough for a crowd joining at the same moment.
pub fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Keepalive probes find a peer that vanished without a FIN (a laptop that went to sleep,
/// a pulled cable) within about 25 s even when we have nothing to send it.
fn keepalive() -> TcpKeepalive {
    TcpKeepalive::new()
        .with_time(Duration::from_secs(10))
        .with_interval(Duration::from_secs(5))
        .with_retries(3)
}

/// Options for a connection that carries frames to a viewer.
///
/// `notsent_lowat` caps how many unsent bytes the kernel queues for this socket: the socket
/// only becomes writable again once the queue drains below it. Without it the kernel would
/// buffer several megabytes of old frames for a slow viewer, which would then watch a
/// seconds-old picture; with it, a slow viewer's writer wakes up late and skips to the newest
/// frame instead. `None` leaves the kernel default.
pub fn tune_sender(stream: &TcpStream, notsent_lowat: Option<u32>) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let sock = SockRef::from(stream);
    sock.set_tcp_keepalive(&keepalive())?;
    if let Some(lowat) = notsent_lowat {
        #[cfg(any(target_os = "linux", target_os = "android", target_vendor = "apple"))]
        sock.set_tcp_notsent_lowat(lowat)?;
        #[cfg(not(any(target_os = "linux", target_os = "android", target_vendor = "apple")))]
        let _ = lowat;
    }
    Ok(())
}

/// Options for a connection that receives frames.
pub fn tune_receiver(stream: &TcpStream) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    SockRef::from(stream).set_tcp_keepalive(&keepalive())
}
