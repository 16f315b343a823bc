//! `GET /identity/sso/oauth2/user`: the user of a Bearer token, as its scopes allow.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};

use super::log_client;
use super::token::header_str;
use crate::inspect::Inspector;
use crate::oauth::{OAuthError, bearer};

pub async fn user(
    request: HttpRequest,
    inspector: web::Data<Inspector>,
) -> Result<HttpResponse, OAuthError> {
    let token = bearer::parse(header_str(&request, header::AUTHORIZATION))?;
    let live = inspector.bearer(token).await?;
    log_client(&request, &live.claims.client_id);
    let info = live.user_info()?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .insert_header((header::PRAGMA, HeaderValue::from_static("no-cache")))
        .json(info))
}

/// Answers any other method on the user info path.
pub async fn get_only() -> Result<HttpResponse, OAuthError> {
    Err(OAuthError::invalid_request("user info accepts GET only"))
}
