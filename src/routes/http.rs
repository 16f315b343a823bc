//! What the route modules share: the methods of each resource and the 405 of any other
//! (RFC 9110 §15.5.6, with `Allow`), the CORS preflight of the public documents, the
//! `no-store` headers of answers that carry tokens or user data (RFC 6749 §5.1), and reading
//! headers and bounded bodies.

use std::borrow::Cow;
use std::time::Duration;

use actix_web::http::header::{self, HeaderValue};
use actix_web::web::{self, BytesMut};
use actix_web::{FromRequest, Handler, HttpRequest, HttpResponseBuilder, Resource, Responder};
use futures_util::StreamExt;
use percent_encoding::percent_decode_str;

use crate::oauth::OAuthError;
use crate::tokens::MAX_TOKEN;

/// `server.body_limit` and `server.body_timeout_ms`, as app data.
#[derive(Clone, Copy)]
pub struct BodyLimit {
    pub bytes: usize,
    pub timeout: Duration,
}

impl BodyLimit {
    /// Introspection and revocation carry a token besides what every request carries: room
    /// for the longest the exchange issues ([`MAX_TOKEN`]), so each can be introspected and
    /// revoked whatever `server.body_limit` is.
    pub fn with_token(self) -> Self {
        Self {
            bytes: self.bytes + MAX_TOKEN,
            ..self
        }
    }
}

/// A resource that answers POST only; any other method gets 405 `Allow: POST`.
pub fn post<F, Args>(path: &str, handler: F) -> Resource
where
    F: Handler<Args>,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    web::resource(path)
        .route(web::post().to(handler))
        .default_service(method_not_allowed("POST"))
}

/// A resource that answers GET, and HEAD as every GET resource should (RFC 9110 §9.1; the
/// server sends the headers without the body); any other method gets 405 `Allow: GET, HEAD`.
pub fn get<F, Args>(path: &str, handler: F) -> Resource
where
    F: Handler<Args>,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    get_and_head(path, handler).default_service(method_not_allowed("GET, HEAD"))
}

/// [`get`] for the public documents (JWKS, metadata), which browser apps read cross-origin: it
/// also answers the CORS preflight (`OPTIONS`) a browser sends first when the fetch carries a
/// header of its own (an `Authorization` an interceptor adds to every request), which would
/// otherwise get a 405 and block the fetch.
pub fn public_get<F, Args>(path: &str, handler: F) -> Resource
where
    F: Handler<Args>,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    get_and_head(path, handler)
        .route(web::method(actix_web::http::Method::OPTIONS).to(preflight))
        .default_service(method_not_allowed("GET, HEAD, OPTIONS"))
}

/// 204 allowing any origin to GET with the headers it asks for: the documents are public, and
/// no credentials are involved (`*` allows none).
async fn preflight(request: HttpRequest) -> actix_web::HttpResponse {
    let mut answer = actix_web::HttpResponse::NoContent();
    answer
        .insert_header((header::ALLOW, "GET, HEAD, OPTIONS"))
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, "GET, HEAD"))
        .insert_header((header::ACCESS_CONTROL_MAX_AGE, PREFLIGHT_MAX_AGE));
    if let Some(asked) = request
        .headers()
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
    {
        answer.insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, asked.clone()));
    }
    answer.finish()
}

/// Seconds a browser may keep a preflight's answer (Chromium keeps it 2 hours at most).
const PREFLIGHT_MAX_AGE: &str = "7200";

/// A resource that answers GET, HEAD and POST (user info, for OpenID Connect clients); any other
/// method gets 405 `Allow: GET, HEAD, POST`.
pub fn get_or_post<F, Args>(path: &str, handler: F) -> Resource
where
    F: Handler<Args>,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    get_and_head(path, handler.clone())
        .route(web::post().to(handler))
        .default_service(method_not_allowed("GET, HEAD, POST"))
}

fn get_and_head<F, Args>(path: &str, handler: F) -> Resource
where
    F: Handler<Args>,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    web::resource(path)
        .route(web::get().to(handler.clone()))
        .route(web::head().to(handler))
}

/// 405 with `allow` in the `Allow` header and the usual error body (`invalid_request`).
fn method_not_allowed(allow: &'static str) -> actix_web::Route {
    web::to(move || async move {
        Err::<actix_web::HttpResponse, _>(OAuthError::MethodNotAllowed { allow })
    })
}

/// 404 with the usual error body, which says where the endpoints are: any path not in the route
/// table.
pub fn not_found() -> actix_web::Route {
    web::to(|| async { Err::<actix_web::HttpResponse, _>(OAuthError::NotFound) })
}

/// `Cache-Control: no-store` and `Pragma: no-cache`: for every answer that holds a token, a
/// token's details or a user's data.
pub fn no_store(mut builder: HttpResponseBuilder) -> HttpResponseBuilder {
    builder
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .insert_header((header::PRAGMA, HeaderValue::from_static("no-cache")));
    builder
}

/// A header's value, if it is there and visible ASCII.
pub fn header_str(request: &HttpRequest, name: header::HeaderName) -> Option<&str> {
    request.headers().get(name).and_then(|v| v.to_str().ok())
}

/// The body's `Content-Type`, if it is there and visible ASCII. Two lines are refused: which
/// one a proxy in front reads is anybody's guess, and it must not see one format where the
/// server parses another.
pub fn content_type(request: &HttpRequest) -> Result<Option<&str>, OAuthError> {
    let mut lines = request.headers().get_all(header::CONTENT_TYPE);
    let first = lines.next();
    if lines.next().is_some() {
        return Err(OAuthError::invalid_request(
            "send one Content-Type header, not several",
        ));
    }
    Ok(first.and_then(|line| line.to_str().ok()))
}

