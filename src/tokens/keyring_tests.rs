use std::path::PathBuf;

use super::*;
use crate::tokens::{Claims, KeyKind, Rejected};

/// Key files of one test, removed when it ends.
struct KeyDir(PathBuf);

impl KeyDir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("sso-token-keyring-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir(&dir).unwrap();
        Self(dir)
    }

    fn write(&self, name: &str, pem: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, pem).unwrap();
        path
    }
}

impl Drop for KeyDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The shipped `[token]` settings with these key files.
fn settings(signing_key: PathBuf, verify_keys: Vec<PathBuf>) -> TokenSettings {
    let shipped: crate::config::Settings =
        toml::from_str(include_str!("../../config/default.toml")).unwrap();
    TokenSettings {
        signing_key,
        verify_keys,
        ..shipped.token
    }
}

fn token_of(keyring: &Keyring) -> String {
    keyring
        .minter()
        .mint(&Claims {
            sub: "acct-1",
            aud: "app",
            scope: &["user:basic".to_owned()],
            iss: "https://sso.example",
            exp: 2_000,
            iat: 1_000,
            jti: "jti-1",
            client_id: "app",
        })
        .unwrap()
}

#[test]
fn a_public_key_as_signing_key_is_refused_naming_the_setting_and_the_file() {
    let dir = KeyDir::new();
    let private = SigningKey::generate_pem(KeyKind::P256).unwrap();
    let public = SigningKey::from_pem(&private)
        .unwrap()
        .verifying_key()
        .to_pem();
    let path = dir.write("signing.pub.pem", &public);

    let error = Keyring::load(&settings(path.clone(), Vec::new())).unwrap_err();

    let message = error.to_string();
    assert!(message.starts_with("token.signing_key"), "{message}");
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("public key"), "{message}");
    assert!(message.contains("needs the private key"), "{message}");
}

#[test]
fn a_retired_key_kept_as_its_public_half_is_published_and_verifies_as_before() {
    let dir = KeyDir::new();
    let old_pem = SigningKey::generate_pem(KeyKind::Rsa2048).unwrap();
    let old_public = SigningKey::from_pem(&old_pem)
        .unwrap()
        .verifying_key()
        .to_pem();
    let old = dir.write("old.pem", &old_pem);
    let old_pub = dir.write("old.pub.pem", &old_public);
    let new = dir.write(
        "new.pem",
        &SigningKey::generate_pem(KeyKind::Ed25519).unwrap(),
    );
    let old_token = token_of(&Keyring::load(&settings(old.clone(), Vec::new())).unwrap());

    let as_private = Keyring::load(&settings(new.clone(), vec![old])).unwrap();
    let as_public = Keyring::load(&settings(new.clone(), vec![old_pub])).unwrap();
    let retired = Keyring::load(&settings(new, Vec::new())).unwrap();

    assert_eq!(as_public.jwks(), as_private.jwks());
    assert_eq!(as_public.verifier().len(), 2);
    assert_eq!(
        as_public.verifier().verify(&old_token).unwrap().jti,
        "jti-1"
    );
    assert_eq!(
        retired.verifier().verify(&old_token).unwrap_err(),
        Rejected::UnknownKey
    );
}

#[test]
fn a_missing_signing_key_is_named_with_where_it_was_looked_for_and_how_to_make_one() {
    let dir = KeyDir::new();
    let missing = dir.0.join("absent.pem");

    let error = Keyring::load(&settings(missing.clone(), vec![])).unwrap_err();

    let message = error.to_string();
    assert!(matches!(error, KeyringError::Missing { .. }), "{message}");
    assert!(message.contains("token.signing_key"), "{message}");
    assert!(
        message.contains(&missing.display().to_string()),
        "{message}"
    );
    assert!(message.contains("sso-token keygen --out"), "{message}");
}

#[test]
fn a_missing_verify_key_points_at_the_public_half_of_the_key_that_signed() {
    let dir = KeyDir::new();
    let signing = dir.write(
        "signing.pem",
        &SigningKey::generate_pem(KeyKind::Ed25519).unwrap(),
    );
    let missing = dir.0.join("retired.pub.pem");

    let error = Keyring::load(&settings(signing, vec![missing.clone()])).unwrap_err();

    let message = error.to_string();
    assert!(matches!(error, KeyringError::Missing { .. }), "{message}");
    assert!(message.contains("token.verify_keys"), "{message}");
    assert!(
        message.contains(&missing.display().to_string()),
        "{message}"
    );
    // A new key pair would verify none of the tokens already issued.
    assert!(message.contains("sso-token pubkey --key"), "{message}");
    assert!(!message.contains("keygen"), "{message}");
}

/// A keyring that signs with a new P-256 key, listed again among the verify keys, and keeps a
/// retired Ed25519 key: the signer, the retired key's public half, and the keyring.
fn signer_and_retired(dir: &KeyDir) -> (SigningKey, VerifyingKey, Keyring) {
    let signer_pem = SigningKey::generate_pem(KeyKind::P256).unwrap();
    let retired_pem = SigningKey::generate_pem(KeyKind::Ed25519).unwrap();
    let signing = dir.write("signing.pem", &signer_pem);
    let retired = dir.write("retired.pem", &retired_pem);
    let keyring = Keyring::load(&settings(signing.clone(), vec![retired, signing])).unwrap();
    (
        SigningKey::from_pem(&signer_pem).unwrap(),
        VerifyingKey::from_pem(&retired_pem).unwrap(),
        keyring,
    )
}

#[test]
fn the_jwks_publishes_the_signer_and_each_verify_key_once() {
    let dir = KeyDir::new();
    let (signer, retired, keyring) = signer_and_retired(&dir);

    let jwks: serde_json::Value = serde_json::from_str(keyring.jwks()).unwrap();

    let published = jwks["keys"].as_array().unwrap();
    assert_eq!(
        published,
        &[
            serde_json::to_value(signer.public_jwk()).unwrap(),
            serde_json::to_value(retired.public_jwk()).unwrap(),
        ]
    );
}

#[test]
fn the_description_names_the_signer_and_counts_each_published_key_once() {
    let dir = KeyDir::new();
    let (signer, _, keyring) = signer_and_retired(&dir);

    let described = keyring.describe();

    assert!(
        described.starts_with(&format!("signing with ES256 key {}, ", signer.kid())),
        "{described}"
    );
    assert!(described.contains(", 2 key(s) published"), "{described}");
}
