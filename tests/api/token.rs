//! The access token: a JWT signed with the configured key, with the seed's header and claims.

use aws_lc_rs::digest::{SHA256, digest};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::helpers::{
    ALLOWED_SCOPES, APP, AUDIENCE_OVERRIDE, AUDIENCED, Answer, ISSUER, OTHER, TestApp, TestClient,
    code_record, public_jwk, spawn_app, spawn_app_with, unix_now, verify_token,
};

/// Exchanges a fresh code of `client` and returns the access token.
async fn token_for(app: &TestApp, client: &TestClient) -> String {
    let code = app.issue_code(client).await;
    let answer = Answer::of(app.exchange(client, &code).await).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    answer.json["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_access_token_verifies_with_the_public_key_and_carries_every_claim() {
    let app = spawn_app().await;
    let mut record = code_record(&APP);
    record.scope = ALLOWED_SCOPES.map(String::from).to_vec();
    let code = app.write_code(&record).await;
    let before = unix_now();

    let answer = Answer::of(app.exchange(&APP, &code).await).await;

    assert_eq!(answer.status, 200, "{}", answer.text);
    let token = answer.json["access_token"].as_str().unwrap();
    let claims = verify_token(token, APP.id, ISSUER).claims;
    assert_eq!(claims["sub"], record.account_id.as_str());
    assert_eq!(claims["sub"], answer.json["account_id"]);
    assert_eq!(claims["aud"], APP.id);
    assert_eq!(claims["scope"], json!(ALLOWED_SCOPES));
    assert_eq!(claims["iss"], ISSUER);
    assert_eq!(claims["client_id"], APP.id);
    let iat = claims["iat"].as_u64().expect("iat is a number");
    assert!((before..=unix_now()).contains(&iat), "iat {iat} is not now");
    let expires_in = answer.json["expires_in"].as_u64().unwrap();
    assert_eq!(claims["exp"].as_u64(), Some(iat + expires_in));
    let jti = claims["jti"].as_str().expect("jti is a string");
    assert_documented_jti(&app, jti, &code).await;
}

/// README (the claims table, "The code record"): the `jti` is 72 bits of the code's hash, then
/// 144 random bits (the token issue asks for at least 128), URL-safe base64, 36 characters; the
/// hash names the token record, `<prefix>token:<hash>`.
async fn assert_documented_jti(app: &TestApp, jti: &str, code: &str) {
    assert!(
        jti.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "jti `{jti}` is not URL-safe"
    );
    assert_eq!(jti.len(), 36, "jti `{jti}`");
    let record_key = app.store.token_key_of_code(code);
    let record_prefix = format!("{}token:", app.settings.redis.key_prefix);
    let record_id = record_key
        .strip_prefix(&record_prefix)
        .unwrap_or_else(|| panic!("the record key {record_key} is not under {record_prefix}"));
    // 72 bits, 6 per base64url character.
    assert_eq!(record_id.len(), 12, "record id `{record_id}`");
    assert!(
        jti.starts_with(record_id),
        "jti `{jti}` does not begin with its code's record id `{record_id}`"
    );
    assert!(
        app.exists(&record_key).await,
        "no token record {record_key}"
    );
}

#[tokio::test]
async fn a_token_with_a_tampered_payload_or_signature_does_not_verify() {
    let app = spawn_app().await;
    let token = token_for(&app, &APP).await;
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "a compact JWS");
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).expect("JSON claims");
    claims["sub"] = "someone-else".into();
    let forged_payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let forged = format!("{}.{forged_payload}.{}", parts[0], parts[2]);
    let mut signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    signature[10] ^= 1;
    let bad_signature = format!(
        "{}.{}.{}",
        parts[0],
        parts[1],
        URL_SAFE_NO_PAD.encode(signature)
    );

    assert!(
        signature_verifies(&token),
        "the untouched token must verify"
    );
    assert!(!signature_verifies(&forged), "a forged payload verified");
    assert!(
        !signature_verifies(&bad_signature),
        "a damaged signature verified"
    );
    // And the service itself refuses both where a token is presented to it.
    assert!(app.is_active(&APP, &token).await, "the untouched token");
    for (tampered, what) in [
        (&forged, "forged payload"),
        (&bad_signature, "bad signature"),
    ] {
        assert!(!app.is_active(&APP, tampered).await, "{what}: active");
        let answer = app.user_info(tampered).await;
        assert_eq!(answer.status, 401, "{what}: {}", answer.text);
    }
}

