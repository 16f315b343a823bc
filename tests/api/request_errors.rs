//! Requests the endpoint cannot make sense of: a 4xx with the RFC 6749 error body, never a 5xx,
//! never an echo of the secret or the code, and no code burnt.

use std::time::{Duration, Instant};

use reqwest::header::HeaderValue;
use serde_json::{Value, json};
use sso_token::routes::paths::{INTROSPECT_PATH, REVOKE_PATH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{
    APP, Answer, BASIC_CHALLENGE, OTHER, TestApp, basic_auth, json_request, spawn_app,
};

const JSON: Option<&str> = Some("application/json");
const FORM: Option<&str> = Some("application/x-www-form-urlencoded");
const BAD_REQUEST: &[(u16, &str)] = &[(400, "invalid_request")];
/// Missing or unusable credentials: RFC 6749 §5.2, "no client authentication included, or
/// unsupported authentication method", is `invalid_client`.
const NO_CREDENTIALS: &[(u16, &str)] = &[(401, "invalid_client")];
/// README: a content type other than JSON or form is `invalid_request`, 400.
const UNSUPPORTED_MEDIA: &[(u16, &str)] = BAD_REQUEST;
/// README: a body over `server.body_limit` is `invalid_request` with 413.
const TOO_LARGE: &[(u16, &str)] = &[(413, "invalid_request")];

/// One malformed request: content type, `Authorization`, body, and the acceptable answers.
struct Case {
    name: &'static str,
    content_type: Option<&'static str>,
    authorization: Option<String>,
    body: Vec<u8>,
    expected: &'static [(u16, &'static str)],
}

fn case(name: &'static str, content_type: Option<&'static str>, body: impl Into<Vec<u8>>) -> Case {
    Case {
        name,
        content_type,
        authorization: None,
        body: body.into(),
        expected: BAD_REQUEST,
    }
}

impl Case {
    fn expect(self, expected: &'static [(u16, &'static str)]) -> Self {
        Self { expected, ..self }
    }

    fn auth(self, authorization: String) -> Self {
        Self {
            authorization: Some(authorization),
            ..self
        }
    }
}

/// The seed request for `code` with `edit` applied.
fn json_with(code: &str, edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut body = json_request(&APP, code);
    edit(&mut body);
    body.to_string().into_bytes()
}

/// `body` with its `@@` replaced by `bytes`.
fn with_bytes(body: &[u8], bytes: &[u8]) -> Vec<u8> {
    let at = body
        .windows(2)
        .position(|w| w == b"@@")
        .expect("a @@ placeholder");
    [&body[..at], bytes, &body[at + 2..]].concat()
}

fn without(field: &'static str) -> impl FnOnce(&mut Value) {
    move |body| {
        body.as_object_mut().unwrap().remove(field);
    }
}

fn set(field: &'static str, value: Value) -> impl FnOnce(&mut Value) {
    move |body| body[field] = value
}

