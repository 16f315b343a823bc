//! The happy paths: every accepted way of asking, and what a successful answer looks like.

use deadpool_redis::redis;
use serde_json::json;
use sso_token::issue_code::NewCode;

use crate::each_topology;
use crate::helpers::{
    ALLOWED_SCOPES, APP, Answer, ENCODED, ISSUER, RFC7636_CHALLENGE, RFC7636_VERIFIER, TestClient,
    Topology, basic_auth, code_record, json_request, spawn_app, spawn_app_on, spawn_app_with,
    verify_token,
};
use crate::topology::{OwnRedis, query};

/// `answer` is a 200 whose token verifies (signature, `exp`, `iss`, `aud`), was issued to
/// `client` and names `record`'s user.
fn assert_token_of(answer: &Answer, client: &TestClient, record: &NewCode) {
    assert_eq!(answer.status, 200, "{}", answer.text);
    let token = answer.json["access_token"].as_str().expect("access_token");
    let claims = verify_token(token, client.id, ISSUER).claims;
    assert_eq!(claims["client_id"], client.id);
    assert_eq!(claims["sub"], record.account_id.as_str());
}

each_topology!(a_code_can_be_exchanged_for_a_token_with_a_json_body);

async fn a_code_can_be_exchanged_for_a_token_with_a_json_body(topology: Topology) {
    let app = spawn_app_on(topology).await;
    let record = code_record(&APP);
    let code = app.write_code(&record).await;

    let answer = Answer::of(app.exchange(&APP, &code).await).await;

    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.json["username"], record.username.as_str());
    assert_eq!(answer.json["account_id"], record.account_id.as_str());
    let token = answer.json["access_token"].as_str().expect("access_token");
    let claims = verify_token(token, APP.id, ISSUER).claims;
    assert_eq!(claims["sub"], record.account_id.as_str());
}

each_topology!(an_exchange_loads_its_script_again_when_redis_has_forgotten_it);

/// A restarted or failed-over Redis has no scripts: the exchange (`EVALSHA`) sends its script
/// whole (`EVAL`) and runs it, and a replay of the code it spent is still caught. On instances
/// of the test's own: `SCRIPT FLUSH` empties a whole instance's cache, which on the shared ones
/// would reach every parallel test, and let any parallel exchange load the script back before
/// this one's (then nothing here would have exercised the fallback).
async fn an_exchange_loads_its_script_again_when_redis_has_forgotten_it(topology: Topology) {
    let redis = OwnRedis::start(topology).await;
    let app = spawn_app_with(|s| redis.configure(&mut s.redis)).await;
    let ports = redis.data_ports();
    let first = app.issue_code(&APP).await;
    let answer = Answer::of(app.exchange(&APP, &first).await).await;
    assert_eq!(answer.status, 200, "{}", answer.text);

    forget_scripts(&ports).await;
    let before = evals(&ports).await;
    let second = app.issue_code(&APP).await;
    let answer = Answer::of(app.exchange(&APP, &second).await).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(
        evals(&ports).await - before,
        1,
        "the script sent whole, once"
    );

    forget_scripts(&ports).await;
    let before = evals(&ports).await;
    let replay = Answer::of(app.exchange(&APP, &second).await).await;
    assert_eq!(replay.status, 400, "{}", replay.text);
    assert_eq!(replay.json["error"], "invalid_grant");
    assert!(
        evals(&ports).await > before,
        "the replay's script was not sent whole"
    );
    let token = answer.json["access_token"].as_str().expect("a token");
    let introspection = app.introspect(&APP, token).await;
    assert_eq!(introspection.json["active"], false, "revoked by the replay");
}

/// Empties the script cache of the instances on `ports`, as a restart or a failover does.
async fn forget_scripts(ports: &[u16]) {
    let ports = ports.to_vec();
    let flushing = tokio::task::spawn_blocking(move || {
        for port in ports {
            let done: Option<String> = query(port, redis::cmd("SCRIPT").arg("FLUSH"));
            assert_eq!(done.as_deref(), Some("OK"), "SCRIPT FLUSH on {port}");
        }
    });
    flushing.await.expect("SCRIPT FLUSH");
}

