//! The keys of one configuration: the signer, the verify-only keys, and the JWKS document that
//! publishes them all. Built at start-up and again on every reload.

use std::path::Path;

use serde::Serialize;

use super::Minter;
use super::jwk::PublicJwk;
use super::keys::{KeyError, SigningKey, VerifyingKey};
use super::verify::Verifier;
use crate::config::{TokenSettings, absolute, readable_hint};

/// Signs with one key, accepts signatures of every key it publishes.
#[derive(Debug)]
pub struct Keyring {
    minter: Minter,
    verifier: Verifier,
    jwks: String,
}

/// Why the keys could not be loaded; the message names the setting and the file.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    /// Relative paths are read from the working directory, which the message names.
    #[error("{setting} `{path}` does not exist (looked for `{full}`); {hint}")]
    Missing {
        setting: &'static str,
        path: String,
        full: String,
        hint: String,
    },
    /// The full path, as for a missing file; a file it may not read says whose it must be.
    #[error("{setting} `{path}`: {source}{}", readable_hint(source))]
    File {
        setting: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("{setting} `{path}`: {source}")]
    Key {
        setting: &'static str,
        path: String,
        source: KeyError,
    },
    /// Serialising the JWS header or the JWK Set, which hold only strings: not expected.
    #[error("rendering the token header or the JWK Set: {0}")]
    Render(#[from] serde_json::Error),
}

/// RFC 7517 §5: a JWK Set.
#[derive(Serialize)]
struct JwkSet {
    keys: Vec<PublicJwk>,
}

impl Keyring {
    /// Reads `token.signing_key` (a private key) and every `token.verify_keys` file (a public
    /// key, or a private key of which only the public half is used).
    pub fn load(settings: &TokenSettings) -> Result<Self, KeyringError> {
        let signer = read_key(&SIGNING_KEY, &settings.signing_key, SigningKey::from_pem)?;
        let verify_only = settings
            .verify_keys
            .iter()
            .filter(|path| !path.as_os_str().is_empty())
            .map(|path| read_key(&VERIFY_KEY, path, VerifyingKey::from_pem))
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(signer, verify_only, &settings.typ)
    }

    /// A key listed twice (for example the new signer still in `verify_keys`) counts once.
    pub fn new(
        signer: SigningKey,
        verify_only: Vec<VerifyingKey>,
        typ: &str,
    ) -> Result<Self, KeyringError> {
        let mut verifier = Verifier::default();
        let mut published = Vec::with_capacity(1 + verify_only.len());
        for key in std::iter::once(signer.verifying_key().clone()).chain(verify_only) {
            let jwk = key.public_jwk().clone();
            if verifier.insert(key) {
                published.push(jwk);
            }
        }
        let jwks = serde_json::to_string(&JwkSet { keys: published })?;
        Ok(Self {
            minter: Minter::new(signer, typ)?,
            verifier,
            jwks,
        })
    }

    pub fn minter(&self) -> &Minter {
        &self.minter
    }

    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// The JWKS document (RFC 7517), rendered once.
    pub fn jwks(&self) -> &str {
        &self.jwks
    }

    /// For the log: `signing with RS256 key <kid>, 2 key(s) published for verification`.
    pub fn describe(&self) -> String {
        let signer = self.minter.key();
        format!(
            "signing with {} key {}, {} key(s) published for verification",
            signer.algorithm().name(),
            signer.kid(),
            self.verifier.len()
        )
    }
}

/// A setting that names key files, and what to do when one is missing.
struct KeySetting {
    name: &'static str,
    /// The remedy for a missing file at the path given.
    remedy: fn(&str) -> String,
}

const SIGNING_KEY: KeySetting = KeySetting {
    name: "token.signing_key",
    remedy: |path| {
        format!(
            "create a key with `sso-token keygen --out {path}`, or point token.signing_key at one"
        )
    },
};

/// A new key pair verifies no token already issued: a verify key is the public half of a key
/// that signed.
const VERIFY_KEY: KeySetting = KeySetting {
    name: "token.verify_keys",
    remedy: |path| {
        format!(
            "write the public key of the key that signed with `sso-token pubkey --key <its \
             private key> > {path}`, or remove it from token.verify_keys"
        )
    },
};

fn read_key<K>(
    key: &KeySetting,
    path: &Path,
    parse: fn(&str) -> Result<K, KeyError>,
) -> Result<K, KeyringError> {
    let (setting, shown) = (key.name, path.display().to_string());
    let pem = std::fs::read_to_string(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => KeyringError::Missing {
            setting,
            path: shown.clone(),
            full: absolute(path),
            hint: (key.remedy)(&shown),
        },
        _ => KeyringError::File {
            setting,
            path: absolute(path),
            source,
        },
    })?;
    parse(&pem).map_err(|source| KeyringError::Key {
        setting,
        path: shown,
        source,
    })
}

#[cfg(test)]
#[path = "keyring_tests.rs"]
mod tests;