fn signature_verifies(token: &str) -> bool {
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.validate_aud = false;
    jsonwebtoken::decode::<Value>(token, &crate::helpers::decoding_key(), &validation).is_ok()
}

#[tokio::test]
async fn the_header_has_the_seed_typ_rs256_and_the_rfc7638_thumbprint_as_kid() {
    let app = spawn_app().await;
    let token = token_for(&app, &APP).await;

    let header_b64 = token.split('.').next().unwrap();
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header_b64).unwrap()).expect("JSON header");

    assert_eq!(header["typ"], "access_token");
    assert_eq!(header["alg"], "RS256");
    let jwk = public_jwk();
    let canonical = format!(
        r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
        jwk["e"].as_str().unwrap(),
        jwk["n"].as_str().unwrap()
    );
    let thumbprint = URL_SAFE_NO_PAD.encode(digest(&SHA256, canonical.as_bytes()));
    assert_eq!(header["kid"], thumbprint.as_str());
}

/// The random part of a `jti` is drawn afresh for every token: two tokens of one code value
/// (written again by the authorize service once the first token is gone) share the first 12
/// characters, their code's record id, and not the rest. (Tokens of two codes would differ by
/// their codes' hashes alone, whatever the random part.)
#[tokio::test]
async fn every_token_has_its_own_jti() {
    let app = spawn_app().await;
    let record = code_record(&APP);
    let code = app.write_code(&record).await;
    let first = token_of_code(&app, &code).await;
    let revoked = app.revoke(&APP, &first, None).await;
    assert_eq!(revoked.status, 200, "{}", revoked.text);
    let written = sso_token::issue_code::write(&app.store, &code, &record, 60).await;
    assert_eq!(written.ok(), Some(true), "the code written again");
    let second = token_of_code(&app, &code).await;

    let jti = |t: &str| {
        let claims = verify_token(t, APP.id, ISSUER).claims;
        claims["jti"].as_str().expect("jti is a string").to_owned()
    };
    let (first, second) = (jti(&first), jti(&second));
    // 72 bits of hash, 12 base64url characters, then the random part (README, the claims table).
    let ((first_id, first_random), (second_id, second_random)) =
        (first.split_at(12), second.split_at(12));
    assert_eq!(first_id, second_id, "one code, one record id");
    assert_ne!(first_random, second_random, "{first} and {second}");
}

/// Exchanges `code` for `APP` and returns the access token.
async fn token_of_code(app: &TestApp, code: &str) -> String {
    let answer = Answer::of(app.exchange(&APP, code).await).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    answer.json["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn aud_is_the_client_id_unless_the_client_overrides_it() {
    let app = spawn_app().await;

    let own = token_for(&app, &APP).await;
    let overridden = token_for(&app, &AUDIENCED).await;

    assert_eq!(verify_token(&own, APP.id, ISSUER).claims["aud"], APP.id);
    let claims = verify_token(&overridden, AUDIENCE_OVERRIDE, ISSUER).claims;
    assert_eq!(claims["aud"], AUDIENCE_OVERRIDE);
    assert_eq!(claims["client_id"], AUDIENCED.id);
}

#[tokio::test]
async fn the_configured_audience_issuer_and_typ_replace_the_defaults() {
    let app = spawn_app_with(|s| {
        s.token.audience = "resource-server".into();
        s.token.issuer = "https://sso.example".into();
        s.token.typ = "at+jwt".into();
    })
    .await;

    let token = token_for(&app, &OTHER).await;
    let overridden = token_for(&app, &AUDIENCED).await;

    let data = verify_token(&token, "resource-server", "https://sso.example");
    assert_eq!(data.header.typ.as_deref(), Some("at+jwt"));
    let claims = verify_token(&overridden, AUDIENCE_OVERRIDE, "https://sso.example").claims;
    assert_eq!(claims["aud"], AUDIENCE_OVERRIDE);
}
