//! TLS for `https://` servers: the rustls client configuration built from the
//! options' PEM files, and the handshake over a connected socket.
//!
//! Trust comes from `ca_file` alone, never from the platform's root store: the
//! topology servers carry certificates of the deployment's own CA, and trusting
//! every public CA as well would let any certificate a public CA issued for a
//! server's name impersonate it. The crypto provider is `ring` (it builds with the
//! C compiler; `aws-lc-rs` also needs cmake and a longer native build), chosen
//! explicitly per configuration so that another crate enabling a second provider
//! in the same process cannot make the choice ambiguous. TLS 1.2 and 1.3, no ALPN;
//! the server name is the URL's host (an IP address is matched against the
//! certificate's IP SANs, a DNS name is also sent as SNI).

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use crate::error::OptionsError;

/// A TLS session over a client socket (which keeps its short read timeout).
pub(crate) type TlsStream = StreamOwned<ClientConnection, Socket>;

/// The socket under TLS, written one buffer at a time. rustls writes with
/// `write_vectored`, which std turns into `writev`; on a connection the peer has
/// reset, that raises SIGPIPE, and a C program that left the signal at its default
/// dies of it. `write` is a `send` with `MSG_NOSIGNAL`: just an `EPIPE` error.
pub(crate) struct Socket(pub TcpStream);

impl Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for Socket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// The client certificate and its key, presented to servers that ask for one.
pub struct Identity<'a> {
    pub cert_file: &'a Path,
    pub key_file: &'a Path,
}

/// Builds the configuration every `https://` connection of a client shares: the
/// roots of `ca_file` and, when given, a client certificate. Each error names the
/// option, the file and what is wrong with it.
pub fn client_config(
    ca_file: &Path,
    identity: Option<Identity<'_>>,
) -> Result<Arc<ClientConfig>, OptionsError> {
    let roots = load_roots(ca_file)?;
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| file_error("ca_file", ca_file, format!("no usable TLS version: {e}")))?
            .with_root_certificates(roots);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some(id) => {
            let chain = load_certs("client_cert_file", id.cert_file)?;
            let key = load_key(id.key_file)?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                file_error(
                    "client_key_file",
                    id.key_file,
                    format!(
                        "unusable with client_cert_file {}: {e}",
                        id.cert_file.display()
                    ),
                )
            })?
        }
    };
    Ok(Arc::new(config))
}

/// Checks that `host` (as written in a URL, IPv6 in brackets) can be verified
/// against a certificate: a DNS name or an IP address.
pub(crate) fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    ServerName::try_from(bare.to_string()).map_err(|_| {
        format!("{host:?} is neither a DNS name nor an IP address a certificate can name")
    })
}

/// Runs the TLS handshake on a connected socket within `timeout`. The socket's
/// read timeout (one tick) stays in place: a tick without an answer is retried
/// until the deadline, so a slow server is not mistaken for a failed one.
pub(crate) fn handshake(
    config: &Arc<ClientConfig>,
    host: &str,
    sock: TcpStream,
    timeout: Duration,
) -> io::Result<TlsStream> {
    let mut sock = Socket(sock);
    let name = server_name(host).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut conn = ClientConnection::new(Arc::clone(config), name).map_err(io::Error::other)?;
    let deadline = Instant::now() + timeout;
    while conn.is_handshaking() {
        match conn.complete_io(&mut sock) {
            Ok(_) => {}
            Err(e) if is_timeout(&e) && Instant::now() < deadline => {}
            Err(e) if is_timeout(&e) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("TLS handshake with {host}: no answer within {timeout:?}"),
                ))
            }
            Err(e) => return Err(explain(&format!("TLS handshake with {host}"), e)),
        }
    }
    Ok(StreamOwned::new(conn, sock))
}

/// True for the error a socket read timeout gives (`WouldBlock` on Unix,
/// `TimedOut` on Windows).
pub(crate) fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Prefixes a TLS error with `context` and, where the fix is in the options,
/// says what to check. Other errors pass unchanged.
pub(crate) fn explain(context: &str, e: io::Error) -> io::Error {
    use rustls::AlertDescription as A;
    let Some(tls) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return e;
    };
    let hint = match tls {
        rustls::Error::InvalidCertificate(_) => {
            "; is ca_file the CA that signed this server's certificate, and does the \
             certificate name this host?"
        }
        rustls::Error::AlertReceived(
            A::CertificateRequired | A::BadCertificate | A::UnknownCA | A::CertificateUnknown,
        ) => {
            "; the server refused this client's certificate (or its absence): check \
             client_cert_file and client_key_file"
        }
        _ => "",
    };
    io::Error::new(e.kind(), format!("{context}: {tls}{hint}"))
}

fn file_error(option: &'static str, path: &Path, reason: String) -> OptionsError {
    OptionsError::TlsFile {
        option,
        path: PathBuf::from(path),
        reason,
    }
}

fn read_file(option: &'static str, path: &Path) -> Result<Vec<u8>, OptionsError> {
    std::fs::read(path).map_err(|e| file_error(option, path, format!("cannot be read: {e}")))
}

/// Every certificate of a PEM file (at least one).
pub(crate) fn load_certs(
    option: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, OptionsError> {
    let pem = read_file(option, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(option, path, format!("is not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(file_error(
            option,
            path,
            "holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into(),
        ));
    }
    Ok(certs)
}

pub(crate) fn load_roots(path: &Path) -> Result<RootCertStore, OptionsError> {
    let mut roots = RootCertStore::empty();
    for (i, cert) in load_certs("ca_file", path)?.into_iter().enumerate() {
        roots.add(cert).map_err(|e| {
            file_error(
                "ca_file",
                path,
                format!("certificate {} is not a usable CA certificate: {e}", i + 1),
            )
        })?;
    }
    Ok(roots)
}

pub(crate) fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, OptionsError> {
    let pem = read_file("client_key_file", path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        file_error(
            "client_key_file",
            path,
            format!("holds no usable PEM private key (PKCS#8, PKCS#1 or SEC1): {e}"),
        )
    })
}
