//! What the log says about requests: a client id only once that client has authenticated, and
//! never a value from a request or a record (a secret, a code, a token, a user's data).

use actix_web::ResponseError;
use deadpool_redis::redis;
use serde_json::json;
use sso_token::issue_code;
use sso_token::oauth::OAuthError;
use sso_token::routes::paths::{INTROSPECT_PATH, REVOKE_PATH, USERINFO_PATH};
use uuid::Uuid;

use crate::helpers::{
    APP, Answer, HYGIENIC, LOGGED, TestApp, TestClient, basic_auth, clients_toml, code_record,
    json_request, spawn_app, spawn_app_with, test_dir, test_settings,
};
use crate::log_capture;
use crate::server_process::{ServerProcess, config_dir};

const WRONG_SECRET: &str = "wrong-secret-Ux9Kd2Mv7Qa4Lp1Ze6Rb";

/// A number no other test logs: serde's messages quote such values (`integer `…``).
fn unique_number() -> u64 {
    1_000_000_000_000 + (Uuid::new_v4().as_u128() % 1_000_000_000_000) as u64
}

/// Token, introspection and revocation requests with `id`/`secret` in a JSON body, then the
/// same in an HTTP Basic header; the answers, and what was sent that must stay out of the log:
/// the codes of the exchanges and the Basic credentials as they travel (base64 of `id:secret`,
/// in which the secret itself does not appear).
async fn each_endpoint(
    app: &TestApp,
    id: &str,
    secret: &str,
    token: &str,
) -> (Vec<Answer>, Vec<String>) {
    let (mut answers, mut sent) = in_bodies(app, id, secret, token).await;
    let code = app.issue_code(&LOGGED).await;
    let exchange = [
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("redirect_uri", LOGGED.redirect_uri),
    ];
    let query = [("token", token)];
    let basic = basic_auth(id, secret);
    for (url, form) in [
        (app.token_url(), &exchange[..]),
        (app.url(INTROSPECT_PATH), &query[..]),
        (app.url(REVOKE_PATH), &query[..]),
    ] {
        let request = app.http.post(url).header("Authorization", &basic);
        answers.push(Answer::of(request.form(form).send().await.unwrap()).await);
    }
    sent.push(code);
    sent.push(basic_credentials(id, secret));
    (answers, sent)
}

/// What an `Authorization: Basic` header carries for `id` and `secret`: the base64 part.
fn basic_credentials(id: &str, secret: &str) -> String {
    let header = basic_auth(id, secret);
    header
        .strip_prefix("Basic ")
        .expect("a Basic header")
        .to_owned()
}

/// The JSON-body half of [`each_endpoint`].
async fn in_bodies(
    app: &TestApp,
    id: &str,
    secret: &str,
    token: &str,
) -> (Vec<Answer>, Vec<String>) {
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
    (answers, vec![code])
}

