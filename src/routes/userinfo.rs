//! `GET /identity/sso/oauth2/user`: the user of a Bearer token, as its scopes allow.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};

use super::LoggedClient;
use super::http::no_store;
use crate::inspect::Inspector;
use crate::oauth::{OAuthError, bearer};

pub async fn user(
    request: HttpRequest,
    inspector: web::Data<Inspector>,
) -> Result<HttpResponse, OAuthError> {
    let authorization = request.headers().get_all(header::AUTHORIZATION);
    let token = bearer::parse(authorization.map(HeaderValue::as_bytes))?;
    let live = inspector.bearer(token).await?;
    request
        .extensions_mut()
        .insert(LoggedClient(live.claims.client_id.clone()));
    let info = live.user_info()?;
    Ok(no_store(HttpResponse::Ok()).json(info))
}
