//! Access tokens: the JWT the seed document describes, signed with the configured key.

mod jwk;
pub mod keygen;
pub mod keyring;
pub mod keys;
pub mod verify;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

use crate::clients::Client;
use crate::config::TokenSettings;

pub use jwk::PublicJwk;
pub use keygen::{KeyFileError, KeyKind, write_key_file};
pub use keyring::{Keyring, KeyringError};
pub use keys::{Algorithm, KeyError, SigningKey, VerifyingKey};
pub use verify::{AccessClaims, Rejected, Verifier};

/// The longest access token this service issues, and so the longest that introspection,
/// revocation and user info read: a larger one is refused at the exchange (a code record with
/// hundreds of scopes, say), rather than handed out to be refused there.
pub const MAX_TOKEN: usize = 4096;

/// The claims of an access token: the seed's `sub aud scope iss exp jti` in the seed's order,
/// plus RFC 9068's `iat` and `client_id`. Serialized as is, `scope` is an array (the seed's
/// shape); [`Minter`] writes it as RFC 9068 says when its `typ` is `at+jwt`.
#[derive(Debug, Serialize)]
pub struct Claims<'a> {
    /// The account id (the user's primary key), as in the reference implementation.
    pub sub: &'a str,
    pub aud: &'a str,
    pub scope: &'a [String],
    pub iss: &'a str,
    pub exp: u64,
    pub iat: u64,
    pub jti: &'a str,
    pub client_id: &'a str,
}

impl<'a> Claims<'a> {
    /// The claims of a token issued to `client` at `iat`: the one place their shape is decided,
    /// for the exchange and for the check at load that the longest client's token fits
    /// ([`MAX_TOKEN`]).
    pub fn issued_to(
        client: &'a Client,
        settings: &'a TokenSettings,
        sub: &'a str,
        scope: &'a [String],
        jti: &'a str,
        iat: u64,
    ) -> Self {
        Self {
            sub,
            aud: client.audience_or(&settings.audience),
            scope,
            iss: &settings.issuer,
            exp: Self::expiry(settings, iat),
            iat,
            jti,
            client_id: &client.id,
        }
    }

    /// The `exp` of a token issued at `iat`, which its record holds too (`store::record_head`):
    /// the exchange writes the record before the code tells it the rest of the claims.
    pub fn expiry(settings: &TokenSettings, iat: u64) -> u64 {
        iat + settings.expires_in
    }
}

/// The claims with `scope` as one space-separated string (RFC 9068 §2.2.3), same order.
#[derive(Serialize)]
struct Rfc9068Claims<'c> {
    sub: &'c str,
    aud: &'c str,
    scope: SpaceSeparated<'c>,
    iss: &'c str,
    exp: u64,
    iat: u64,
    jti: &'c str,
    client_id: &'c str,
}

/// Scopes serialized as one string joined by spaces, without building the string first.
struct SpaceSeparated<'a>(&'a [String]);

impl std::fmt::Display for SpaceSeparated<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, scope) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(scope)?;
        }
        Ok(())
    }
}

impl Serialize for SpaceSeparated<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Whether `typ` is RFC 9068's media type (`at+jwt`, or in full `application/at+jwt`; media
/// types are case-insensitive), whose `scope` claim is a space-separated string.
pub fn is_rfc9068(typ: &str) -> bool {
    typ.eq_ignore_ascii_case("at+jwt") || typ.eq_ignore_ascii_case("application/at+jwt")
}

/// Signs access tokens with one key; the JOSE header never changes, so it is encoded once.
#[derive(Debug)]
pub struct Minter {
    key: SigningKey,
    encoded_header: String,
    /// `typ` is RFC 9068's: `scope` is written as a string.
    scope_as_string: bool,
}

#[derive(Serialize)]
struct Header<'a> {
    typ: &'a str,
    alg: Algorithm,
    kid: &'a str,
}