#[tokio::test]
async fn the_access_log_names_a_client_only_once_it_has_authenticated() {
    let log = log_capture::mark();
    let app = spawn_app().await;
    let claimed = format!("claimed-{}", Uuid::new_v4().simple());
    // The one exchange that passes authentication: its code is read by the exchange, the store
    // and the grant check, and is live until the take.
    let code = app.issue_code(&LOGGED).await;
    let exchanged = Answer::of(app.exchange(&LOGGED, &code).await).await;
    assert_eq!(exchanged.status, 200, "{}", exchanged.text);
    let token = exchanged.json["access_token"]
        .as_str()
        .expect("an access token")
        .to_owned();
    let mut sent = vec![code.clone()];
    for id in [claimed.as_str(), LOGGED.id] {
        let (answers, values) = each_endpoint(&app, id, WRONG_SECRET, &token).await;
        for answer in answers {
            assert_eq!(answer.status, 401, "{id}: {}", answer.text);
        }
        sent.extend(values);
    }
    // Values in a query string, where clients put them by mistake (README: the access log has
    // the path without its query; the token endpoint refuses them by name): credentials and a
    // live code for the token endpoint, the token for user info.
    let in_query = app.issue_code(&LOGGED).await;
    let url = format!(
        "{}?client_id={}&client_secret={WRONG_SECRET}&code={in_query}",
        app.token_url(),
        LOGGED.id
    );
    let answer = Answer::of(app.http.post(url).json(&json!({})).send().await.unwrap()).await;
    assert_eq!(answer.status, 400, "{}", answer.text);
    assert_eq!(answer.error(), "invalid_request");
    let url = format!("{}?access_token={token}", app.url(USERINFO_PATH));
    let answer = Answer::of(app.http.get(url).send().await.unwrap()).await;
    assert_eq!(answer.status, 401, "{}", answer.text);
    sent.push(in_query);
    assert!(app.is_active(&LOGGED, &token).await);
    assert_eq!(app.user_info(&token).await.status, 200);
    // The other paths that read a code after authentication: a replay (which revokes the
    // token), and a grant refused for a redirect_uri that is not the code's.
    let replay = Answer::of(app.exchange(&LOGGED, &code).await).await;
    assert_eq!((replay.status, replay.error()), (400, "invalid_grant"));
    assert!(
        !app.is_active(&LOGGED, &token).await,
        "revoked by the replay"
    );
    assert_eq!(app.revoke(&LOGGED, &token, None).await.status, 200);
    let misdirected = app.issue_code(&LOGGED).await;
    let mut body = json_request(&LOGGED, &misdirected);
    body["redirect_uri"] = "https://logged.example/elsewhere".into();
    let refused = Answer::of(app.post_json(&body).await).await;
    assert_eq!((refused.status, refused.error()), (400, "invalid_grant"));
    sent.push(misdirected);

    // The exchange, two introspections, the user info, the replay, the revocation and the
    // refused grant: 7 lines, none of the twelve failures.
    let ours = |lines: &[String]| {
        lines
            .iter()
            .filter(|l| l.contains("sso_token::access") && l.ends_with("client=logged-app"))
            .count()
    };
    let lines = log.lines_when(|lines| ours(lines) >= 7).await;
    assert_eq!(ours(&lines), 7, "{lines:#?}");
    assert!(!lines.iter().any(|l| l.contains(&claimed)), "{lines:#?}");
    // The introspections and the revocation authenticate LOGGED in Basic.
    sent.push(basic_credentials(LOGGED.id, LOGGED.secret));
    let secrets = [WRONG_SECRET, LOGGED.secret, token.as_str()];
    for value in secrets.into_iter().chain(sent.iter().map(String::as_str)) {
        let leaked: Vec<&String> = lines.iter().filter(|l| l.contains(value)).collect();
        assert!(leaked.is_empty(), "{value} reached the log: {leaked:#?}");
    }
}

