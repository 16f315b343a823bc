use std::collections::HashSet;
use std::str::FromStr;

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{DecodingKey, Validation, decode, decode_header, get_current_timestamp};
use serde_json::{Value, json};

use super::*;

const AUDIENCE: &str = "https://api.example";
const ISSUER: &str = "https://sso.example";

fn minter(kind: KeyKind, typ: &str) -> Minter {
    let key = SigningKey::from_pem(&SigningKey::generate_pem(kind).unwrap()).unwrap();
    Minter::new(key, typ).unwrap()
}

/// The verification key as a relying party builds it: from the published JWK.
fn decoding_key(minter: &Minter) -> DecodingKey {
    let jwk: Jwk =
        serde_json::from_value(serde_json::to_value(minter.key().public_jwk()).unwrap()).unwrap();
    DecodingKey::from_jwk(&jwk).unwrap()
}

fn validation(algorithm: jsonwebtoken::Algorithm, audience: &str) -> Validation {
    let mut validation = Validation::new(algorithm);
    validation.set_audience(&[audience]);
    validation.set_issuer(&[ISSUER]);
    validation
}

fn segment(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

struct Sample {
    scope: Vec<String>,
    jti: String,
    iat: u64,
}

impl Sample {
    fn new() -> Self {
        Self {
            scope: vec!["user:basic".into(), "user:email".into()],
            jti: random_id().unwrap(),
            iat: get_current_timestamp(),
        }
    }

    fn claims(&self) -> Claims<'_> {
        Claims {
            sub: "42",
            aud: AUDIENCE,
            scope: &self.scope,
            iss: ISSUER,
            exp: self.iat + 600,
            iat: self.iat,
            jti: &self.jti,
            client_id: "app",
        }
    }

    /// What a relying party must read back, written out independently of `Claims`.
    fn expected_payload(&self) -> Value {
        json!({
            "sub": "42",
            "aud": AUDIENCE,
            "scope": ["user:basic", "user:email"],
            "iss": ISSUER,
            "exp": self.iat + 600,
            "iat": self.iat,
            "jti": self.jti,
            "client_id": "app",
        })
    }

    /// The same with `typ` `at+jwt`: `scope` is one space-separated string (RFC 9068 §2.2.3).
    fn expected_rfc9068_payload(&self) -> Value {
        let mut payload = self.expected_payload();
        payload["scope"] = json!("user:basic user:email");
        payload
    }
}

#[test]
fn a_minted_rs256_token_verifies_with_the_published_key_and_carries_every_claim() {
    let minter = minter(KeyKind::Rsa2048, "at+jwt");
    let sample = Sample::new();
    let token = minter.mint(&sample.claims()).unwrap();

    let data = decode::<Value>(
        &token,
        &decoding_key(&minter),
        &validation(jsonwebtoken::Algorithm::RS256, AUDIENCE),
    )
    .unwrap();
    assert_eq!(data.claims, sample.expected_rfc9068_payload());
    assert_eq!(data.header.alg, jsonwebtoken::Algorithm::RS256);
    assert_eq!(data.header.typ.as_deref(), Some("at+jwt"));
    assert_eq!(data.header.kid.as_deref(), Some(minter.key().kid()));
}

#[test]
fn the_header_holds_exactly_the_configured_typ_the_alg_and_the_kid() {
    let cases = [
        (KeyKind::Rsa2048, "access_token", "RS256"),
        (KeyKind::Rsa2048, "at+jwt", "RS256"),
        (KeyKind::P256, "at+jwt", "ES256"),
        (KeyKind::Ed25519, "JWT", "EdDSA"),
    ];
    for (kind, typ, alg) in cases {
        let minter = minter(kind, typ);
        let token = minter.mint(&Sample::new().claims()).unwrap();
        let expected = json!({ "typ": typ, "alg": alg, "kid": minter.key().kid() });
        assert_eq!(segment(&token, 0), expected, "{kind:?}");
        let header = decode_header(&token).unwrap();
        assert_eq!(header.typ.as_deref(), Some(typ), "{kind:?}");
    }
}

