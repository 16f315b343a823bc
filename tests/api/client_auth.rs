//! Client authentication: one indistinguishable `invalid_client` for every failure, checked
//! before Redis is touched, so that a failed attempt burns no code.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;
use sso_token::routes::paths::{INTROSPECT_PATH, REVOKE_PATH};
use sso_token::secret_hash::hash_secret_sha256;

use crate::helpers::{
    APP, Answer, BASIC_CHALLENGE, DISABLED, ENCODED, ISSUER, OTHER, TestClient, basic_auth,
    clients_toml, code_record, json_request, spawn_app, spawn_app_with, test_dir, verify_token,
};

/// How the credentials travel.
#[derive(Clone, Copy, PartialEq)]
enum Via {
    Body,
    Basic,
    /// Basic without the RFC 6749 §2.3.1 form-urlencoding of id and secret.
    RawBasic,
}

const UNKNOWN_ID: &str = "no-such-app";
const WRONG_SECRET: &str = "wrong-secret-Ux9Kd2Mv7Qa4Lp1Ze6Rb";

#[tokio::test]
async fn every_client_authentication_failure_is_the_same_invalid_client() {
    let app = spawn_app().await;
    // (case, whose code is presented, client id, secret, how)
    #[rustfmt::skip]
    let too_long = "i".repeat(257);
    let cases: [(&str, &TestClient, &str, &str, Via); 11] = [
        (
            "unknown client in the body",
            &APP,
            UNKNOWN_ID,
            APP.secret,
            Via::Body,
        ),
        (
            "unknown client in Basic",
            &APP,
            UNKNOWN_ID,
            APP.secret,
            Via::Basic,
        ),
        (
            "wrong secret in the body",
            &APP,
            APP.id,
            WRONG_SECRET,
            Via::Body,
        ),
        (
            "wrong secret in Basic",
            &APP,
            APP.id,
            WRONG_SECRET,
            Via::Basic,
        ),
        (
            "another client's secret",
            &APP,
            APP.id,
            OTHER.secret,
            Via::Body,
        ),
        (
            "secret in another case",
            &APP,
            APP.id,
            &APP.secret.to_uppercase(),
            Via::Body,
        ),
        (
            "disabled client in the body",
            &DISABLED,
            DISABLED.id,
            DISABLED.secret,
            Via::Body,
        ),
        (
            "disabled client in Basic",
            &DISABLED,
            DISABLED.id,
            DISABLED.secret,
            Via::Basic,
        ),
        (
            "Basic not form-urlencoded",
            &ENCODED,
            ENCODED.id,
            ENCODED.secret,
            Via::RawBasic,
        ),
        (
            "a Basic id that is no VSCHAR",
            &APP,
            "äpp",
            APP.secret,
            Via::Basic,
        ),
        (
            "a Basic id over 256 bytes",
            &APP,
            &too_long,
            APP.secret,
            Via::Basic,
        ),
    ];
    let mut descriptions = Vec::new();
    for (name, owner, id, secret, via) in cases {
        let code = app.issue_code(owner).await;
        let form = [
            ("code", code.as_str()),
            ("redirect_uri", owner.redirect_uri),
        ];
        let request = app.http.post(app.token_url());
        let request = match via {
            Via::Body => request.json(&json!({
                "client_id": id,
                "client_secret": secret,
                "code": code,
                "redirect_uri": owner.redirect_uri,
            })),
            Via::Basic => request
                .header("Authorization", basic_auth(id, secret))
                .form(&form),
            Via::RawBasic => {
                let raw = format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")));
                request.header("Authorization", raw).form(&form)
            }
        };

        let answer = Answer::of(request.send().await.unwrap()).await;

        assert_eq!(
            (answer.status, answer.error()),
            (401, "invalid_client"),
            "{name}: {}",
            answer.text
        );
        answer.assert_error_shape(name);
        // RFC 9110 §15.5.2: every 401 carries a challenge, Basic or body credentials alike.
        assert_eq!(
            answer.header("www-authenticate"),
            Some(BASIC_CHALLENGE),
            "{name}"
        );
        for secret in [secret, owner.secret] {
            assert!(
                !answer.text.contains(secret),
                "{name}: the secret is echoed"
            );
        }
        assert!(!answer.text.contains(&code), "{name}: the code is echoed");
        assert!(app.code_exists(&code).await, "{name}: the code was burnt");
        descriptions.push(answer.json["error_description"].clone());
    }
    descriptions.dedup();
    assert_eq!(
        descriptions.len(),
        1,
        "failures can be told apart: {descriptions:?}"
    );
}

