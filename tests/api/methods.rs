//! Methods: every path answers a method it does not take with 405, an `Allow` header naming the
//! ones it does, and the RFC 6749 error body (`invalid_request`, not cached).

use reqwest::Method;

use crate::helpers::{Answer, spawn_app, spawn_app_with};

const POST: &str = "POST";
const GET: &str = "GET, HEAD";
const GET_OR_POST: &str = "GET, HEAD, POST";
/// The public documents, which answer a browser's CORS preflight too.
const PUBLIC: &str = "GET, HEAD, OPTIONS";

/// The user info path, which HEAD without a token answers as GET does: 401.
const USER_INFO: &str = "/identity/sso/oauth2/user";

/// Every path we serve, with its `Allow`: written as README lists them, not taken from the
/// crate's constants, so that a path the code moved is a failure here and not a test that
/// follows it.
const PATHS: [(&str, &str); 10] = [
    ("/identity/sso/oauth2/access_token", POST),
    ("/identity/sso/oauth2/introspect", POST),
    ("/identity/sso/oauth2/revoke", POST),
    (USER_INFO, GET_OR_POST),
    ("/identity/sso/oauth2/jwks", PUBLIC),
    ("/.well-known/jwks.json", PUBLIC),
    ("/.well-known/oauth-authorization-server", PUBLIC),
    ("/healthz", GET),
    ("/readyz", GET),
    ("/metrics", GET),
];

fn wrong_methods(allow: &str) -> Vec<Method> {
    let wrong = match allow {
        POST => [Method::GET, Method::PUT, Method::DELETE, Method::OPTIONS],
        GET => [Method::POST, Method::PUT, Method::PATCH, Method::OPTIONS],
        PUBLIC => [Method::POST, Method::PUT, Method::PATCH, Method::DELETE],
        _ => [Method::PUT, Method::PATCH, Method::DELETE, Method::OPTIONS],
    };
    wrong.to_vec()
}

fn assert_405(answer: &Answer, allow: &str, context: &str) {
    assert_eq!(answer.status, 405, "{context}: {}", answer.text);
    assert_eq!(answer.header("allow"), Some(allow), "{context}");
    assert_eq!(answer.error(), "invalid_request", "{context}");
    answer.assert_error_shape(context);
}

#[tokio::test]
async fn a_wrong_method_on_any_path_gets_405_with_allow_and_the_error_body() {
    let app = spawn_app().await;
    for (path, allow) in PATHS {
        for method in wrong_methods(allow) {
            let response = app.http.request(method.clone(), app.url(path)).send().await;

            let answer = Answer::of(response.expect("sent")).await;

            assert_405(&answer, allow, &format!("{method} {path}"));
        }
    }
}

#[tokio::test]
async fn head_is_answered_wherever_get_is_and_refused_where_only_post_is() {
    let app = spawn_app().await;
    for (path, allow) in PATHS {
        let response = app.http.head(app.url(path)).send().await.expect("sent");

        let (status, allowed) = (response.status().as_u16(), response.headers().get("allow"));

        if allow != POST {
            // User info without a token refuses, but as GET would: HEAD is routed there.
            let expected = if path == USER_INFO { 401 } else { 200 };
            assert_eq!(status, expected, "HEAD {path}");
            assert!(allowed.is_none(), "HEAD {path}");
        } else {
            assert_eq!(status, 405, "HEAD {path}");
            assert_eq!(
                allowed.and_then(|a| a.to_str().ok()),
                Some(POST),
                "HEAD {path}"
            );
        }
    }
}

#[tokio::test]
async fn the_separate_metrics_listener_answers_a_wrong_method_with_405_too() {
    let app = spawn_app_with(|s| s.metrics.listen = "127.0.0.1:0".into()).await;
    let port = app.metrics_port.expect("a metrics listener");
    let url = format!("http://127.0.0.1:{port}/metrics");

    let answer = Answer::of(app.http.post(&url).send().await.expect("sent")).await;

    assert_405(&answer, GET, "POST /metrics on the metrics listener");
}

/// README ("Methods"): HEAD gets the same answer as GET, without its body. Sent raw, each on a
/// connection the server closes after answering (reqwest reads no body of a HEAD answer, so it
/// would not show one): nothing follows HEAD's head, and where GET's body is the same from one
/// request to the next, HEAD announces its length.
#[tokio::test]
async fn head_gets_the_answer_of_get_without_its_body() {
    let app = spawn_app().await;
    let varying = ["/metrics", "/readyz"];
    for (path, _) in PATHS.into_iter().filter(|(_, allow)| *allow != POST) {
        let get = raw_answer(&app, "GET", path).await;
        let head = raw_answer(&app, "HEAD", path).await;

        assert_eq!(head.status, get.status, "HEAD {path}");
        assert_eq!(head.text, "", "HEAD {path}: a body");
        if !varying.contains(&path) {
            let get_length = get.text.len().to_string();
            let length = get.header("content-length");
            assert_eq!(length, Some(get_length.as_str()), "GET {path}");
            assert_eq!(head.header("content-length"), length, "HEAD {path}");
        }
        assert_eq!(
            head.header("content-type"),
            get.header("content-type"),
            "HEAD {path}"
        );
    }
}

/// `method path` with `Connection: close`, on a connection of its own, read to its end.
async fn raw_answer(app: &crate::helpers::TestApp, method: &str, path: &str) -> Answer {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let address = app.address.replace("http://", "");
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connected");
    let request =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("sent");
    let mut raw = Vec::new();
    let reading = stream.read_to_end(&mut raw);
    tokio::time::timeout(std::time::Duration::from_secs(5), reading)
        .await
        .unwrap_or_else(|_| panic!("{method} {path}: the connection stayed open"))
        .expect("read");
    Answer::of_raw(&raw)
}

/// A path we do not serve (a client configured with a trailing slash, a typo, another server's
/// token path) gets 404 with the error body, which names the token endpoint and the metadata
/// that lists the others; whatever the method.
#[tokio::test]
async fn a_path_we_do_not_serve_gets_404_with_the_error_body_naming_the_token_endpoint() {
    let app = spawn_app().await;
    let unknown = [
        "/identity/sso/oauth2/access_token/",
        "/identity/sso/oauth2/token",
        "/oauth/token",
        "/",
    ];
    for path in unknown {
        for method in [Method::POST, Method::GET, Method::PUT] {
            let context = format!("{method} {path}");
            let response = app.http.request(method, app.url(path)).send().await;

            let answer = Answer::of(response.expect("sent")).await;

            assert_eq!(answer.status, 404, "{context}: {}", answer.text);
            assert_eq!(answer.error(), "invalid_request", "{context}");
            answer.assert_error_shape(&context);
            let described = answer.json["error_description"]
                .as_str()
                .unwrap_or_default();
            assert!(
                described.contains("POST /identity/sso/oauth2/access_token")
                    && described.contains("/.well-known/oauth-authorization-server"),
                "{context}: {described}"
            );
        }
    }
}
