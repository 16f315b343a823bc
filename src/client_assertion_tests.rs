use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};

use super::*;
use crate::routes::paths::INTROSPECT_PATH;
use crate::tokens::{KeyKind, SigningKey};

const NOW: u64 = 1_800_000_000;
const LEEWAY: u64 = 30;
const ID: &str = "signing-app";
const AUDIENCES: Audiences<'static> = Audiences {
    rule: AssertionAudience::Any,
    issuer: "com.central-x.security",
    base: "https://sso.example.com",
    endpoint: INTROSPECT_PATH,
};

/// A client's key pair: its private PEM and its public set (of that one key).
struct Pair {
    pem: String,
    kid: String,
    /// The public JWK's text.
    public: String,
    keys: ClientKeys,
}

fn pair(kind: KeyKind) -> Pair {
    let pem = SigningKey::generate_pem(kind).unwrap();
    let mut jwk = serde_json::to_value(SigningKey::from_pem(&pem).unwrap().public_jwk()).unwrap();
    // Without `alg`: an RSA key then verifies PS256 too.
    jwk.as_object_mut().unwrap().remove("alg");
    Pair {
        kid: jwk["kid"].as_str().unwrap().to_owned(),
        public: jwk.to_string(),
        keys: ClientKeys::parse(&json!({ "keys": [jwk] }).to_string()).unwrap(),
        pem,
    }
}

fn claims() -> Value {
    json!({
        "iss": ID,
        "sub": ID,
        "aud": "https://sso.example.com/identity/sso/oauth2/access_token",
        "exp": NOW + 60,
        "iat": NOW,
        "jti": "a1b2c3",
    })
}