#[tokio::test]
async fn malformed_bodies_and_records_leave_their_values_out_of_answers_and_the_log() {
    let log = log_capture::mark();
    let app = spawn_app().await;
    let secret = unique_number();
    // A body that is not JSON, and one whose secret has the wrong type, both with the secret.
    let bodies = [
        format!(r#"{{"client_id":"app","client_secret":"s{secret}" "code":"x"}}"#),
        format!(r#"{{"client_id":"app","client_secret":{secret},"code":"x","redirect_uri":"y"}}"#),
    ];
    for body in bodies {
        let request = app
            .http
            .post(app.token_url())
            .header("Content-Type", "application/json")
            .body(body.clone());
        let answer = Answer::of(request.send().await.unwrap()).await;
        assert_eq!(
            (answer.status, answer.error()),
            (400, "invalid_request"),
            "{body}"
        );
        assert!(
            !answer.text.contains(&secret.to_string()),
            "{}",
            answer.text
        );
    }
    // A code record whose username is a number: serde's message would quote it.
    let record = json!({
        "client_id": HYGIENIC.id,
        "redirect_uri": HYGIENIC.redirect_uri,
        "username": secret,
        "account_id": "acct-1",
        "scope": ["user:basic"],
    });
    let code = issue_code::new_code().unwrap();
    assert!(
        app.store
            .put_code(&code, &record.to_string(), 60)
            .await
            .unwrap()
    );
    let answer = Answer::of(app.exchange(&HYGIENIC, &code).await).await;
    assert_eq!((answer.status, answer.error()), (400, "invalid_grant"));
    // A token record that no longer reads: introspection finds the token inactive and logs why.
    let token = app.token_for(&HYGIENIC).await;
    let jti = jti_of(&token);
    let unreadable = json!({"jti": secret, "client_id": HYGIENIC.id}).to_string();
    let key = app.store.token_key(&jti);
    let _: () = app
        .query(redis::cmd("SET").arg(&key).arg(&unreadable).arg("KEEPTTL"))
        .await;
    assert!(!app.is_active(&HYGIENIC, &token).await);

    // Other tests log the same phrases for their clients: only HYGIENIC's lines are this test's.
    let ours = |line: &String, what: &str| line.contains(what) && line.contains(HYGIENIC.id);
    let lines = log
        .lines_when(|lines| {
            lines.iter().any(|l| ours(l, "code record is malformed"))
                && lines.iter().any(|l| ours(l, "token record of client"))
        })
        .await;
    let said = |what: &str| lines.iter().find(|l| ours(l, what)).cloned();
    for what in ["code record is malformed", "token record of client"] {
        let line = said(what).unwrap_or_default();
        assert!(line.contains("line 1, column"), "{line}");
    }
    // Nor the code, the client's secret or the token of the refused exchange and introspection.
    let values = [secret.to_string(), code, HYGIENIC.secret.to_owned(), token];
    let leaked: Vec<&String> = lines
        .iter()
        .filter(|l| values.iter().any(|value| l.contains(value.as_str())))
        .collect();
    assert!(leaked.is_empty(), "{leaked:#?}");
}

/// The `jti` claim of a token, read without verifying it.
fn jti_of(token: &str) -> String {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("a JWS");
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    let claims: serde_json::Value = serde_json::from_slice(&payload).expect("JSON claims");
    claims["jti"].as_str().expect("a jti").to_owned()
}

#[tokio::test]
async fn the_access_log_names_the_client_a_trusted_proxy_forwarded_for_and_the_proxy() {
    let log = log_capture::mark();
    let app = spawn_app_with(|s| s.throttle.trusted_proxies = vec!["127.0.0.0/8".into()]).await;
    // Paths no other test asks for, so that these lines are this test's (404s: logged too).
    let path = |n: u8| format!("/not-here-{}-{n}", Uuid::new_v4().simple());
    let (forwarded, bare) = (path(1), path(2));
    let client = format!("203.0.113.{}", unique_number() % 250 + 1);
    let sent = app
        .http
        .get(app.url(&forwarded))
        .header("X-Forwarded-For", format!("198.51.100.7, {client}"))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 404);
    let sent = app.http.get(app.url(&bare)).send().await.unwrap();
    assert_eq!(sent.status(), 404);

    let line_of = |lines: &[String], path: &str| {
        let quoted = format!("\"GET {path}\"");
        lines.iter().find(|l| l.contains(&quoted)).cloned()
    };
    let lines = log
        .lines_when(|lines| line_of(lines, &forwarded).is_some() && line_of(lines, &bare).is_some())
        .await;
    let (forwarded, bare) = (line_of(&lines, &forwarded), line_of(&lines, &bare));
    let forwarded = forwarded.expect("the forwarded request's access line");
    let bare = bare.expect("the other request's access line");
    // The right-most hop that is not a trusted proxy, then the proxy (the test's loopback peer).
    assert!(
        forwarded.contains(&format!(" {client} via 127.0.0.1 \"GET ")),
        "{forwarded}"
    );
    assert!(!forwarded.contains("198.51.100.7"), "{forwarded}");
    // A trusted proxy's request that names no client.
    assert!(bare.contains(" - via 127.0.0.1 \"GET "), "{bare}");
}

/// Without a trusted proxy a line names the peer alone, not the peer "via" itself, and an
/// `X-Forwarded-For` that peer sent names no one.
#[tokio::test]
async fn the_access_log_names_a_peer_that_is_no_trusted_proxy_alone() {
    let log = log_capture::mark();
    let app = spawn_app().await;
    let path = format!("/not-here-{}", Uuid::new_v4().simple());
    let sent = app
        .http
        .get(app.url(&path))
        .header("X-Forwarded-For", "198.51.100.7")
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 404);

    let quoted = format!("\"GET {path}\"");
    let lines = log
        .lines_when(|lines| lines.iter().any(|l| l.contains(&quoted)))
        .await;
    let line = lines.iter().find(|l| l.contains(&quoted)).unwrap();
    assert!(
        line.contains(&format!(": 127.0.0.1 {quoted} 404 ")),
        "{line}"
    );
}

