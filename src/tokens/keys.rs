//! Keys: parsed once from PEM at start-up, identified by their RFC 7638 thumbprint. A signing
//! key is a private key; a verifying key is the public half, read from a public key file or
//! taken from a private key, by one code path so that the kid is the same either way.
//!
//! Signing goes straight to aws-lc-rs with the parsed key pair: `jsonwebtoken`'s `encode()`
//! re-parses the private key on every call, which costs more than a fifth of an RSA signature.

use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, ED25519, EcdsaKeyPair,
    Ed25519KeyPair, KeyPair, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256,
    RsaKeyPair,
};
use serde::Serialize;

use super::jwk::{Members, PublicJwk, public_jwk};

/// RSA keys shorter than this are refused (RFC 7518 §3.3 asks for at least 2048 bits).
const MIN_RSA_BITS: usize = 2048;

/// The longest RSA modulus aws-lc-rs verifies with (`RSA_PKCS1_2048_8192_SHA256`).
const MAX_RSA_BITS: usize = 8192;

/// The length in bits of a big-endian number without leading zero bytes.
fn modulus_bits(n: &[u8]) -> usize {
    n.first()
        .map_or(0, |top| n.len() * 8 - top.leading_zeros() as usize)
}

/// The SubjectPublicKeyInfo header that aws-lc writes before a P-256 point, whatever form the
/// point was read in; the 64 bytes after it are x || y.
const P256_SPKI_HEADER: [u8; 27] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04,
];

/// The SubjectPublicKeyInfo header of an Ed25519 key (RFC 8410); the 32 bytes after it are x.
const ED25519_SPKI_HEADER: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// aws-lc takes input of this length as a raw Ed25519 key; no SubjectPublicKeyInfo is this short.
const RAW_ED25519_LEN: usize = 32;

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
        "not a PEM key (a -----BEGIN …----- block; is the file empty, DER or of another \
         format?)"
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

enum Pair {
    Rsa(RsaKeyPair),
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// A private key ready to sign, with its public half.
pub struct SigningKey {
    pair: Pair,
    rng: SystemRandom,
    public: VerifyingKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.public.jwk.kid)
            .field("alg", &self.public.jwk.alg)
            .finish_non_exhaustive()
    }
}

/// The public half of a key: what checks its signatures and what the JWKS publishes. Always
/// built from a SubjectPublicKeyInfo, so a retired key configured as its public half keeps the
/// kid its tokens carry.
#[derive(Clone)]
pub struct VerifyingKey {
    jwk: PublicJwk,
    /// The key as aws-lc encodes it, whatever form it was read in.
    spki: Vec<u8>,
    parsed: ParsedPublicKey,
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.jwk.kid)
            .field("alg", &self.jwk.alg)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Reads a PKCS#8 (`PRIVATE KEY`), PKCS#1 (`RSA PRIVATE KEY`) or SEC1 (`EC PRIVATE KEY`)
    /// PEM document.
    pub fn from_pem(text: &str) -> Result<Self, KeyError> {
        Self::from_block(&one_block(text)?)
    }

    fn from_block(block: &pem::Pem) -> Result<Self, KeyError> {
        let der = block.contents();
        let pair = match block.tag() {
            "RSA PRIVATE KEY" => Pair::Rsa(RsaKeyPair::from_der(der).map_err(rsa_rejected)?),
            "PRIVATE KEY" => Self::pkcs8(der)?,
            // SEC1 (RFC 5915), what `openssl ecparam -genkey` writes.
            "EC PRIVATE KEY" => Pair::Ecdsa(
                EcdsaKeyPair::from_private_key_der(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
                    .map_err(|_| KeyError::Rejected)?,
            ),
            "PUBLIC KEY" | "RSA PUBLIC KEY" => return Err(KeyError::PublicOnly),
            other => return Err(KeyError::Block(other.to_owned())),
        };
        let spki = match &pair {
            Pair::Rsa(rsa) => rsa.public_key().as_der(),
            Pair::Ecdsa(ec) => ec.public_key().as_der(),
            Pair::Ed25519(ed) => ed.public_key().as_der(),
        }
        .map_err(|_| KeyError::Public)?;
        // Short RSA keys are refused here, by the check every public key passes.
        let public = VerifyingKey::from_spki(spki.as_ref())?;
        Ok(Self {
            pair,
            rng: SystemRandom::new(),
            public,
        })
    }

    fn pkcs8(der: &[u8]) -> Result<Pair, KeyError> {
        match RsaKeyPair::from_pkcs8(der) {
            Ok(rsa) => return Ok(Pair::Rsa(rsa)),
            Err(e) if too_small(&e) => return Err(KeyError::TooShort),
            Err(_) => {}
        }
        if let Ok(ec) = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der) {
            return Ok(Pair::Ecdsa(ec));
        }
        Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
            .map(Pair::Ed25519)
            .map_err(|_| KeyError::Rejected)
    }

    pub fn kid(&self) -> &str {
        self.public.kid()
    }

    pub fn algorithm(&self) -> Algorithm {
        self.public.algorithm()
    }

    pub fn public_jwk(&self) -> &PublicJwk {
        self.public.public_jwk()
    }

    /// The public half, for checking the signatures this key made.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.public
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

