//! Connections to the server under test for the HTTP, stalled and undecrypted viewers: TCP,
//! then a TLS handshake when the load asks for TLS, as one boxed stream. (Dronecast viewers
//! dial through [`relay::subscribe`], which does the same and then says hello.)

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::client::TlsStream;

/// What a connection is, plain or TLS.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// A connection to the server, plain or TLS.
pub type Conn = Box<dyn Io>;

/// Connects to `server` (`HOST:PORT`) and, with `tls`, completes the TLS handshake, each step
/// within `wait`.
pub async fn connect(
    server: &str,
    tls: Option<&Arc<rustls::ClientConfig>>,
    wait: Duration,
) -> anyhow::Result<Conn> {
    let tcp = tcp(server, wait).await?;
    let _ = relay::socket::tune_receiver(&tcp);
    match tls {
        None => Ok(Box::new(tcp)),
        Some(config) => Ok(Box::new(handshake(server, tcp, config, wait).await?)),
    }
}

/// A TCP connection to `server`, within `wait`.
async fn tcp(server: &str, wait: Duration) -> anyhow::Result<TcpStream> {
    timeout(wait, TcpStream::connect(server))
        .await
        .with_context(|| format!("could not connect to {server} within {wait:?}"))?
        .with_context(|| format!("could not connect to {server}"))
}

/// The TLS handshake with `server` over `tcp`, within `wait`.
async fn handshake(
    server: &str,
    tcp: TcpStream,
    config: &Arc<rustls::ClientConfig>,
    wait: Duration,
) -> anyhow::Result<TlsStream<TcpStream>> {
    let connector = tokio_rustls::TlsConnector::from(config.clone());
    timeout(wait, connector.connect(server_name(server)?, tcp))
        .await
        .with_context(|| format!("no TLS handshake with {server} within {wait:?}"))?
        .with_context(|| format!("TLS handshake with {server} failed"))
}

/// Connects to `server` over TLS, sends `request` through it and leaves TLS: the TCP
/// connection alone, for a viewer that discards its ciphertext unread. Each step within
/// `wait`.
pub async fn connect_tls_then_leave(
    server: &str,
    tls: Option<&Arc<rustls::ClientConfig>>,
    request: &[u8],
    wait: Duration,
) -> anyhow::Result<TcpStream> {
    let config = tls.context("an undecrypted viewer needs TLS")?;
    let mut tls = handshake(server, tcp(server, wait).await?, config, wait).await?;
    let send = async {
        tls.write_all(request).await?;
        // Sealed and on its way only once flushed.
        tls.flush().await
    };
    timeout(wait, send)
        .await
        .with_context(|| format!("{server} took no request within {wait:?}"))?
        .with_context(|| format!("could not send the request to {server}"))?;
    Ok(tls.into_inner().0)
}

/// The name TLS checks the certificate against: the host part of `HOST:PORT` (an address
/// for the loopback servers the bench loads; a pinned certificate matches whatever its name).
fn server_name(server: &str) -> anyhow::Result<ServerName<'static>> {
    let host = server.rsplit_once(':').map_or(server, |(host, _)| host);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_owned())
        .with_context(|| format!("'{host}' is neither a host name nor an address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_name_is_the_host_part() -> anyhow::Result<()> {
        assert_eq!(server_name("127.0.0.1:9998")?.to_str(), "127.0.0.1");
        assert_eq!(server_name("[::1]:9998")?.to_str(), "::1");
        assert_eq!(server_name("localhost:1")?.to_str(), "localhost");
        assert!(server_name("bad host:1").is_err());
        Ok(())
    }
}
