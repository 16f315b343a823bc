//! Optional TLS on the listener (`server.tls`), for deployments without a TLS-terminating load
//! balancer: rustls with the aws-lc-rs provider, certificate chain and key from PEM files.

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

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

/// Reads the certificate chain (leaf first) and the private key (PKCS#8, PKCS#1 or SEC1) and
/// builds a server configuration with rustls' safe defaults (TLS 1.2 and 1.3).
pub fn server_config(settings: &TlsSettings) -> Result<ServerConfig, TlsError> {
    let certs = read_certs(&settings.cert)?;
    let key = PrivateKeyDer::from_pem_file(&settings.key).map_err(|e| TlsError::Key {
        path: absolute(&settings.key),
        problem: match e {
            // rustls-pki-types says "no items found".
            rustls::pki_types::pem::Error::NoItemsFound if encrypted(&settings.key) => {
                "an ENCRYPTED PRIVATE KEY, which is not read: decrypt it (`openssl pkey -in \
                 FILE -out PLAIN`) and keep the file readable to this service only"
                    .into()
            }
            rustls::pki_types::pem::Error::NoItemsFound => {
                "no PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block in the file".into()
            }
            other => pem_problem(&other),
        },
    })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
                TlsError::Mismatch {
                    cert: absolute(&settings.cert),
                    key: absolute(&settings.key),
                }
            }
            other => TlsError::Config(other),
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// A digest of the certificate and key files as they are now (`None` when one cannot be read):
/// a reload compares it with the start's, since the listener serves what it read at start.
pub fn files_digest(settings: &TlsSettings) -> Option<Vec<u8>> {
    let mut context = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for path in [&settings.cert, &settings.key] {
        context.update(&std::fs::read(path).ok()?);
    }
    Some(context.finish().as_ref().to_vec())
}

/// Whether the key file holds a key encrypted under a password (`openssl genpkey -aes256`).
fn encrypted(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|pem| pem.contains("-----BEGIN ENCRYPTED PRIVATE KEY"))
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let error = |problem: String| TlsError::Cert {
        path: absolute(path),
        problem,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| error(pem_problem(&e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| error(pem_problem(&e)))?;
    if certs.is_empty() {
        return Err(error("no CERTIFICATE in the file".into()));
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
