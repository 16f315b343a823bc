//! The error vocabulary of our endpoints (RFC 6749 §5.2, RFC 7009 §2.2.1, RFC 6750 §3.1) and
//! its one mapping to HTTP.

use std::borrow::Cow;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::metrics::RedisOp;
use crate::routes::http::no_store;

/// Descriptions are written for the developer of the calling client: they say what to fix and
/// never echo a secret or a code, nor hint at how close a secret was.
pub type Description = Cow<'static, str>;

/// Declares [`ErrorCode`] from one list of `Variant => "code"`: the variants, `ALL` (each at
/// the index `code as usize`) and `as_str()`, so that a new code is in `ALL` too.
macro_rules! error_codes {
    ($($variant:ident => $code:literal,)+) => {
        /// An `error` code that the service answers with: RFC 6749's (§5.2), and RFC 6750's
        /// (§3.1) at the resource endpoint. The metrics keep a series for each.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum ErrorCode {
            $($variant,)+
        }

        impl ErrorCode {
            /// Every code, each at the index `code as usize`.
            pub const ALL: &[Self] = &[$(Self::$variant,)+];

            /// The code as sent in `error` (and in a Bearer challenge's `error`).
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $code,)+
                }
            }
        }
    };
}

error_codes! {
    InvalidRequest => "invalid_request",
    InvalidClient => "invalid_client",
    InvalidGrant => "invalid_grant",
    UnauthorizedClient => "unauthorized_client",
    UnsupportedGrantType => "unsupported_grant_type",
    InvalidScope => "invalid_scope",
    InvalidToken => "invalid_token",
    InsufficientScope => "insufficient_scope",
    TemporarilyUnavailable => "temporarily_unavailable",
    ServerError => "server_error",
}