fn sign(pair: &Pair, alg: Algorithm, claims: &Value) -> String {
    let key = match alg {
        Algorithm::ES256 => EncodingKey::from_ec_pem(pair.pem.as_bytes()),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(pair.pem.as_bytes()),
        _ => EncodingKey::from_rsa_pem(pair.pem.as_bytes()),
    }
    .unwrap();
    let mut header = Header::new(alg);
    header.kid = Some(pair.kid.clone());
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

fn check(pair: &Pair, assertion: &str) -> Result<Checked, Refusal> {
    verify(assertion, ID, &pair.keys, &AUDIENCES, NOW, LEEWAY)
}

/// `claims` with `edit` applied.
fn with(edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Value {
    let mut claims = claims();
    edit(claims.as_object_mut().unwrap());
    claims
}

#[test]
fn a_signed_assertion_passes_with_each_key_type() {
    for (kind, alg) in [
        (KeyKind::Rsa2048, Algorithm::RS256),
        (KeyKind::Rsa2048, Algorithm::PS256),
        (KeyKind::P256, Algorithm::ES256),
        (KeyKind::Ed25519, Algorithm::EdDSA),
    ] {
        let pair = pair(kind);
        let checked = check(&pair, &sign(&pair, alg, &claims())).unwrap();
        assert_eq!((checked.jti.as_str(), checked.exp), ("a1b2c3", NOW + 60));
    }
}

#[test]
fn the_audience_may_be_the_issuer_the_token_endpoint_or_the_endpoint_called() {
    let pair = pair(KeyKind::P256);
    for aud in [
        json!("com.central-x.security"),
        json!("https://sso.example.com/identity/sso/oauth2/access_token"),
        json!("https://sso.example.com/identity/sso/oauth2/introspect"),
        json!(["https://elsewhere.example", "com.central-x.security"]),
    ] {
        let claims = with(|c| {
            c.insert("aud".into(), aud.clone());
        });
        assert!(
            check(&pair, &sign(&pair, Algorithm::ES256, &claims)).is_ok(),
            "{aud}"
        );
    }
    for aud in [
        Some(json!("https://sso.example.com/identity/sso/oauth2/revoke")),
        Some(json!("https://sso.example.com")),
        Some(json!(["https://elsewhere.example"])),
        Some(json!([])),
        None,
    ] {
        let claims = with(|c| match &aud {
            Some(aud) => {
                c.insert("aud".into(), aud.clone());
            }
            None => {
                c.remove("aud");
            }
        });
        let refused = check(&pair, &sign(&pair, Algorithm::ES256, &claims));
        assert_eq!(refused.err(), Some(Refusal::Audience), "{aud:?}");
    }
}

/// `token.assertion_audience = "issuer"` (draft-ietf-oauth-rfc7523bis): the issuer alone, as a
/// string; the endpoints' URLs and arrays, even of the issuer alone, are refused.
#[test]
fn under_the_issuer_rule_the_audience_is_the_issuer_alone() {
    let pair = pair(KeyKind::P256);
    let strict = Audiences {
        rule: AssertionAudience::Issuer,
        ..AUDIENCES
    };
    let checked = |aud: Value| {
        let claims = with(|c| {
            c.insert("aud".into(), aud);
        });
        verify(
            &sign(&pair, Algorithm::ES256, &claims),
            ID,
            &pair.keys,
            &strict,
            NOW,
            LEEWAY,
        )
    };
    assert!(checked(json!("com.central-x.security")).is_ok());
    for aud in [
        json!("https://sso.example.com/identity/sso/oauth2/access_token"),
        json!("https://sso.example.com/identity/sso/oauth2/introspect"),
        json!(["com.central-x.security"]),
        json!("com.central-x.security/"),
    ] {
        assert_eq!(
            checked(aud.clone()).err(),
            Some(Refusal::AudienceNotIssuer),
            "{aud}"
        );
    }
}

#[test]
fn times_and_jti_are_checked_with_the_leeway() {
    let pair = pair(KeyKind::Ed25519);
    let set = |name: &'static str, value: Value| {
        with(move |c| {
            c.insert(name.into(), value);
        })
    };
    let drop = |name: &'static str| {
        with(move |c| {
            c.remove(name);
        })
    };
    let passing = [
        set("exp", json!(NOW - LEEWAY)),
        set("exp", json!(NOW + MAX_LIFETIME_SECS + LEEWAY)),
        set("exp", json!((NOW + 60) as f64 + 0.5)),
        set("nbf", json!(NOW + LEEWAY)),
        drop("iat"),
        set("jti", json!("é".repeat(256))),
    ];
    for claims in passing {
        assert!(
            check(&pair, &sign(&pair, Algorithm::EdDSA, &claims)).is_ok(),
            "{claims}"
        );
    }
    let refused = [
        (set("exp", json!(NOW - LEEWAY - 1)), Refusal::Expired),
        (drop("exp"), Refusal::NoExpiry),
        (
            set("exp", json!(NOW + MAX_LIFETIME_SECS + LEEWAY + 1)),
            Refusal::TooLongLived,
        ),
        (set("nbf", json!(NOW + LEEWAY + 1)), Refusal::NotYetValid),
        (set("iat", json!(NOW + LEEWAY + 1)), Refusal::NotYetValid),
        (drop("jti"), Refusal::Jti),
        (set("jti", json!("")), Refusal::Jti),
        (set("jti", json!("x".repeat(257))), Refusal::Jti),
        (set("sub", json!("other")), Refusal::Subject),
        (drop("sub"), Refusal::Subject),
        (set("iss", json!("other")), Refusal::Issuer),
        (set("exp", json!("soon")), Refusal::Claims),
    ];
    for (claims, expected) in refused {
        let got = check(&pair, &sign(&pair, Algorithm::EdDSA, &claims));
        assert_eq!(got.err(), Some(expected), "{claims}");
    }
}

