//! Connections to the server under test for the HTTP and the stalled viewers: TCP, then a TLS
//! handshake when the load asks for TLS, as one boxed stream. (Dronecast viewers dial through
//! [`relay::subscribe`], which does the same and then says hello.)

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::timeout;

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
    let tcp = timeout(wait, TcpStream::connect(server))
        .await
        .with_context(|| format!("could not connect to {server} within {wait:?}"))?
        .with_context(|| format!("could not connect to {server}"))?;
    let _ = relay::socket::tune_receiver(&tcp);
    let Some(config) = tls else {
        return Ok(Box::new(tcp));
    };
    let name = server_name(server)?;
    let connector = tokio_rustls::TlsConnector::from(config.clone());
    let tls = timeout(wait, connector.connect(name, tcp))
        .await
        .with_context(|| format!("no TLS handshake with {server} within {wait:?}"))?
        .with_context(|| format!("TLS handshake with {server} failed"))?;
    Ok(Box::new(tls))
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
