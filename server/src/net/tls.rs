//! TLS for the client and peer ports: PEM files → rustls configurations (ring
//! provider, TLS 1.2 and 1.3, HTTP/1.1 only), the server-side handshake under a
//! deadline, and the peer client's handshake. The streams that come out implement
//! the same futures-io traits as the sockets under them, so [`super::io::HyperIo`] serves
//! hyper over them unchanged.

use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_lite::{AsyncRead, AsyncWrite, AsyncWriteExt};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use super::conn::Accepted;

pub use futures_rustls::client::TlsStream as ClientTlsStream;
pub use futures_rustls::server::TlsStream as ServerTlsStream;

/// Why a certificate, key or CA file cannot be used. Each names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path} holds no PEM certificate (`-----BEGIN CERTIFICATE-----`)")]
    NoCertificate { path: PathBuf },
    #[error("{path} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)")]
    NoKey { path: PathBuf },
    #[error("{path} is not valid PEM: {message}")]
    BadPem { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Rejected { path: PathBuf, message: String },
}

impl TlsError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            TlsError::Read { path, .. }
            | TlsError::NoCertificate { path }
            | TlsError::NoKey { path }
            | TlsError::BadPem { path, .. }
            | TlsError::Rejected { path, .. } => path,
        }
    }
}

fn pem_error(path: &Path, e: rustls::pki_types::pem::Error) -> TlsError {
    match e {
        rustls::pki_types::pem::Error::Io(source) => TlsError::Read {
            path: path.to_path_buf(),
            source,
        },
        other => TlsError::BadPem {
            path: path.to_path_buf(),
            message: format!("{other:?}"),
        },
    }
}

/// Every certificate in a PEM file, in order (a server's chain: leaf first).
pub fn load_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_error(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, e))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// The first private key in a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::NoKey {
            path: path.to_path_buf(),
        },
        other => pem_error(path, other),
    })
}

/// The certificates of a CA file as trust anchors.
pub fn load_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certificates(path)? {
        roots.add(cert).map_err(|e| TlsError::Rejected {
            path: path.to_path_buf(),
            message: format!("not a usable CA certificate: {e}"),
        })?;
    }
    Ok(roots)
}

/// The crypto provider and protocol versions every configuration here uses.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

const VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// A server identity: certificate chain and private key files.
pub struct Identity<'a> {
    pub cert_file: &'a Path,
    pub key_file: &'a Path,
}

impl Identity<'_> {
    fn load(&self) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
        Ok((load_certificates(self.cert_file)?, load_key(self.key_file)?))
    }

    /// A cert/key mismatch (or an unsupported key) is reported against the key file.
    fn rejected(&self, e: rustls::Error) -> TlsError {
        TlsError::Rejected {
            path: self.key_file.to_path_buf(),
            message: format!(
                "does not go with the certificate in {}: {e}",
                self.cert_file.display()
            ),
        }
    }
}

/// A server configuration presenting `identity`; with `client_ca`, a client
/// certificate signed by that CA is required of every connection.
pub fn server_config(
    identity: &Identity<'_>,
    client_ca: Option<&Path>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let (certs, key) = identity.load()?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .expect("ring supports TLS 1.2 and 1.3");
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(load_roots(ca)?), provider())
                    .build()
                    .map_err(|e| TlsError::Rejected {
                        path: ca.to_path_buf(),
                        message: e.to_string(),
                    })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(certs, key)
        .map_err(|e| identity.rejected(e))?;
    Ok(Arc::new(config))
}

/// A client configuration trusting only `ca_file` and presenting `identity`.
pub fn client_config(
    identity: &Identity<'_>,
    ca_file: &Path,
) -> Result<Arc<ClientConfig>, TlsError> {
    let (certs, key) = identity.load()?;
    let config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .expect("ring supports TLS 1.2 and 1.3")
        .with_root_certificates(load_roots(ca_file)?)
        .with_client_auth_cert(certs, key)
        .map_err(|e| identity.rejected(e))?;
    Ok(Arc::new(config))
}

/// The first byte a TLS client sends: the content type of a handshake record.
const HANDSHAKE_RECORD: u8 = 0x16;

/// What a client that speaks plain HTTP to a TLS port is told before the socket closes.
const PLAIN_HTTP_REFUSAL: &[u8] = b"HTTP/1.1 400 Bad Request\r\n\
content-type: text/plain; charset=utf-8\r\n\
content-length: 44\r\n\
connection: close\r\n\r\n\
this port speaks TLS: use https:// instead\r\n";

/// The server side of the handshake on an accepted socket, bounded by `deadline`:
/// a client that connects and never completes it is cut off like one that never
/// sends a request head. A client that sends plain HTTP instead is answered with a
/// 400 saying so (rather than a TLS alert it cannot read) and refused.
pub async fn accept<S: Accepted>(
    config: &Arc<ServerConfig>,
    stream: S,
    deadline: Duration,
) -> io::Result<ServerTlsStream<S>> {
    let handshake = async {
        let mut first = [0u8; 1];
        if stream.peek(&mut first).await? == 1 && first[0] != HANDSHAKE_RECORD {
            let mut stream = stream;
            // Best effort: the client may already be gone.
            let _ = stream.write_all(PLAIN_HTTP_REFUSAL).await;
            let _ = stream.close().await;
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "plain HTTP sent to a TLS port",
            ));
        }
        futures_rustls::TlsAcceptor::from(config.clone())
            .accept(stream)
            .await
    };
    futures_lite::future::or(handshake, async {
        glommio::timer::sleep(deadline).await;
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no TLS handshake within {deadline:?}"),
        ))
    })
    .await
}

/// The client side of the handshake to a peer at `ip`: the peer's certificate must
/// carry that address as an IP subject alternative name.
pub async fn connect<S>(
    config: &Arc<ClientConfig>,
    ip: IpAddr,
    stream: S,
) -> io::Result<ClientTlsStream<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    futures_rustls::TlsConnector::from(config.clone())
        .connect(ServerName::IpAddress(ip.into()), stream)
        .await
}

/// What the peer port speaks when `peer_tls` is configured: both ends of mutual TLS.
#[derive(Clone)]
pub struct PeerTls {
    /// The peer listener: presents this server's certificate, requires a client
    /// certificate signed by the cluster CA.
    pub server: Arc<ServerConfig>,
    /// The peer client: presents the same certificate, trusts only the cluster CA.
    pub client: Arc<ClientConfig>,
}

impl PeerTls {
    pub fn load(identity: &Identity<'_>, ca_file: &Path) -> Result<PeerTls, TlsError> {
        Ok(PeerTls {
            server: server_config(identity, Some(ca_file))?,
            client: client_config(identity, ca_file)?,
        })
    }
}

impl std::fmt::Debug for PeerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PeerTls")
    }
}
