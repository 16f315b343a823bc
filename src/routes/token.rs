//! `POST /identity/sso/oauth2/access_token`.

use actix_web::http::header::{self, HeaderValue};
use actix_web::web::{self, BytesMut};
use actix_web::{HttpRequest, HttpResponse};
use futures_util::StreamExt;
use serde::Serialize;

use super::log_client;
use crate::client_auth::{Caller, ClientAuth};
use crate::exchange::{Exchange, Issued};
use crate::oauth::{ClientCredentials, OAuthError, TokenRequest};

/// `server.body_limit`, as app data.
#[derive(Clone, Copy)]
pub struct BodyLimit(pub usize);

/// The seed document's response, field for field.
#[derive(Serialize)]
struct TokenResponse<'a> {
    username: &'a str,
    token_type: &'static str,
    expires_in: u64,
    access_token: &'a str,
    scope: &'a str,
    account_id: &'a str,
}

pub async fn access_token(
    request: HttpRequest,
    payload: web::Payload,
    exchange: web::Data<Exchange>,
    auth: web::Data<ClientAuth>,
    limit: web::Data<BodyLimit>,
) -> Result<HttpResponse, OAuthError> {
    let body = read_body(&request, payload, limit.0).await?;
    let token_request = TokenRequest::parse(
        header_str(&request, header::CONTENT_TYPE),
        header_str(&request, header::AUTHORIZATION),
        &body,
    )?;
    let caller = authenticate(&request, &auth, &token_request.client).await?;
    let issued = exchange.exchange(&caller, &token_request).await?;
    Ok(render(&issued))
}

fn render(issued: &Issued) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .insert_header((header::PRAGMA, HeaderValue::from_static("no-cache")))
        .json(TokenResponse {
            username: &issued.grant.username,
            token_type: "bearer",
            expires_in: issued.expires_in,
            access_token: issued.access_token.expose(),
            scope: &issued.scope,
            account_id: &issued.grant.account_id,
        })
}

/// Answers any other method on the token path.
pub async fn method_not_allowed() -> Result<HttpResponse, OAuthError> {
    Err(OAuthError::invalid_request(
        "the token endpoint accepts POST only",
    ))
}

/// Client authentication (throttled, counted) from the request's source address; the access
/// log names the client once it has passed.
pub(super) async fn authenticate(
    request: &HttpRequest,
    auth: &ClientAuth,
    credentials: &ClientCredentials,
) -> Result<Caller, OAuthError> {
    let source = auth.source(
        request.peer_addr().map(|a| a.ip()),
        header_str(request, header::X_FORWARDED_FOR),
    );
    let caller = auth.authenticate(credentials, source).await?;
    log_client(request, &caller.client().id);
    Ok(caller)
}

pub(super) fn header_str(request: &HttpRequest, name: header::HeaderName) -> Option<&str> {
    request.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Reads the body up to `limit` bytes; a declared or actual larger body is refused early.
pub(super) async fn read_body(
    request: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<BytesMut, OAuthError> {
    let declared =
        header_str(request, header::CONTENT_LENGTH).and_then(|l| l.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(OAuthError::PayloadTooLarge);
    }
    let mut body = BytesMut::with_capacity(declared.unwrap_or(512).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|_| OAuthError::invalid_request("the request body could not be read"))?;
        if body.len() + chunk.len() > limit {
            return Err(OAuthError::PayloadTooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