#[rustfmt::skip]
fn cases(code: &str) -> Vec<Case> {
    let seed = json_with(code, |_| {});
    let form = |extra: &str| {
        format!("code={code}&redirect_uri=https%3A%2F%2Fapp.example%2Fsso%2Fcallback{extra}")
    };
    let basic = || basic_auth(APP.id, APP.secret);
    let pad = "x".repeat(5000);
    let verifier = |v: &str| json_with(code, set("code_verifier", json!(v)));
    vec![
        case("grant_type password", JSON, json_with(code, set("grant_type", json!("password"))))
            .expect(&[(400, "unsupported_grant_type")]),
        case("grant_type refresh_token in a form", FORM, form("&grant_type=refresh_token"))
            .auth(basic()).expect(&[(400, "unsupported_grant_type")]),
        case("no code", JSON, json_with(code, without("code"))),
        case("an empty code", JSON, json_with(code, set("code", json!("")))),
        case("no redirect_uri", JSON, json_with(code, without("redirect_uri"))),
        case("no client_id", JSON, json_with(code, without("client_id"))).expect(NO_CREDENTIALS),
        case("no client_secret", JSON, json_with(code, without("client_secret"))).expect(NO_CREDENTIALS),
        case("no credentials in a form", FORM, form("")).expect(NO_CREDENTIALS),
        case("code is a number", JSON, json_with(code, set("code", json!(123)))),
        case("client_id is an array", JSON, json_with(code, set("client_id", json!([APP.id])))),
        case("client_secret is an object", JSON, json_with(code, set("client_secret", json!({"s": APP.secret})))),
        case("redirect_uri is a boolean", JSON, json_with(code, set("redirect_uri", json!(true)))),
        case("grant_type is a number", JSON, json_with(code, set("grant_type", json!(1)))),
        case("truncated JSON", JSON, &seed[..seed.len() - 5]),
        case("JSON with trailing garbage", JSON, [seed.as_slice(), b"}"].concat()),
        case("not JSON at all", JSON, "grant_type=authorization_code"),
        case("a JSON array", JSON, "[]"),
        case("JSON null", JSON, "null"),
        case("a JSON string", JSON, r#""code""#),
        case("an empty JSON body", JSON, ""),
        case("a field given twice", JSON, format!(r#"{{"code":"{code}","code":"{code}"}}"#)),
        case("snake and camel case of one field", JSON, json_with(code, set("clientId", json!(APP.id)))),
        case("a field given twice in a form", FORM, form(&format!("&code={code}"))).auth(basic()),
        // Told to send it as JSON, instead of a 401 for credentials it did send.
        case("a JSON body sent as a form", FORM, seed.clone()),
        case("text/plain", Some("text/plain"), seed.clone()).expect(UNSUPPORTED_MEDIA),
        case("application/xml", Some("application/xml"), seed.clone()).expect(UNSUPPORTED_MEDIA),
        case("multipart", Some("multipart/form-data; boundary=x"), seed.clone()).expect(UNSUPPORTED_MEDIA),
        case("no content type", None, seed.clone()).expect(UNSUPPORTED_MEDIA),
        case("a JSON body over the limit", JSON, json_with(code, set("pad", json!(pad)))).expect(TOO_LARGE),
        case("a form body over the limit", FORM, form(&format!("&pad={pad}"))).auth(basic()).expect(TOO_LARGE),
        case("Basic and a client_secret in the body", JSON, seed.clone()).auth(basic()),
        case("Basic and another client_id in the body", FORM, form(&format!("&client_id={}", OTHER.id)))
            .auth(basic()),
        case("a Bearer token instead of credentials", FORM, form("")).auth("Bearer abc".into())
            .expect(NO_CREDENTIALS),
        case("Basic credentials that are not base64", FORM, form("")).auth("Basic %%%".into())
            .expect(NO_CREDENTIALS),
        case("an Authorization header that is not ASCII", JSON, seed.clone())
            .auth("Basic \u{ff}\u{fe}".into()).expect(NO_CREDENTIALS),
        case("invalid UTF-8 in a field the server ignores", JSON, with_bytes(&json_with(code, set("x", json!("@@"))), b"\xff")),
        // Codes are at most 512 bytes (README): a longer one is malformed, not merely unknown.
        case("a code of 600 bytes", JSON, json_with(code, set("code", json!("C".repeat(600))))),
        // RFC 7636 §4.1: a code_verifier is 43 to 128 of A-Z a-z 0-9 - . _ ~. Malformed, it is
        // refused before the code is taken (this code has no challenge: taken, it would burn).
        case("a code_verifier of 42", JSON, verifier(&"v".repeat(42))),
        case("a code_verifier of 129", JSON, verifier(&"v".repeat(129))),
        case("a code_verifier with +", JSON, verifier(&format!("{}+", "v".repeat(42)))),
        case("a code_verifier with %", JSON, verifier(&format!("{}%", "v".repeat(42)))),
    ]
}

#[tokio::test]
async fn malformed_requests_get_a_4xx_rfc_error_and_burn_no_code() {
    let app = spawn_app().await;
    let code = app.issue_code(&APP).await;
    for case in cases(&code) {
        let mut request = app.http.post(app.token_url()).body(case.body);
        if let Some(content_type) = case.content_type {
            request = request.header("Content-Type", content_type);
        }
        if let Some(authorization) = case.authorization {
            // As bytes: http 1.6 refuses a string with non-ASCII characters, and some cases send
            // them on purpose.
            let value = HeaderValue::from_bytes(authorization.as_bytes()).expect("header bytes");
            request = request.header("Authorization", value);
        }

        let answer = Answer::of(request.send().await.unwrap()).await;

        let name = case.name;
        assert!(
            case.expected.contains(&(answer.status, answer.error())),
            "{name}: got {} {}, expected one of {:?}",
            answer.status,
            answer.text,
            case.expected
        );
        answer.assert_error_shape(name);
        // README: every 401 challenges, wherever the credentials were (or were not).
        if answer.status == 401 {
            assert_eq!(
                answer.header("www-authenticate"),
                Some(BASIC_CHALLENGE),
                "{name}"
            );
        }
        assert!(
            !answer.text.contains(APP.secret),
            "{name}: the secret is echoed"
        );
        assert!(!answer.text.contains(&code), "{name}: the code is echoed");
        assert!(app.code_exists(&code).await, "{name}: the code was burnt");
    }
}

/// Sends `request` as raw bytes on a new connection and reads until the server closes it (it
/// may reset the connection after answering early; what it sent is kept): the status and the
/// JSON body, or `None` if the connection was still open after 5 s.
async fn raw_answer(app: &TestApp, request: &[u8]) -> Option<(u16, Value)> {
    let port = app.address.rsplit(':').next().unwrap();
    let mut stream = tokio::net::TcpStream::connect(format!("127.0.0.1:{port}"))
        .await
        .unwrap();
    stream.write_all(request).await.unwrap();
    let mut raw = Vec::new();
    // A reset after the answer is an `Err` here; what was read is kept all the same.
    let _reset = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut raw))
        .await
        .ok()?;
    let raw = String::from_utf8_lossy(&raw);
    let status = raw.split(' ').nth(1).and_then(|s| s.parse().ok());
    let body = raw.split("\r\n\r\n").nth(1).unwrap_or_default();
    let body = serde_json::from_str(body).unwrap_or_else(|_| panic!("no JSON body: {raw}"));
    Some((status.unwrap_or_else(|| panic!("no status: {raw}")), body))
}

/// `request`, sent raw, gets `status` with `invalid_request`, the connection closed within 5 s,
/// and `code` is not burnt.
async fn assert_raw_refusal(app: &TestApp, request: &[u8], status: u16, code: &str) {
    let (got, body) = raw_answer(app, request)
        .await
        .expect("the connection was still open after 5 s");

    assert_eq!(got, status, "{body}");
    assert_eq!(body["error"], "invalid_request");
    assert!(app.code_exists(code).await, "the code was burnt");
}

/// A JSON exchange request whose `body` is sent in chunks of `size` bytes, then the last chunk.
fn chunked_exchange(body: &[u8], size: usize) -> String {
    let chunked = chunks(body, size);
    format!(
        "POST {} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n{chunked}0\r\n\r\n",
        sso_token::routes::paths::TOKEN_PATH
    )
}

/// `body` as chunks of `size` bytes, without the last (empty) chunk.
fn chunks(body: &[u8], size: usize) -> String {
    (body.chunks(size))
        .map(|chunk| {
            format!(
                "{:x}\r\n{}\r\n",
                chunk.len(),
                String::from_utf8_lossy(chunk)
            )
        })
        .collect()
}

#[tokio::test]
async fn a_chunked_valid_request_over_the_limit_is_refused_and_burns_no_code() {
    let app = spawn_app().await;
    let code = app.issue_code(&APP).await;
    // Without Content-Length the limit can only be enforced while reading.
    let body = json_with(&code, set("pad", json!("x".repeat(6000))));
    let request = chunked_exchange(&body, 1000);

    assert_raw_refusal(&app, request.as_bytes(), 413, &code).await;
}

/// A body that is declared and never finished: 408 within `server.body_timeout_ms`, the
/// connection closed, the code untouched. actix bounds only the request head; without this
/// deadline the connection stayed open for as long as the client liked.
#[tokio::test]
async fn a_body_that_never_arrives_gets_408_and_the_connection_is_closed() {
    let app = crate::helpers::spawn_app_with(|s| s.server.body_timeout_ms = 300).await;
    let code = app.issue_code(&APP).await;
    let body = json_with(&code, |_| {});
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        sso_token::routes::paths::TOKEN_PATH,
        body.len()
    );
    // Half the body, then nothing more.
    let request = [head.as_bytes(), &body[..body.len() / 2]].concat();

    let started = Instant::now();
    assert_raw_refusal(&app, &request, 408, &code).await;
    assert_within_the_body_timeout(started);
}

