//! `GET` or `POST /identity/sso/oauth2/user`: the user of a Bearer token, as its scopes allow.
//! POST is there for OpenID Connect clients (Core §5.3.1), with the token in the header or in a
//! form body (RFC 6750 §2.2).

use actix_web::http::Method;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};

use super::http::{BodyLimit, content_type, is_encoded, no_store, read_any_body};
use super::log_client;
use crate::inspect::Inspector;
use crate::oauth::{OAuthError, bearer};

pub async fn user(
    request: HttpRequest,
    payload: web::Payload,
    inspector: web::Data<Inspector>,
    limit: web::Data<BodyLimit>,
) -> Result<HttpResponse, OAuthError> {
    let authorization = request.headers().get_all(header::AUTHORIZATION);
    let in_header = bearer::parse(authorization.map(HeaderValue::as_bytes));
    let in_body = if request.method() == Method::POST {
        // A body that is not a form is ignored, so its coding does not matter.
        let body = read_any_body(&request, payload, limit.with_token())
            .await
            .map_err(bearer::challenged)?;
        // Two Content-Type lines leave it unknown whether a body is a form; no body, no question.
        let form_type = if body.is_empty() {
            None
        } else {
            content_type(&request).map_err(bearer::challenged)?
        };
        bearer::in_form_body(form_type, is_encoded(&request), &body)?
    } else {
        None
    };
    let token = bearer::one_of(in_header, in_body)?;
    let active = inspector.bearer(&token).await?;
    log_client(&request, &active.claims.client_id);
    let info = active.user_info()?;
    Ok(no_store(HttpResponse::Ok()).json(info))
}
