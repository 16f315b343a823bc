//! `POST /identity/sso/oauth2/access_token`.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;

use super::authenticate;
use super::http::{BodyLimit, header_str, no_store, read_body};
use crate::client_auth::ClientAuth;
use crate::exchange::{Exchange, Issued};
use crate::oauth::{OAuthError, TokenRequest};

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
    no_store(HttpResponse::Ok()).json(TokenResponse {
        username: &issued.grant.username,
        token_type: "bearer",
        expires_in: issued.expires_in,
        access_token: issued.access_token.expose(),
        scope: &issued.scope,
        account_id: &issued.grant.account_id,
    })
}
