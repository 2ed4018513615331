//! TLS on every port and every dialer, with rustls: a server's certificate (reloaded on
//! demand), a Pi's self-signed one made on first start, and the three ways a viewer trusts a
//! source — the system's roots, a CA file, or a pinned certificate fingerprint (the natural
//! choice for a self-signed Pi).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, RwLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};
use tokio::net::TcpStream;

/// What went wrong with TLS setup; each says which file and what to do.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("{path}: {cause}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        cause: io::Error,
    },
    /// A PEM file held nothing usable.
    #[error("{path}: {what}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What was missing or wrong.
        what: String,
    },
    /// rustls refused the setup.
    #[error("TLS setup failed: {0}")]
    Rustls(#[from] rustls::Error),
    /// The self-signed certificate could not be made.
    #[error("could not make a self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// No system root certificates were found.
    #[error("no system root certificates found ({0}); give --tls-ca or --tls-pin")]
    NoRoots(String),
}

fn pem_error(path: &Path, what: impl Into<String>) -> TlsError {
    TlsError::Pem { path: path.to_owned(), what: what.into() }
}

/// A certificate's SHA-256 fingerprint: what a viewer pins (`--tls-pin`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// The fingerprint of a DER certificate.
    pub fn of(cert: &[u8]) -> Fingerprint {
        Fingerprint(Sha256::digest(cert).into())
    }
}

impl fmt::Display for Fingerprint {
    /// `SHA256:AB:CD:…`, as `openssl x509 -fingerprint -sha256` prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SHA256:")?;
        for (i, byte) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{byte:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Fingerprint {
    type Err = String;

    /// 64 hex digits, with or without colons, any case, with or without `SHA256:` in front.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let s = s.strip_prefix("SHA256:").or_else(|| s.strip_prefix("sha256:")).unwrap_or(s);
        let hex: String = s.chars().filter(|c| *c != ':').collect();
        let bad = || "must be a SHA-256 fingerprint: 64 hex digits, colons allowed".to_owned();
        if hex.len() != 64 || !hex.is_ascii() {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(Fingerprint(out))
    }
}

/// ring's suites with TLS 1.3's AES-128-GCM first (ring lists AES-256-GCM first). A TLS 1.3
/// server takes the client's order, so this is what our viewers and upstream links ask for:
/// the suite browsers and curl ask for first, as sound for a video stream, and cheaper per
/// byte than AES-256 (10 AES rounds a block, not 14) for a relay that seals every frame once
/// per viewer (docs/BENCHMARKS.md, target 12).
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    let mut provider = rustls::crypto::ring::default_provider();
    let first = rustls::CipherSuite::TLS13_AES_128_GCM_SHA256;
    // Stable: the others keep ring's order.
    provider.cipher_suites.sort_by_key(|suite| suite.suite() != first);
    Arc::new(provider)
}

fn read_certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|err| pem_error(cert, format!("not a PEM certificate file ({err})")))?
        .collect::<Result<_, _>>()
        .map_err(|err| pem_error(cert, format!("not a PEM certificate file ({err})")))?;
    if certs.is_empty() {
        return Err(pem_error(cert, "holds no certificate"));
    }
    let der = PrivateKeyDer::from_pem_file(key)
        .map_err(|err| pem_error(key, format!("holds no private key ({err})")))?;
    let signing = provider()
        .key_provider
        .load_private_key(der)
        .map_err(|err| pem_error(key, format!("not a usable private key ({err})")))?;
    Ok(CertifiedKey::new(certs, signing))
}

/// The server's certificate, swapped in place by [`ServerTls::reload`].
#[derive(Debug)]
struct CurrentCert(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for CurrentCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.read().ok().map(|cert| cert.clone())
    }
}