/// How many `EVAL`s (a script sent whole) the instances on `ports` ran (`INFO commandstats`).
async fn evals(ports: &[u16]) -> u64 {
    let ports = ports.to_vec();
    let counting = tokio::task::spawn_blocking(move || {
        ports
            .into_iter()
            .map(|port| {
                let info: String = query(port, redis::cmd("INFO").arg("commandstats"))
                    .unwrap_or_else(|| panic!("INFO commandstats on {port}"));
                info.lines()
                    .find_map(|line| line.strip_prefix("cmdstat_eval:calls="))
                    .and_then(|rest| rest.split(',').next()?.parse::<u64>().ok())
                    .unwrap_or(0)
            })
            .sum()
    });
    counting.await.expect("INFO commandstats")
}

#[tokio::test]
async fn a_code_can_be_exchanged_with_a_form_body_and_http_basic_credentials() {
    let app = spawn_app().await;
    let record = code_record(&ENCODED);
    let code = app.write_code(&record).await;

    let response = app
        .post_form_basic(
            &ENCODED,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", ENCODED.redirect_uri),
            ],
        )
        .await;

    let answer = Answer::of(response).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let token = answer.json["access_token"].as_str().expect("access_token");
    let claims = verify_token(token, ENCODED.id, ISSUER).claims;
    assert_eq!(claims["client_id"], ENCODED.id);
    assert_eq!(claims["sub"], record.account_id.as_str());
}

#[tokio::test]
async fn a_basic_client_may_repeat_its_own_client_id_in_the_body() {
    let app = spawn_app().await;
    let record = code_record(&ENCODED);
    let code = app.write_code(&record).await;

    let response = app
        .post_form_basic(
            &ENCODED,
            &[
                ("client_id", ENCODED.id),
                ("code", &code),
                ("redirect_uri", ENCODED.redirect_uri),
            ],
        )
        .await;

    assert_token_of(&Answer::of(response).await, &ENCODED, &record);
}

#[tokio::test]
async fn credentials_in_basic_work_with_a_json_body_too() {
    let app = spawn_app().await;
    let record = code_record(&APP);
    let code = app.write_code(&record).await;

    let response = app
        .http
        .post(app.token_url())
        .header("Authorization", basic_auth(APP.id, APP.secret))
        .json(&json!({"code": code, "redirect_uri": APP.redirect_uri}))
        .send()
        .await
        .unwrap();

    assert_token_of(&Answer::of(response).await, &APP, &record);
}

#[tokio::test]
async fn camel_case_json_keys_are_accepted() {
    let app = spawn_app().await;
    let record = code_record(&APP);
    let code = app.write_code(&record).await;

    let answer = Answer::of(
        app.post_json(&json!({
            "grantType": "authorization_code",
            "clientId": APP.id,
            "clientSecret": APP.secret,
            "code": code,
            "redirectUri": APP.redirect_uri,
        }))
        .await,
    )
    .await;

    assert_token_of(&answer, &APP, &record);
}

#[tokio::test]
async fn grant_type_may_be_omitted_and_then_means_authorization_code() {
    let app = spawn_app().await;
    let record = code_record(&APP);
    let code = app.write_code(&record).await;
    let mut body = json_request(&APP, &code);
    body.as_object_mut().unwrap().remove("grant_type");

    let response = app.post_json(&body).await;

    assert_token_of(&Answer::of(response).await, &APP, &record);
}

#[tokio::test]
async fn the_response_has_exactly_the_seed_fields_and_is_not_cacheable() {
    let app = spawn_app().await;
    let mut record = code_record(&APP);
    record.scope = ALLOWED_SCOPES.map(String::from).to_vec();
    let code = app.write_code(&record).await;

    let answer = Answer::of(app.exchange(&APP, &code).await).await;

    assert_eq!(answer.status, 200, "{}", answer.text);
    let mut fields: Vec<&str> = answer
        .json
        .as_object()
        .expect("a JSON object")
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    let expected = [
        "access_token",
        "account_id",
        "expires_in",
        "scope",
        "token_type",
        "username",
    ];
    assert_eq!(fields, expected);
    assert_eq!(answer.json["token_type"], "bearer");
    assert_eq!(answer.json["expires_in"], 1800);
    assert_eq!(answer.json["scope"], "user:basic user:contract");
    assert_eq!(answer.json["username"], record.username.as_str());
    assert_eq!(answer.json["account_id"], record.account_id.as_str());
    assert!(
        answer
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/json"))
    );
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    assert_eq!(answer.header("pragma"), Some("no-cache"));
}

