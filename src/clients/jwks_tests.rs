use serde_json::{Value, json};

use super::*;
use crate::tokens::{KeyKind, SigningKey};

/// The public JWK of a new key of `kind`, as the service publishes its own (kid, alg, use).
fn jwk(kind: KeyKind) -> Value {
    let pem = SigningKey::generate_pem(kind).unwrap();
    serde_json::to_value(SigningKey::from_pem(&pem).unwrap().public_jwk()).unwrap()
}

fn set(keys: &[Value]) -> String {
    json!({ "keys": keys }).to_string()
}

fn refusal(text: &str) -> String {
    match ClientKeys::parse(text) {
        Ok(keys) => panic!("accepted: {keys:?}"),
        Err(problem) => problem,
    }
}

fn edited(mut key: Value, edit: impl FnOnce(&mut Map<String, Value>)) -> Value {
    edit(key.as_object_mut().unwrap());
    key
}

#[test]
fn rsa_p256_and_ed25519_public_keys_are_accepted_with_their_algorithms() {
    for (kind, algorithms) in [
        (KeyKind::Rsa2048, vec![Algorithm::RS256]),
        (KeyKind::P256, vec![Algorithm::ES256]),
        (KeyKind::Ed25519, vec![Algorithm::EdDSA]),
    ] {
        let keys = ClientKeys::parse(&set(&[jwk(kind)])).unwrap();
        let key = keys.choose(None).unwrap();
        for alg in [
            Algorithm::RS256,
            Algorithm::PS256,
            Algorithm::ES256,
            Algorithm::EdDSA,
            Algorithm::HS256,
        ] {
            assert_eq!(
                key.allows(alg),
                algorithms.contains(&alg),
                "{kind:?} {alg:?}"
            );
        }
    }
}

#[test]
fn an_rsa_key_without_alg_verifies_rs256_and_ps256() {
    let bare = edited(jwk(KeyKind::Rsa2048), |k| {
        k.remove("alg");
        k.remove("use");
    });
    let keys = ClientKeys::parse(&set(&[bare])).unwrap();
    let key = keys.choose(None).unwrap();
    assert!(key.allows(Algorithm::RS256) && key.allows(Algorithm::PS256));
    assert!(!key.allows(Algorithm::ES256));
}

#[test]
fn a_key_with_private_members_is_refused() {
    for member in ["d", "p", "q", "dp", "dq", "qi", "k"] {
        let private = edited(jwk(KeyKind::P256), |k| {
            k.insert(member.into(), json!("AQAB"));
        });
        let problem = refusal(&set(&[private]));
        assert!(problem.contains("public keys only"), "{member}: {problem}");
        assert!(problem.contains(&format!("`{member}`")), "{problem}");
    }
}

#[test]
fn keys_of_other_types_sizes_curves_or_uses_are_refused() {
    let short_rsa = edited(jwk(KeyKind::Rsa2048), |k| {
        k.insert("n".into(), json!(URL_SAFE_NO_PAD.encode([0xc5; 128])));
    });
    let off_the_curve = edited(jwk(KeyKind::P256), |k| {
        k.insert("y".into(), json!(URL_SAFE_NO_PAD.encode([0x01; 32])));
    });
    let p384 = edited(jwk(KeyKind::P256), |k| {
        k.insert("crv".into(), json!("P-384"));
    });
    let x25519 = edited(jwk(KeyKind::Ed25519), |k| {
        k.insert("crv".into(), json!("X25519"));
    });
    let encryption = edited(jwk(KeyKind::P256), |k| {
        k.insert("use".into(), json!("enc"));
    });
    let wrong_alg = edited(jwk(KeyKind::P256), |k| {
        k.insert("alg".into(), json!("RS256"));
    });
    let hmac_alg = edited(jwk(KeyKind::Rsa2048), |k| {
        k.insert("alg".into(), json!("HS256"));
    });
    // The top bit clear: 2047 bits, in 256 bytes.
    let just_short_rsa = edited(jwk(KeyKind::Rsa2048), |k| {
        k.insert("n".into(), json!(URL_SAFE_NO_PAD.encode([0x7f; 256])));
    });
    let exponent_one = edited(jwk(KeyKind::Rsa2048), |k| {
        k.insert("e".into(), json!("AQ"));
    });
    let even_exponent = edited(jwk(KeyKind::Rsa2048), |k| {
        k.insert("e".into(), json!("AQAA"));
    });
    // 0x400000001: 35 bits, which aws-lc refuses to verify with.
    let long_exponent = edited(jwk(KeyKind::Rsa2048), |k| {
        k.insert(
            "e".into(),
            json!(URL_SAFE_NO_PAD.encode([0x04, 0, 0, 0, 0x01])),
        );
    });
    let long_rsa = edited(jwk(KeyKind::Rsa2048), |k| {
        k.insert("n".into(), json!(URL_SAFE_NO_PAD.encode([0xc5; 1025])));
    });
    let oct = json!({"kty": "oct", "kid": "s"});
    for (key, expected) in [
        (short_rsa, "2048 to 8192"),
        (just_short_rsa, "2047 bits"),
        (long_rsa, "8200 bits"),
        (exponent_one, "odd public exponent"),
        (even_exponent, "odd public exponent"),
        (long_exponent, "at most 33 bits"),
        (p384, "only P-256"),
        (off_the_curve, "not a point on P-256"),
        (x25519, "only Ed25519"),
        (encryption, "`use`"),
        (wrong_alg, "does not fit"),
        (hmac_alg, "does not fit"),
        (oct, "`kty`"),
    ] {
        let problem = refusal(&set(&[key]));
        assert!(problem.contains(expected), "{expected}: {problem}");
    }
}

