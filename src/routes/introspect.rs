//! `POST /identity/sso/oauth2/introspect` (RFC 7662) and `POST /identity/sso/oauth2/revoke`
//! (RFC 7009): a body like the token endpoint's, the same client authentication.

use actix_web::http::header;
use actix_web::web::{self, BytesMut};
use actix_web::{HttpRequest, HttpResponse};

use super::authenticate_request;
use super::http::{
    BodyLimit, client_authorization, content_type, no_store, read_body, refuse_fields_in_query,
};
use super::paths::{INTROSPECT_PATH, REVOKE_PATH};
use crate::client_auth::{Caller, ClientAuth};
use crate::inspect::Inspector;
use crate::oauth::token_query::FIELDS as QUERY_FIELDS;
use crate::oauth::{OAuthError, TokenQuery};

pub async fn introspect(
    request: HttpRequest,
    payload: web::Payload,
    inspector: web::Data<Inspector>,
    auth: web::Data<ClientAuth>,
    limit: web::Data<BodyLimit>,
) -> Result<HttpResponse, OAuthError> {
    let (caller, query) = authenticated(&request, payload, &auth, &limit, INTROSPECT_PATH).await?;
    let answer = inspector.introspect(&caller, &query).await?;
    Ok(no_store(HttpResponse::Ok()).json(answer))
}

pub async fn revoke(
    request: HttpRequest,
    payload: web::Payload,
    inspector: web::Data<Inspector>,
    auth: web::Data<ClientAuth>,
    limit: web::Data<BodyLimit>,
) -> Result<HttpResponse, OAuthError> {
    let (caller, query) = authenticated(&request, payload, &auth, &limit, REVOKE_PATH).await?;
    inspector.revoke(&caller, &query).await?;
    Ok(no_store(HttpResponse::Ok())
        .content_type(header::ContentType::json())
        .body(REVOKED))
}

/// RFC 7009 §2.2 tells clients to ignore the body of a 200. An empty JSON object rather than no
/// body, because some libraries read every answer as JSON and fail on an empty or untyped one
/// (simple-oauth2's strict mode, fetch-based clients calling `response.json()`).
const REVOKED: &str = "{}";

/// Both endpoints' start: the body parsed, then the client that sent it authenticated (at
/// `endpoint`, the path called).
async fn authenticated(
    request: &HttpRequest,
    payload: web::Payload,
    auth: &ClientAuth,
    limit: &BodyLimit,
    endpoint: &'static str,
) -> Result<(Caller, TokenQuery), OAuthError> {
    let body = read_body(request, payload, limit.with_token()).await?;
    refuse_fields_in_query(request, &QUERY_FIELDS)?;
    let query = parse(request, body)?;
    let caller = authenticate_request(request, auth, &query.client, endpoint).await?;
    Ok((caller, query))
}

fn parse(request: &HttpRequest, body: BytesMut) -> Result<TokenQuery, OAuthError> {
    TokenQuery::parse(
        content_type(request)?,
        client_authorization(request)?,
        &body,
    )
}
