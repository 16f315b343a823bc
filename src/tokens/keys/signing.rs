//! A private key ready to sign, with its public half.
//!
//! Signing goes straight to aws-lc-rs with the parsed key pair: `jsonwebtoken`'s `encode()`
//! re-parses the private key on every call, which costs more than a fifth of an RSA signature.

use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256,
    RsaKeyPair,
};

use super::public::VerifyingKey;
use super::{Algorithm, KeyError, one_block, rsa_rejected, too_small};
use crate::tokens::jwk::PublicJwk;

enum Pair {
    Rsa(RsaKeyPair),
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// A private key ready to sign, with its public half.
pub struct SigningKey {
    pair: Pair,
    rng: SystemRandom,
    pub(super) public: VerifyingKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.public.jwk.kid)
            .field("alg", &self.public.jwk.alg)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Reads a PKCS#8 (`PRIVATE KEY`), PKCS#1 (`RSA PRIVATE KEY`) or SEC1 (`EC PRIVATE KEY`)
    /// PEM document.
    pub fn from_pem(text: &str) -> Result<Self, KeyError> {
        Self::from_block(&one_block(text)?)
    }

    pub(super) fn from_block(block: &pem::Pem) -> Result<Self, KeyError> {
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
