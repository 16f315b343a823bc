//! Optional TLS on the listener (`server.tls`), for deployments without a TLS-terminating load
//! balancer: rustls with the aws-lc-rs provider, certificate chain and key from PEM files.

use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::config::{TlsSettings, absolute};

/// Why the TLS configuration was refused; the message names the setting and the file, by its
/// full path: a relative one is read from the working directory, which the reader may not know.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("server.tls.cert `{path}`: {problem}")]
    Cert { path: String, problem: String },
    #[error("server.tls.key `{path}`: {problem}")]
    Key { path: String, problem: String },
    #[error(
        "server.tls.key `{key}` is not the key of the first certificate of server.tls.cert \
         `{cert}` (the server's own certificate must come first, then its chain)"
    )]
    Mismatch { cert: String, key: String },
    #[error("server.tls: {0}")]
    Config(#[from] rustls::Error),
}

/// The certificate and key the listener serves. A reload reads their files again
/// ([`Certificate::read_again`]), so a renewal (certbot's deploy hook sends SIGHUP) is served
/// without a restart: handshakes from then on get the new pair, connections made before keep
/// the one they began with.
pub struct Certificate {
    files: TlsSettings,
    served: ArcSwap<Renewal>,
}

/// A pair read from the files and checked, with the digest of the bytes it was read from: the
/// one served, or one for [`Certificate::serve`].
pub struct Renewal {
    pair: Arc<CertifiedKey>,
    digest: Vec<u8>,
}

/// Reads the certificate chain (leaf first) and the private key (PKCS#8, PKCS#1 or SEC1) and
/// builds a server configuration with rustls' safe defaults (TLS 1.2 and 1.3), which serves
/// the returned [`Certificate`].
pub fn server_config(files: &TlsSettings) -> Result<(ServerConfig, Arc<Certificate>), TlsError> {
    let certificate = Arc::new(Certificate {
        files: files.clone(),
        served: ArcSwap::from_pointee(read_pair(files)?),
    });
    let mut config = ServerConfig::builder_with_provider(Arc::new(provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(certificate.clone());
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((config, certificate))
}

impl Certificate {
    /// The files as they are now, checked as at start, when they differ from those served;
    /// `None` when they do not.
    pub fn read_again(&self) -> Result<Option<Renewal>, TlsError> {
        let now = read_pair(&self.files)?;
        Ok((now.digest != self.served.load().digest).then_some(now))
    }

    /// Serves `renewal` to the handshakes from now on.
    pub fn serve(&self, renewal: Renewal) {
        self.served.store(Arc::new(renewal));
    }
}

impl ResolvesServerCert for Certificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.served.load().pair))
    }
}

impl std::fmt::Debug for Certificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificate")
            .field("cert", &self.files.cert)
            .field("key", &self.files.key)
            .finish_non_exhaustive()
    }
}

fn provider() -> CryptoProvider {
    rustls::crypto::aws_lc_rs::default_provider()
}

/// The pair of `files`, and a digest of the bytes it was read from (each file read once).
fn read_pair(files: &TlsSettings) -> Result<Renewal, TlsError> {
    let cert_error = |problem: String| TlsError::Cert {
        path: absolute(&files.cert),
        problem,
    };
    let key_error = |problem: String| TlsError::Key {
        path: absolute(&files.key),
        problem,
    };
    let cert_pem = std::fs::read(&files.cert).map_err(|e| cert_error(cannot_read(&e)))?;
    let key_pem = std::fs::read(&files.key).map_err(|e| key_error(cannot_read(&e)))?;
    let certs = read_certs(&cert_pem).map_err(cert_error)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        key_error(match e {
            // rustls-pki-types says "no items found".
            rustls::pki_types::pem::Error::NoItemsFound if encrypted(&key_pem) => {
                "an ENCRYPTED PRIVATE KEY, which is not read: decrypt it (`openssl pkey -in \
                 FILE -out PLAIN`) and keep the file readable to this service only"
                    .into()
            }
            rustls::pki_types::pem::Error::NoItemsFound => {
                "no PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block in the file".into()
            }
            other => pem_problem(&other),
        })
    })?;
    let pair = CertifiedKey::from_der(certs, key, &provider()).map_err(|e| match e {
        rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
            TlsError::Mismatch {
                cert: absolute(&files.cert),
                key: absolute(&files.key),
            }
        }
        other => TlsError::Config(other),
    })?;
    let mut context = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    context.update(&cert_pem);
    context.update(&key_pem);
    Ok(Renewal {
        pair: Arc::new(pair),
        digest: context.finish().as_ref().to_vec(),
    })
}

fn cannot_read(error: &std::io::Error) -> String {
    format!("cannot be read: {error}")
}

/// Whether the key file holds a key encrypted under a password (`openssl genpkey -aes256`).
fn encrypted(pem: &[u8]) -> bool {
    pem.windows(ENCRYPTED.len())
        .any(|window| window == ENCRYPTED)
}

const ENCRYPTED: &[u8] = b"-----BEGIN ENCRYPTED PRIVATE KEY";

fn read_certs(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_problem(&e))?;
    if certs.is_empty() {
        return Err("no CERTIFICATE in the file".into());
    }
    Ok(certs)
}

/// What is wrong with a PEM file, in words of our own: the parser's messages quote the line
/// it stopped at, byte by byte, and a key flattened onto one line (its line breaks written as
/// `\n`, as when copied out of JSON or an environment variable) is that line: the whole key
/// would reach the terminal and the log. (A certificate file may hold a key too.)
fn pem_problem(error: &rustls::pki_types::pem::Error) -> String {
    const ONE_LINE: &str = " (the whole file on one line, its line breaks written as \\n?)";
    use rustls::pki_types::pem::Error;
    match error {
        Error::Io(e) => format!("cannot be read: {e}"),
        Error::MissingSectionEnd { .. } => format!("a PEM block without its END line{ONE_LINE}"),
        Error::IllegalSectionStart { .. } => format!("a malformed PEM BEGIN line{ONE_LINE}"),
        Error::Base64Decode(_) => "a PEM block that is not base64 inside".into(),
        Error::SectionTooLarge => "a PEM block over 256 MB".into(),
        Error::NoItemsFound => "no PEM block of the kind sought".into(),
        _ => "not a PEM file that can be read".into(),
    }
}

#[cfg(test)]
#[path = "tls_tests.rs"]
mod tests;