/// The `Authorization` header of a client authentication, if any: one line (RFC 9110 §11.6.2:
/// one set of credentials; with several, which one counts is for nobody to guess), of visible
/// ASCII (anything else cannot be Basic credentials, and is not silently ignored).
pub fn client_authorization(request: &HttpRequest) -> Result<Option<&str>, OAuthError> {
    let mut lines = request.headers().get_all(header::AUTHORIZATION);
    let Some(line) = lines.next() else {
        return Ok(None);
    };
    if lines.next().is_some() {
        return Err(OAuthError::invalid_request(
            "send one Authorization header, not several",
        ));
    }
    line.to_str().map(Some).map_err(|_| {
        OAuthError::InvalidClient("the Authorization header is not visible ASCII".into())
    })
}

/// A list header's lines joined by `, `, in order (RFC 9110 §5.3: repeated lines are one
/// list; a proxy may append its own line after the client's). Bytes that are not UTF-8 become
/// U+FFFD: they spoil their own item, not the items a proxy appended to the same line.
pub fn header_list(request: &HttpRequest, name: header::HeaderName) -> Option<Cow<'_, str>> {
    let mut lines = request.headers().get_all(name);
    let mut list = String::from_utf8_lossy(lines.next()?.as_bytes());
    for line in lines {
        let list = list.to_mut();
        list.push_str(", ");
        list.push_str(&String::from_utf8_lossy(line.as_bytes()));
    }
    Some(list)
}

/// Refuses a request whose URL query names one of the body's `fields`. They are read from the
/// body only (RFC 6749 §2.3.1: client credentials "MUST NOT be included in the request URI";
/// §3.2, RFC 7009 §2.1 and RFC 7662 §2.1: the parameters go in the body). Without this, a
/// client that put them there (as the reference implementation's servlet read them) was told
/// that they were missing, or that its Content-Type was wrong, with no word of where they
/// went. The description (printable ASCII, as every one) names the parameter, never its
/// value. A query of other names is left alone: RFC 6749 §3.2 lets the endpoint's URL have one.
pub fn refuse_fields_in_query(request: &HttpRequest, fields: &[&str]) -> Result<(), OAuthError> {
    let query = request.query_string();
    if query.is_empty() {
        return Ok(());
    }
    // Each name decoded as a form's (`+` a space, then percent-decoding), as the body's are:
    // `client%5Fid` is `client_id` there too. The description quotes the field, not the name.
    let named = query.split('&').find_map(|pair| {
        let raw = pair.split_once('=').map_or(pair, |(name, _)| name);
        let spaced = raw.replace('+', " ");
        let name = percent_decode_str(&spaced).decode_utf8_lossy();
        fields.iter().find(|field| **field == name)
    });
    match named {
        None => Ok(()),
        Some(name) => Err(OAuthError::invalid_request(format!(
            "`{name}` is in the URL's query, where parameters are not read: send every \
             parameter in the request body (RFC 6749 sections 2.3.1 and 3.2)"
        ))),
    }
}

/// Reads the body up to `limit.bytes`, within `limit.timeout`; a declared or actual larger body
/// is refused early, a slower one gets 408 (and the connection is closed). An encoded body is
/// refused: no content coding is decoded here, and a gzip body would otherwise fail as "not
/// valid JSON".
pub async fn read_body(
    request: &HttpRequest,
    payload: web::Payload,
    limit: BodyLimit,
) -> Result<BytesMut, OAuthError> {
    if is_encoded(request) {
        return Err(OAuthError::invalid_request(
            "Content-Encoding is not supported: send the body unencoded",
        ));
    }
    read_any_body(request, payload, limit).await
}

/// Whether the body has a content coding other than `identity`, on any `Content-Encoding` line
/// (RFC 9110 §5.3: repeated lines are one list, `identity` then `gzip` is gzip).
pub fn is_encoded(request: &HttpRequest) -> bool {
    request
        .headers()
        .get_all(header::CONTENT_ENCODING)
        .flat_map(|line| line.as_bytes().split(|&byte| byte == b','))
        .map(<[u8]>::trim_ascii)
        .any(|coding| !coding.is_empty() && !coding.eq_ignore_ascii_case(b"identity"))
}

/// [`read_body`] whatever the body's coding, for a caller that may ignore the body.
pub async fn read_any_body(
    request: &HttpRequest,
    mut payload: web::Payload,
    limit: BodyLimit,
) -> Result<BytesMut, OAuthError> {
    let declared =
        header_str(request, header::CONTENT_LENGTH).and_then(|l| l.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit.bytes) {
        return Err(OAuthError::PayloadTooLarge);
    }
    let mut body = BytesMut::with_capacity(declared.unwrap_or(512).min(limit.bytes));
    let read = async {
        while let Some(chunk) = payload.next().await {
            let chunk = chunk
                .map_err(|_| OAuthError::invalid_request("the request body could not be read"))?;
            if body.len() + chunk.len() > limit.bytes {
                return Err(OAuthError::PayloadTooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(())
    };
    tokio::time::timeout(limit.timeout, read)
        .await
        .map_err(|_| OAuthError::BodyTimeout)??;
    crate::middleware::after_close::mark_body_read(request);
    Ok(body)
}