/// The health probes come every few seconds from each balancer and orchestrator, per replica:
/// they stay out of the access log, which still has every other request.
#[tokio::test]
async fn the_access_log_leaves_out_the_health_probes() {
    let log = log_capture::mark();
    let app = spawn_app().await;
    let other = format!("/not-here-{}", Uuid::new_v4().simple());
    for path in ["/healthz", "/readyz"] {
        let answered = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(answered.status(), 200, "{path}");
    }
    // Sent last: once its line is in, the probes' would be too.
    let answered = app.http.get(app.url(&other)).send().await.unwrap();
    assert_eq!(answered.status(), 404);

    let lines = log
        .lines_when(|lines| {
            lines
                .iter()
                .any(|l| l.contains(&format!("\"GET {other}\"")))
        })
        .await;
    // No test's probe may be logged, so any probe line at all is a failure.
    for path in ["/healthz", "/readyz"] {
        let quoted = format!("\"GET {path}\"");
        assert!(
            !lines.iter().any(|l| l.contains(&quoted)),
            "{path} was logged"
        );
    }
}

/// A path is logged cut to 256 bytes: one of 64 KiB (what the parser takes) would make a line
/// that log pipelines split.
#[tokio::test]
async fn the_access_log_cuts_a_long_path() {
    let log = log_capture::mark();
    let app = spawn_app().await;
    let long = format!("/long-{}-{}", Uuid::new_v4().simple(), "p".repeat(5_000));
    let answered = app.http.get(app.url(&long)).send().await.unwrap();
    assert_eq!(answered.status(), 404);

    let start = &long[..256];
    let lines = log
        .lines_when(|lines| lines.iter().any(|l| l.contains(start)))
        .await;
    let line = lines.iter().find(|l| l.contains(start)).unwrap();
    let shown = &line[..line.len().min(400)];
    assert!(line.len() < 512, "{} bytes: {shown}…", line.len());
    assert!(line.contains(&format!("\"GET {start}…\"")), "{shown}");
}

/// So is a method: any token is one to the parser, up to the head's 128 KiB.
#[tokio::test]
async fn the_access_log_cuts_a_long_method() {
    let log = log_capture::mark();
    let app = spawn_app().await;
    let path = format!("/method-{}", Uuid::new_v4().simple());
    let method = reqwest::Method::from_bytes("M".repeat(50_000).as_bytes()).unwrap();
    let answered = app.http.request(method, app.url(&path)).send().await;
    assert_eq!(answered.unwrap().status(), 404);

    let lines = log
        .lines_when(|lines| lines.iter().any(|l| l.contains(&path)))
        .await;
    let line = lines.iter().find(|l| l.contains(&path)).unwrap();
    let shown = &line[..line.len().min(400)];
    assert!(line.len() < 512, "{} bytes: {shown}…", line.len());
    let cut = format!("\"{}… {path}\"", "M".repeat(16));
    assert!(line.contains(&cut), "{shown}");
}

