//! `relay::socket`: the options every connection gets, read back from real loopback sockets.

use std::time::Duration;

use socket2::SockRef;
use tokio::net::{TcpListener, TcpStream};

/// A connected loopback pair: (accepted side, dialling side).
async fn pair() -> std::io::Result<(TcpStream, TcpStream)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let dial = TcpStream::connect(listener.local_addr()?);
    let (dialled, accepted) = tokio::join!(dial, listener.accept());
    Ok((accepted?.0, dialled?))
}

fn assert_keepalive(stream: &TcpStream, side: &str) -> std::io::Result<()> {
    let sock = SockRef::from(stream);
    assert!(sock.keepalive()?, "{side}: SO_KEEPALIVE is off");
    // A vanished peer is found in 10 s + 3 probes 5 s apart.
    assert_eq!(sock.tcp_keepalive_time()?, Duration::from_secs(10), "{side}: TCP_KEEPIDLE");
    assert_eq!(sock.tcp_keepalive_interval()?, Duration::from_secs(5), "{side}: TCP_KEEPINTVL");
    assert_eq!(sock.tcp_keepalive_retries()?, 3, "{side}: TCP_KEEPCNT");
    assert!(sock.tcp_nodelay()?, "{side}: TCP_NODELAY is off");
    Ok(())
}

#[tokio::test]
async fn a_viewer_connection_gets_keepalive_nodelay_and_the_low_watermark() -> std::io::Result<()> {
    let (accepted, _dialled) = pair().await?;
    assert!(!SockRef::from(&accepted).keepalive()?, "keepalive was on before tuning");
    relay::socket::tune_sender(&accepted, Some(16 * 1024))?;
    assert_keepalive(&accepted, "viewer socket")?;
    #[cfg(target_os = "linux")]
    assert_eq!(SockRef::from(&accepted).tcp_notsent_lowat()?, 16 * 1024);
    Ok(())
}

#[tokio::test]
async fn a_dialling_connection_gets_keepalive_and_nodelay() -> std::io::Result<()> {
    let (_accepted, dialled) = pair().await?;
    relay::socket::tune_receiver(&dialled)?;
    assert_keepalive(&dialled, "upstream socket")?;
    Ok(())
}