#[test]
fn tokens_of_every_key_type_verify_with_jsonwebtoken() {
    for kind in [KeyKind::Rsa2048, KeyKind::P256, KeyKind::Ed25519] {
        let minter = minter(kind, "at+jwt");
        let sample = Sample::new();
        let token = minter.mint(&sample.claims()).unwrap();
        let algorithm =
            jsonwebtoken::Algorithm::from_str(segment(&token, 0)["alg"].as_str().unwrap()).unwrap();
        let data = decode::<Value>(
            &token,
            &decoding_key(&minter),
            &validation(algorithm, AUDIENCE),
        )
        .unwrap_or_else(|e| panic!("{kind:?}: {e}"));
        assert_eq!(data.claims, sample.expected_rfc9068_payload(), "{kind:?}");
    }
}

#[test]
fn scope_is_the_seeds_array_unless_typ_is_rfc9068s_then_one_string() {
    let sample = Sample::new();
    for typ in ["access_token", "JWT", "at+jwt-ish"] {
        let token = minter(KeyKind::Ed25519, typ)
            .mint(&sample.claims())
            .unwrap();
        assert_eq!(segment(&token, 1), sample.expected_payload(), "{typ}");
    }
    for typ in ["at+jwt", "AT+JWT", "application/at+jwt"] {
        let token = minter(KeyKind::Ed25519, typ)
            .mint(&sample.claims())
            .unwrap();
        assert_eq!(
            segment(&token, 1),
            sample.expected_rfc9068_payload(),
            "{typ}"
        );
        // The claims keep the seed's order, scope included.
        let payload = String::from_utf8(
            URL_SAFE_NO_PAD
                .decode(token.split('.').nth(1).unwrap())
                .unwrap(),
        )
        .unwrap();
        assert!(
            payload.starts_with(&format!(
                r#"{{"sub":"42","aud":"{AUDIENCE}","scope":"user:basic user:email","iss""#
            )),
            "{payload}"
        );
    }
}

#[test]
fn a_tampered_token_or_another_key_or_audience_does_not_verify() {
    let minter = minter(KeyKind::Rsa2048, "at+jwt");
    let stranger = self::minter(KeyKind::Rsa2048, "at+jwt");
    let sample = Sample::new();
    let token = minter.mint(&sample.claims()).unwrap();
    let rs256 = validation(jsonwebtoken::Algorithm::RS256, AUDIENCE);

    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut payload = sample.expected_payload();
    payload["sub"] = json!("43");
    parts[1] = URL_SAFE_NO_PAD.encode(payload.to_string());
    let tampered = parts.join(".");

    assert!(decode::<Value>(&tampered, &decoding_key(&minter), &rs256).is_err());
    assert!(decode::<Value>(&token, &decoding_key(&stranger), &rs256).is_err());
    let other_audience = validation(jsonwebtoken::Algorithm::RS256, "https://other.example");
    assert!(decode::<Value>(&token, &decoding_key(&minter), &other_audience).is_err());
    assert!(decode::<Value>(&token, &decoding_key(&minter), &rs256).is_ok());
}

#[test]
fn a_random_id_is_24_url_safe_characters_carrying_144_bits() {
    // Many samples: one id in standard base64 has even odds or better of holding no `+` or `/`.
    for _ in 0..1_000 {
        let id = random_id().unwrap();
        assert_eq!(id.len(), 24, "{id}");
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{id}"
        );
        assert_eq!(URL_SAFE_NO_PAD.decode(&id).unwrap().len() * 8, 144, "{id}");
    }
}

#[test]
fn every_random_id_is_different() {
    let ids: HashSet<String> = (0..10_000).map(|_| random_id().unwrap()).collect();
    assert_eq!(ids.len(), 10_000);
}