/// The 408 came from the 300 ms `server.body_timeout_ms` the test set, not from a longer
/// timer (the default is 5 s, as long as `raw_answer` waits).
fn assert_within_the_body_timeout(started: Instant) {
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(2000),
        "answered after {took:?}"
    );
}

/// The same for a chunked body: half of it in one chunk, then nothing. actix keeps reading a
/// dropped chunked body to its end, with no timer, so the 408 alone left the connection open.
#[tokio::test]
async fn a_chunked_body_that_never_ends_gets_408_and_the_connection_is_closed() {
    let app = crate::helpers::spawn_app_with(|s| s.server.body_timeout_ms = 300).await;
    let code = app.issue_code(&APP).await;
    let body = json_with(&code, |_| {});
    let half = &body[..body.len() / 2];
    let request = format!(
        "POST {} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{}\r\n",
        sso_token::routes::paths::TOKEN_PATH,
        half.len(),
        String::from_utf8_lossy(half)
    );

    let started = Instant::now();
    assert_raw_refusal(&app, request.as_bytes(), 408, &code).await;
    assert_within_the_body_timeout(started);
}

/// A chunked body over the limit that goes on (no last chunk, no `Connection: close`): 413,
/// and the connection closed rather than read to an end that may never come.
#[tokio::test]
async fn a_chunked_body_over_the_limit_that_goes_on_gets_413_and_the_connection_is_closed() {
    let app = spawn_app().await;
    let code = app.issue_code(&APP).await;
    // A valid request (the code first) padded past the limit, in chunks, without the last one.
    let body = json_with(&code, set("pad", json!("x".repeat(8000))));
    let request = format!(
        "POST {} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\n\r\n{}",
        sso_token::routes::paths::TOKEN_PATH,
        chunks(&body, 1000)
    );

    let (status, _) = raw_answer(&app, request.as_bytes())
        .await
        .expect("the connection was still open after 5 s");
    assert_eq!(status, 413);
    assert!(app.code_exists(&code).await, "the code was burnt");
}