impl VerifyingKey {
    /// Reads a public key (`PUBLIC KEY`, a SubjectPublicKeyInfo, or PKCS#1 `RSA PUBLIC KEY`),
    /// or takes the public half of a private key in any form [`SigningKey`] reads.
    pub fn from_pem(text: &str) -> Result<Self, KeyError> {
        let block = one_block(text)?;
        match block.tag() {
            "PUBLIC KEY" => Self::from_spki(block.contents()),
            "RSA PUBLIC KEY" => {
                let rsa = rsa::PublicKey::from_der(block.contents()).map_err(rsa_rejected)?;
                Self::from_spki(rsa.as_der().map_err(|_| KeyError::Rejected)?.as_ref())
            }
            _ => SigningKey::from_block(&block).map(|key| key.public),
        }
    }

    /// The one way to a verifying key: aws-lc parses the SubjectPublicKeyInfo, and the JWK is
    /// built from aws-lc's own encoding of it.
    fn from_spki(der: &[u8]) -> Result<Self, KeyError> {
        if der.len() <= RAW_ED25519_LEN {
            return Err(KeyError::Rejected);
        }
        match rsa::PublicKey::from_der(der) {
            Ok(rsa) => return Self::rsa(&rsa),
            Err(error) if too_small(&error) => return Err(KeyError::TooShort),
            Err(_) => {}
        }
        if let Ok(parsed) = ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, der) {
            return Self::curve(parsed, &P256_SPKI_HEADER, |point| {
                (point.len() == 64).then(|| {
                    let (x, y) = point.split_at(32);
                    Members::P256 { x, y }
                })
            });
        }
        let parsed = ParsedPublicKey::new(&ED25519, der).map_err(|_| KeyError::Rejected)?;
        Self::curve(parsed, &ED25519_SPKI_HEADER, |x| {
            (x.len() == 32).then_some(Members::Ed25519 { x })
        })
    }

    /// An EC or Ed25519 key: its public members follow `header` in aws-lc's encoding.
    fn curve(
        parsed: ParsedPublicKey,
        header: &[u8],
        members: impl FnOnce(&[u8]) -> Option<Members<'_>>,
    ) -> Result<Self, KeyError> {
        let spki = parsed.as_der().map_err(|_| KeyError::Rejected)?;
        let jwk = spki
            .as_ref()
            .strip_prefix(header)
            .and_then(members)
            .map(public_jwk)
            .ok_or(KeyError::Rejected)?;
        Ok(Self {
            jwk,
            spki: spki.as_ref().to_vec(),
            parsed,
        })
    }

    fn rsa(rsa: &rsa::PublicKey) -> Result<Self, KeyError> {
        // Bits, not bytes (`modulus_len()`): a 2044-bit modulus fills 256 bytes. Past 8192 bits
        // aws-lc-rs verifies nothing, so such a key would be published and never verify.
        let bits = modulus_bits(rsa.modulus().big_endian_without_leading_zero());
        if bits < MIN_RSA_BITS {
            return Err(KeyError::TooShort);
        }
        if bits > MAX_RSA_BITS {
            return Err(KeyError::Rejected);
        }
        let spki = rsa.as_der().map_err(|_| KeyError::Rejected)?;
        let parsed = ParsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, spki.as_ref())
            .map_err(|_| KeyError::Rejected)?;
        let jwk = public_jwk(Members::Rsa {
            n: rsa.modulus().big_endian_without_leading_zero(),
            e: rsa.exponent().big_endian_without_leading_zero(),
        });
        Ok(Self {
            jwk,
            spki: spki.as_ref().to_vec(),
            parsed,
        })
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

    /// Whether `signature` is this key's signature of `message` (with the algorithm the key
    /// implies).
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        self.parsed.verify_sig(message, signature).is_ok()
    }

    /// The key as a `PUBLIC KEY` PEM document, the form `token.verify_keys` takes.
    pub fn to_pem(&self) -> String {
        lf_pem(&pem::Pem::new("PUBLIC KEY", self.spki.clone()))
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
