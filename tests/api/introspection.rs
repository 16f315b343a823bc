//! Introspection (RFC 7662) and revocation (RFC 7009) with real Redis and real HTTP: a token is
//! active until revoked, only its own client (or the client it is meant for) sees it, and
//! anything wrong is `{"active": false}` with a 200.

use std::time::{Duration, Instant};

use deadpool_redis::redis;
use serde_json::json;
use sso_token::routes::paths::{INTROSPECT_PATH, REVOKE_PATH};
use sso_token::tokens::{KeyKind, SigningKey};

use crate::each_topology;
use crate::helpers::{
    ALLOWED_SCOPES, APP, AUDIENCED, Answer, DISABLED, ENCODED, FOR_RESOURCE, ISSUER, OTHER,
    RESOURCE_API, TestApp, TestClient, Topology, basic_auth, code_record, new_key_file, spawn_app,
    spawn_app_on, spawn_app_with, unix_now, verify_token,
};
use crate::redis_server::RedisServer;
use crate::resource::Planted;

fn assert_inactive(answer: &Answer, context: &str) {
    assert_eq!(answer.status, 200, "{context}: {}", answer.text);
    assert_eq!(answer.json, json!({"active": false}), "{context}");
    assert_eq!(
        answer.header("cache-control"),
        Some("no-store"),
        "{context}"
    );
}

each_topology!(
    a_token_is_active_until_its_client_revokes_it_then_inactive_and_refused_by_user_info
);