#[test]
fn several_keys_need_unique_kids_and_choose_by_kid() {
    let (a, b) = (jwk(KeyKind::P256), jwk(KeyKind::Ed25519));
    let keys = ClientKeys::parse(&set(&[a.clone(), b.clone()])).unwrap();
    let kid = |k: &Value| k["kid"].as_str().unwrap().to_owned();
    assert!(
        keys.choose(Some(&kid(&b)))
            .unwrap()
            .allows(Algorithm::EdDSA)
    );
    assert!(
        keys.choose(Some(&kid(&a)))
            .unwrap()
            .allows(Algorithm::ES256)
    );
    assert_eq!(keys.choose(None).err(), Some(NoKey::KidNeeded));
    assert_eq!(keys.choose(Some("nope")).err(), Some(NoKey::UnknownKid));

    let no_kid = edited(b.clone(), |k| {
        k.remove("kid");
    });
    assert!(refusal(&set(&[a.clone(), no_kid.clone()])).contains("has no `kid`"));
    let same_kid = edited(b, |k| {
        k.insert("kid".into(), json!(kid(&a)));
    });
    assert!(refusal(&set(&[a, same_kid])).contains("another key's"));
    // One key needs no kid, and is the one chosen by a header without one.
    let only = ClientKeys::parse(&set(&[no_kid])).unwrap();
    assert!(only.choose(None).is_ok());
}

#[test]
fn an_empty_oversized_or_malformed_set_is_refused() {
    let nine: Vec<Value> = (0..9)
        .map(|n| {
            edited(jwk(KeyKind::Ed25519), |k| {
                k.insert("kid".into(), json!(format!("k{n}")));
            })
        })
        .collect();
    for (text, expected) in [
        (set(&[]), "no key"),
        (set(&nine), "more than 8"),
        ("{\"keys\": {}}".to_owned(), "JWK Set"),
        (jwk(KeyKind::Ed25519).to_string(), "JWK Set"),
        ("{\"keys\": [".to_owned(), "not JSON"),
    ] {
        let problem = refusal(&text);
        assert!(problem.contains(expected), "{expected}: {problem}");
    }
}

#[test]
fn the_same_keys_are_the_same_entry_and_others_are_not() {
    let key = jwk(KeyKind::P256);
    let parse = |k: &Value| ClientKeys::parse(&set(std::slice::from_ref(k))).unwrap();
    assert!(parse(&key).same_keys(&parse(&key)));
    assert!(!parse(&key).same_keys(&parse(&jwk(KeyKind::P256))));
}

/// A clients file in a directory of its own, with `jwks.json` holding `jwks` beside it.
fn registry_with(entry: &str, jwks: &str) -> Result<super::super::Registry, String> {
    let dir = std::env::temp_dir().join(format!("sso-jwks-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("jwks.json"), jwks).unwrap();
    let path = dir.join("clients.toml");
    let text = format!(
        "[[clients]]\nid = \"signing-app\"\nredirect_uris = [\"https://s.example/cb\"]\n{entry}\n"
    );
    std::fs::write(&path, text).unwrap();
    let loaded =
        super::super::Registry::load(&path, &crate::secret_hash::Argon2Limit::configured(1));
    std::fs::remove_dir_all(&dir).unwrap();
    loaded.map_err(|e| e.to_string())
}

#[test]
fn a_client_entry_with_a_relative_jwks_file_loads_its_keys() {
    let jwks = set(&[jwk(KeyKind::Ed25519)]);
    let registry = registry_with("jwks_file = \"jwks.json\"", &jwks).unwrap();
    let client = registry.get("signing-app").unwrap();
    assert!(client.keys().is_some_and(|k| k.choose(None).is_ok()));
}

#[test]
fn a_client_entry_needs_a_secret_or_a_jwks_file_and_not_both() {
    let jwks = set(&[jwk(KeyKind::Ed25519)]);
    let secret = format!(
        "secret = \"{}\"",
        crate::secret_hash::hash_secret_sha256("s")
    );
    let private = set(&[edited(jwk(KeyKind::P256), |k| {
        k.insert("d".into(), json!("AQAB"));
    })]);
    for (entry, jwks, expected) in [
        (
            format!("{secret}\njwks_file = \"jwks.json\""),
            jwks.as_str(),
            "both secret and jwks_file",
        ),
        (String::new(), jwks.as_str(), "needs secret"),
        (
            format!(
                "jwks_file = \"jwks.json\"\nprevious_secrets = [\"{}\"]",
                "plain:x"
            ),
            jwks.as_str(),
            "previous_secrets but no secret",
        ),
        (
            "jwks_file = \"jwks.json\"".into(),
            private.as_str(),
            "public keys only",
        ),
        (
            "jwks_file = \"missing.json\"".into(),
            jwks.as_str(),
            "missing.json",
        ),
    ] {
        let error = registry_with(&entry, jwks)
            .err()
            .unwrap_or_else(|| panic!("{entry} loaded"));
        assert!(error.contains(expected), "{expected}: {error}");
        assert!(error.contains("client `signing-app`"), "{error}");
    }
}