/// TLS for a server's ports: its certificate and key, re-read by [`ServerTls::reload`].
pub struct ServerTls {
    acceptor: tokio_rustls::TlsAcceptor,
    current: Arc<CurrentCert>,
    cert: PathBuf,
    key: PathBuf,
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls").field("cert", &self.cert).field("key", &self.key).finish()
    }
}

impl ServerTls {
    /// Loads a PEM certificate chain and its private key.
    pub fn load(cert: &Path, key: &Path) -> Result<Arc<ServerTls>, TlsError> {
        let current = Arc::new(CurrentCert(RwLock::new(Arc::new(read_certified_key(cert, key)?))));
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        Ok(Arc::new(ServerTls {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            current,
            cert: cert.to_owned(),
            key: key.to_owned(),
        }))
    }

    /// Re-reads the certificate and key (a renewed certificate); connections made from now on
    /// get the new one. On an error the old one stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let fresh = Arc::new(read_certified_key(&self.cert, &self.key)?);
        if let Ok(mut current) = self.current.0.write() {
            *current = fresh;
        }
        Ok(())
    }

    /// The fingerprint of the certificate served now.
    pub fn fingerprint(&self) -> Option<Fingerprint> {
        let current = self.current.0.read().ok()?;
        current.cert.first().map(|cert| Fingerprint::of(cert))
    }

    /// Runs the server side of a TLS handshake on `tcp`.
    pub(crate) async fn accept(
        &self,
        tcp: TcpStream,
    ) -> io::Result<tokio_rustls::server::TlsStream<TcpStream>> {
        let mut tls = self.acceptor.accept(tcp).await?;
        tls.get_mut().1.set_buffer_limit(Some(SEALED_AHEAD));
        Ok(tls)
    }
}

/// Sealed records a viewer's connection may hold before the socket takes them. rustls' default
/// (64 KiB) is less than a 640×480 frame, which then took two rounds of sealing and two writes;
/// with room for a whole frame it is sealed at once and leaves in one `writev`. A stalled
/// viewer holds at most this much, beside its kernel socket buffers.
const SEALED_AHEAD: usize = 128 * 1024;

/// True when `first` is how a TLS handshake begins (a handshake record, TLS 1.x).
pub fn looks_like_tls(first: &[u8]) -> bool {
    matches!(first, [0x16, 0x03, ..] | [0x16])
}

/// The self-signed certificate kept in `dir` (`cert.pem`, `key.pem`), made on first use for
/// `names` (host names and addresses the viewers dial). Returns the two paths.
pub fn self_signed(dir: &Path, names: &[String]) -> Result<(PathBuf, PathBuf), TlsError> {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    if cert.exists() && key.exists() {
        return Ok((cert, key));
    }
    let file_error = |path: &Path| {
        let path = path.to_owned();
        move |cause| TlsError::File { path, cause }
    };
    std::fs::create_dir_all(dir).map_err(file_error(dir))?;
    let made = rcgen::generate_simple_self_signed(names.to_vec())?;
    write_private(&key, made.signing_key.serialize_pem().as_bytes()).map_err(file_error(&key))?;
    std::fs::write(&cert, made.cert.pem()).map_err(file_error(&cert))?;
    Ok((cert, key))
}

/// Writes a file only its owner may read.
fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(bytes)
}

/// How a viewer trusts a TLS source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// The system's root certificates (a source with a certificate from a public CA).
    System,
    /// The CAs in a PEM file (an organisation's own CA).
    Ca(PathBuf),
    /// Exactly the certificate with this fingerprint, whoever signed it (a self-signed Pi).
    Pin(Fingerprint),
}

