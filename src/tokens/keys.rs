//! Signing keys: parsed once from PEM at start-up, identified by their RFC 7638 thumbprint.
//!
//! Signing goes straight to aws-lc-rs with the parsed key pair: `jsonwebtoken`'s `encode()`
//! re-parses the private key on every call, which costs more than a fifth of an RSA signature.

use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, ED25519, EcdsaKeyPair,
    Ed25519KeyPair, KeyPair, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256,
    RsaKeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

/// RSA keys shorter than this are refused (RFC 7518 §3.3 asks for at least 2048 bits).
const MIN_RSA_BITS: usize = 2048;

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

/// What `keygen` can create.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KeyKind {
    Rsa2048,
    Rsa3072,
    Rsa4096,
    P256,
    Ed25519,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("not a PEM private key: {0}")]
    Pem(#[from] pem::PemError),
    #[error("unsupported PEM block `{0}`; expected PRIVATE KEY (PKCS#8) or RSA PRIVATE KEY")]
    Block(String),
    #[error("not an RSA, P-256 or Ed25519 private key the signer accepts")]
    Rejected,
    #[error("RSA key is too short; at least {MIN_RSA_BITS} bits are required")]
    TooShort,
    #[error("signing failed")]
    Sign,
    #[error("the public half of the key could not be prepared for verification")]
    Public,
}

enum Pair {
    Rsa(RsaKeyPair),
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// A private key ready to sign, with its public half described as a JWK.
pub struct SigningKey {
    pair: Pair,
    rng: SystemRandom,
    jwk: PublicJwk,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.jwk.kid)
            .field("alg", &self.jwk.alg)
            .finish_non_exhaustive()
    }
}

/// The public key as RFC 7517 publishes it; also the input of the RFC 7638 thumbprint.
#[derive(Debug, Clone, Serialize)]
pub struct PublicJwk {
    pub kty: &'static str,
    pub kid: String,
    pub alg: Algorithm,
    #[serde(rename = "use")]
    pub use_: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crv: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
}

impl SigningKey {
    /// Reads a PKCS#8 (`PRIVATE KEY`) or PKCS#1 (`RSA PRIVATE KEY`) PEM document.
    pub fn from_pem(text: &str) -> Result<Self, KeyError> {
        let block = pem::parse(text)?;
        let der = block.contents();
        let pair = match block.tag() {
            "RSA PRIVATE KEY" => Pair::Rsa(RsaKeyPair::from_der(der).map_err(rsa_rejected)?),
            "PRIVATE KEY" => Self::pkcs8(der)?,
            other => return Err(KeyError::Block(other.to_owned())),
        };
        if let Pair::Rsa(rsa) = &pair
            && rsa.public_modulus_len() * 8 < MIN_RSA_BITS
        {
            return Err(KeyError::TooShort);
        }
        let jwk = public_jwk(&pair);
        Ok(Self {
            pair,
            rng: SystemRandom::new(),
            jwk,
        })
    }