#[test]
fn only_a_signature_by_the_clients_key_with_its_algorithm_passes() {
    let pair = pair(KeyKind::Rsa2048);
    let good = sign(&pair, Algorithm::RS256, &claims());
    let (signed, _) = good.rsplit_once('.').unwrap();

    // Another key of the same type, under the client's kid.
    let other = Pair {
        kid: pair.kid.clone(),
        ..self::pair(KeyKind::Rsa2048)
    };
    let forged = sign(&other, Algorithm::RS256, &claims());
    // Claims edited after signing.
    let tampered_claims = URL_SAFE_NO_PAD.encode(
        with(|c| {
            c.insert("jti".into(), json!("other"));
        })
        .to_string(),
    );
    let (header, _, signature) = {
        let mut parts = good.split('.');
        (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        )
    };
    let tampered = format!("{header}.{tampered_claims}.{signature}");
    assert_eq!(check(&pair, &forged).err(), Some(Refusal::Signature));
    assert_eq!(check(&pair, &tampered).err(), Some(Refusal::Signature));

    // `alg: none`, unsigned.
    let none_header = URL_SAFE_NO_PAD.encode(json!({"alg": "none", "kid": pair.kid}).to_string());
    let payload = signed.split_once('.').unwrap().1;
    let none = format!("{none_header}.{payload}.");
    assert_eq!(check(&pair, &none).err(), Some(Refusal::Header));

    // HS256 keyed with the public key (the classic confusion: whoever has it could sign).
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(pair.kid.clone());
    let hs = jsonwebtoken::encode(
        &header,
        &claims(),
        &EncodingKey::from_secret(pair.public.as_bytes()).unwrap(),
    )
    .unwrap();
    assert_eq!(check(&pair, &hs).err(), Some(Refusal::Algorithm("HS256")));

    // An EC alg on an RSA key.
    let mut es_header = Header::new(Algorithm::ES256);
    es_header.kid = Some(pair.kid.clone());
    let es_pair = self::pair(KeyKind::P256);
    let es = jsonwebtoken::encode(
        &es_header,
        &claims(),
        &EncodingKey::from_ec_pem(es_pair.pem.as_bytes()).unwrap(),
    )
    .unwrap();
    assert_eq!(check(&pair, &es).err(), Some(Refusal::Algorithm("ES256")));
}

#[test]
fn an_unknown_kid_or_a_crit_header_is_refused() {
    let pair = pair(KeyKind::P256);
    let key = EncodingKey::from_ec_pem(pair.pem.as_bytes()).unwrap();
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("someone-else".into());
    let unknown = jsonwebtoken::encode(&header, &claims(), &key).unwrap();
    assert_eq!(check(&pair, &unknown).err(), Some(Refusal::UnknownKid));

    // One key: a header without a kid means it.
    header.kid = None;
    let no_kid = jsonwebtoken::encode(&header, &claims(), &key).unwrap();
    assert!(check(&pair, &no_kid).is_ok());

    header.kid = Some(pair.kid.clone());
    header.crit = Some(vec!["exp".into()]);
    let crit = jsonwebtoken::encode(&header, &claims(), &key).unwrap();
    assert_eq!(check(&pair, &crit).err(), Some(Refusal::Critical));
}

/// The single-use marker outlives the last second in which any replica accepts the assertion,
/// at the leeway of the day or any a reload may set; a second at least, even past that.
#[test]
fn the_marker_outlives_every_leeway_an_assertion_is_accepted_with() {
    for exp in [
        NOW - MAX_LEEWAY_SECS,
        NOW - LEEWAY,
        NOW,
        NOW + MAX_LIFETIME_SECS,
    ] {
        let ttl_secs = marker_ttl_ms(exp, NOW) / 1000;
        for leeway in [0, LEEWAY, MAX_LEEWAY_SECS] {
            if exp + leeway >= NOW {
                // Accepted through the whole second `exp + leeway`.
                assert!(NOW + ttl_secs > exp + leeway, "exp {exp}, leeway {leeway}");
            }
        }
        assert!(ttl_secs <= exp + MAX_LEEWAY_SECS + 1 - NOW, "exp {exp}");
    }
    assert_eq!(marker_ttl_ms(0, NOW), 1000);
}
