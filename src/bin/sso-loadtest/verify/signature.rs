//! The JWT signature check: run over every kept token once the clock has stopped, apart from
//! the checks each answer gets as it arrives ([`super::Checker`]).

use anyhow::Context;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ED25519, RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents,
    UnparsedPublicKey,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sso_token::tokens::PublicJwk;

/// Verifies JWS signatures with the public half of the configured key.
/// Not the server's verifier (`sso_token::tokens`): a bug there must not pass its own check.
pub enum SignatureCheck {
    Rsa { n: Vec<u8>, e: Vec<u8> },
    Ecdsa(Vec<u8>),
    Ed25519(Vec<u8>),
}

impl SignatureCheck {
    pub fn from_jwk(jwk: &PublicJwk) -> anyhow::Result<Self> {
        let field = |value: &Option<String>, name: &str| -> anyhow::Result<Vec<u8>> {
            let value = value
                .as_deref()
                .with_context(|| format!("public key lacks `{name}`"))?;
            Ok(URL_SAFE_NO_PAD.decode(value)?)
        };
        Ok(match jwk.kty {
            "RSA" => Self::Rsa {
                n: field(&jwk.n, "n")?,
                e: field(&jwk.e, "e")?,
            },
            "EC" => {
                let mut point = vec![4u8];
                point.extend(field(&jwk.x, "x")?);
                point.extend(field(&jwk.y, "y")?);
                Self::Ecdsa(point)
            }
            "OKP" => Self::Ed25519(field(&jwk.x, "x")?),
            other => anyhow::bail!("unsupported key type {other}"),
        })
    }

    pub fn verify(&self, token: &str) -> bool {
        let Some((message, signature)) = token.rsplit_once('.') else {
            return false;
        };
        let Ok(signature) = URL_SAFE_NO_PAD.decode(signature) else {
            return false;
        };
        let message = message.as_bytes();
        match self {
            Self::Rsa { n, e } => RsaPublicKeyComponents { n, e }
                .verify(&RSA_PKCS1_2048_8192_SHA256, message, &signature)
                .is_ok(),
            Self::Ecdsa(point) => UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
                .verify(message, &signature)
                .is_ok(),
            Self::Ed25519(x) => UnparsedPublicKey::new(&ED25519, x)
                .verify(message, &signature)
                .is_ok(),
        }
    }

    /// Verifies every token on all cores (the run is over, the clock stopped); returns the
    /// number that failed.
    pub fn verify_all(&self, tokens: &[String]) -> usize {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let chunk = tokens.len().div_ceil(threads).max(1);
        std::thread::scope(|scope| {
            let workers: Vec<_> = tokens
                .chunks(chunk)
                .map(|part| {
                    let handle =
                        scope.spawn(move || part.iter().filter(|t| !self.verify(t)).count());
                    (part.len(), handle)
                })
                .collect();
            // A verifier thread that panicked verified nothing: its part counts as failed.
            workers
                .into_iter()
                .map(|(len, handle)| handle.join().unwrap_or(len))
                .sum()
        })
    }
}
