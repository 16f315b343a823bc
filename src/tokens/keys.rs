//! Keys: parsed once from PEM at start-up, identified by their RFC 7638 thumbprint. A signing
//! key is a private key; a verifying key is the public half, read from a public key file or
//! taken from a private key, by one code path so that the kid is the same either way.
//!
//! Here: what both kinds read (the PEM block, the algorithm, the errors); the private key and
//! signing are in `keys/signing.rs`, the public half, its JWK and kid in `keys/public.rs`.

mod public;
mod signing;

use serde::Serialize;

pub use self::public::VerifyingKey;
pub(crate) use self::public::{MAX_RSA_BITS, MIN_RSA_BITS, bit_length};
pub use self::signing::SigningKey;

/// The JWS algorithms we sign with, by the key type that implies them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Algorithm {
    RS256,
    ES256,
    EdDSA,
}

impl Algorithm {
    /// The JWS `alg` value (RFC 7518, RFC 8037).
    pub fn name(self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
            Self::ES256 => "ES256",
            Self::EdDSA => "EdDSA",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The pem crate's own words (`malformedframing`) tell an operator nothing more.
    #[error(
        "not a PEM key (a -----BEGIN …----- line, base64, then its -----END …----- line; is \
         the file empty, cut short, DER or of another format?)"
    )]
    Pem(#[from] pem::PemError),
    #[error(
        "unsupported PEM block `{0}`; expected PRIVATE KEY (PKCS#8), RSA PRIVATE KEY or EC \
         PRIVATE KEY, or for a verify-only key also PUBLIC KEY or RSA PUBLIC KEY"
    )]
    Block(String),
    #[error("holds {0} PEM blocks; a key file holds one key (give each its own file)")]
    SeveralBlocks(usize),
    #[error("not an RSA, P-256 or Ed25519 key that the service accepts")]
    Rejected,
    #[error(
        "holds a public key; signing needs the private key (a public key belongs in \
         token.verify_keys)"
    )]
    PublicOnly,
    #[error("RSA key is too short; at least {MIN_RSA_BITS} bits are required")]
    TooShort,
    #[error("signing failed")]
    Sign,
    #[error("the key could not be generated")]
    Generate,
    #[error("the public half of the key could not be prepared for verification")]
    Public,
}

/// The one PEM block of a key file. `pem::parse` reads the first of several and leaves the
/// others unread: a bundle of public keys in `token.verify_keys` would publish one of them,
/// and the tokens of the others would be inactive here without a word.
/// `EC PARAMETERS`, which `openssl ecparam -genkey` writes before the key, only names the curve
/// that the key names again: left out.
fn one_block(text: &str) -> Result<pem::Pem, KeyError> {
    let mut blocks = pem::parse_many(text)?;
    blocks.retain(|block| block.tag() != "EC PARAMETERS");
    match blocks.len() {
        0 => Ok(pem::parse(text)?),
        1 => Ok(blocks.remove(0)),
        several => Err(KeyError::SeveralBlocks(several)),
    }
}

/// PEM with Unix line ends, as `openssl` writes it (the `pem` crate's default is CRLF).
pub(super) fn lf_pem(block: &pem::Pem) -> String {
    pem::encode_config(
        block,
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

/// Whether aws-lc-rs refused an RSA key for its size.
fn too_small(error: &aws_lc_rs::error::KeyRejected) -> bool {
    error.description_() == "TooSmall"
}

/// aws-lc-rs refuses short RSA keys itself; say so rather than "not a key".
fn rsa_rejected(error: aws_lc_rs::error::KeyRejected) -> KeyError {
    if too_small(&error) {
        KeyError::TooShort
    } else {
        KeyError::Rejected
    }
}

#[cfg(test)]
#[path = "keys_tests.rs"]
mod tests;