/// Why a client was refused reaches the log under its id, where the access log has only the
/// status: a wrong secret of a registered id, and a code refused to the client that
/// authenticated (here its redirect URI), with the reason. Never the code.
#[tokio::test]
async fn refusals_are_logged_under_the_registered_client_with_the_reason() {
    let log = log_capture::mark();
    let (app, client) = with_own_client("refused").await;
    let id = client.id;
    let has = |lines: &[String], text: &str| lines.iter().any(|l| l.contains(text));

    let code = app.issue_code(&client).await;
    let wrong_secret = TestClient {
        secret: WRONG_SECRET,
        ..client
    };
    assert_eq!(app.exchange(&wrong_secret, &code).await.status(), 401);
    let failed = format!("client {id}: authentication failed");
    log.lines_when(|lines| has(lines, &failed)).await;

    // In the same second too: each kind of refusal has its own line a second.
    let elsewhere = TestClient {
        redirect_uri: "https://elsewhere.example/cb",
        ..client
    };
    let answer = Answer::of(app.exchange(&elsewhere, &code).await).await;
    assert_eq!(
        (answer.status, answer.error()),
        (400, "invalid_grant"),
        "{}",
        answer.text
    );
    let refused = format!("client {id}: token request refused, invalid_grant: ");
    let lines = log.lines_when(|lines| has(lines, &refused)).await;
    let line = lines
        .iter()
        .find(|l| l.contains(&refused))
        .expect("the refusal");
    assert!(line.starts_with("INFO"), "{line}");
    assert!(line.contains("redirect_uri"), "{line}");
    assert!(!has(&lines, &code), "the code reached the log");
}

/// An app whose registry has, besides the fixture's clients, one of this test's own (APP's
/// entry under a fresh id starting with `prefix`), so that its lines are this test's and no
/// other test's line of the same second holds them back.
async fn with_own_client(prefix: &str) -> (TestApp, TestClient) {
    with_own_client_where(prefix, "").await
}

/// The same with `lines` added to the client's entry.
async fn with_own_client_where(prefix: &str, lines: &str) -> (TestApp, TestClient) {
    let id: &'static str =
        Box::leak(format!("{prefix}-{}", Uuid::new_v4().simple()).into_boxed_str());
    let fixture = clients_toml();
    let app_entry = fixture
        .split("[[clients]]")
        .find(|entry| entry.contains(&format!("id = \"{}\"\n", APP.id)))
        .expect("APP in the fixture");
    let own_entry = app_entry.replace(&format!("id = \"{}\"", APP.id), &format!("id = \"{id}\""));
    let file = test_dir().join(format!("clients-{id}.toml"));
    let entry = format!("{fixture}[[clients]]{own_entry}\n{lines}\n");
    std::fs::write(&file, entry).expect("clients file");
    let app = spawn_app_with(|s| s.clients.file = file).await;
    (app, TestClient { id, ..APP })
}

/// A failed authentication's line says whether the client is disabled or its secret wrong, and
/// then whether the secret came in Basic credentials (which some libraries garble: README,
/// "Compatibility") or in the body. One client each: a client's failures log a line a second.
#[tokio::test]
async fn a_failed_authentication_says_if_the_client_is_disabled_or_how_the_secret_came() {
    let log = log_capture::mark();
    let (body_app, in_body) = with_own_client("wrong-in-body").await;
    let (basic_app, in_basic) = with_own_client("wrong-in-basic").await;
    let (disabled_app, disabled) = with_own_client_where("disabled", "enabled = false").await;
    let wrong = |client: &TestClient| TestClient {
        secret: WRONG_SECRET,
        ..*client
    };

    let code = body_app.issue_code(&in_body).await;
    assert_eq!(
        body_app.exchange(&wrong(&in_body), &code).await.status(),
        401
    );
    let code = basic_app.issue_code(&in_basic).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", in_basic.redirect_uri),
    ];
    let answer = basic_app.post_form_basic(&wrong(&in_basic), &form).await;
    assert_eq!(answer.status(), 401);
    let code = disabled_app.issue_code(&disabled).await;
    assert_eq!(disabled_app.exchange(&disabled, &code).await.status(), 401);

    let expected = [
        format!(
            "client {}: authentication failed: wrong secret, sent in the body",
            in_body.id
        ),
        format!(
            "client {}: authentication failed: wrong secret, sent in Basic credentials",
            in_basic.id
        ),
        format!(
            "client {}: authentication failed: the client is disabled",
            disabled.id
        ),
    ];
    let has = |lines: &[String], text: &str| lines.iter().any(|l| l.contains(text));
    let lines = log
        .lines_when(|lines| expected.iter().all(|e| has(lines, e)))
        .await;
    for line in expected {
        assert!(has(&lines, &line), "{line}: {lines:#?}");
    }
}