    fn pkcs8(der: &[u8]) -> Result<Pair, KeyError> {
        match RsaKeyPair::from_pkcs8(der) {
            Ok(rsa) => return Ok(Pair::Rsa(rsa)),
            Err(e) if e.description_() == "TooSmall" => return Err(KeyError::TooShort),
            Err(_) => {}
        }
        if let Ok(ec) = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der) {
            return Ok(Pair::Ecdsa(ec));
        }
        Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
            .map(Pair::Ed25519)
            .map_err(|_| KeyError::Rejected)
    }

    /// Creates a new key and returns it as a PKCS#8 PEM document.
    pub fn generate_pem(kind: KeyKind) -> Result<String, KeyError> {
        let der = match kind {
            KeyKind::Rsa2048 | KeyKind::Rsa3072 | KeyKind::Rsa4096 => {
                let size = match kind {
                    KeyKind::Rsa2048 => KeySize::Rsa2048,
                    KeyKind::Rsa3072 => KeySize::Rsa3072,
                    _ => KeySize::Rsa4096,
                };
                let pair = RsaKeyPair::generate(size).map_err(|_| KeyError::Rejected)?;
                pair.as_der()
                    .map_err(|_| KeyError::Rejected)?
                    .as_ref()
                    .to_vec()
            }
            KeyKind::P256 => EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                .and_then(|p| p.to_pkcs8v1())
                .map_err(|_| KeyError::Rejected)?
                .as_ref()
                .to_vec(),
            KeyKind::Ed25519 => Ed25519KeyPair::generate()
                .and_then(|p| p.to_pkcs8v1())
                .map_err(|_| KeyError::Rejected)?
                .as_ref()
                .to_vec(),
        };
        Ok(pem::encode(&pem::Pem::new("PRIVATE KEY", der)))
    }

    pub fn kid(&self) -> &str {
        &self.jwk.kid
    }

    pub fn algorithm(&self) -> Algorithm {
        self.jwk.alg
    }

    pub fn public_jwk(&self) -> &PublicJwk {
        &self.jwk
    }

    /// The public half, parsed once, for checking the signatures this key made.
    pub fn verifying_key(&self) -> Result<ParsedPublicKey, KeyError> {
        let parsed = match &self.pair {
            Pair::Rsa(rsa) => ParsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, rsa.public_key()),
            Pair::Ecdsa(ec) => ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, ec.public_key()),
            Pair::Ed25519(ed) => ParsedPublicKey::new(&ED25519, ed.public_key()),
        };
        parsed.map_err(|_| KeyError::Public)
    }

    /// Signs `message` (the JWS signing input) and returns the raw signature.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        match &self.pair {
            Pair::Rsa(rsa) => {
                let mut signature = vec![0; rsa.public_modulus_len()];
                rsa.sign(&RSA_PKCS1_SHA256, &self.rng, message, &mut signature)
                    .map_err(|_| KeyError::Sign)?;
                Ok(signature)
            }
            // ES256 (the only curve loaded): hashed here and signed as a digest; `sign` sets up
            // an EVP digest-sign context per call. The signature is the same ECDSA.
            Pair::Ecdsa(ec) => ec
                .sign_digest(&digest(&SHA256, message))
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| KeyError::Sign),
            Pair::Ed25519(ed) => Ok(ed.sign(message).as_ref().to_vec()),
        }
    }
}

/// aws-lc-rs refuses short RSA keys itself; say so rather than "not a key".
fn rsa_rejected(error: aws_lc_rs::error::KeyRejected) -> KeyError {
    if error.description_() == "TooSmall" {
        KeyError::TooShort
    } else {
        KeyError::Rejected
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Builds the public JWK; `kid` is the RFC 7638 thumbprint over the required members, in
/// lexicographic order and without white space.
fn public_jwk(pair: &Pair) -> PublicJwk {
    let (kty, alg, crv, n, e, x, y, canonical) = match pair {
        Pair::Rsa(rsa) => {
            let public = rsa.public_key();
            let n = b64(public.modulus().big_endian_without_leading_zero());
            let e = b64(public.exponent().big_endian_without_leading_zero());
            let canonical = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
            (
                "RSA",
                Algorithm::RS256,
                None,
                Some(n),
                Some(e),
                None,
                None,
                canonical,
            )
        }
        Pair::Ecdsa(ec) => {
            // Uncompressed SEC1 point: 0x04 || x || y.
            let point = ec.public_key().as_ref();
            let (x, y) = (b64(&point[1..33]), b64(&point[33..65]));
            let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
            (
                "EC",
                Algorithm::ES256,
                Some("P-256"),
                None,
                None,
                Some(x),
                Some(y),
                canonical,
            )
        }
        Pair::Ed25519(ed) => {
            let x = b64(ed.public_key().as_ref());
            let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
            (
                "OKP",
                Algorithm::EdDSA,
                Some("Ed25519"),
                None,
                None,
                Some(x),
                None,
                canonical,
            )
        }
    };
    PublicJwk {
        kty,
        kid: b64(digest(&SHA256, canonical.as_bytes()).as_ref()),
        alg,
        use_: "sig",
        crv,
        n,
        e,
        x,
        y,
    }
}

#[cfg(test)]
#[path = "keys_tests.rs"]
mod tests;
