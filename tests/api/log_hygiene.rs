//! What the log says about requests: a client id only once that client has authenticated.

use serde_json::json;
use sso_token::startup::{INTROSPECT_PATH, REVOKE_PATH};
use uuid::Uuid;

use crate::helpers::{Answer, LOGGED, TestApp, spawn_app};
use crate::log_capture;

const WRONG_SECRET: &str = "wrong-secret-Ux9Kd2Mv7Qa4Lp1Ze6Rb";

/// Token, introspection and revocation requests with `id`/`secret` in a JSON body.
async fn each_endpoint(app: &TestApp, id: &str, secret: &str, token: &str) -> Vec<Answer> {
    let code = app.issue_code(&LOGGED).await;
    let exchange = json!({
        "client_id": id,
        "client_secret": secret,
        "code": code,
        "redirect_uri": LOGGED.redirect_uri,
    });
    let query = json!({"token": token, "client_id": id, "client_secret": secret});
    let mut answers = Vec::new();
    for (url, body) in [
        (app.token_url(), &exchange),
        (app.url(INTROSPECT_PATH), &query),
        (app.url(REVOKE_PATH), &query),
    ] {
        let response = app.http.post(url).json(body).send().await.unwrap();
        answers.push(Answer::of(response).await);
    }
    answers
}

#[tokio::test]
async fn the_access_log_names_a_client_only_once_it_has_authenticated() {
    let log = log_capture::mark();
    let app = spawn_app().await;
    let claimed = format!("claimed-{}", Uuid::new_v4().simple());
    let token = app.token_for(&LOGGED).await;
    for id in [claimed.as_str(), LOGGED.id] {
        for answer in each_endpoint(&app, id, WRONG_SECRET, &token).await {
            assert_eq!(answer.status, 401, "{id}: {}", answer.text);
        }
    }
    assert!(app.is_active(&LOGGED, &token).await);
    assert_eq!(app.user_info(&token).await.status, 200);
    assert_eq!(app.revoke(&LOGGED, &token, None).await.status, 200);

    // The token, the introspection, the user info and the revocation: 4 lines, none of the
    // six failures.
    let ours = |lines: &[String]| {
        lines
            .iter()
            .filter(|l| l.contains("sso_token::access") && l.ends_with("client=logged-app"))
            .count()
    };
    let lines = log.lines_when(|lines| ours(lines) >= 4).await;
    assert_eq!(ours(&lines), 4, "{lines:#?}");
    assert!(!lines.iter().any(|l| l.contains(&claimed)), "{lines:#?}");
}
