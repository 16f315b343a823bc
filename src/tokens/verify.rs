//! Checks access tokens we issued: the signature against the key that the header's `kid` names,
//! with the algorithm that key implies (never the one the header asks for), then the claims.
//! Expiry is the caller's decision ([`AccessClaims::expired`]): revocation looks at expired
//! tokens too.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use super::MAX_TOKEN;
use super::keys::VerifyingKey;

/// The public keys that may have signed a live token, by `kid`.
#[derive(Default)]
pub struct Verifier {
    keys: HashMap<String, VerifyingKey>,
}

/// The claims of a token that verified: what [`super::Claims`] wrote.
#[derive(Debug, Clone, Deserialize)]
pub struct AccessClaims {
    pub sub: String,
    pub aud: String,
    /// An array (the seed's shape) or one space-separated string (RFC 9068, `typ` `at+jwt`):
    /// a reload may change `token.typ` while tokens of the other shape are live.
    #[serde(deserialize_with = "either_scope_shape")]
    pub scope: Vec<String>,
    pub iss: String,
    pub exp: u64,
    pub iat: u64,
    pub jti: String,
    pub client_id: String,
}

/// Why a token was refused. Only ever logged or tested, never shown to the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    #[error("not a compact JWS of ours")]
    Malformed,
    #[error("no key with this kid")]
    UnknownKey,
    #[error("bad signature")]
    Signature,
}

#[derive(Deserialize)]
struct Header<'a> {
    alg: &'a str,
    kid: Option<&'a str>,
    /// Extensions we would have to understand (RFC 7515 §4.1.11); we never set any. Present
    /// whatever its value: `null` is no more a header without `crit` than `[]` is.
    #[serde(default, deserialize_with = "present")]
    crit: bool,
}

fn present<'de, D: serde::Deserializer<'de>>(value: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(value).map(|_| true)
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.keys.keys()).finish()
    }
}

impl Verifier {
    /// Accepts signatures of `key` from now on; `false` if its kid was already there.
    pub fn insert(&mut self, key: VerifyingKey) -> bool {
        if self.keys.contains_key(key.kid()) {
            return false;
        }
        self.keys.insert(key.kid().to_owned(), key);
        true
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// The `kid`s of the keys whose signatures are accepted: those the JWKS publishes.
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    /// Whether signatures of the key with this `kid` are accepted.
    pub fn knows(&self, kid: &str) -> bool {
        self.keys.contains_key(kid)
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Checks the signature and decodes the claims; says nothing about expiry.
    pub fn verify(&self, token: &str) -> Result<AccessClaims, Rejected> {
        if token.len() > MAX_TOKEN {
            return Err(Rejected::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(encoded_header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Rejected::Malformed);
        };
        let header_json = decode(encoded_header)?;
        let header: Header<'_> =
            serde_json::from_slice(&header_json).map_err(|_| Rejected::Malformed)?;
        if header.crit {
            return Err(Rejected::Malformed);
        }
        let key = header
            .kid
            .and_then(|kid| self.keys.get(kid))
            .ok_or(Rejected::UnknownKey)?;
        if header.alg != key.algorithm().name() {
            return Err(Rejected::Signature);
        }
        let signing_input = &token[..encoded_header.len() + 1 + payload.len()];
        if !key.verifies(signing_input.as_bytes(), &decode(signature)?) {
            return Err(Rejected::Signature);
        }
        serde_json::from_slice(&decode(payload)?).map_err(|_| Rejected::Malformed)
    }
}

impl AccessClaims {
    /// Past `exp`, allowing `leeway` seconds of clock skew.
    pub fn expired(&self, now: u64, leeway: u64) -> bool {
        self.exp.saturating_add(leeway) <= now
    }
}

/// The scopes of a `scope` claim in either shape.
fn either_scope_shape<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<String>, D::Error> {
    struct Scopes;

    impl<'de> serde::de::Visitor<'de> for Scopes {
        type Value = Vec<String>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an array of scopes or one space-separated string")
        }

        fn visit_str<E: serde::de::Error>(self, joined: &str) -> Result<Self::Value, E> {
            Ok(joined
                .split(' ')
                .filter(|scope| !scope.is_empty())
                .map(str::to_owned)
                .collect())
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut scopes = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(16));
            while let Some(scope) = seq.next_element()? {
                scopes.push(scope);
            }
            Ok(scopes)
        }
    }

    deserializer.deserialize_any(Scopes)
}

fn decode(part: &str) -> Result<Vec<u8>, Rejected> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| Rejected::Malformed)
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;
