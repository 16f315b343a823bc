//! The public keys of a client that authenticates with `private_key_jwt` (RFC 7523 §2.2): a
//! JWK Set file (RFC 7517) named by the entry's `jwks_file`, checked and parsed once at load,
//! so that an assertion costs one signature verification and no parsing of keys.

use std::fmt;
use std::path::Path;

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, ParsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value};

use crate::tokens::keys::{MAX_RSA_BITS, MIN_RSA_BITS, bit_length};

/// The most keys a client's set may hold: one in use, one being rolled in, a few spare.
pub const MAX_KEYS: usize = 8;
/// The longest RSA public exponent aws-lc verifies with (`rsa.c`: `e_bits > 33` is refused).
const MAX_EXPONENT_BITS: usize = 33;
/// The longest `kid` kept: longer ones are no one's naming scheme.
const MAX_KID: usize = 256;
/// Members of a JWK that only a private or symmetric key has (RFC 7518 §6.2.2, §6.3.2, §6.4;
/// RFC 8037 §2): a file with them gives a signing key away to whoever reads our configuration.
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// A client's keys, in the file's order.
pub struct ClientKeys {
    keys: Vec<ClientKey>,
    /// The set as parsed, re-serialized (members sorted): whether a reload changed it.
    canonical: String,
}

/// One public key and the algorithms it verifies.
pub struct ClientKey {
    kid: Option<String>,
    algorithms: &'static [Algorithm],
    decoding: DecodingKey,
}

/// Why a header's `kid` chose no key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoKey {
    /// The header names a `kid` the set does not hold.
    UnknownKid,
    /// The header has no `kid` and the set holds several keys.
    KidNeeded,
}

impl ClientKeys {
    /// Reads and checks the set at `path`; the message says what is wrong, for the entry's
    /// error (which names the client).
    pub fn load(path: &Path) -> Result<Self, String> {
        let shown = path.display();
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("jwks_file `{shown}`: {e}"))?;
        Self::parse(&text).map_err(|problem| format!("jwks_file `{shown}`: {problem}"))
    }

    /// Checks a JWK Set: RSA of 2048 bits or more (RS256, PS256), EC P-256 (ES256), OKP Ed25519
    /// (EdDSA); `use`, if given, `sig`; `alg`, if given, one of those that fits the key; no
    /// private members; one to [`MAX_KEYS`] keys, each with a unique `kid` when more than one.
    pub fn parse(text: &str) -> Result<Self, String> {
        let set: Value = serde_json::from_str(text)
            .map_err(|e| format!("not JSON (line {}, column {})", e.line(), e.column()))?;
        let Some(Value::Array(members)) = set.get("keys") else {
            return Err("must be a JWK Set: an object with a `keys` array (RFC 7517 §5)".into());
        };
        if members.is_empty() {
            return Err("holds no key".into());
        }
        if members.len() > MAX_KEYS {
            return Err(format!(
                "holds {} keys, more than {MAX_KEYS}: remove those no instance of the client \
                 signs with any more",
                members.len()
            ));
        }
        let mut keys: Vec<ClientKey> = Vec::with_capacity(members.len());
        for (n, member) in (1..).zip(members) {
            let key = ClientKey::parse(member).map_err(|problem| format!("key {n}: {problem}"))?;
            if members.len() > 1 {
                let Some(kid) = &key.kid else {
                    return Err(format!(
                        "key {n} has no `kid`: with more than one key, each needs one, so that \
                         an assertion's header can name its key"
                    ));
                };
                if keys.iter().any(|k| k.kid.as_ref() == Some(kid)) {
                    return Err(format!("key {n}: `kid` {kid:?} is another key's too"));
                }
            }
            keys.push(key);
        }
        Ok(Self {
            keys,
            canonical: set.to_string(),
        })
    }

    /// The key an assertion's header names with `kid`, or the only key when it names none.
    pub fn choose(&self, kid: Option<&str>) -> Result<&ClientKey, NoKey> {
        match (kid, self.keys.as_slice()) {
            (None, [only]) => Ok(only),
            (None, _) => Err(NoKey::KidNeeded),
            (Some(kid), keys) => (keys.iter())
                .find(|k| k.kid.as_deref() == Some(kid))
                .ok_or(NoKey::UnknownKid),
        }
    }

    /// Whether `other` holds the same keys, as parsed.
    pub fn same_keys(&self, other: &ClientKeys) -> bool {
        self.canonical == other.canonical
    }
}

impl ClientKey {
    fn parse(member: &Value) -> Result<Self, String> {
        let Value::Object(jwk) = member else {
            return Err("is not a JSON object".into());
        };
        if let Some(private) = PRIVATE_MEMBERS.iter().find(|m| jwk.contains_key(**m)) {
            return Err(format!(
                "has the private member `{private}`: this file must hold public keys only \
                 (the client keeps its private key)"
            ));
        }
        match jwk.get("use") {
            None => {}
            Some(Value::String(u)) if u == "sig" => {}
            Some(_) => return Err("`use` must be \"sig\"".into()),
        }
        let kid = match jwk.get("kid") {
            None => None,
            Some(Value::String(kid)) if !kid.is_empty() && kid.len() <= MAX_KID => {
                Some(kid.clone())
            }
            Some(_) => return Err(format!("`kid` must be a string of 1 to {MAX_KID} bytes")),
        };
        let (algorithms, decoding) = match text(jwk, "kty")? {
            "RSA" => rsa(jwk)?,
            "EC" => ec(jwk)?,
            "OKP" => okp(jwk)?,
            other => {
                return Err(format!(
                    "`kty` {other:?} is not one of RSA, EC (P-256) or OKP (Ed25519)"
                ));
            }
        };
        let algorithms = match jwk.get("alg") {
            None => algorithms,
            Some(Value::String(alg)) => {
                let named = (algorithms.iter()).find(|a| algorithm_name(**a) == alg);
                let Some(named) = named else {
                    let fits: Vec<&str> = algorithms.iter().map(|a| algorithm_name(*a)).collect();
                    return Err(format!(
                        "`alg` {alg:?} does not fit this key: {}",
                        fits.join(" or ")
                    ));
                };
                std::slice::from_ref(named)
            }
            Some(_) => return Err("`alg` must be a string".into()),
        };
        Ok(Self {
            kid,
            algorithms,
            decoding,
        })
    }

