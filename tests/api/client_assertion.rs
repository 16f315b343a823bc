//! `private_key_jwt` (RFC 7523 §2.2): a client registered with `jwks_file` authenticates at the
//! token, introspection and revocation endpoints with a JWT it signed; each assertion once.

use std::path::PathBuf;
use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use deadpool_redis::redis;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use sso_token::clock::unix_now;
use sso_token::config::MAX_LEEWAY_SECS;
use sso_token::routes::paths::{INTROSPECT_PATH, REVOKE_PATH, TOKEN_PATH};
use sso_token::tokens::{KeyKind, SigningKey};
use uuid::Uuid;

use crate::concurrency::{race_raw, raw_post};
use crate::helpers::{
    APP, Answer, BASIC_CHALLENGE, ISSUER, TestApp, TestClient, basic_auth, clients_toml,
    spawn_app_with, test_dir,
};
use crate::log_capture;
use crate::redis_server::RedisServer;

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The client with keys; it has no secret (`secret` is unused).
const SIGNING: TestClient = TestClient {
    id: "signing-app",
    secret: "",
    redirect_uri: "https://signing.example/cb",
};

/// One of the client's key pairs: the private PEM it signs with, and the kid of its public JWK.
struct Key {
    pem: String,
    kid: String,
    alg: Algorithm,
}

impl Key {
    fn new(kind: KeyKind, alg: Algorithm) -> Self {
        let pem = SigningKey::generate_pem(kind).expect("key");
        let kid = SigningKey::from_pem(&pem)
            .expect("key parses")
            .kid()
            .to_owned();
        Self { pem, kid, alg }
    }

    fn public_jwk(&self) -> Value {
        let key = SigningKey::from_pem(&self.pem).expect("key parses");
        serde_json::to_value(key.public_jwk()).expect("JWK")
    }

    fn encoding(&self) -> EncodingKey {
        match self.alg {
            Algorithm::EdDSA => EncodingKey::from_ed_pem(self.pem.as_bytes()),
            Algorithm::ES256 => EncodingKey::from_ec_pem(self.pem.as_bytes()),
            _ => EncodingKey::from_rsa_pem(self.pem.as_bytes()),
        }
        .expect("encoding key")
    }

    /// `claims` signed with this key, its kid in the header.
    fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding()).expect("signed")
    }
}

/// The registered keys (RS256 and EdDSA), and the registry that holds them besides the test
/// clients: made once for the test process.
struct Fixture {
    rsa: Key,
    ed: Key,
    clients: PathBuf,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let rsa = Key::new(KeyKind::Rsa2048, Algorithm::RS256);
        let ed = Key::new(KeyKind::Ed25519, Algorithm::EdDSA);
        let jwks = json!({ "keys": [rsa.public_jwk(), ed.public_jwk()] });
        let clients = write_registry("signing", &jwks.to_string(), "");
        Fixture { rsa, ed, clients }
    })
}

/// The test clients' registry plus SIGNING with `jwks` in a file beside it (by a relative
/// path) and `extra` lines in its entry.
fn write_registry(name: &str, jwks: &str, extra: &str) -> PathBuf {
    let unique = Uuid::new_v4();
    let jwks_name = format!("jwks-{name}-{unique}.json");
    std::fs::write(test_dir().join(&jwks_name), jwks).expect("jwks file");
    let entry = format!(
        "[[clients]]\nid = \"{}\"\njwks_file = \"{jwks_name}\"\nredirect_uris = [\"{}\"]\n\
         scopes = [\"user:basic\"]\n{extra}\n",
        SIGNING.id, SIGNING.redirect_uri
    );
    let path = test_dir().join(format!("clients-{name}-{unique}.toml"));
    std::fs::write(&path, format!("{}{entry}", clients_toml())).expect("clients file");
    path
}

async fn app() -> TestApp {
    spawn_app_with(|s| s.clients.file = fixture().clients.clone()).await
}

/// Claims that pass, for the token endpoint of `app`.
fn claims(app: &TestApp) -> Value {
    let now = unix_now();
    json!({
        "iss": SIGNING.id,
        "sub": SIGNING.id,
        "aud": format!("{}{TOKEN_PATH}", app.settings.discovery.base()),
        "exp": now + 60,
        "iat": now,
        "jti": Uuid::new_v4().to_string(),
    })
}