#[tokio::test]
async fn a_wrong_secret_does_not_consume_the_code() {
    let app = spawn_app().await;
    let record = code_record(&APP);
    let code = app.write_code(&record).await;
    let wrong = TestClient {
        secret: WRONG_SECRET,
        ..APP
    };

    let refused = app.exchange(&wrong, &code).await;
    let accepted = Answer::of(app.exchange(&APP, &code).await).await;

    assert_eq!(refused.status().as_u16(), 401);
    assert_eq!(accepted.status, 200, "{}", accepted.text);
    let token = accepted.json["access_token"].as_str().expect("a token");
    let claims = verify_token(token, APP.id, ISSUER).claims;
    assert_eq!(claims["client_id"], APP.id);
    assert_eq!(claims["sub"], record.account_id.as_str());
}

/// A gateway's own `Authorization: Bearer …` (or a browser's `Negotiate`) is not client
/// authentication: the credentials in the body are used, at the token endpoint and at
/// introspection, as Keycloak and Hydra do.
#[tokio::test]
async fn an_authorization_header_of_another_scheme_does_not_hide_the_body_credentials() {
    let app = spawn_app().await;
    let code = app.write_code(&code_record(&APP)).await;

    let exchanged = (app.http.post(app.token_url()))
        .header("Authorization", "Bearer gateway-token")
        .json(&json_request(&APP, &code))
        .send()
        .await
        .unwrap();
    let exchanged = Answer::of(exchanged).await;
    assert_eq!(exchanged.status, 200, "{}", exchanged.text);
    let token = exchanged.json["access_token"].as_str().expect("a token");

    let introspected = (app.http.post(app.url(INTROSPECT_PATH)))
        .header("Authorization", "Negotiate YIIBhwYGKwYBBQUCoIIB")
        .form(&[
            ("token", token),
            ("client_id", APP.id),
            ("client_secret", APP.secret),
        ])
        .send()
        .await
        .unwrap();
    let introspected = Answer::of(introspected).await;
    assert_eq!(introspected.status, 200, "{}", introspected.text);
    assert_eq!(introspected.json["active"], true, "{}", introspected.text);
}

/// Refused before the code is touched: it stays, and once the client is allowed the grant
/// (a reload), it is exchanged.
#[tokio::test]
async fn a_client_not_allowed_the_code_grant_is_an_unauthorized_client() {
    let app = spawn_app().await;
    let client = &crate::helpers::NO_CODE_GRANT;
    let code = app.write_code(&code_record(client)).await;

    let answer = Answer::of(app.exchange(client, &code).await).await;

    assert_eq!(
        (answer.status, answer.error()),
        (400, "unauthorized_client"),
        "{}",
        answer.text
    );
    answer.assert_error_shape("unauthorized_client");
    assert!(app.code_exists(&code).await, "the refusal burnt the code");

    let (only, both) = (
        r#"grant_types = ["client_credentials"]"#,
        r#"grant_types = ["client_credentials", "authorization_code"]"#,
    );
    let clients = clients_toml();
    assert!(clients.contains(only), "the fixture changed: {clients}");
    let file = test_dir().join(format!("clients-{}.toml", uuid::Uuid::new_v4()));
    std::fs::write(&file, clients.replace(only, both)).expect("clients file");
    app.reload_with(|s| s.clients.file = file)
        .expect("the reload");
    let allowed = Answer::of(app.exchange(client, &code).await).await;
    assert_eq!(allowed.status, 200, "{}", allowed.text);
}

#[tokio::test]
async fn introspection_and_revocation_challenge_every_failed_client_authentication() {
    let app = spawn_app().await;
    let token = app.token_for(&APP).await;
    for path in [INTROSPECT_PATH, REVOKE_PATH] {
        let in_body = app.http.post(app.url(path)).json(&json!({
            "token": token,
            "client_id": APP.id,
            "client_secret": WRONG_SECRET,
        }));
        let in_basic = app
            .http
            .post(app.url(path))
            .header("Authorization", basic_auth(UNKNOWN_ID, APP.secret))
            .form(&[("token", token.as_str())]);
        for (via, request) in [("body", in_body), ("Basic", in_basic)] {
            let answer = Answer::of(request.send().await.unwrap()).await;

            assert_eq!(
                (answer.status, answer.error()),
                (401, "invalid_client"),
                "{path} {via}: {}",
                answer.text
            );
            assert_eq!(
                answer.header("www-authenticate"),
                Some(BASIC_CHALLENGE),
                "{path} {via}"
            );
        }
    }
}