/// The round trip through every endpoint that reads or deletes the token record, on each Redis
/// topology (in Cluster mode the `jti`, and so the record's key, carries the code's slot tag).
async fn a_token_is_active_until_its_client_revokes_it_then_inactive_and_refused_by_user_info(
    topology: Topology,
) {
    let app = spawn_app_on(topology).await;
    let mut record = code_record(&APP);
    record.scope = ALLOWED_SCOPES.map(String::from).to_vec();
    let token = app.token_of(&APP, &record).await;
    let claims = verify_token(&token, APP.id, ISSUER).claims;
    let key = app.store.token_key(claims["jti"].as_str().expect("jti"));

    let active = app.introspect(&APP, &token).await;
    let shown = app.user_info(&token).await;
    let seen_by_other = app.introspect(&OTHER, &token).await;
    let revoked_by_other = app.revoke(&OTHER, &token, None).await;
    let still_active = app.introspect(&APP, &token).await;
    let recorded = app.exists(&key).await;
    let revoked = app.revoke(&APP, &token, Some("access_token")).await;
    let after = app.introspect(&APP, &token).await;
    let user_info = app.user_info(&token).await;
    let revoked_again = app.revoke(&APP, &token, None).await;

    assert_eq!(active.status, 200, "{}", active.text);
    assert_eq!(active.header("cache-control"), Some("no-store"));
    let expected = json!({
        "active": true,
        "sub": record.account_id, "account_id": record.account_id,
        "username": record.username, "client_id": APP.id,
        "scope": "user:basic user:contract",
        "exp": claims["exp"], "iat": claims["iat"], "iss": ISSUER, "aud": APP.id,
        "jti": claims["jti"], "token_type": "bearer",
    });
    assert_eq!(active.json, expected);
    assert_eq!(shown.status, 200, "{}", shown.text);
    assert_eq!(shown.json["id"], record.account_id.as_str());
    assert_inactive(&seen_by_other, "introspected by another client");
    assert_eq!(revoked_by_other.status, 400, "{}", revoked_by_other.text);
    assert_eq!(revoked_by_other.error(), "unauthorized_client");
    revoked_by_other.assert_error_shape("revoked by another client");
    assert_eq!(still_active.json, expected, "revoked by another client");
    assert!(recorded, "no token record under {key}");
    assert_eq!((revoked.status, revoked.text.as_str()), (200, "{}"));
    assert_eq!(revoked.header("content-type"), Some("application/json"));
    assert_eq!(revoked.header("cache-control"), Some("no-store"));
    assert!(
        !app.exists(&key).await,
        "the token record outlived revocation"
    );
    assert_inactive(&after, "after revocation");
    assert_eq!(user_info.status, 401, "{}", user_info.text);
    assert_eq!(
        user_info.header("www-authenticate"),
        Some(r#"Bearer realm="sso-token", error="invalid_token""#)
    );
    assert_eq!(user_info.error(), "invalid_token");
    assert_eq!(
        (revoked_again.status, revoked_again.text.as_str()),
        (200, "{}")
    );
}

/// RFC 9068 §2.2.3: with `typ` `at+jwt` the `scope` claim is one space-separated string; the
/// endpoints that read tokens take it as they take the seed's array.
#[tokio::test]
async fn an_at_jwt_token_carries_scope_as_a_string_and_still_introspects_and_shows_the_user() {
    let app = spawn_app_with(|s| s.token.typ = "at+jwt".into()).await;
    let mut record = code_record(&APP);
    record.scope = ALLOWED_SCOPES.map(String::from).to_vec();
    let token = app.token_of(&APP, &record).await;

    let data = verify_token(&token, APP.id, ISSUER);
    let introspected = app.introspect(&APP, &token).await;
    let user_info = app.user_info(&token).await;

    assert_eq!(data.header.typ.as_deref(), Some("at+jwt"));
    assert_eq!(data.claims["scope"], "user:basic user:contract");
    assert_eq!(introspected.json["active"], true, "{}", introspected.text);
    assert_eq!(introspected.json["scope"], "user:basic user:contract");
    assert_eq!(user_info.status, 200, "{}", user_info.text);
    assert_eq!(user_info.json["username"], record.username.as_str());
    assert_eq!(user_info.json.get("email"), None, "the record has no email");
}

/// README ("Leeway"): a reload that changes `token.typ` leaves the live tokens of the other
/// shape live: a seed-shaped token (scope an array) and an `at+jwt` one (a string) both still
/// introspect with their scopes and show their user, whichever shape the reload turned to.
#[tokio::test]
async fn a_reload_that_changes_the_typ_leaves_the_other_shapes_tokens_live() {
    let app = spawn_app().await;
    let mut record = code_record(&APP);
    record.scope = ALLOWED_SCOPES.map(String::from).to_vec();
    let seed_shaped = app.token_of(&APP, &record).await;
    app.reload_with(|s| s.token.typ = "at+jwt".into())
        .expect("reload");
    let at_jwt = app.token_of(&APP, &record).await;
    assert!(verify_token(&at_jwt, APP.id, ISSUER).claims["scope"].is_string());
    assert!(verify_token(&seed_shaped, APP.id, ISSUER).claims["scope"].is_array());

    for typ in ["at+jwt", "access_token"] {
        app.reload_with(|s| s.token.typ = typ.into())
            .expect("reload");
        for token in [&seed_shaped, &at_jwt] {
            let introspected = app.introspect(&APP, token).await;
            let user_info = app.user_info(token).await;
            assert_eq!(
                introspected.json["active"], true,
                "{typ}: {}",
                introspected.text
            );
            assert_eq!(
                introspected.json["scope"], "user:basic user:contract",
                "{typ}"
            );
            assert_eq!(user_info.status, 200, "{typ}: {}", user_info.text);
        }
    }
}

#[tokio::test]
async fn the_client_a_token_is_meant_for_may_introspect_it_but_not_revoke_it() {
    let app = spawn_app().await;
    let token = app.token_for(&FOR_RESOURCE).await;
    let elsewhere = app.token_for(&AUDIENCED).await;

    let seen = app.introspect(&RESOURCE_API, &token).await;
    let revoked = app.revoke(&RESOURCE_API, &token, None).await;

    assert_eq!(seen.json["active"], true, "{}", seen.text);
    assert_eq!(seen.json["aud"], RESOURCE_API.id);
    assert_eq!(seen.json["client_id"], FOR_RESOURCE.id);
    assert_eq!(revoked.error(), "unauthorized_client");
    assert!(app.is_active(&FOR_RESOURCE, &token).await);
    assert_inactive(
        &app.introspect(&RESOURCE_API, &elsewhere).await,
        "a token meant for someone else",
    );
}

#[tokio::test]
async fn anything_but_a_live_token_of_ours_is_inactive_with_a_200() {
    let app = spawn_app().await;
    let now = unix_now();
    let planted = |exp, recorded| Planted {
        client: &APP,
        scopes: &["user:basic"],
        iat: now - 100,
        exp,
        recorded,
    };
    let live = app.plant_token(&planted(now + 600, true)).await;
    let unrecorded = app.plant_token(&planted(now + 600, false)).await;
    let expired = app.plant_token(&planted(now - 40, true)).await;
    let (foreign_path, foreign_kid) = new_key_file(KeyKind::P256);
    let foreign_key = SigningKey::from_pem(&std::fs::read_to_string(&foreign_path).unwrap());
    let foreign_key = foreign_key.unwrap();
    let (head, rest) = live.split_once('.').unwrap();
    let payload = rest.split('.').next().unwrap();
    // The unknown-key path: a valid signature of an unpublished key, under that key's own kid.
    let foreign_head =
        json!({"typ": "access_token", "alg": foreign_key.algorithm(), "kid": foreign_kid});
    let foreign = signed(
        &foreign_key,
        &b64(foreign_head.to_string().as_bytes()),
        payload,
    );
    // The bad-signature path: our kid, but another key's signature.
    let missigned = signed(&foreign_key, head, payload);
    let (body, signature) = live.rsplit_once('.').unwrap();
    let flipped = format!("{body}.{}", flip_first(signature));

    assert!(app.is_active(&APP, &live).await, "the control token");
    for (token, why) in [
        (unrecorded.as_str(), "no jti record"),
        (expired.as_str(), "expired beyond the leeway"),
        (foreign.as_str(), "an unpublished key, with its own kid"),
        (missigned.as_str(), "our kid, signed by another key"),
        (flipped.as_str(), "damaged signature"),
        ("not-a-token", "garbage"),
        ("a.b.c", "three parts of garbage"),
    ] {
        assert_inactive(&app.introspect(&APP, token).await, why);
    }

    // Control: the foreign token lacked nothing but the publication of its key.
    app.reload_with(|s| s.token.verify_keys = vec![foreign_path.clone()])
        .expect("reload");
    assert!(
        app.is_active(&APP, &foreign).await,
        "the foreign token is refused for another reason than its key"
    );
    assert!(
        !app.is_active(&APP, &missigned).await,
        "a wrong signature verifies"
    );
}

/// `head.payload`, signed by `key`.
fn signed(key: &SigningKey, head: &str, payload: &str) -> String {
    let signature = key.sign(format!("{head}.{payload}").as_bytes()).unwrap();
    format!("{head}.{payload}.{}", b64(&signature))
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn flip_first(signature: &str) -> String {
    let replacement = if signature.starts_with('A') { "B" } else { "A" };
    format!("{replacement}{}", &signature[1..])
}

#[tokio::test]
async fn expiry_allows_the_configured_leeway_for_clock_skew() {
    for (leeway, active) in [(30, true), (0, false)] {
        let app = spawn_app_with(|s| s.token.leeway_secs = leeway).await;
        let now = unix_now();
        let token = app
            .plant_token(&Planted {
                client: &APP,
                scopes: &["user:basic"],
                iat: now - 100,
                exp: now - 10,
                recorded: true,
            })
            .await;
        assert_eq!(app.is_active(&APP, &token).await, active, "leeway {leeway}");
    }
}

#[tokio::test]
async fn revocation_answers_200_for_unknown_or_already_revoked_tokens() {
    let app = spawn_app().await;
    let token = app.token_for(&APP).await;

    let answers = [
        app.revoke(&APP, &token, None).await,
        app.revoke(&APP, &token, None).await,
        app.revoke(&APP, "no-such-token", Some("access_token"))
            .await,
    ];

    for answer in &answers {
        assert_eq!(answer.status, 200, "{}", answer.text);
    }
    assert!(
        app.keys("token:*").await.is_empty(),
        "a token record is left"
    );
}

/// How many Redis operations `app` made (its `/metrics`: every `operation` of
/// `sso_redis_duration_seconds`).
async fn redis_operations(app: &TestApp) -> f64 {
    let exposition = crate::metrics::scrape(app, &app.address).await;
    exposition
        .lines()
        .filter(|line| line.starts_with("sso_redis_duration_seconds_count{"))
        .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// `client`'s revocation of `token`, which must ask Redis nothing (`what` names the case).
async fn revoke_asking_no_redis(
    app: &TestApp,
    client: &TestClient,
    token: &str,
    what: &str,
) -> Answer {
    let before = redis_operations(app).await;
    let answer = app.revoke(client, token, None).await;
    assert_eq!(
        redis_operations(app).await,
        before,
        "Redis asked for {what}"
    );
    answer
}

/// The token record key of `token`, from its `jti`, read without verifying anything (expired
/// tokens too).
fn record_key(app: &TestApp, token: &str) -> String {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("a JWS payload");
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    let claims: serde_json::Value = serde_json::from_slice(&payload).expect("JSON claims");
    app.store.token_key(claims["jti"].as_str().expect("jti"))
}

/// README ("Introspection"): another client's token is `{"active": false}` whatever the reason,
/// decided before Redis is asked: the answer cannot tell, by its content or its time, whether
/// the token is still live.
#[tokio::test]
async fn another_clients_token_is_inactive_without_asking_redis() {
    let app = spawn_app().await;
    let token = app.token_for(&APP).await;

    let before = redis_operations(&app).await;
    let seen = app.introspect(&OTHER, &token).await;
    let after = redis_operations(&app).await;

    assert_inactive(&seen, "introspected by another client");
    assert_eq!(after, before, "Redis asked for another client's token");
    // The same count sees the caller's own introspection ask Redis.
    assert_eq!(app.introspect(&APP, &token).await.json["active"], true);
    assert!(
        redis_operations(&app).await > after,
        "the count missed a read"
    );
}

/// README ("Revocation", RFC 7009 §2.1): another client's live token is refused with 400
/// `unauthorized_client`, and Redis is not asked whether it still is, so once its own client
/// has revoked it, the other client gets the very same answer: no answer tells another client
/// whether a token is revoked.
#[tokio::test]
async fn another_clients_revocation_gets_the_same_answer_for_a_revoked_token_as_for_a_live_one() {
    let app = spawn_app().await;
    let token = app.token_for(&APP).await;
    let key = record_key(&app, &token);

    let live = revoke_asking_no_redis(&app, &OTHER, &token, "a live token").await;
    assert_eq!(
        (live.status, live.error()),
        (400, "unauthorized_client"),
        "{}",
        live.text
    );
    live.assert_error_shape("another client's live token");
    assert!(app.exists(&key).await, "another client revoked the token");
    let own = app.revoke(&APP, &token, None).await;
    assert_eq!((own.status, own.text.as_str()), (200, "{}"));
    assert!(!app.exists(&key).await, "its own client did not revoke it");

    let revoked = revoke_asking_no_redis(&app, &OTHER, &token, "a revoked token").await;

    assert_eq!(
        (revoked.status, &revoked.json),
        (live.status, &live.json),
        "revoked: {}; live: {}",
        revoked.text,
        live.text
    );
}

/// A client no longer in the registry: its tokens verify, but are no longer current.
const REMOVED: TestClient = TestClient {
    id: "removed-app",
    secret: "removed-secret-Jw5Gk2Rn8Yc1Pb6Xv3Hs",
    redirect_uri: "https://removed.example/cb",
};

/// README ("Revocation"): what another client gets for tokens that are not current. An expired
/// token is 200 like any other, without asking Redis (its record expired with it); a removed
/// or disabled client's unexpired token is 200, nothing deleted. Here each record is still in
/// Redis (planted with a longer life than the token), and stays.
#[tokio::test]
async fn another_clients_revocation_of_a_token_no_longer_current_is_200_and_deletes_nothing() {
    let app = spawn_app().await;
    let now = unix_now();
    let planted = |client, exp| Planted {
        client,
        scopes: &["user:basic"],
        iat: now - 100,
        exp,
        recorded: true,
    };
    let expired = app.plant_token(&planted(&APP, now - 40)).await;
    let disabled = app.plant_token(&planted(&DISABLED, now + 600)).await;
    let removed = app.plant_token(&planted(&REMOVED, now + 600)).await;

    let expired_answer = revoke_asking_no_redis(&app, &OTHER, &expired, "an expired token").await;
    let answers = [
        ("an expired token", &expired, expired_answer),
        (
            "a disabled client's token",
            &disabled,
            app.revoke(&OTHER, &disabled, None).await,
        ),
        (
            "a removed client's token",
            &removed,
            app.revoke(&OTHER, &removed, None).await,
        ),
    ];

    for (what, token, answer) in answers {
        assert_eq!((answer.status, answer.text.as_str()), (200, "{}"), "{what}");
        assert!(
            app.exists(&record_key(&app, token)).await,
            "{what}: its record was deleted"
        );
    }
}

/// An authorize service that writes a spent code value again lets it be exchanged again once the
/// first token is gone. Both tokens' records share the code's key, but each names its own `jti`:
/// the new record does not revive the revoked token, and revoking that token again does not
/// delete the new record.
#[tokio::test]
async fn a_code_value_written_again_neither_revives_nor_revokes_through_its_first_token() {
    let app = spawn_app().await;
    let record = code_record(&APP);
    let code = app.write_code(&record).await;
    let first = Answer::of(app.exchange(&APP, &code).await).await;
    assert_eq!(first.status, 200, "{}", first.text);
    let first = first.json["access_token"]
        .as_str()
        .expect("a token")
        .to_owned();
    let revoked = app.revoke(&APP, &first, None).await;
    assert_eq!(revoked.status, 200, "{}", revoked.text);

    let written = sso_token::issue_code::write(&app.store, &code, &record, 60).await;
    assert_eq!(written.ok(), Some(true), "the code written again");
    let second = Answer::of(app.exchange(&APP, &code).await).await;

    assert_eq!(second.status, 200, "{}", second.text);
    let second = second.json["access_token"].as_str().expect("a token");
    let jti = |token: &str| verify_token(token, APP.id, ISSUER).claims["jti"].clone();
    assert_ne!(jti(second), jti(&first));
    assert!(app.is_active(&APP, second).await, "the new token");
    assert!(
        !app.is_active(&APP, &first).await,
        "the revoked token revived"
    );
    let again = app.revoke(&APP, &first, None).await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert!(
        app.is_active(&APP, second).await,
        "the new token revoked through the old one"
    );
}

#[tokio::test]
async fn an_access_token_is_revoked_whatever_the_token_type_hint() {
    // RFC 7009 §2.1: a hint that does not find the token widens the search to every type;
    // §2.2: an invalid one is ignored.
    let app = spawn_app().await;
    let long = "h".repeat(65);
    for hint in ["access_token", "refresh_token", "id_token", "bogus", &long] {
        let token = app.token_for(&APP).await;
        let answer = app.revoke(&APP, &token, Some(hint)).await;
        assert_eq!(answer.status, 200, "{hint}: {}", answer.text);
        assert!(!app.is_active(&APP, &token).await, "{hint}: still active");
    }
}

#[tokio::test]
async fn both_endpoints_authenticate_the_client_like_the_token_endpoint() {
    let app = spawn_app().await;
    let token = app.token_for(&APP).await;
    for path in [INTROSPECT_PATH, REVOKE_PATH] {
        let wrong_secret = app
            .http
            .post(app.url(path))
            .header("Authorization", basic_auth(APP.id, "wrong"))
            .form(&[("token", token.as_str())])
            .send()
            .await
            .unwrap();
        let in_json_body = app
            .http
            .post(app.url(path))
            .json(&json!({"token": token, "client_id": APP.id, "client_secret": APP.secret}))
            .send()
            .await
            .unwrap();
        let without_token = app
            .http
            .post(app.url(path))
            .header("Authorization", basic_auth(APP.id, APP.secret))
            .form(&[("token_type_hint", "access_token")])
            .send()
            .await
            .unwrap();
        // RFC 7662 §2.3: wrong credentials are a 401 whatever the body lacks.
        let wrong_secret_without_token = app
            .http
            .post(app.url(path))
            .header("Authorization", basic_auth(APP.id, "wrong"))
            .form(&[("token_type_hint", "access_token")])
            .send()
            .await
            .unwrap();
        let get = app.http.get(app.url(path)).send().await.unwrap();

        let wrong_secret = Answer::of(wrong_secret).await;
        assert_eq!(
            (wrong_secret.status, wrong_secret.error()),
            (401, "invalid_client")
        );
        assert!(wrong_secret.header("www-authenticate").is_some());
        assert_eq!(Answer::of(in_json_body).await.status, 200, "{path}");
        let without_token = Answer::of(without_token).await;
        assert_eq!(
            (without_token.status, without_token.error()),
            (400, "invalid_request")
        );
        let wrong_secret_without_token = Answer::of(wrong_secret_without_token).await;
        assert_eq!(
            (
                wrong_secret_without_token.status,
                wrong_secret_without_token.error()
            ),
            (401, "invalid_client"),
            "{path}"
        );
        let get = Answer::of(get).await;
        assert_eq!(
            (get.status, get.header("allow")),
            (405, Some("POST")),
            "{path}"
        );
        get.assert_error_shape(path);
    }
    assert!(
        !app.is_active(&APP, &token).await,
        "the JSON revocation did not revoke"
    );
}

/// A Redis that holds its connections but answers nothing (frozen: SIGSTOP) costs each endpoint
/// one `redis.timeout_ms`, then a 503 RFC 6749 error: never a hang, and never a token called
/// inactive (a resource server would log its user out) or a revocation reported done.
#[tokio::test]
async fn redis_trouble_is_a_prompt_503_not_an_inactive_token() {
    const TIMEOUT: Duration = Duration::from_millis(300);
    /// The timeout and 1.5 s for a busy machine: well under a hang (the test's HTTP client
    /// gives up after 10 s).
    const PROMPT: Duration = Duration::from_millis(300 + 1500);
    let redis = RedisServer::start();
    let app = spawn_app_with(|s| {
        s.redis.url = redis.url();
        s.redis.timeout_ms = TIMEOUT.as_millis() as u64;
    })
    .await;
    let token = app.token_for(&APP).await;
    assert!(app.is_active(&APP, &token).await, "the control token");

    // Thawed at the end; and dropping the server continues it too, should an assertion fail.
    redis.freeze();
    let mut answers = Vec::new();
    for what in ["introspection", "user info", "revocation"] {
        let started = Instant::now();
        let answer = match what {
            "introspection" => app.introspect(&APP, &token).await,
            "user info" => app.user_info(&token).await,
            _ => app.revoke(&APP, &token, None).await,
        };
        answers.push((what, answer, started.elapsed()));
    }
    redis.thaw();

    for (what, answer, elapsed) in &answers {
        assert_eq!(answer.status, 503, "{what}: {}", answer.text);
        assert!(
            answer.json.get("active").is_none(),
            "{what}: an introspection answer, not an error: {}",
            answer.text
        );
        assert_eq!(answer.error(), "temporarily_unavailable", "{what}");
        answer.assert_error_shape(what);
        // Redis answered nothing: only the timeout can have ended the wait.
        assert!(
            (TIMEOUT..PROMPT).contains(elapsed),
            "{what}: the answer took {elapsed:?}"
        );
    }
    let after = app.introspect(&APP, &token).await;
    assert_eq!(after.status, 200, "once Redis is back: {}", after.text);
}

/// An expired token is as good as revoked (RFC 7009 §2.2: 200) and its record expired with it,
/// so revoking it asks nothing of Redis and a Redis outage does not make it a 503.
#[tokio::test]
async fn revoking_an_expired_token_of_ones_own_needs_no_redis() {
    let redis = RedisServer::start();
    let app = spawn_app_with(|s| {
        s.redis.url = redis.url();
        s.redis.timeout_ms = 300;
    })
    .await;
    let now = unix_now();
    let expired = app
        .plant_token(&Planted {
            client: &APP,
            scopes: &["user:basic"],
            iat: now - 100,
            exp: now - 40,
            recorded: true,
        })
        .await;
    let live = app.token_for(&APP).await;

    redis.freeze();
    let expired_answer = app.revoke(&APP, &expired, None).await;
    let live_answer = app.revoke(&APP, &live, None).await;
    redis.thaw();

    assert_eq!(expired_answer.status, 200, "{}", expired_answer.text);
    // Control: revoking a live token does need Redis.
    assert_eq!(live_answer.status, 503, "{}", live_answer.text);
}

/// The introspection response as the `oauth2` crate reads it (RFC 7662 types).
#[tokio::test]
async fn the_oauth2_crate_introspects_a_token() {
    use oauth2::basic::BasicClient;
    use oauth2::{
        AccessToken, ClientId, ClientSecret, IntrospectionUrl, TokenIntrospectionResponse,
    };

    let app = spawn_app().await;
    let token = app.token_for(&APP).await;
    let client = BasicClient::new(ClientId::new(APP.id.into()))
        .set_client_secret(ClientSecret::new(APP.secret.into()))
        .set_introspection_url(IntrospectionUrl::new(app.url(INTROSPECT_PATH)).unwrap());

    let response = client
        .introspect(&AccessToken::new(token))
        .request_async(&crate::helpers::http_client())
        .await
        .unwrap_or_else(|e| panic!("introspection failed: {e:?}"));

    assert!(response.active());
    assert_eq!(response.client_id().map(|c| c.as_str()), Some(APP.id));
    let scopes: Vec<String> = response
        .scopes()
        .unwrap()
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(scopes, ["user:basic"]);
    assert_eq!(response.aud(), Some(&vec![APP.id.to_owned()]));
    assert!(response.exp().is_some());
    assert_eq!(response.iss(), Some(ISSUER));
}

/// The exchange issues tokens of up to 4096 bytes: each can be introspected and revoked within
/// the default `server.body_limit` (4096), which is room for the rest of a request. A longer
/// string is no token of ours: inactive, and revoked with a 200 (RFC 7662 §2.2, RFC 7009 §2.2).
#[tokio::test]
async fn the_longest_tokens_are_introspected_and_revoked_and_longer_strings_are_not_ours() {
    let app = spawn_app().await;
    let names: Vec<String> = (0..400).map(|i| format!("scope-{i:04}")).collect();
    let scopes: Vec<&str> = names.iter().map(String::as_str).collect();
    let now = unix_now();
    let planted = |n: usize, recorded| Planted {
        client: &APP,
        scopes: &scopes[..n],
        iat: now - 100,
        exp: now + 600,
        recorded,
    };
    let mut n = 1;
    while app.plant_token(&planted(n + 1, false)).await.len() <= 4096 {
        n += 1;
    }
    let longest = app.plant_token(&planted(n, true)).await;
    assert!((4000..=4096).contains(&longest.len()), "{}", longest.len());

    assert!(app.is_active(&APP, &longest).await);
    let revoked = app.revoke(&APP, &longest, Some("access_token")).await;
    assert_eq!(revoked.status, 200, "{}", revoked.text);
    assert!(!app.is_active(&APP, &longest).await);

    let not_ours = format!("{longest}{}", "A".repeat(3000));
    assert_inactive(&app.introspect(&APP, &not_ours).await, "longer");
    let answer = app.revoke(&APP, &not_ours, None).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
}

/// Unpadded base64 of `bytes` bytes: how long a token's part grows.
fn base64_len(bytes: usize) -> usize {
    (4 * bytes).div_ceil(3)
}

/// The edge itself: a token of exactly `MAX_TOKEN` bytes (4096) is issued, active and revoked;
/// the shortest one past it is refused at the exchange (`invalid_grant`, the code spent). The
/// account id (the `sub` claim) sets the length; unpadded base64 skips one length in four, so
/// the header's `typ` is changed when 4096 is one of those.
#[tokio::test]
async fn a_token_of_exactly_4096_bytes_is_issued_and_one_longer_is_refused() {
    const MAX: usize = 4096;
    for typ in ["access_token", "at+jwt", "JWT"] {
        let app = spawn_app_with(|s| s.token.typ = typ.into()).await;
        let exchange = |account: usize| {
            let app = &app;
            async move {
                let mut record = code_record(&APP);
                record.account_id = "a".repeat(account);
                let code = app.write_code(&record).await;
                Answer::of(app.exchange(&APP, &code).await).await
            }
        };
        // One token, and what its payload's length makes of others: each byte of account id
        // is one byte of payload.
        let probe = exchange(2000).await;
        assert_eq!(probe.status, 200, "{}", probe.text);
        let token = probe.json["access_token"].as_str().unwrap().to_owned();
        let payload = token.split('.').nth(1).unwrap();
        let payload_bytes = payload.len() * 3 / 4;
        assert_eq!(base64_len(payload_bytes), payload.len());
        let length = |account: usize| {
            token.len() - payload.len() + base64_len(payload_bytes + account - 2000)
        };
        let Some(exact) = (2000..4000).find(|&a| length(a) == MAX) else {
            continue;
        };
        let over = (exact..4000).find(|&a| length(a) > MAX).unwrap();

        let issued = exchange(exact).await;
        assert_eq!(issued.status, 200, "{}", issued.text);
        let longest = issued.json["access_token"].as_str().unwrap();
        assert_eq!(longest.len(), MAX);
        assert!(app.is_active(&APP, longest).await);
        let revoked = app.revoke(&APP, longest, None).await;
        assert_eq!(revoked.status, 200, "{}", revoked.text);
        assert!(!app.is_active(&APP, longest).await);

        let refused = exchange(over).await;
        assert_eq!(
            (refused.status, refused.error()),
            (400, "invalid_grant"),
            "a {}-byte token: {}",
            length(over),
            refused.text
        );
        return;
    }
    panic!("no typ made a token of exactly {MAX} bytes");
}

/// The start and each reload refuse an issuer under which some enabled client's shortest token
/// (a one-letter account id, its shortest scope) would pass 4096 bytes, and take the longest
/// under which it is exactly 4096: that token is issued. ENCODED's id, also its audience, is
/// the longest of the test clients, so its tokens are the longest. Each byte of issuer is one
/// byte of payload; the header's `typ` is changed when 4096 is a length unpadded base64 skips.
#[tokio::test]
async fn an_issuer_is_refused_only_once_the_shortest_token_would_pass_4096_bytes() {
    const MAX: usize = 4096;
    for typ in ["access_token", "at+jwt", "JWT"] {
        let app = spawn_app_with(|s| s.token.typ = typ.into()).await;
        let shortest = || {
            let app = &app;
            async move {
                let mut record = code_record(&ENCODED);
                record.account_id = "a".into();
                let code = app.write_code(&record).await;
                Answer::of(app.exchange(&ENCODED, &code).await).await
            }
        };
        let probe = shortest().await;
        assert_eq!(probe.status, 200, "{}", probe.text);
        let token = probe.json["access_token"].as_str().unwrap().to_owned();
        let payload = token.split('.').nth(1).unwrap();
        let payload_bytes = payload.len() * 3 / 4;
        assert_eq!(base64_len(payload_bytes), payload.len());
        let length = |more: usize| token.len() - payload.len() + base64_len(payload_bytes + more);
        let Some(exact) = (0..4000).find(|&more| length(more) == MAX) else {
            continue;
        };
        let issuer = |more: usize| format!("{ISSUER}{}", "i".repeat(more));

        let refused = app
            .reload_with(|s| s.token.issuer = issuer(exact + 1))
            .expect_err("a token past 4096 bytes")
            .to_string();
        let said = format!(
            "client {}: its shortest token would be {} bytes",
            ENCODED.id,
            length(exact + 1)
        );
        assert!(refused.starts_with(&said), "{refused}");
        app.reload_with(|s| s.token.issuer = issuer(exact))
            .expect("a token of exactly 4096 bytes");

        let issued = shortest().await;
        assert_eq!(issued.status, 200, "{}", issued.text);
        let longest = issued.json["access_token"].as_str().unwrap();
        assert_eq!(longest.len(), MAX);
        return;
    }
    panic!("no typ made a token of exactly {MAX} bytes");
}

/// A token record names the client and the account of its token: one rewritten under the same
/// `jti` to name others (by another writer) leaves the token inactive, and user info 401.
#[tokio::test]
async fn a_record_naming_another_client_or_account_leaves_its_token_inactive() {
    let app = spawn_app().await;
    // The field (a JSON pointer into the record) and what it says instead.
    let rewrites = [
        ("/client_id", OTHER.id),
        ("/grant/account_id", "acct-someone-else"),
    ];
    for (field, value) in rewrites {
        let token = app.token_for(&APP).await;
        assert!(app.is_active(&APP, &token).await, "{field}: live before");
        let key = record_key(&app, &token);
        let raw: String = app.query(redis::cmd("GET").arg(&key)).await;
        let mut record: serde_json::Value = serde_json::from_str(&raw).unwrap();
        *record.pointer_mut(field).expect("the record has the field") = value.into();
        let _: () = app
            .query(
                redis::cmd("SET")
                    .arg(&key)
                    .arg(record.to_string())
                    .arg("KEEPTTL"),
            )
            .await;
        assert!(!app.is_active(&APP, &token).await, "{field} rewritten");
        assert_eq!(app.user_info(&token).await.status, 401, "{field} rewritten");
    }
}

/// Introspection and revocation read `server.body_limit` plus room for the longest token
/// (`MAX_TOKEN`), and not a byte more: a body of exactly that is read (a string that long is no
/// token of ours: inactive, and revoked with a 200), one a byte longer is 413.
#[tokio::test]
async fn introspection_and_revocation_read_the_limit_and_a_token_and_not_a_byte_more() {
    const LIMIT: usize = 1024;
    let app = spawn_app_with(|s| s.server.body_limit = LIMIT).await;
    let most = LIMIT + sso_token::tokens::MAX_TOKEN;
    for path in [INTROSPECT_PATH, REVOKE_PATH] {
        let send = |length: usize| {
            let token = "A".repeat(length - "token=".len());
            app.http
                .post(app.url(path))
                .header("Authorization", basic_auth(APP.id, APP.secret))
                .form(&[("token", token)])
                .send()
        };

        let at_most = Answer::of(send(most).await.unwrap()).await;
        assert_eq!(at_most.status, 200, "{path}: {}", at_most.text);
        if path == INTROSPECT_PATH {
            assert_inactive(&at_most, path);
        }
        let over = Answer::of(send(most + 1).await.unwrap()).await;
        assert_eq!(
            (over.status, over.error()),
            (413, "invalid_request"),
            "{path}: {}",
            over.text
        );
    }
}