/// A route that reads no body (the JWKS) announced with a chunked body that never comes: the
/// answer, then the connection closed, not held open waiting for chunks.
#[tokio::test]
async fn a_chunked_body_on_a_route_without_one_does_not_hold_the_connection() {
    let app = spawn_app().await;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n",
        sso_token::routes::paths::JWKS_PATH
    );

    let (status, jwks) = raw_answer(&app, request.as_bytes())
        .await
        .expect("the connection was still open after 5 s");
    assert_eq!(status, 200);
    assert!(jwks["keys"].is_array(), "{jwks}");
}

/// A JSON token request for `code` with these extra headers: refused as 400 `invalid_request`
/// without burning the code. Returns the answer for what else a test checks.
async fn assert_refused_with(
    app: &TestApp,
    code: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Answer {
    let mut request = app
        .http
        .post(app.token_url())
        .header("Content-Type", "application/json")
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }

    let answer = Answer::of(request.send().await.unwrap()).await;

    assert_eq!(
        (answer.status, answer.error()),
        (400, "invalid_request"),
        "{}",
        answer.text
    );
    assert!(app.code_exists(code).await, "the code was burnt");
    answer
}

/// RFC 9110 §11.6.2: `Authorization` carries one set of credentials. Two lines are refused, not
/// read as whichever comes first.
#[tokio::test]
async fn two_authorization_headers_are_refused() {
    let app = spawn_app().await;
    let code = app.issue_code(&APP).await;
    let body = json_with(&code, |body| {
        let body = body.as_object_mut().unwrap();
        body.remove("client_id");
        body.remove("client_secret");
    });
    let (ours, other) = (
        basic_auth(APP.id, APP.secret),
        basic_auth(OTHER.id, "wrong"),
    );

    assert_refused_with(
        &app,
        &code,
        &[("Authorization", &ours), ("Authorization", &other)],
        body,
    )
    .await;
}