/// A registry with no enabled client (a forgotten mount of the clients file) answers every
/// client 401 while `/readyz` says 200: the start and a reload warn of it, naming the file.
/// A reload that would leave no enabled client where some ran (a truncated file) is refused:
/// it would take every client away, and every live token with it.
#[tokio::test]
async fn a_registry_without_an_enabled_client_is_warned_of_at_start_and_on_reload() {
    let log = crate::log_capture::mark();
    let file = |name: &str, text: &str| {
        let path = test_dir().join(format!("clients-{name}-{}.toml", uuid::Uuid::new_v4()));
        std::fs::write(&path, text).expect("clients file");
        path
    };
    let fixture = clients_toml();
    let disabled_entry = fixture
        .split("[[clients]]")
        .find(|entry| entry.contains(&format!("id = \"{}\"", DISABLED.id)))
        .expect("the disabled client in the fixture");
    assert!(
        disabled_entry.contains("enabled = false"),
        "{disabled_entry}"
    );
    let (empty, full) = (file("empty", ""), file("full", &fixture));
    let disabled_only = file("disabled", &format!("[[clients]]{disabled_entry}"));
    let warned = |path: &std::path::Path| {
        log.lines().iter().any(|l| {
            l.starts_with("WARN")
                && l.contains("registers no enabled client")
                && l.contains(&path.display().to_string())
        })
    };

    let app = crate::helpers::spawn_app_with(|s| s.clients.file = empty.clone()).await;
    assert!(warned(&empty), "no warning at start");
    app.reload_with(|s| s.clients.file = disabled_only.clone())
        .expect("a reload to no client from no client");
    assert!(warned(&disabled_only), "no warning on reload");
    app.reload_with(|s| s.clients.file = full.clone())
        .expect("the reload to the fixture");
    assert!(
        !warned(&full),
        "a registry with enabled clients was warned of"
    );
    let token = app.token_for(&APP).await;

    for nothing_left in [&empty, &disabled_only] {
        let refused = app.reload_with(|s| s.clients.file = nothing_left.clone());
        let error = refused
            .expect_err("a reload that leaves no enabled client")
            .to_string();
        assert!(error.contains("registers no enabled client"), "{error}");
        assert!(
            error.contains(&nothing_left.display().to_string()),
            "{error}"
        );
    }

    // The running registry stays: its clients and their tokens.
    let answer = app.introspect(&APP, &token).await;
    assert_eq!(answer.json["active"], true, "{}", answer.text);
    let code = app.issue_code(&APP).await;
    let answer = Answer::of(app.exchange(&APP, &code).await).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
}

/// A secret rotation: the new secret in `secret`, the old one in `previous_secrets`, so that
/// the instances still on the old one go on exchanging codes (a line says so, without the
/// secret) until a reload removes it; the old one is then a wrong secret.
#[tokio::test]
async fn a_previous_secret_authenticates_until_a_reload_removes_it() {
    const ROTATED: TestClient = TestClient {
        secret: "app-rotated-secret-Lm4Xq8Tc1Vz6Nd3R",
        ..APP
    };
    let log = crate::log_capture::mark();
    let fixture = clients_toml();
    let stored = |c: &TestClient| format!("secret = \"{}\"\n", hash_secret_sha256(c.secret));
    assert!(fixture.contains(&stored(&APP)), "the fixture changed");
    let file = |name: &str, entry: String| {
        let path = test_dir().join(format!("clients-{name}-{}.toml", uuid::Uuid::new_v4()));
        std::fs::write(&path, fixture.replace(&stored(&APP), &entry)).expect("clients file");
        path
    };
    let previous = format!(
        "previous_secrets = [\"{}\"]\n",
        hash_secret_sha256(APP.secret)
    );
    let rotating = file("rotating", format!("{}{previous}", stored(&ROTATED)));
    let rotated = file("rotated", stored(&ROTATED));
    let app = spawn_app_with(|s| s.clients.file = rotating).await;

    let previous_used = async || {
        let exposition = crate::metrics::scrape(&app, &app.address).await;
        crate::metrics::value(
            &exposition,
            "sso_client_previous_secret_authentications_total",
        )
    };
    for (client, previous) in [(&ROTATED, 0.0), (&APP, 1.0)] {
        let code = app.issue_code(client).await;
        let answer = Answer::of(app.exchange(client, &code).await).await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        assert_eq!(previous_used().await, previous, "{}", client.secret);
    }
    let said = log.lines_when(|lines| {
        (lines.iter()).any(|l| l.contains("client app: authenticated with a previous secret"))
    });
    for line in said.await.iter().filter(|l| l.contains("previous secret")) {
        assert!(line.starts_with("INFO"), "{line}");
        assert!(!line.contains(APP.secret), "{line}");
    }

    app.reload_with(|s| s.clients.file = rotated)
        .expect("the reload");
    let code = app.issue_code(&APP).await;
    let old = Answer::of(app.exchange(&APP, &code).await).await;
    assert_eq!(
        (old.status, old.error()),
        (401, "invalid_client"),
        "{}",
        old.text
    );
    let new = Answer::of(app.exchange(&ROTATED, &code).await).await;
    assert_eq!(new.status, 200, "{}", new.text);
}