impl Minter {
    /// `typ` is the header's `typ` (the seed uses `access_token`; RFC 9068 says `at+jwt`, and
    /// then `scope` is a space-separated string instead of the seed's array).
    pub fn new(key: SigningKey, typ: &str) -> Result<Self, serde_json::Error> {
        let header = serde_json::to_vec(&Header {
            typ,
            alg: key.algorithm(),
            kid: key.kid(),
        })?;
        Ok(Self {
            encoded_header: URL_SAFE_NO_PAD.encode(header),
            key,
            scope_as_string: is_rfc9068(typ),
        })
    }

    pub fn key(&self) -> &SigningKey {
        &self.key
    }

    /// Returns the compact JWS `header.payload.signature`.
    pub fn mint(&self, claims: &Claims<'_>) -> Result<String, MintError> {
        // Claims are ~250 bytes: one allocation instead of growing from serde_json's 128.
        let mut payload = Vec::with_capacity(384);
        if self.scope_as_string {
            serde_json::to_writer(
                &mut payload,
                &Rfc9068Claims {
                    sub: claims.sub,
                    aud: claims.aud,
                    scope: SpaceSeparated(claims.scope),
                    iss: claims.iss,
                    exp: claims.exp,
                    iat: claims.iat,
                    jti: claims.jti,
                    client_id: claims.client_id,
                },
            )?;
        } else {
            serde_json::to_writer(&mut payload, claims)?;
        }
        let mut token =
            String::with_capacity(self.encoded_header.len() + payload.len() * 4 / 3 + 2 + 700);
        token.push_str(&self.encoded_header);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
        let signature = self.key.sign(token.as_bytes())?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&signature, &mut token);
        Ok(token)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MintError {
    #[error("encoding claims: {0}")]
    Encode(#[from] serde_json::Error),
    #[error(transparent)]
    Sign(#[from] KeyError),
}

/// A fresh random id: 144 random bits, URL-safe base64 (24 characters): the part of a `jti`
/// that is this exchange's alone (`store::keys`); at least 128, as the token issue asks of a
/// `jti`.
pub fn random_id() -> Result<String, aws_lc_rs::error::Unspecified> {
    let mut id = String::with_capacity(RANDOM_ID_CHARS);
    push_random_id(&mut id)?;
    Ok(id)
}

/// Appends a [`random_id`] to `out`, without a string of its own (one per exchange).
pub fn push_random_id(out: &mut String) -> Result<(), aws_lc_rs::error::Unspecified> {
    URL_SAFE_NO_PAD.encode_string(ID_POOL.with_borrow_mut(IdPool::take)?, out);
    Ok(())
}

const ID_BYTES: usize = 18;
/// Characters of a [`random_id`]: base64 of [`ID_BYTES`], no padding (18 bytes make 24).
pub const RANDOM_ID_CHARS: usize = ID_BYTES * 4 / 3;

/// Random bits for ids (one per exchange), drawn from aws-lc's DRBG 64 ids at a
/// time: each `RAND_bytes` call has a fixed cost (~0.4 µs in the benchmarks, more than the rest
/// of building an id), so one call per id was 1.3 % of an ES256 exchange. A taken id is zeroed
/// in the pool.
struct IdPool {
    ids: [[u8; ID_BYTES]; 64],
    next: usize,
}

thread_local! {
    static ID_POOL: std::cell::RefCell<IdPool> = const {
        std::cell::RefCell::new(IdPool { ids: [[0; ID_BYTES]; 64], next: 64 })
    };
}

impl IdPool {
    fn take(&mut self) -> Result<[u8; ID_BYTES], aws_lc_rs::error::Unspecified> {
        if self.next == self.ids.len() {
            aws_lc_rs::rand::fill(self.ids.as_flattened_mut())?;
            self.next = 0;
        }
        let id = std::mem::take(&mut self.ids[self.next]);
        self.next += 1;
        Ok(id)
    }
}

#[cfg(test)]
#[path = "tokens_tests.rs"]
mod tests;