/// The client side of TLS for `trust`.
pub fn client_config(trust: &Trust) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?;
    let config = match trust {
        Trust::Pin(pin) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinVerifier {
                pin: *pin,
                algorithms: provider().signature_verification_algorithms,
            }))
            .with_no_client_auth(),
        Trust::Ca(path) => {
            let mut roots = rustls::RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|err| pem_error(path, format!("not a PEM file ({err})")))?;
            for cert in certs {
                let cert =
                    cert.map_err(|err| pem_error(path, format!("not a PEM file ({err})")))?;
                roots.add(cert)?;
            }
            if roots.is_empty() {
                return Err(pem_error(path, "holds no CA certificate"));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        Trust::System => {
            let found = rustls_native_certs::load_native_certs();
            let mut roots = rustls::RootCertStore::empty();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                let why =
                    found.errors.first().map_or("none installed".to_owned(), |e| e.to_string());
                return Err(TlsError::NoRoots(why));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    Ok(Arc::new(config))
}

/// Runs the client side of a TLS handshake on `tcp` with the source at `host`.
pub(crate) async fn connect(
    config: Arc<rustls::ClientConfig>,
    host: &str,
    tcp: TcpStream,
) -> io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let name = ServerName::try_from(host.to_owned()).map_err(|_| {
        io::Error::new(io::ErrorKind::InvalidInput, format!("'{host}' is not a host name"))
    })?;
    tokio_rustls::TlsConnector::from(config).connect(name, tcp).await
}

/// Trusts exactly one certificate, by fingerprint, and checks the handshake's signatures
/// with its key.
#[derive(Debug)]
struct PinVerifier {
    pin: Fingerprint,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got = Fingerprint::of(end_entity);
        if got == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "the source's certificate is {got}, not the pinned {}",
                self.pin
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_parse_as_openssl_prints_them_and_bare() {
        let f = Fingerprint([0xab; 32]);
        let printed = f.to_string();
        assert!(printed.starts_with("SHA256:AB:AB:"));
        assert_eq!(printed.parse(), Ok(f));
        assert_eq!("ab".repeat(32).parse(), Ok(f));
        assert!("abcd".parse::<Fingerprint>().is_err());
    }

    #[test]
    fn a_self_signed_certificate_is_made_once_and_loads() -> Result<(), TlsError> {
        let dir = std::env::temp_dir().join(format!("dronecast-tls-{}", std::process::id()));
        let (cert, key) = self_signed(&dir, &["localhost".into(), "127.0.0.1".into()])?;
        let first =
            std::fs::read(&cert).map_err(|cause| TlsError::File { path: cert.clone(), cause })?;
        self_signed(&dir, &["other".into()])?;
        let again =
            std::fs::read(&cert).map_err(|cause| TlsError::File { path: cert.clone(), cause })?;
        assert_eq!(first, again, "kept, not made again");
        let tls = ServerTls::load(&cert, &key)?;
        assert!(tls.fingerprint().is_some());
        let _ = std::fs::remove_dir_all(dir);
        Ok(())
    }

    #[tokio::test]
    async fn our_viewers_and_servers_agree_on_aes_128_gcm() -> Result<(), Box<dyn std::error::Error>>
    {
        let dir = std::env::temp_dir().join(format!("dronecast-tls-suite-{}", std::process::id()));
        let (cert, key) = self_signed(&dir, &["localhost".into()])?;
        let server = ServerTls::load(&cert, &key)?;
        let pin = server.fingerprint().ok_or("no certificate")?;
        let _ = std::fs::remove_dir_all(dir);
        let connector = tokio_rustls::TlsConnector::from(client_config(&Trust::Pin(pin))?);
        let (near, far) = tokio::io::duplex(64 * 1024);
        let name = rustls::pki_types::ServerName::try_from("localhost")?;
        let (client, served) =
            tokio::join!(connector.connect(name, near), server.acceptor.accept(far));
        let (client, served) = (client?, served?);
        let suite = |s: Option<rustls::SupportedCipherSuite>| s.map(|s| s.suite());
        let want = Some(rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
        assert_eq!(suite(client.get_ref().1.negotiated_cipher_suite()), want);
        assert_eq!(suite(served.get_ref().1.negotiated_cipher_suite()), want);
        Ok(())
    }
}
