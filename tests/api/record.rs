//! The token record in Redis: what it holds, how long it lives, and its revocation on replay.

use deadpool_redis::redis;
use serde_json::{Value, json};

use sso_token::config::RedisMode;

use crate::each_topology;
use crate::helpers::{
    APP, Answer, ISSUER, OTHER, TestApp, Topology, code_record, spawn_app, spawn_app_on,
    spawn_app_with, verify_token,
};

/// The token record of `token`: its key, its JSON value and its remaining life in milliseconds.
async fn token_record(app: &TestApp, token: &str) -> (String, Option<Value>, i64) {
    let jti = verify_token(token, APP.id, ISSUER).claims["jti"]
        .as_str()
        .unwrap()
        .to_owned();
    let key = app.store.token_key(&jti);
    let prefix = &app.settings.redis.key_prefix;
    // The jti less its 24 random characters, after a 3-character tag of the code's slot in a
    // Cluster (README, "The code record", "Redis topologies").
    let id = &jti[..jti.len() - 24];
    let expected = match app.settings.redis.mode {
        RedisMode::Cluster => format!("{prefix}token:{{{}}}{}", &id[..3], &id[3..]),
        _ => format!("{prefix}token:{id}"),
    };
    assert_eq!(key, expected);
    let value: Option<String> = app.query(redis::cmd("GET").arg(&key)).await;
    let pttl: i64 = app.query(redis::cmd("PTTL").arg(&key)).await;
    let value = value.map(|v| serde_json::from_str(&v).expect("the token record is JSON"));
    (key, value, pttl)
}

/// README: the token record lives exactly `expires_in`. Read some time after the exchange set
/// it: up to 10 s earlier on a busy machine, never more, and never padded (by the 30 s
/// `token.leeway_secs`, say). Still tells 900 s from 1800 s.
fn assert_ttl_is(pttl: i64, expires_in: u64) {
    let expires_ms = i64::try_from(expires_in).unwrap() * 1000;
    assert!(
        (expires_ms - 10_000..=expires_ms).contains(&pttl),
        "token record TTL is {pttl} ms, expected {expires_ms} ms (10 s slack below)"
    );
}

each_topology!(
    the_token_record_lives_exactly_as_long_as_the_token,
    a_code_can_be_exchanged_only_once_and_a_replay_revokes_the_first_token,
);

/// README ("The code record"): the token record's TTL is `expires_in`, the default 1800 s and a
/// configured 900 s alike, on every topology.
async fn the_token_record_lives_exactly_as_long_as_the_token(topology: Topology) {
    for expires_in in [None, Some(900)] {
        let app = spawn_app_with(|s| {
            if let Some(seconds) = expires_in {
                s.token.expires_in = seconds;
            }
            topology.configure(&mut s.redis);
        })
        .await;
        let code = app.issue_code(&APP).await;

        let answer = Answer::of(app.exchange(&APP, &code).await).await;

        assert_eq!(answer.status, 200, "{}", answer.text);
        let granted = answer.json["expires_in"].as_u64().unwrap();
        assert_eq!(granted, expires_in.unwrap_or(1800));
        let token = answer.json["access_token"].as_str().unwrap();
        let (_, record, pttl) = token_record(&app, token).await;
        assert!(record.is_some(), "no token record");
        assert_ttl_is(pttl, granted);
    }
}

#[tokio::test]
async fn the_token_record_holds_what_introspection_needs() {
    let app = spawn_app().await;
    let record = code_record(&APP);
    let code = app.write_code(&record).await;

    let answer = Answer::of(app.exchange(&APP, &code).await).await;

    assert_eq!(answer.status, 200, "{}", answer.text);
    let token = answer.json["access_token"].as_str().unwrap();
    let claims = verify_token(token, APP.id, ISSUER).claims;
    let (_, stored, _) = token_record(&app, token).await;
    let stored = stored.expect("a token record");
    assert_eq!(stored["client_id"], APP.id);
    assert_eq!(stored["exp"], claims["exp"]);
    let grant = &stored["grant"];
    assert_eq!(grant["account_id"], record.account_id.as_str());
    assert_eq!(grant["username"], record.username.as_str());
    assert_eq!(grant["scope"], json!(record.scope));
}

async fn a_code_can_be_exchanged_only_once_and_a_replay_revokes_the_first_token(
    topology: Topology,
) {
    let app = spawn_app_on(topology).await;
    let code = app.issue_code(&APP).await;
    let first = Answer::of(app.exchange(&APP, &code).await).await;
    assert_eq!(first.status, 200, "{}", first.text);
    let token = first.json["access_token"].as_str().unwrap();
    let (key, record, _) = token_record(&app, token).await;
    assert!(record.is_some(), "the first token has no record");
    // KEYS sees it wherever it lives (in a Cluster, on the node of the code's slot).
    assert_eq!(app.keys("token:*").await, std::slice::from_ref(&key));

    let replay = Answer::of(app.exchange(&APP, &code).await).await;

    assert_eq!(replay.status, 400, "{}", replay.text);
    assert_eq!(replay.error(), "invalid_grant");
    replay.assert_error_shape("replay");
    assert!(!replay.text.contains(&code), "the error echoes the code");
    assert!(!app.exists(&key).await, "the first token was not revoked");
}

#[tokio::test]
async fn a_spent_code_presented_by_another_client_revokes_nothing() {
    let app = spawn_app().await;
    let code = app.issue_code(&APP).await;
    let first = Answer::of(app.exchange(&APP, &code).await).await;
    assert_eq!(first.status, 200, "{}", first.text);
    let (key, record, _) = token_record(&app, first.json["access_token"].as_str().unwrap()).await;
    assert!(record.is_some(), "the first token has no record");

    let replay = Answer::of(app.exchange(&OTHER, &code).await).await;

    assert_eq!(
        (replay.status, replay.error()),
        (400, "invalid_grant"),
        "{}",
        replay.text
    );
    assert!(
        app.exists(&key).await,
        "another client's replay revoked the token"
    );
    // The client the code went to still revokes its token by presenting the code again.
    let replay = Answer::of(app.exchange(&APP, &code).await).await;
    assert_eq!(
        (replay.status, replay.error()),
        (400, "invalid_grant"),
        "{}",
        replay.text
    );
    assert!(!app.exists(&key).await, "the owner's replay left the token");
}

#[tokio::test]
async fn a_third_attempt_with_a_spent_code_is_still_refused() {
    let app = spawn_app().await;
    let code = app.issue_code(&APP).await;
    assert_eq!(app.exchange(&APP, &code).await.status().as_u16(), 200);
    for attempt in 2..=3 {
        let answer = Answer::of(app.exchange(&APP, &code).await).await;
        assert_eq!(
            (answer.status, answer.error()),
            (400, "invalid_grant"),
            "attempt {attempt}"
        );
    }
    assert!(app.keys("token:*").await.is_empty(), "a live token is left");
}