/// A scope in a code record is the authorize service's to write, and may come from the user's
/// authorization request: the refusal's log line quotes it escaped, so that a newline in it
/// cannot start a forged line.
#[tokio::test]
async fn a_refused_scope_cannot_forge_a_log_line() {
    let log = log_capture::mark();
    let (app, client) = with_own_client("scoped").await;
    let forged = format!("FORGED-{}", Uuid::new_v4().simple());
    let mut record = code_record(&client);
    record.scope = vec!["user:basic".into(), format!("x\n{forged} ERROR redis down")];
    let code = app.write_code(&record).await;
    let answer = Answer::of(app.exchange(&client, &code).await).await;
    assert_eq!(
        (answer.status, answer.error()),
        (400, "invalid_scope"),
        "{}",
        answer.text
    );
    let refused = format!(
        "client {}: token request refused, invalid_scope: ",
        client.id
    );
    let lines = log
        .lines_when(|lines| lines.iter().any(|l| l.contains(&refused)))
        .await;
    let line = lines
        .iter()
        .find(|l| l.contains(&refused))
        .expect("the refusal");
    assert!(line.contains(&format!("x\\n{forged}")), "{line}");
    assert!(!line.contains(char::is_control), "{line:?}");
}

/// A registered client that presents another client's spent code, in a loop, revokes nothing
/// (the token is not its own) and is told so in the log at most once a second.
#[tokio::test]
async fn another_clients_spent_code_presented_in_a_loop_is_one_warning_a_second() {
    let log = log_capture::mark();
    let (app, intruder) = with_own_client("intruder").await;
    let code = app.issue_code(&APP).await;
    let exchanged = Answer::of(app.exchange(&APP, &code).await).await;
    let token = exchanged.json["access_token"]
        .as_str()
        .expect("a token")
        .to_owned();
    let started = std::time::Instant::now();
    const TRIES: usize = 30;
    for _ in 0..TRIES {
        let answer = Answer::of(app.exchange(&intruder, &code).await).await;
        assert_eq!((answer.status, answer.error()), (400, "invalid_grant"));
    }
    let warned = format!(
        "client {}: spent authorization code presented again",
        intruder.id
    );
    assert_at_most_once_a_second(&log, &warned, started, TRIES).await;
    assert!(
        app.is_active(&APP, &token).await,
        "another client's replay revoked the token"
    );
}

/// A client that presents each of its spent codes again revokes each token, and is warned of
/// at most once a second: a client retrying every exchange would otherwise write a line per
/// token it was issued. Every token is revoked all the same.
#[tokio::test]
async fn its_own_codes_replayed_in_a_loop_are_one_warning_a_second() {
    let log = log_capture::mark();
    let (app, client) = with_own_client("replayer").await;
    let started = std::time::Instant::now();
    const TRIES: usize = 30;
    let mut tokens = Vec::with_capacity(TRIES);
    for _ in 0..TRIES {
        let code = app.issue_code(&client).await;
        tokens.push(app.token_from(&client, &code).await);
        let replayed = Answer::of(app.exchange(&client, &code).await).await;
        assert_eq!((replayed.status, replayed.error()), (400, "invalid_grant"));
    }
    let warned = format!(
        "client {}: authorization code replayed; its token is revoked",
        client.id
    );
    assert_at_most_once_a_second(&log, &warned, started, TRIES).await;
    // Each line names a token it revoked, by its `jti`.
    let jtis: Vec<String> = (tokens.iter())
        .map(|t| {
            crate::helpers::verify_token(t, client.id, crate::helpers::ISSUER).claims["jti"]
                .to_string()
        })
        .collect();
    let lines = log.lines();
    let named = (lines.iter()).filter(|l| l.contains(&warned)).all(|l| {
        jtis.iter()
            .any(|jti| l.contains(&format!("(jti {})", jti.trim_matches('"'))))
    });
    assert!(named, "a replay line without its token's jti");
    for token in &tokens {
        assert!(
            !app.is_active(&client, token).await,
            "a replayed code's token is active"
        );
    }
}

