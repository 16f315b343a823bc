//! `GET /metrics`: every answer is counted under its endpoint and RFC 6749 outcome, and the
//! exchange's events (tokens, replays, revocations, Redis operations) have their series.

use serde_json::json;

use crate::helpers::{APP, Answer, TestApp, TestClient, json_request, spawn_app, spawn_app_with};

/// The value of the series `name` (with its labels, as printed) in a Prometheus exposition.
pub fn value(exposition: &str, series: &str) -> f64 {
    exposition
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no series {series} in\n{exposition}"))
}

pub async fn scrape(app: &TestApp, address: &str) -> String {
    let answer = Answer::of(
        app.http
            .get(format!("{address}/metrics"))
            .send()
            .await
            .expect("scrape"),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert!(
        answer
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/plain")),
        "{:?}",
        answer.headers
    );
    answer.text
}

fn token(outcome: &str) -> String {
    format!(r#"sso_requests_total{{endpoint="token",outcome="{outcome}"}}"#)
}

#[tokio::test]
async fn each_answer_is_counted_under_its_outcome_and_the_exchange_events_have_series() {
    let app = spawn_app().await;
    let code = app.issue_code(&APP).await;
    let wrong = TestClient {
        secret: "wrong-secret-Ux9Kd2Mv7Qa4Lp1Ze6Rb",
        ..APP
    };

    assert_eq!(app.exchange(&wrong, &code).await.status().as_u16(), 401);
    assert_eq!(app.exchange(&APP, &code).await.status().as_u16(), 200);
    assert_eq!(app.exchange(&APP, &code).await.status().as_u16(), 400);
    assert_eq!(
        app.post_json(&json!({"code": 1})).await.status().as_u16(),
        400
    );
    app.http
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .expect("readyz");

    let text = scrape(&app, &app.address).await;
    for (series, expected) in [
        (token("ok"), 1.0),
        (token("invalid_client"), 1.0),
        (token("invalid_grant"), 1.0),
        (token("invalid_request"), 1.0),
        (token("temporarily_unavailable"), 0.0),
        (
            r#"sso_requests_total{endpoint="readyz",outcome="ok"}"#.into(),
            1.0,
        ),
        (
            r#"sso_request_duration_seconds_count{endpoint="token"}"#.into(),
            4.0,
        ),
        ("sso_tokens_issued_total".into(), 1.0),
        ("sso_code_replays_total".into(), 1.0),
        (r#"sso_tokens_revoked_total{reason="replay"}"#.into(), 1.0),
        ("sso_client_auth_failures_total".into(), 1.0),
        (
            r#"sso_redis_duration_seconds_count{operation="exchange"}"#.into(),
            2.0,
        ),
        (
            r#"sso_redis_duration_seconds_count{operation="ping"}"#.into(),
            1.0,
        ),
        (
            r#"sso_redis_errors_total{operation="exchange"}"#.into(),
            0.0,
        ),
    ] {
        assert_eq!(value(&text, &series), expected, "{series}");
    }
    assert!(value(&text, "sso_redis_connections") >= 1.0);
}

#[tokio::test]
async fn introspection_user_info_and_revocation_time_their_token_record_operations() {
    let app = spawn_app().await;
    let token = app.token_for(&APP).await;

    assert!(app.is_active(&APP, &token).await);
    assert_eq!(app.user_info(&token).await.status, 200);
    assert_eq!(app.revoke(&APP, &token, None).await.status, 200);
    assert!(!app.is_active(&APP, &token).await);
    assert_eq!(app.user_info(&token).await.status, 401);

    let text = scrape(&app, &app.address).await;
    let requests = |endpoint: &str, outcome: &str| {
        format!(r#"sso_requests_total{{endpoint="{endpoint}",outcome="{outcome}"}}"#)
    };
    for (series, expected) in [
        // Two introspections and two user info requests: one record read each.
        (
            r#"sso_redis_duration_seconds_count{operation="get_token"}"#.into(),
            4.0,
        ),
        (
            r#"sso_redis_errors_total{operation="get_token"}"#.into(),
            0.0,
        ),
        (
            r#"sso_redis_duration_seconds_count{operation="delete_token"}"#.into(),
            1.0,
        ),
        (r#"sso_tokens_revoked_total{reason="request"}"#.into(), 1.0),
        (requests("introspect", "ok"), 2.0),
        (requests("userinfo", "ok"), 1.0),
        (requests("userinfo", "invalid_token"), 1.0),
        (requests("revoke", "ok"), 1.0),
    ] {
        assert_eq!(value(&text, &series), expected, "{series}");
    }
}

/// A path is routed percent-decoded, and counted as routed: the token endpoint's failures sent
/// to `access_toke%6e` count under `endpoint="token"`, where the alerts look.
#[tokio::test]
async fn an_encoded_path_is_counted_under_the_endpoint_it_reaches() {
    let app = spawn_app().await;
    let encoded = app.token_url().replace("access_token", "access_toke%6e");
    let answer = app
        .http
        .post(encoded)
        .json(&json_request(
            &TestClient {
                secret: "wrong",
                ..APP
            },
            "OC-1-unknown",
        ))
        .send()
        .await
        .expect("request");
    assert_eq!(answer.status().as_u16(), 401);

    let text = scrape(&app, &app.address).await;
    assert_eq!(value(&text, &token("invalid_client")), 1.0);
}

#[tokio::test]
async fn metrics_can_have_their_own_listener_and_then_leave_the_public_one() {
    let app = spawn_app_with(|s| s.metrics.listen = "127.0.0.1:0".into()).await;
    let port = app.metrics_port.expect("a metrics listener");

    let text = scrape(&app, &format!("http://127.0.0.1:{port}")).await;
    let public = app
        .http
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .expect("request");

    assert!(text.contains("sso_requests_total"));
    assert_eq!(public.status().as_u16(), 404);
}

/// The standard process series operators alert on: memory, file descriptors, CPU, start time.
#[tokio::test]
async fn the_process_series_are_exposed() {
    let app = spawn_app().await;
    let exposition = scrape(&app, &app.address).await;
    let series = |name: &str| value(&exposition, name);
    assert!(
        series("process_resident_memory_bytes") > 1e6,
        "{exposition}"
    );
    let open = series("process_open_fds");
    assert!(
        open >= 3.0 && open <= series("process_max_fds"),
        "{exposition}"
    );
    // Whole seconds (the prometheus crate's counter): present, if 0 this early.
    assert!(series("process_cpu_seconds_total") >= 0.0, "{exposition}");
    assert!(series("process_threads") >= 2.0, "{exposition}");
    assert!(series("process_start_time_seconds") > 1.7e9, "{exposition}");
}