fn edited(mut claims: Value, edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Value {
    edit(claims.as_object_mut().expect("an object"));
    claims
}

/// An exchange of a fresh code of SIGNING's with `assertion`, and any `more` fields.
async fn exchange(app: &TestApp, assertion: &str, more: Value) -> Answer {
    let code = app.issue_code(&SIGNING).await;
    let mut body = json!({
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": SIGNING.redirect_uri,
        "client_assertion_type": JWT_BEARER,
        "client_assertion": assertion,
    });
    for (name, value) in more.as_object().into_iter().flatten() {
        body[name] = value.clone();
    }
    Answer::of(app.post_json(&body).await).await
}

fn assert_unauthenticated(answer: &Answer, context: &str) {
    assert_eq!(
        (answer.status, answer.error()),
        (401, "invalid_client"),
        "{context}: {}",
        answer.text
    );
    assert_eq!(
        answer.header("www-authenticate"),
        Some(BASIC_CHALLENGE),
        "{context}"
    );
}

#[tokio::test]
async fn a_code_is_exchanged_with_an_assertion_signed_by_either_registered_key() {
    let app = app().await;
    for key in [&fixture().rsa, &fixture().ed] {
        let answer = exchange(&app, &key.sign(&claims(&app)), json!({})).await;
        assert_eq!(answer.status, 200, "{:?}: {}", key.alg, answer.text);
        let token = answer.json["access_token"].as_str().expect("a token");
        let claims = crate::helpers::verify_token(token, SIGNING.id, ISSUER).claims;
        assert_eq!(claims["client_id"], SIGNING.id);
    }
    // client_id beside the assertion, the same client, and camelCase names, in a form.
    let code = app.issue_code(&SIGNING).await;
    let assertion = fixture().ed.sign(&claims(&app));
    let form = [
        ("grantType", "authorization_code"),
        ("clientId", SIGNING.id),
        ("code", &code),
        ("redirectUri", SIGNING.redirect_uri),
        ("clientAssertionType", JWT_BEARER),
        ("clientAssertion", &assertion),
    ];
    let sent = app.http.post(app.token_url()).form(&form).send().await;
    let answer = Answer::of(sent.expect("sent")).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
}

#[tokio::test]
async fn introspection_and_revocation_take_an_assertion_for_their_own_url_too() {
    let app = app().await;
    let issued = exchange(&app, &fixture().rsa.sign(&claims(&app)), json!({})).await;
    let token = issued.json["access_token"]
        .as_str()
        .expect("a token")
        .to_owned();
    let base = app.settings.discovery.base().to_owned();
    let ask = async |path: &str, aud: String| {
        let claims = edited(claims(&app), |c| {
            c.insert("aud".into(), json!(aud));
        });
        let body = json!({
            "token": token,
            "client_assertion_type": JWT_BEARER,
            "client_assertion": fixture().ed.sign(&claims),
        });
        let sent = app.http.post(app.url(path)).json(&body).send().await;
        Answer::of(sent.expect("sent")).await
    };
    let introspected = ask(INTROSPECT_PATH, format!("{base}{INTROSPECT_PATH}")).await;
    assert_eq!(introspected.status, 200, "{}", introspected.text);
    assert_eq!(introspected.json["active"], true, "{}", introspected.text);
    assert_eq!(introspected.json["client_id"], SIGNING.id);
    // The issuer is an audience everywhere; another endpoint's URL is not.
    let elsewhere = ask(INTROSPECT_PATH, format!("{base}{REVOKE_PATH}")).await;
    assert_unauthenticated(&elsewhere, "the revocation URL at introspection");
    let revoked = ask(REVOKE_PATH, ISSUER.to_owned()).await;
    assert_eq!(revoked.status, 200, "{}", revoked.text);
    let after = ask(INTROSPECT_PATH, ISSUER.to_owned()).await;
    assert_eq!(after.json["active"], false, "{}", after.text);
}

#[tokio::test]
async fn an_assertion_authenticates_once_and_its_replay_is_logged_without_it() {
    let app = app().await;
    let log = log_capture::mark();
    let assertion = fixture().rsa.sign(&claims(&app));
    let first = exchange(&app, &assertion, json!({})).await;
    assert_eq!(first.status, 200, "{}", first.text);
    let again = exchange(&app, &assertion, json!({})).await;
    assert_unauthenticated(&again, "the same assertion again");

    let lines = log
        .lines_when(|lines| lines.iter().any(|l| l.contains("replayed jti")))
        .await;
    let line = lines
        .iter()
        .find(|l| l.contains("replayed jti"))
        .expect("a line");
    assert!(
        line.contains("client signing-app: authentication failed"),
        "{line}"
    );
    let signature = assertion.rsplit('.').next().expect("a signature");
    for line in &lines {
        assert!(!line.contains(signature), "{line}");
    }
    // The marker is one key under the prefix, outliving the assertion's acceptance (`exp` plus
    // the leeway) by what a reload may add to the leeway, and no longer.
    let markers = app.keys("assertion:*").await;
    assert_eq!(markers.len(), 1, "{markers:?}");
    let ttl: i64 = app.query(redis::cmd("PTTL").arg(&markers[0])).await;
    let (least, most) = (
        (60 + app.settings.token.leeway_secs) * 1000,
        (60 + MAX_LEEWAY_SECS + 1) * 1000,
    );
    assert!(
        ttl > i64::try_from(least).unwrap() && ttl <= i64::try_from(most).unwrap(),
        "PTTL {ttl}"
    );
}

/// `token.assertion_audience = "issuer"` (draft-ietf-oauth-rfc7523bis): an assertion whose
/// `aud` is the token endpoint's URL, which passes by default, is refused; one whose `aud` is
/// `token.issuer` alone passes.
#[tokio::test]
async fn under_the_issuer_rule_only_the_issuer_is_an_audience() {
    let app = spawn_app_with(|s| {
        s.clients.file = fixture().clients.clone();
        s.token.assertion_audience = sso_token::config::AssertionAudience::Issuer;
    })
    .await;
    let to_endpoint = fixture().ed.sign(&claims(&app));
    let to_issuer = fixture().ed.sign(&edited(claims(&app), |c| {
        c.insert("aud".into(), json!(app.settings.token.issuer));
    }));

    let refused = exchange(&app, &to_endpoint, json!({})).await;
    let passed = exchange(&app, &to_issuer, json!({})).await;

    assert_unauthenticated(&refused, "aud the token endpoint under the issuer rule");
    assert_eq!(passed.status, 200, "{}", passed.text);
}

/// An assertion in the last second that a replica accepts it (`exp` plus the leeway, in whole
/// seconds) authenticates once too. Its marker once expired at that very time, by Redis's clock,
/// and in that second the same assertion passed again and again.
#[tokio::test]
async fn an_assertion_in_its_last_accepted_second_authenticates_once() {
    let app = app().await;
    // Both requests within one second, at its start.
    let into_second = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_millis();
    tokio::time::sleep(std::time::Duration::from_millis(u64::from(
        1010 - into_second,
    )))
    .await;
    let last = unix_now() - app.settings.token.leeway_secs;
    let assertion = fixture().rsa.sign(&edited(claims(&app), |c| {
        c.insert("exp".into(), json!(last));
    }));

    let first = exchange(&app, &assertion, json!({})).await;
    let again = exchange(&app, &assertion, json!({})).await;

    assert_eq!(first.status, 200, "{}", first.text);
    assert_unauthenticated(&again, "the same assertion in its last second");
}

#[tokio::test]
async fn of_one_assertion_sent_sixteen_times_at_once_exactly_one_passes() {
    const RACERS: usize = 16;
    let app = app().await;
    let assertion = fixture().ed.sign(&claims(&app));
    let mut requests = Vec::with_capacity(RACERS);
    for _ in 0..RACERS {
        let body = json!({
            "code": app.issue_code(&SIGNING).await,
            "redirect_uri": SIGNING.redirect_uri,
            "client_assertion_type": JWT_BEARER,
            "client_assertion": assertion,
        });
        let address = app.address.replace("http://", "");
        requests.push((address, raw_post(TOKEN_PATH, &[], &body.to_string())));
    }
    let answers = race_raw(requests).await;
    let passed = answers.iter().filter(|a| a.status == 200).count();
    assert_eq!(
        passed,
        1,
        "{:?}",
        answers.iter().map(|a| a.status).collect::<Vec<_>>()
    );
    for refused in answers.iter().filter(|a| a.status != 200) {
        assert_unauthenticated(refused, "a racer that lost");
    }
}

#[tokio::test]
async fn an_assertion_that_fails_any_check_is_an_invalid_client() {
    let app = app().await;
    let (rsa, ed) = (&fixture().rsa, &fixture().ed);
    let now = unix_now();
    let set = |name: &str, value: Value| {
        edited(claims(&app), |c| {
            c.insert(name.into(), value);
        })
    };
    let header_of = |alg: &str, kid: &str| {
        URL_SAFE_NO_PAD.encode(json!({"alg": alg, "kid": kid, "typ": "JWT"}).to_string())
    };
    let payload = URL_SAFE_NO_PAD.encode(claims(&app).to_string());

    let stranger = Key {
        kid: rsa.kid.clone(),
        ..Key::new(KeyKind::Rsa2048, Algorithm::RS256)
    };
    let good = rsa.sign(&claims(&app));
    let tampered = format!(
        "{}{}",
        &good[..good.len() - 4],
        if good.ends_with("AAAA") {
            "BBBB"
        } else {
            "AAAA"
        }
    );
    let mut hs_header = Header::new(Algorithm::HS256);
    hs_header.kid = Some(rsa.kid.clone());
    let public_text = rsa.public_jwk().to_string();
    let hs256 = jsonwebtoken::encode(
        &hs_header,
        &claims(&app),
        &EncodingKey::from_secret(public_text.as_bytes()).expect("an HMAC key"),
    )
    .expect("signed");
    let mut unknown_kid = Header::new(Algorithm::EdDSA);
    unknown_kid.kid = Some("not-registered".into());
    let unknown_kid =
        jsonwebtoken::encode(&unknown_kid, &claims(&app), &ed.encoding()).expect("signed");

    let cases = [
        (
            "wrong aud",
            ed.sign(&set("aud", json!("https://elsewhere.example"))),
        ),
        ("expired", ed.sign(&set("exp", json!(now - 600)))),
        ("lives over 3600 s", ed.sign(&set("exp", json!(now + 7200)))),
        (
            "no jti",
            ed.sign(&edited(claims(&app), |c| {
                c.remove("jti");
            })),
        ),
        ("iss is not sub", ed.sign(&set("sub", json!(APP.id)))),
        (
            "another key under the client's kid",
            stranger.sign(&claims(&app)),
        ),
        ("a tampered signature", tampered),
        (
            "alg none",
            format!("{}.{payload}.", header_of("none", &rsa.kid)),
        ),
        ("HS256 keyed with the public key", hs256),
        ("an unknown kid", unknown_kid),
    ];
    for (what, assertion) in cases {
        let answer = exchange(&app, &assertion, json!({})).await;
        assert_unauthenticated(&answer, what);
        assert!(
            answer.json["error_description"]
                .as_str()
                .is_some_and(|d| d.starts_with("client authentication failed")),
            "{what}: {}",
            answer.text
        );
    }
}

#[tokio::test]
async fn the_assertion_fields_are_checked_before_any_signature() {
    // Room for an assertion over its 4096 bytes: the default body limit is 4096 in all.
    let app = spawn_app_with(|s| {
        s.clients.file = fixture().clients.clone();
        s.server.body_limit = 16384;
    })
    .await;
    let assertion = fixture().ed.sign(&claims(&app));
    let other_id = exchange(&app, &assertion, json!({"client_id": APP.id})).await;
    assert_unauthenticated(&other_id, "client_id other than iss");

    let with_secret = exchange(&app, &assertion, json!({"client_secret": "s"})).await;
    assert_eq!(
        (with_secret.status, with_secret.error()),
        (400, "invalid_request")
    );
    let code = app.issue_code(&SIGNING).await;
    let body = json!({
        "code": code,
        "redirect_uri": SIGNING.redirect_uri,
        "client_assertion_type": JWT_BEARER,
        "client_assertion": assertion,
    });
    let with_basic = app
        .http
        .post(app.token_url())
        .header("Authorization", basic_auth(SIGNING.id, "s"))
        .json(&body)
        .send()
        .await;
    let with_basic = Answer::of(with_basic.expect("sent")).await;
    assert_eq!(
        (with_basic.status, with_basic.error()),
        (400, "invalid_request")
    );
    assert!(with_basic.text.contains("one client authentication method"));

    let saml = exchange(
        &app,
        &assertion,
        json!({"client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:saml2-bearer"}),
    )
    .await;
    assert_eq!(
        (saml.status, saml.error()),
        (401, "invalid_client"),
        "{}",
        saml.text
    );
    assert!(saml.text.contains(JWT_BEARER), "{}", saml.text);
    let long = format!("{assertion}{}", "A".repeat(4096));
    let too_long = exchange(&app, &long, json!({})).await;
    assert_unauthenticated(&too_long, "an assertion over 4096 bytes");
    assert!(
        too_long.text.contains("longer than 4096"),
        "{}",
        too_long.text
    );

    let in_query = app
        .http
        .post(format!("{}?client_assertion={assertion}", app.token_url()))
        .json(&body)
        .send()
        .await;
    let in_query = Answer::of(in_query.expect("sent")).await;
    assert_eq!(
        (in_query.status, in_query.error()),
        (400, "invalid_request")
    );
    assert!(!in_query.text.contains(&assertion), "{}", in_query.text);
}

#[tokio::test]
async fn a_secret_client_cannot_send_an_assertion_nor_a_key_client_a_secret() {
    let app = app().await;
    // APP's id in a well-signed assertion: APP has a secret, no keys.
    let as_app = edited(claims(&app), |c| {
        c.insert("iss".into(), json!(APP.id));
        c.insert("sub".into(), json!(APP.id));
    });
    let code = app.issue_code(&APP).await;
    let body = json!({
        "code": code,
        "redirect_uri": APP.redirect_uri,
        "client_assertion_type": JWT_BEARER,
        "client_assertion": fixture().ed.sign(&as_app),
    });
    let answer = Answer::of(app.post_json(&body).await).await;
    assert_unauthenticated(&answer, "a secret client's assertion");

    let code = app.issue_code(&SIGNING).await;
    let body = json!({
        "code": code,
        "redirect_uri": SIGNING.redirect_uri,
        "client_id": SIGNING.id,
        "client_secret": "anything",
    });
    let answer = Answer::of(app.post_json(&body).await).await;
    assert_unauthenticated(&answer, "a key client's secret");
}

#[tokio::test]
async fn failed_assertions_count_toward_the_throttle() {
    const MAX: u64 = 3;
    let app = spawn_app_with(|s| {
        s.clients.file = fixture().clients.clone();
        s.throttle.max_failures = MAX;
        s.throttle.trusted_proxies = vec!["127.0.0.0/8".into()];
    })
    .await;
    let attempt = async |assertion: &str| {
        let code = app.issue_code(&SIGNING).await;
        let body = json!({
            "code": code,
            "redirect_uri": SIGNING.redirect_uri,
            "client_assertion_type": JWT_BEARER,
            "client_assertion": assertion,
        });
        let sent = (app.http.post(app.token_url()))
            .header("X-Forwarded-For", "192.0.2.250, 203.0.113.9")
            .json(&body)
            .send()
            .await;
        Answer::of(sent.expect("sent")).await
    };
    let expired = edited(claims(&app), |c| {
        c.insert("exp".into(), json!(unix_now() - 600));
    });
    for i in 0..MAX {
        let answer = attempt(&fixture().ed.sign(&expired)).await;
        assert_unauthenticated(&answer, &format!("failure {i}"));
    }
    let next = attempt(&fixture().ed.sign(&expired)).await;
    assert_eq!(
        (next.status, next.error()),
        (429, "invalid_client"),
        "{}",
        next.text
    );
    let good = attempt(&fixture().ed.sign(&claims(&app))).await;
    assert_eq!(
        good.status, 429,
        "a good assertion from the blocked address: {}",
        good.text
    );
}

#[tokio::test]
async fn a_registry_with_secret_and_jwks_file_or_a_private_jwk_is_refused_at_load() {
    let app = app().await;
    let public = json!({ "keys": [fixture().ed.public_jwk()] }).to_string();
    let both = write_registry("both", &public, "secret = \"plain:x\"");
    let mut private_jwk = fixture().ed.public_jwk();
    private_jwk["d"] = json!("nNWx4fFYj1Xb2hS9JFoC6Ad3zYrL0Zv5Q3BqkPZ5sN0");
    let private = write_registry("private", &json!({ "keys": [private_jwk] }).to_string(), "");
    for (file, expected) in [
        (both, "both secret and jwks_file"),
        (private, "public keys only"),
    ] {
        let refused = app.reload_with(|s| s.clients.file = file.clone());
        let error = refused.expect_err("a reload of a bad registry").to_string();
        assert!(error.contains(expected), "{error}");
        assert!(error.contains("client `signing-app`"), "{error}");
    }
    // The running registry stays.
    let answer = exchange(&app, &fixture().ed.sign(&claims(&app)), json!({})).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
}

/// Redis unable to record the `jti`: a 503, counted and logged under `operation="assertion"`.
#[tokio::test]
async fn a_redis_that_cannot_record_the_jti_is_a_503_named_assertion() {
    let mut redis = RedisServer::start();
    let app = spawn_app_with(|s| {
        s.clients.file = fixture().clients.clone();
        s.redis.url = redis.url();
        s.redis.timeout_ms = 300;
    })
    .await;
    redis.stop();
    // Authentication comes first: the code is never looked at.
    let body = json!({
        "code": "never-looked-at",
        "redirect_uri": SIGNING.redirect_uri,
        "client_assertion_type": JWT_BEARER,
        "client_assertion": fixture().ed.sign(&claims(&app)),
    });
    let answer = Answer::of(app.post_json(&body).await).await;
    assert_eq!(
        (answer.status, answer.error()),
        (503, "temporarily_unavailable"),
        "{}",
        answer.text
    );
    let exposition = crate::metrics::scrape(&app, &app.address).await;
    let errors = crate::metrics::value(
        &exposition,
        "sso_redis_errors_total{operation=\"assertion\"}",
    );
    assert_eq!(errors, 1.0);
}
