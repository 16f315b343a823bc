//! The public half of a key, read from a public key file or taken from a private key by one code
//! path so that the kid is the same either way: its JWK, kid, PEM and signature checks.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ED25519, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256,
};

use super::signing::SigningKey;
use super::{Algorithm, KeyError, lf_pem, one_block, rsa_rejected, too_small};
use crate::tokens::jwk::{Members, PublicJwk, public_jwk};

/// RSA keys shorter than this are refused (RFC 7518 §3.3 asks for at least 2048 bits).
pub(crate) const MIN_RSA_BITS: usize = 2048;

/// The longest RSA modulus aws-lc-rs verifies with (`RSA_PKCS1_2048_8192_SHA256`).
pub(crate) const MAX_RSA_BITS: usize = 8192;

/// The length in bits of a big-endian number, leading zero bytes or not (a JWK's `n` and `e`
/// may have them; aws-lc's accessors have none).
pub(crate) fn bit_length(n: &[u8]) -> usize {
    let n = &n[n.iter().take_while(|b| **b == 0).count()..];
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

/// The public half of a key: what checks its signatures and what the JWKS publishes. Always
/// built from a SubjectPublicKeyInfo, so a retired key configured as its public half keeps the
/// kid its tokens carry.
#[derive(Clone)]
pub struct VerifyingKey {
    pub(super) jwk: PublicJwk,
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
    pub(super) fn from_spki(der: &[u8]) -> Result<Self, KeyError> {
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
        let bits = bit_length(rsa.modulus().big_endian_without_leading_zero());
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
