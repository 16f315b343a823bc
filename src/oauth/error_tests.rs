use super::*;
use actix_web::body::to_bytes;

async fn render(error: OAuthError) -> (StatusCode, serde_json::Value, HttpResponse) {
    let response = error.error_response();
    let status = response.status();
    let headers = response.headers().clone();
    let body = to_bytes(response.into_body()).await.unwrap_or_default();
    let mut rebuilt = HttpResponse::new(status);
    *rebuilt.headers_mut() = headers;
    (
        status,
        serde_json::from_slice(&body).unwrap_or_default(),
        rebuilt,
    )
}

#[actix_web::test]
async fn every_error_renders_the_rfc_shape_without_caching() {
    let cases = [
        (OAuthError::invalid_request("x"), 400, "invalid_request"),
        (OAuthError::invalid_grant("x"), 400, "invalid_grant"),
        (
            OAuthError::UnauthorizedClient("x".into()),
            400,
            "unauthorized_client",
        ),
        (
            OAuthError::UnsupportedGrantType,
            400,
            "unsupported_grant_type",
        ),
        (OAuthError::InvalidScope("x".into()), 400, "invalid_scope"),
        (OAuthError::PayloadTooLarge, 413, "invalid_request"),
        (
            OAuthError::MethodNotAllowed { allow: "POST" },
            405,
            "invalid_request",
        ),
        (OAuthError::NotFound, 404, "invalid_request"),
    ];
    // The 404 names the paths as they are.
    let (_, body, _) = render(OAuthError::NotFound).await;
    let described = body["error_description"].as_str().unwrap_or_default();
    for path in [
        crate::routes::paths::TOKEN_PATH,
        crate::routes::paths::METADATA_PATH,
    ] {
        assert!(described.contains(path), "{described}");
    }
    for (error, status, code) in cases {
        let (got_status, body, response) = render(error).await;
        assert_eq!(got_status.as_u16(), status, "{code}");
        assert_eq!(body["error"], code);
        assert!(
            body["error_description"]
                .as_str()
                .is_some_and(|d| !d.is_empty())
        );
        assert_eq!(response.headers().get("cache-control").unwrap(), "no-store");
        assert!(response.headers().get("www-authenticate").is_none());
    }
}

/// Throttled client authentication is still `invalid_client`: the Basic challenge of the 401,
/// with the seconds to wait.
#[actix_web::test]
async fn a_throttled_client_gets_429_with_retry_after_and_the_basic_challenge() {
    let (status, body, response) = render(OAuthError::Throttled {
        retry_after_secs: 7,
    })
    .await;
    assert_eq!(
        (status.as_u16(), body["error"].as_str()),
        (429, Some("invalid_client"))
    );
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| !d.is_empty())
    );
    let header = |name| response.headers().get(name).and_then(|v| v.to_str().ok());
    assert_eq!(header("retry-after"), Some("7"));
    assert_eq!(
        header("www-authenticate"),
        Some(r#"Basic realm="sso-token", charset="UTF-8""#)
    );
    assert_eq!(header("cache-control"), Some("no-store"));
}

#[actix_web::test]
async fn bearer_errors_challenge_with_the_rfc6750_error_code() {
    let cases = [
        (
            OAuthError::MalformedBearer("x".into()),
            400,
            "invalid_request",
            r#"Bearer realm="sso-token", error="invalid_request""#,
        ),
        (
            OAuthError::InvalidToken,
            401,
            "invalid_token",
            r#"Bearer realm="sso-token", error="invalid_token""#,
        ),
        (
            OAuthError::InsufficientScope {
                scope: "read write",
                description: "x".into(),
            },
            403,
            "insufficient_scope",
            r#"Bearer realm="sso-token", error="insufficient_scope", scope="read write""#,
        ),
    ];
    for (error, status, code, challenge) in cases {
        let (got_status, body, response) = render(error).await;
        assert_eq!(
            (got_status.as_u16(), body["error"].as_str()),
            (status, Some(code))
        );
        assert_eq!(
            response.headers().get("www-authenticate").unwrap(),
            challenge
        );
    }
}

#[actix_web::test]
async fn a_request_without_credentials_gets_a_bare_challenge_and_no_error_code() {
    let response = OAuthError::BearerRequired.error_response();
    let status = response.status();
    let headers = response.headers().clone();
    let body = to_bytes(response.into_body()).await.unwrap_or_default();

    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        headers.get("www-authenticate").unwrap(),
        r#"Bearer realm="sso-token""#
    );
    assert_eq!(headers.get("cache-control").unwrap(), "no-store");
    assert!(body.is_empty(), "{body:?}");
}

#[actix_web::test]
async fn a_wrong_method_gets_405_naming_the_allowed_ones() {
    let (status, _, response) = render(OAuthError::MethodNotAllowed { allow: "GET, HEAD" }).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers().get("allow").unwrap(), "GET, HEAD");
}

#[actix_web::test]
async fn overloaded_client_authentication_is_a_503_to_retry() {
    let (status, body, response) = render(OAuthError::Overloaded).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Some("temporarily_unavailable")
        )
    );
    assert_eq!(response.headers().get("retry-after").unwrap(), "1");
    assert_eq!(response.headers().get("cache-control").unwrap(), "no-store");
}

#[actix_web::test]
async fn every_invalid_client_401_challenges_basic() {
    for error in [
        OAuthError::authentication_failed(),
        OAuthError::InvalidClient("Basic credentials are not valid base64".into()),
    ] {
        let (status, body, response) = render(error).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("invalid_client"))
        );
        assert_eq!(response.headers().get("cache-control").unwrap(), "no-store");
        let challenge = response.headers().get("www-authenticate").unwrap();
        assert_eq!(challenge, r#"Basic realm="sso-token", charset="UTF-8""#);
    }
}

#[actix_web::test]
async fn a_description_keeps_to_the_characters_rfc_6749_allows() {
    // A scope name from a code record, a parser's quote: printable ASCII but `"` and `\`.
    let error = OAuthError::InvalidScope("scope `é \"x\"\\\n…` is not allowed".into());
    let (_, body, _) = render(error).await;
    assert_eq!(
        body["error_description"],
        "scope `? 'x'??...` is not allowed"
    );
}

/// A bug or a broken deployment is a 500 `server_error`: its cause is for the log, not the
/// client.
#[actix_web::test]
async fn an_internal_error_is_a_500_server_error_that_keeps_its_cause_out_of_the_answer() {
    let cause = std::io::Error::other("Cause-Value-5e2c");
    let (status, body, response) = render(OAuthError::internal(cause)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::INTERNAL_SERVER_ERROR, Some("server_error"))
    );
    assert!(!body.to_string().contains("Cause-Value"), "{body}");
    assert_eq!(response.headers().get("cache-control").unwrap(), "no-store");
}

/// A body that did not arrive in time is a 408 that closes its connection: what is left of the
/// body would be read as the next request.
#[actix_web::test]
async fn a_body_timeout_is_a_408_that_closes_the_connection() {
    let response = OAuthError::BodyTimeout.error_response();
    assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
    assert_eq!(
        response.head().connection_type(),
        actix_web::http::ConnectionType::Close
    );
}