/// No content coding is decoded: an encoded body is refused by name, not as "not valid JSON".
#[tokio::test]
async fn a_content_encoded_body_is_refused_by_name() {
    let app = spawn_app().await;
    let code = app.issue_code(&APP).await;
    let body = json_with(&code, |_| {});

    let answer = assert_refused_with(&app, &code, &[("Content-Encoding", "gzip")], body).await;

    assert!(answer.text.contains("Content-Encoding"), "{}", answer.text);
}

/// RFC 9110 §5.3: two `Content-Encoding` lines are one list; `identity` on the first does not
/// hide a `gzip` on the second.
#[tokio::test]
async fn a_content_coding_on_a_second_line_is_refused_too() {
    let app = spawn_app().await;
    let code = app.issue_code(&APP).await;
    let body = json_with(&code, |_| {});
    let lines = [
        ("Content-Encoding", "identity"),
        ("Content-Encoding", "gzip"),
    ];

    let answer = assert_refused_with(&app, &code, &lines, body).await;

    assert!(answer.text.contains("Content-Encoding"), "{}", answer.text);
}

/// Two `Content-Type` lines are refused, not read as whichever comes first: a proxy in front
/// may read the other, and see another format than the one parsed here.
#[tokio::test]
async fn two_content_type_headers_are_refused() {
    let app = spawn_app().await;
    let code = app.issue_code(&APP).await;
    let body = json_with(&code, |_| {});
    let form = [("Content-Type", "application/x-www-form-urlencoded")];

    let answer = assert_refused_with(&app, &code, &form, body).await;

    assert!(answer.text.contains("Content-Type"), "{}", answer.text);
}

/// `server.body_limit` is the most a body may hold: a request of exactly that many bytes is read
/// and exchanged, one a byte longer is 413 and burns no code.
#[tokio::test]
async fn a_body_of_exactly_the_limit_is_read_and_one_a_byte_longer_is_413() {
    const LIMIT: usize = 1024;
    let app = crate::helpers::spawn_app_with(|s| s.server.body_limit = LIMIT).await;
    let code = app.issue_code(&APP).await;
    let bare = json_with(&code, set("pad", json!(""))).len();
    let padded = |length: usize| json_with(&code, set("pad", json!("x".repeat(length - bare))));
    let post = |body: Vec<u8>| {
        app.http
            .post(app.token_url())
            .header("Content-Type", "application/json")
            .body(body)
            .send()
    };

    let over = Answer::of(post(padded(LIMIT + 1)).await.unwrap()).await;
    assert_eq!(
        (over.status, over.error()),
        (413, "invalid_request"),
        "{}",
        over.text
    );
    assert!(app.code_exists(&code).await, "the code was burnt");
    let at_limit = Answer::of(post(padded(LIMIT)).await.unwrap()).await;
    assert_eq!(at_limit.status, 200, "{}", at_limit.text);
}

/// A body declared longer than `server.body_limit` is refused on its `Content-Length`, before any
/// of it is read: 413 and the connection closed, not a wait for a body that would be refused
/// anyway (here it never comes whole, and `server.body_timeout_ms` is longer than the test
/// waits).
#[tokio::test]
async fn a_body_declared_over_the_limit_is_refused_before_it_arrives() {
    let app = crate::helpers::spawn_app_with(|s| s.server.body_timeout_ms = 30_000).await;
    let code = app.issue_code(&APP).await;
    let body = json_with(&code, |_| {});
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: 4097\r\n\r\n",
        sso_token::routes::paths::TOKEN_PATH
    );
    let request = [head.as_bytes(), &body].concat();

    assert_raw_refusal(&app, &request, 413, &code).await;
}

