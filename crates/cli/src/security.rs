//! Flags for tokens and TLS: [`Protect`] for the servers' ports, [`Dial`] for whatever dials
//! a source (the client, a cache-server's upstreams).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use relay::auth::Auth;
use relay::tls::{Fingerprint, ServerTls, Trust};
use tokio::sync::watch;
use tracing::{info, warn};

/// Who may watch a server, and TLS on its ports.
#[derive(Debug, Clone, clap::Args)]
pub struct Protect {
    /// A token viewers must give (over TCP in their hello, over HTTP as a Bearer token, Basic
    /// password or `?token=`); repeat for several. Without any token option, anyone may watch.
    #[arg(long = "token", env = "DRONECAST_TOKEN", value_name = "TOKEN")]
    pub tokens: Vec<String>,
    /// A file of tokens, one a line (`#` starts a comment), re-read on SIGHUP: revoking a
    /// token is deleting its line.
    #[arg(long, env = "DRONECAST_TOKEN_FILE", value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    /// TLS on every port (the dronecast port and HTTP): the certificate chain, PEM; re-read on
    /// SIGHUP. Needs --tls-key.
    #[arg(long, env = "DRONECAST_TLS_CERT", value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key, PEM.
    #[arg(long, env = "DRONECAST_TLS_KEY", value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

/// A server's protection, loaded: its tokens and its TLS certificate, each if configured.
pub type Protection = (Option<Arc<Auth>>, Option<Arc<ServerTls>>);

impl Protect {
    /// The tokens and the TLS certificate these flags name, loaded (files read now).
    pub fn load(&self) -> anyhow::Result<Protection> {
        let auth = if self.tokens.is_empty() && self.token_file.is_none() {
            None
        } else {
            Some(Arc::new(Auth::new(&self.tokens, self.token_file.as_deref())?))
        };
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(ServerTls::load(cert, key)?),
            _ => None,
        };
        Ok((auth, tls))
    }
}

/// Re-reads the token file and the certificate at every SIGHUP (`reloads` changing), until
/// the program ends; an error keeps the old ones and says so.
pub fn reload_security(
    auth: Option<Arc<Auth>>,
    tls: Option<Arc<ServerTls>>,
    mut reloads: watch::Receiver<u64>,
) {
    if auth.is_none() && tls.is_none() {
        return;
    }
    tokio::spawn(async move {
        while reloads.changed().await.is_ok() {
            if let Some(auth) = &auth {
                match auth.reload() {
                    Ok(n) => info!(tokens = n, "tokens reloaded"),
                    Err(err) => warn!(%err, "tokens not reloaded; the old ones stay"),
                }
            }
            if let Some(tls) = &tls {
                match tls.reload() {
                    Ok(()) => info!(fingerprint = ?tls.fingerprint(), "TLS certificate reloaded"),
                    Err(err) => warn!(%err, "TLS certificate not reloaded; the old one stays"),
                }
            }
        }
    });
}

/// How to reach a source that wants a token, or speaks TLS.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Dial {
    /// The token to give the server.
    #[arg(long, env = "DRONECAST_TOKEN", value_name = "TOKEN")]
    pub token: Option<String>,
    /// A file holding the token to give the server (its first line).
    #[arg(long, env = "DRONECAST_TOKEN_FILE", value_name = "PATH", conflicts_with = "token")]
    pub token_file: Option<PathBuf>,
    /// Speak TLS to the server (the same as writing tls://HOST:PORT).
    #[arg(long, env = "DRONECAST_TLS")]
    pub tls: bool,
    /// Over TLS, trust the CAs in this PEM file (instead of the system's).
    #[arg(long, env = "DRONECAST_TLS_CA", value_name = "PEM", conflicts_with = "tls_pin")]
    pub tls_ca: Option<PathBuf>,
    /// Over TLS, trust exactly the certificate with this SHA-256 fingerprint (what
    /// `drone --tls-self-signed` prints); the natural choice for a self-signed Pi.
    #[arg(long, env = "DRONECAST_TLS_PIN", value_name = "SHA256")]
    pub tls_pin: Option<Fingerprint>,
}

impl Dial {
    /// The token to send, if any (read from the file now).
    pub fn token(&self) -> anyhow::Result<bytes::Bytes> {
        match (&self.token, &self.token_file) {
            (Some(token), _) => Ok(bytes::Bytes::from(token.clone().into_bytes())),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("could not read the token file {}", path.display()))?;
                let token =
                    text.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with('#'));
                let token = token.with_context(|| format!("{} holds no token", path.display()))?;
                Ok(bytes::Bytes::from(token.to_owned().into_bytes()))
            }
            (None, None) => Ok(bytes::Bytes::new()),
        }
    }

    /// How to trust a TLS source.
    pub fn trust(&self) -> Trust {
        match (&self.tls_pin, &self.tls_ca) {
            (Some(pin), _) => Trust::Pin(*pin),
            (None, Some(ca)) => Trust::Ca(ca.clone()),
            (None, None) => Trust::System,
        }
    }

    /// The TLS client setup for `target`, when it is to be dialled over TLS.
    pub fn tls_for(&self, tls: bool) -> anyhow::Result<Option<Arc<rustls::ClientConfig>>> {
        if !(tls || self.tls) {
            anyhow::ensure!(
                self.tls_ca.is_none() && self.tls_pin.is_none(),
                "--tls-ca and --tls-pin apply to TLS: write tls://HOST:PORT or add --tls"
            );
            return Ok(None);
        }
        Ok(Some(relay::tls::client_config(&self.trust())?))
    }
}
