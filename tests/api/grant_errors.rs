//! Codes that do not grant a token to the client presenting them. A code that reaches the checks
//! is spent whatever their outcome: it must be treated as compromised.

use std::time::{Duration, Instant};

use deadpool_redis::redis;
use serde_json::Value;
use sso_token::issue_code::NewCode;

use crate::helpers::{
    APP, APP_SECOND_REDIRECT, Answer, OTHER, RFC7636_CHALLENGE, RFC7636_VERIFIER, SHARED_REDIRECT,
    TestClient, code_record, json_request, spawn_app,
};

/// A well-formed verifier that is not the one of the challenge.
const OTHER_VERIFIER: &str = "Zq9-other-verifier_that.is~well-formed-but-wrong";
const UNREGISTERED: &str = "https://evil.example/cb";

// What the authorize service stored, edited from APP's default record.
fn as_issued(_: &mut NewCode) {}
fn to_other(record: &mut NewCode) {
    *record = code_record(&OTHER);
}
fn to_other_on_shared_uri(record: &mut NewCode) {
    *record = code_record(&OTHER);
    record.redirect_uri = SHARED_REDIRECT.into();
}
fn for_unregistered_uri(record: &mut NewCode) {
    record.redirect_uri = UNREGISTERED.into();
}
fn s256(record: &mut NewCode) {
    record.code_challenge = Some(RFC7636_CHALLENGE.into());
    record.code_challenge_method = Some("S256".into());
}
fn plain(record: &mut NewCode) {
    record.code_challenge = Some(RFC7636_VERIFIER.into());
    record.code_challenge_method = Some("plain".into());
}
fn with_admin_scope(record: &mut NewCode) {
    record.scope.push("admin:all".into());
}
fn without_account(record: &mut NewCode) {
    record.account_id.clear();
}

// What the client sends, edited from the seed request.
fn as_is(_: &mut Value) {}
fn other_uri(body: &mut Value) {
    body["redirect_uri"] = "https://app.example/other".into();
}
fn second_uri(body: &mut Value) {
    body["redirect_uri"] = APP_SECOND_REDIRECT.into();
}
fn shared_uri(body: &mut Value) {
    body["redirect_uri"] = SHARED_REDIRECT.into();
}
fn trailing_slash(body: &mut Value) {
    body["redirect_uri"] = format!("{}/", APP.redirect_uri).into();
}
fn unregistered_uri(body: &mut Value) {
    body["redirect_uri"] = UNREGISTERED.into();
}
fn wrong_verifier(body: &mut Value) {
    body["code_verifier"] = OTHER_VERIFIER.into();
}
fn challenge_as_verifier(body: &mut Value) {
    body["code_verifier"] = RFC7636_CHALLENGE.into();
}

type EditRecord = fn(&mut NewCode);
type EditRequest = fn(&mut Value);
const GRANT: &str = "invalid_grant";

/// The request that the record's rightful owner would make.
fn rightful_request(record: &NewCode, code: &str) -> Value {
    let owner = [&APP, &OTHER]
        .into_iter()
        .find(|c| c.id == record.client_id)
        .expect("a test client");
    let mut body = json_request(owner, code);
    body["redirect_uri"] = record.redirect_uri.as_str().into();
    if record.code_challenge.is_some() {
        body["code_verifier"] = RFC7636_VERIFIER.into();
    }
    body
}

