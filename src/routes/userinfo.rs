//! `GET /identity/sso/oauth2/user`: the user of a Bearer token, as its scopes allow.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};

use super::http::no_store;
use super::log_client;
use crate::inspect::Inspector;
use crate::oauth::{OAuthError, bearer};

pub async fn user(
    request: HttpRequest,
    inspector: web::Data<Inspector>,
) -> Result<HttpResponse, OAuthError> {
    let authorization = request.headers().get_all(header::AUTHORIZATION);
    let token = bearer::parse(authorization.map(HeaderValue::as_bytes))?;
    let live = inspector.bearer(token).await?;
    log_client(&request, &live.claims.client_id);
    let info = live.user_info()?;
    Ok(no_store(HttpResponse::Ok()).json(info))
}