/// Every way a request can fail, named after the RFC error codes.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    #[error("invalid_request: {0}")]
    InvalidRequest(Description),
    /// Unknown client, disabled client and wrong secret all look alike from outside (one
    /// description); credentials that cannot be right as sent (none, no secret, another scheme,
    /// a malformed `Authorization` header) say what is wrong with them. Always 401 with a Basic
    /// challenge, however the client authenticated (RFC 9110 §15.5.2: a 401 carries one).
    #[error("invalid_client: {0}")]
    InvalidClient(Description),
    #[error("invalid_grant: {0}")]
    InvalidGrant(Description),
    #[error("unauthorized_client: {0}")]
    UnauthorizedClient(Description),
    #[error("unsupported_grant_type")]
    UnsupportedGrantType,
    #[error("invalid_scope: {0}")]
    InvalidScope(Description),
    /// RFC 6750 §3.1: a resource request without credentials. 401 with a bare challenge and no
    /// body: "the resource server SHOULD NOT include an error code or other error information".
    #[error("no bearer token")]
    BearerRequired,
    /// RFC 6750 §3.1: an `Authorization` header that is not one `Bearer <b64token>` (empty, no
    /// or a malformed token, several headers): 400 `invalid_request`, challenged.
    #[error("invalid_request: {0}")]
    MalformedBearer(Description),
    /// RFC 6750: the Bearer token is not live (never ours, expired, revoked); why is not said.
    #[error("invalid_token")]
    InvalidToken,
    /// RFC 6750: the token is live but its scopes allow none of what was asked; `scope` is
    /// what would do, for the challenge's `scope` attribute.
    #[error("insufficient_scope: {description}")]
    InsufficientScope {
        scope: &'static str,
        description: Description,
    },
    /// Too many failed client authentications from this address or for this client id
    /// (`throttle`): 429 with `Retry-After` and the Basic challenge. The RFC 6749 code is
    /// `invalid_client`, since it is client authentication that is refused; RFC 6749 has no code
    /// for rate limits.
    #[error("invalid_client: throttled for {retry_after_secs} s")]
    Throttled { retry_after_secs: u64 },
    /// The body was larger than `server.body_limit`.
    #[error("request body too large")]
    PayloadTooLarge,
    /// The body did not arrive within `server.body_timeout_ms`: 408, and the connection is
    /// closed (what is left of the body would be read as the next request).
    #[error("request body timed out")]
    BodyTimeout,
    /// A method the path does not answer: 405 with `allow` (the ones it does) in `Allow`.
    #[error("method not allowed")]
    MethodNotAllowed { allow: &'static str },
    /// A path the service does not serve: 404, with a body that says where the endpoints are
    /// (a client configured with a wrong path, or a trailing slash, learns it from the answer).
    #[error("not found")]
    NotFound,
    /// Redis is down, slow or refusing: the client may retry. The operation is named in the
    /// log line as in `sso_redis_errors_total{operation}`: a take of a code failing is not a
    /// throttle counter failing.
    #[error("temporarily_unavailable")]
    Unavailable(RedisOp, #[source] crate::store::StoreError),
    /// No exchange slot came free in `server.slot_wait_ms`, or Redis fails for the code's (or
    /// the token record's) part of the key space and another call is trying it
    /// (`slots::Slots`): 503 with `Retry-After`; Redis was not asked, nothing was touched.
    #[error("temporarily_unavailable: busy")]
    Busy,
    /// The client id's Argon2 turn or every Argon2 slot stayed busy
    /// (`secret_hash::Argon2Limit`): 503 with `Retry-After`, as for Redis trouble.
    #[error("temporarily_unavailable: client authentication overloaded")]
    Overloaded,
    /// A bug or a broken deployment; the cause goes to the log, never to the client.
    #[error("server_error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl OAuthError {
    pub fn invalid_request(description: impl Into<Description>) -> Self {
        Self::InvalidRequest(description.into())
    }

    pub fn invalid_grant(description: impl Into<Description>) -> Self {
        Self::InvalidGrant(description.into())
    }

    /// A bug or a broken deployment: `cause` goes to the log, a bare `server_error` to the
    /// client.
    pub fn internal(cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Internal(Box::new(cause))
    }

    /// The one answer to a failed client authentication, whatever the reason.
    pub fn authentication_failed() -> Self {
        Self::InvalidClient(
            "client authentication failed: unknown client, disabled client or wrong secret".into(),
        )
    }

    /// The `error` code: RFC 6749's, or RFC 6750's for a Bearer token.
    pub fn code(&self) -> &'static str {
        self.error_code().as_str()
    }

    /// The `error` code as an [`ErrorCode`]; [`code`](Self::code) is its string.
    pub fn error_code(&self) -> ErrorCode {
        match self {
            // BearerRequired shows no code (RFC 6750 §3.1); the metrics count it here.
            Self::InvalidRequest(_)
            | Self::PayloadTooLarge
            | Self::BodyTimeout
            | Self::MethodNotAllowed { .. }
            | Self::NotFound
            | Self::MalformedBearer(_)
            | Self::BearerRequired => ErrorCode::InvalidRequest,
            Self::InvalidClient(_) | Self::Throttled { .. } => ErrorCode::InvalidClient,
            Self::InvalidGrant(_) => ErrorCode::InvalidGrant,
            Self::UnauthorizedClient(_) => ErrorCode::UnauthorizedClient,
            Self::UnsupportedGrantType => ErrorCode::UnsupportedGrantType,
            Self::InvalidScope(_) => ErrorCode::InvalidScope,
            Self::InvalidToken => ErrorCode::InvalidToken,
            Self::InsufficientScope { .. } => ErrorCode::InsufficientScope,
            Self::Unavailable(..) | Self::Overloaded | Self::Busy => {
                ErrorCode::TemporarilyUnavailable
            }
            Self::Internal(_) => ErrorCode::ServerError,
        }
    }

    fn description(&self) -> &str {
        match self {
            Self::InvalidRequest(d)
            | Self::InvalidGrant(d)
            | Self::UnauthorizedClient(d)
            | Self::InvalidScope(d)
            | Self::MalformedBearer(d)
            | Self::InsufficientScope { description: d, .. }
            | Self::InvalidClient(d) => d,
            Self::BearerRequired => "an access token is required: Authorization: Bearer <token>",
            Self::InvalidToken => "the access token is invalid, expired or revoked",
            Self::UnsupportedGrantType => "grant_type must be authorization_code",
            Self::PayloadTooLarge => "request body is too large",
            Self::BodyTimeout => "the request body did not arrive in time",
            Self::MethodNotAllowed { .. } => {
                "this method is not allowed here; the Allow header lists those that are"
            }
            Self::NotFound => {
                "no such endpoint; the token endpoint is POST /identity/sso/oauth2/access_token, \
                 and /.well-known/oauth-authorization-server lists the others"
            }
            Self::Throttled { .. } => {
                "too many failed client authentications from this address or for this client; \
                 retry after the seconds in Retry-After"
            }
            Self::Unavailable(..) => "the token store is unavailable, retry shortly",
            Self::Overloaded => "too many client authentications at once, retry shortly",
            Self::Busy => "the server is busy, retry shortly",
            Self::Internal(_) => "internal error, see the server log",
        }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    error_description: Cow<'a, str>,
}

/// RFC 6749 §5.2: `error_description` holds only %x20-21 / %x23-5B / %x5D-7E, printable ASCII
/// but `"` and `\`. Our own descriptions are written so; what parsers say about a request, or
/// a scope name from a code record, is made so here.
fn description_text(text: &str) -> Cow<'_, str> {
    let allowed = |c: char| matches!(c, ' '..='!' | '#'..='[' | ']'..='~');
    if text.chars().all(allowed) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            c if allowed(c) => out.push(c),
            '"' => out.push('\''),
            '…' => out.push_str("..."),
            _ => out.push('?'),
        }
    }
    Cow::Owned(out)
}