    /// Whether this key verifies signatures of `alg`.
    pub fn allows(&self, alg: Algorithm) -> bool {
        self.algorithms.contains(&alg)
    }

    pub fn decoding(&self) -> &DecodingKey {
        &self.decoding
    }
}

/// The name of an algorithm as a JWS header writes it.
pub fn algorithm_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 => "HS256",
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::EdDSA => "EdDSA",
        // The enum is non-exhaustive: one jsonwebtoken adds later, which no key here allows.
        _ => "another",
    }
}

/// What each key type verifies.
const RSA_ALGORITHMS: [Algorithm; 2] = [Algorithm::RS256, Algorithm::PS256];
const EC_ALGORITHMS: [Algorithm; 1] = [Algorithm::ES256];
const OKP_ALGORITHMS: [Algorithm; 1] = [Algorithm::EdDSA];

type Parsed = (&'static [Algorithm], DecodingKey);

fn rsa(jwk: &Map<String, Value>) -> Result<Parsed, String> {
    let (n, e) = (text(jwk, "n")?, text(jwk, "e")?);
    let modulus = base64url(n, "n")?;
    // Counted to the bit (a 2041-bit modulus is no 2048-bit key), and within what aws-lc
    // verifies with (`RSA_PKCS1_2048_8192_SHA256`), as the service's own keys are: a key
    // outside would load and never verify a signature.
    let bits = bit_length(&modulus);
    if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
        return Err(format!(
            "an RSA key of {bits} bits: {MIN_RSA_BITS} to {MAX_RSA_BITS} are taken"
        ));
    }
    // The same for `e`: even, 1, or longer than the 33 bits aws-lc takes.
    let exponent = base64url(e, "e")?;
    let odd = exponent.last().is_some_and(|low| low % 2 == 1);
    // Odd with two bits or more: 3 at least.
    if !odd || !(2..=MAX_EXPONENT_BITS).contains(&bit_length(&exponent)) {
        return Err(format!(
            "`e` must be an odd public exponent above 1 of at most {MAX_EXPONENT_BITS} bits \
             (usually AQAB, 65537)"
        ));
    }
    let key = DecodingKey::from_rsa_components(n, e).map_err(|e| format!("RSA key: {e}"))?;
    Ok((&RSA_ALGORITHMS, key))
}

fn ec(jwk: &Map<String, Value>) -> Result<Parsed, String> {
    let curve = text(jwk, "crv")?;
    if curve != "P-256" {
        return Err(format!(
            "EC curve {curve:?}: only P-256 (ES256) is accepted"
        ));
    }
    let (x, y) = (text(jwk, "x")?, text(jwk, "y")?);
    let (x_bytes, y_bytes) = (base64url(x, "x")?, base64url(y, "y")?);
    if x_bytes.len() != 32 || y_bytes.len() != 32 {
        return Err("a P-256 key's `x` and `y` are 32 bytes each".into());
    }
    // A point off the curve would load and never verify: aws-lc checks it as it parses it.
    let point = [&[0x04][..], &x_bytes, &y_bytes].concat();
    if ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point).is_err() {
        return Err("`x` and `y` are not a point on P-256".into());
    }
    let key = DecodingKey::from_ec_components(x, y).map_err(|e| format!("EC key: {e}"))?;
    Ok((&EC_ALGORITHMS, key))
}

fn okp(jwk: &Map<String, Value>) -> Result<Parsed, String> {
    let curve = text(jwk, "crv")?;
    if curve != "Ed25519" {
        return Err(format!(
            "OKP curve {curve:?}: only Ed25519 (EdDSA) is accepted"
        ));
    }
    let x = text(jwk, "x")?;
    if base64url(x, "x")?.len() != 32 {
        return Err("an Ed25519 key's `x` is 32 bytes".into());
    }
    let key = DecodingKey::from_ed_components(x).map_err(|e| format!("Ed25519 key: {e}"))?;
    Ok((&OKP_ALGORITHMS, key))
}

fn text<'a>(jwk: &'a Map<String, Value>, member: &str) -> Result<&'a str, String> {
    match jwk.get(member) {
        Some(Value::String(value)) if !value.is_empty() => Ok(value),
        _ => Err(format!("`{member}` is missing or not a string")),
    }
}

fn base64url(value: &str, member: &str) -> Result<Vec<u8>, String> {
    URL_SAFE_NO_PAD
        .decode(value)
        .map_err(|_| format!("`{member}` is not base64url without padding"))
}

/// The key ids and algorithms, never the key material (public, but long and of no use in a
/// log).
impl fmt::Debug for ClientKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.keys.iter().map(|k| (&k.kid, k.algorithms)))
            .finish()
    }
}

#[cfg(test)]
#[path = "jwks_tests.rs"]
mod tests;