/// A chunked body within the limit is read whole however many chunks it comes in, and
/// exchanged.
#[tokio::test]
async fn a_chunked_valid_request_within_the_limit_is_exchanged() {
    let app = spawn_app().await;
    let code = app.issue_code(&APP).await;
    let body = json_with(&code, |_| {});
    let request = chunked_exchange(&body, 100);

    let (status, answer) = raw_answer(&app, request.as_bytes())
        .await
        .expect("the connection was still open after 5 s");
    assert_eq!(status, 200, "{answer}");
    assert!(answer["access_token"].is_string(), "{answer}");
    assert!(!app.code_exists(&code).await, "the code was not spent");
}

/// `identity` is no content coding (RFC 9110 §8.4.1): a body declared so, alone or with an
/// empty list item, is read like one without the header.
#[tokio::test]
async fn a_body_declared_identity_is_read_as_it_is() {
    let app = spawn_app().await;
    for coding in ["identity", "IDENTITY, ", ", identity"] {
        let code = app.issue_code(&APP).await;
        let answer = Answer::of(
            app.http
                .post(app.token_url())
                .header("Content-Type", "application/json")
                .header("Content-Encoding", coding)
                .body(json_with(&code, |_| {}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(answer.status, 200, "{coding}: {}", answer.text);
    }
}

/// Parameters are read from the body only (RFC 6749 §2.3.1: credentials "MUST NOT be included
/// in the request URI"). A client that sends them in the URL's query, as the reference
/// implementation's servlet read them, is told so by name (a name decoded as a form's), never by
/// value, even with a body that would be exchanged: the code is not spent. A query of other
/// names is left alone (RFC 6749 §3.2).
#[tokio::test]
async fn parameters_in_the_query_are_refused_by_name_and_spend_no_code() {
    let app = spawn_app().await;
    let code = app.issue_code(&APP).await;
    for (query, field) in [
        (format!("client_secret={}", APP.secret), "client_secret"),
        (format!("%63ode={code}"), "code"),
        ("client%5Fid=app".to_owned(), "client_id"),
    ] {
        let in_the_query = app
            .http
            .post(format!("{}?{query}", app.token_url()))
            .json(&json_request(&APP, &code))
            .send()
            .await
            .expect("request sent");
        let refused = Answer::of(in_the_query).await;

        assert_eq!(refused.status, 400, "{query}: {}", refused.text);
        assert_eq!(refused.error(), "invalid_request");
        let description = refused.json["error_description"].as_str().unwrap();
        let named = format!("`{field}` is in the URL's query");
        assert!(description.contains(&named), "{description}");
        assert!(!refused.text.contains(APP.secret), "{}", refused.text);
        assert!(!refused.text.contains(&code), "{}", refused.text);
        assert!(app.code_exists(&code).await, "{query}: the code was spent");
    }

    let elsewhere = app
        .http
        .post(app.token_url())
        .query(&[("tenant", "central")])
        .json(&json_request(&APP, &code))
        .send()
        .await
        .expect("request sent");
    let answer = Answer::of(elsewhere).await;
    assert_eq!(answer.status, 200, "{}", answer.text);

    let token = answer.json["access_token"].as_str().unwrap();
    let introspection = app
        .http
        .post(app.url(INTROSPECT_PATH))
        .query(&[("token", token)])
        .header("Authorization", basic_auth(APP.id, APP.secret))
        .form(&[("token_type_hint", "access_token")])
        .send()
        .await
        .expect("introspection sent");
    let refused = Answer::of(introspection).await;
    assert_eq!(refused.status, 400, "{}", refused.text);
    assert_eq!(refused.error(), "invalid_request");
    assert!(
        refused.text.contains("`token` is in the URL's query"),
        "{}",
        refused.text
    );
    assert!(!refused.text.contains(token), "{}", refused.text);

    // A revocation whose body is complete is refused too, and revokes nothing.
    let revocation = app
        .http
        .post(format!(
            "{}?token_type_hint=access_token",
            app.url(REVOKE_PATH)
        ))
        .header("Authorization", basic_auth(APP.id, APP.secret))
        .form(&[("token", token)])
        .send()
        .await
        .expect("revocation sent");
    let refused = Answer::of(revocation).await;
    assert_eq!(refused.status, 400, "{}", refused.text);
    assert!(
        refused.text.contains("`token_type_hint`"),
        "{}",
        refused.text
    );
    assert_eq!(app.introspect(&APP, token).await.json["active"], true);
}