#[tokio::test]
async fn codes_failing_a_check_are_refused_and_spent_all_the_same() {
    let app = spawn_app().await;
    // (case, stored record, who presents it, request, error, does the owner then fail too)
    #[rustfmt::skip]
    let cases: [(&str, EditRecord, &TestClient, EditRequest, &str, bool); 15] = [
        ("a code issued to another client", to_other, &APP, as_is, GRANT, true),
        ("another client's code, a redirect_uri both have", to_other_on_shared_uri, &APP, shared_uri, GRANT, true),
        ("another redirect_uri", as_issued, &APP, other_uri, GRANT, true),
        ("another redirect_uri registered for the client", as_issued, &APP, second_uri, GRANT, true),
        ("the redirect_uri with a trailing slash", as_issued, &APP, trailing_slash, GRANT, true),
        ("a redirect_uri not registered for the client", for_unregistered_uri, &APP, unregistered_uri, GRANT, false),
        ("a wrong S256 verifier", s256, &APP, wrong_verifier, GRANT, true),
        ("the S256 challenge as verifier", s256, &APP, challenge_as_verifier, GRANT, true),
        ("no verifier for an S256 code", s256, &APP, as_is, GRANT, true),
        ("a wrong plain verifier", plain, &APP, wrong_verifier, GRANT, true),
        ("no verifier for a plain code", plain, &APP, as_is, GRANT, true),
        ("a verifier for a code issued without a challenge", as_issued, &APP, wrong_verifier, GRANT, true),
        ("a scope the client may not have", with_admin_scope, &APP, as_is, "invalid_scope", false),
        ("a record without account_id", without_account, &APP, as_is, GRANT, false),
        ("the owner's code presented by another client", as_issued, &OTHER, as_is, GRANT, true),
    ];
    for (name, edit_record, presenter, edit_request, error, owner_fails_too) in cases {
        let mut record = code_record(&APP);
        edit_record(&mut record);
        let code = app.write_code(&record).await;
        let mut body = json_request(presenter, &code);
        edit_request(&mut body);

        let answer = Answer::of(app.post_json(&body).await).await;

        assert_eq!(
            (answer.status, answer.error()),
            (400, error),
            "{name}: {}",
            answer.text
        );
        answer.assert_error_shape(name);
        assert!(!answer.text.contains(&code), "{name}: the code is echoed");
        assert!(
            !answer.text.contains(presenter.secret),
            "{name}: the secret is echoed"
        );
        assert!(!app.code_exists(&code).await, "{name}: the code survived");
        // Checked before any retry: a retry of a code whose record stayed is a replay, which
        // deletes the record itself.
        assert!(
            app.keys("token:*").await.is_empty(),
            "{name}: the refused exchange left its token record"
        );
        if owner_fails_too {
            let retry = Answer::of(app.post_json(&rightful_request(&record, &code)).await).await;
            assert_eq!(
                (retry.status, retry.error()),
                (400, "invalid_grant"),
                "{name}: the spent code still worked for its owner: {}",
                retry.text
            );
            assert!(
                retry.text.contains("invalid, expired or already used"),
                "{name}: the retry was not answered as an unknown code: {}",
                retry.text
            );
        }
    }
}

#[tokio::test]
async fn unknown_and_expired_codes_are_an_invalid_grant() {
    let app = spawn_app().await;
    // Written as the authorize service writes a code, with a TTL of 1 ms, then waited out.
    let expired = sso_token::issue_code::new_code().expect("code");
    let record = serde_json::to_string(&code_record(&APP)).expect("record");
    let key = app.store.code_key(&expired);
    let _: () = app
        .query(redis::cmd("SET").arg(&key).arg(record).arg("PX").arg(1))
        .await;
    let deadline = Instant::now() + Duration::from_secs(2);
    while app.code_exists(&expired).await {
        assert!(
            Instant::now() < deadline,
            "the code did not expire within 2 s"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }

    for (name, code) in [
        ("unknown", "OC-1001-GNen5J2oMC1mJncDvO2tvwYV"),
        ("any other string", "not even shaped like a code"),
        ("expired", expired.as_str()),
    ] {
        let answer = Answer::of(app.exchange(&APP, code).await).await;

        assert_eq!(
            (answer.status, answer.error()),
            (400, "invalid_grant"),
            "{name}: {}",
            answer.text
        );
        answer.assert_error_shape(name);
        assert!(!answer.text.contains(code), "{name}: the code is echoed");
    }
}