/// `warned` is in the log, and at most once a second since `started`, for `tries` occasions.
async fn assert_at_most_once_a_second(
    log: &log_capture::Mark,
    warned: &str,
    started: std::time::Instant,
    tries: usize,
) {
    let seconds = started.elapsed().as_secs() as usize + 1;
    let lines = log
        .lines_when(|lines| lines.iter().any(|l| l.contains(warned)))
        .await;
    let warnings = lines.iter().filter(|l| l.contains(warned)).count();
    // One per second boundary crossed at most, and a line in the same second as the first.
    assert!(
        warnings <= seconds + 1 && warnings < tries,
        "{warnings} warnings in {seconds} s"
    );
}

/// A request actix cannot parse is answered 400 before any route; actix logged an ERROR line
/// for each, so anyone could flood the log. The real binary, whose logger main sets up.
#[tokio::test]
async fn requests_that_are_not_http_do_not_flood_the_log() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let server = ServerProcess::start(&config_dir(&test_settings(), &[]));
    let address = server.base.trim_start_matches("http://").to_owned();
    for garbage in [&b"GARBAGE\r\n\r\n"[..], b"GET /healthz HTTP/1.1\r\n\r\n"].repeat(10) {
        let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
        stream.write_all(garbage).await.unwrap();
        let mut answer = Vec::new();
        let read = stream.read_to_end(&mut answer);
        tokio::time::timeout(std::time::Duration::from_secs(5), read)
            .await
            .expect("answered and closed")
            .unwrap();
        assert!(answer.starts_with(b"HTTP/1.1 400"), "{answer:?}");
    }

    server.signal("TERM");
    let lines = server.log_until("SIGTERM: no new connections");

    let flood: Vec<_> = lines
        .iter()
        .filter(|l| l.contains("stream error"))
        .collect();
    assert!(flood.is_empty(), "{flood:#?}");
}

/// A client id that libraries sending unencoded Basic credentials would garble is named at
/// start (and at every reload); plain ids are not.
#[tokio::test]
async fn a_client_id_that_basic_credentials_would_garble_is_warned_about() {
    let mark = log_capture::mark();
    let (_plain, plain) = with_own_client("plain").await;
    let (_app, garbled) = with_own_client("has+plus").await;

    let lines = mark
        .lines_when(|lines| lines.iter().any(|l| l.contains(garbled.id)))
        .await;

    let warned = lines.iter().find(|l| l.contains(garbled.id)).unwrap();
    assert!(warned.contains("A-Z a-z 0-9 - . _ ~"), "{warned}");
    assert!(!lines.iter().any(|l| l.contains(plain.id)), "{lines:#?}");
}

/// A bug or a broken deployment (`OAuthError::Internal`: a random source or a key that fails,
/// nothing a request can cause) is answered with a bare `server_error`; its cause is told in
/// the log alone, as an error.
#[tokio::test]
async fn an_internal_errors_cause_is_logged_as_an_error() {
    let log = log_capture::mark();
    let cause = format!("cause-{}", unique_number());

    let response = OAuthError::internal(std::io::Error::other(cause.clone())).error_response();

    assert_eq!(response.status().as_u16(), 500);
    let lines = log
        .lines_when(|lines| lines.iter().any(|l| l.contains(&cause)))
        .await;
    let line = lines.iter().find(|l| l.contains(&cause)).unwrap();
    assert!(
        line.starts_with("ERROR ") && line.ends_with(&format!("internal error: {cause}")),
        "{line}"
    );
}