impl ResponseError for OAuthError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::InvalidClient(_) | Self::BearerRequired | Self::InvalidToken => {
                StatusCode::UNAUTHORIZED
            }
            Self::InsufficientScope { .. } => StatusCode::FORBIDDEN,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(..) | Self::Overloaded | Self::Busy => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::Unavailable(op, cause) => {
                // One line a second for each operation: while Redis is down every request
                // comes here, and one operation's lines must not hide another's.
                use crate::log_limit::{EverySecond, HeldBack};
                const OPS: usize = RedisOp::ALL.len();
                static LIMITS: [EverySecond; OPS] = [const { EverySecond::new() }; OPS];
                if let Some(more) = LIMITS[*op as usize].admit(crate::clock::unix_now()) {
                    log::warn!(
                        "redis unavailable ({}): {cause}{}",
                        op.label(),
                        HeldBack(more)
                    );
                }
            }
            Self::Internal(cause) => log::error!("internal error: {cause}"),
            _ => {}
        }
        let mut response = no_store(HttpResponse::build(self.status_code()));
        match self {
            Self::InvalidClient(_) => {
                response.insert_header((header::WWW_AUTHENTICATE, basic_challenge()));
            }
            Self::Unavailable(..) | Self::Overloaded | Self::Busy => {
                response.insert_header((header::RETRY_AFTER, HeaderValue::from_static("1")));
            }
            Self::BearerRequired => {
                response.insert_header((header::WWW_AUTHENTICATE, bearer_challenge(None, None)));
                return response.finish();
            }
            Self::MalformedBearer(_) | Self::InvalidToken => {
                let challenge = bearer_challenge(Some(self.code()), None);
                response.insert_header((header::WWW_AUTHENTICATE, challenge));
            }
            Self::InsufficientScope { scope, .. } => {
                let challenge = bearer_challenge(Some(self.code()), Some(scope));
                response.insert_header((header::WWW_AUTHENTICATE, challenge));
            }
            Self::BodyTimeout => {
                response.force_close();
            }
            Self::MethodNotAllowed { allow } => {
                response.insert_header((header::ALLOW, HeaderValue::from_static(allow)));
            }
            Self::Throttled { retry_after_secs } => {
                let seconds = (*retry_after_secs).max(1);
                response.insert_header((header::RETRY_AFTER, HeaderValue::from(seconds)));
                // Still an `invalid_client` (RFC 6749 §5.2): a client that sent Basic
                // credentials is told how to authenticate, as with the 401.
                response.insert_header((header::WWW_AUTHENTICATE, basic_challenge()));
            }
            _ => {}
        }
        response.json(ErrorBody {
            error: self.code(),
            error_description: description_text(self.description()),
        })
    }
}

/// The realm of our challenges, Basic and Bearer: a macro, so that the Basic one stays a
/// `&'static str` (`concat!`).
macro_rules! realm {
    () => {
        "sso-token"
    };
}

/// The challenge of a refused client authentication (RFC 7617, with RFC 6749 §2.3.1's UTF-8).
fn basic_challenge() -> HeaderValue {
    HeaderValue::from_static(concat!("Basic realm=\"", realm!(), "\", charset=\"UTF-8\""))
}

/// An RFC 6750 §3 challenge: `Bearer realm="…"`, then `error="…"` and `scope="…"` when given.
/// Codes and scopes are our own constants, plain ASCII: the value is always a valid header.
fn bearer_challenge(error: Option<&str>, scope: Option<&str>) -> HeaderValue {
    let mut challenge = format!(r#"Bearer realm="{}""#, realm!());
    if let Some(error) = error {
        challenge.push_str(&format!(r#", error="{error}""#));
    }
    if let Some(scope) = scope {
        challenge.push_str(&format!(r#", scope="{scope}""#));
    }
    HeaderValue::try_from(challenge).unwrap_or(HeaderValue::from_static("Bearer"))
}

#[cfg(test)]
#[path = "error_tests.rs"]
mod tests;