#[tokio::test]
async fn the_code_is_deleted_from_redis_by_the_exchange() {
    let app = spawn_app().await;
    let code = app.issue_code(&APP).await;
    assert!(app.code_exists(&code).await);

    let response = app.exchange(&APP, &code).await;

    assert_eq!(response.status().as_u16(), 200);
    assert!(
        !app.code_exists(&code).await,
        "the code outlived its exchange"
    );
}

#[tokio::test]
async fn a_pkce_code_is_exchanged_with_the_right_verifier_for_s256_and_plain() {
    let app = spawn_app().await;
    for (method, challenge) in [("S256", RFC7636_CHALLENGE), ("plain", RFC7636_VERIFIER)] {
        let mut record = code_record(&APP);
        record.code_challenge = Some(challenge.into());
        record.code_challenge_method = Some(method.into());
        let code = app.write_code(&record).await;
        let mut body = json_request(&APP, &code);
        body["code_verifier"] = RFC7636_VERIFIER.into();

        let answer = Answer::of(app.post_json(&body).await).await;

        assert_eq!(answer.status, 200, "{method}: {}", answer.text);
    }
}

#[tokio::test]
async fn content_type_parameters_and_case_and_unknown_fields_are_accepted() {
    let app = spawn_app().await;
    for content_type in [
        "application/json; charset=utf-8",
        "Application/JSON",
        "application/x-www-form-urlencoded; charset=UTF-8",
        // Apache HttpClient 4's default for a form (`UrlEncodedFormEntity`): ASCII, so the same.
        "application/x-www-form-urlencoded; charset=ISO-8859-1",
        // And what Java clients in China often declare: the same for an ASCII body.
        "application/json; charset=GBK",
        "application/x-www-form-urlencoded; charset=GB18030",
    ] {
        let code = app.issue_code(&APP).await;
        let mut body = json_request(&APP, &code);
        body["state"] = "ignored".into();
        body["nonce"] = "ignored too".into();
        let body = if content_type.to_ascii_lowercase().contains("json") {
            body.to_string()
        } else {
            serde_urlencoded::to_string(body.as_object().unwrap()).unwrap()
        };

        let response = app
            .http
            .post(app.token_url())
            .header("Content-Type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();

        let answer = Answer::of(response).await;
        assert_eq!(answer.status, 200, "{content_type}: {}", answer.text);
    }
}

/// A registry entry ending in `*` registers every redirect URI under it (README, "Client
/// registry"), for an authorize service that matches prefixes: a code issued for one of them
/// is exchanged, one issued for a URI beside it, or one whose path climbs out of it, is
/// `invalid_grant` as any unregistered one.
#[tokio::test]
async fn a_redirect_uri_under_a_prefix_entry_is_registered() {
    let exact = format!("[{}", serde_json::to_string(APP.redirect_uri).unwrap());
    let clients = crate::fixtures::clients_toml().replacen(
        &format!("{exact},"),
        &format!("{exact},\"https://app.example/pages/*\","),
        1,
    );
    assert!(clients.contains("/pages/*"), "{clients}");
    let file = crate::helpers::test_dir().join(format!("prefix-{}.toml", uuid::Uuid::new_v4()));
    std::fs::write(&file, clients).unwrap();
    let app = spawn_app_with(|s| s.clients.file = file).await;
    let exchanged = |redirect_uri: &'static str| {
        let app = &app;
        async move {
            let mut record = code_record(&APP);
            record.redirect_uri = redirect_uri.into();
            let code = app.write_code(&record).await;
            let mut body = json_request(&APP, &code);
            body["redirect_uri"] = redirect_uri.into();
            Answer::of(app.post_json(&body).await).await
        }
    };

    for under in [
        "https://app.example/pages/orders?id=5",
        "https://app.example/pages",
    ] {
        let answer = exchanged(under).await;
        assert_eq!(answer.status, 200, "{under}: {}", answer.text);
    }
    for beside in [
        "https://app.example/pagesx",
        "https://app.example/pages/../admin",
        "https://app.example/pages/..;/admin",
    ] {
        let answer = exchanged(beside).await;
        assert_eq!(answer.status, 400, "{beside}: {}", answer.text);
        assert_eq!(answer.error(), "invalid_grant");
        assert!(answer.text.contains("not registered"), "{}", answer.text);
    }
}
