//! HTTP handlers: extract, call the core, render. No protocol logic lives here.

pub mod discovery;
pub mod health;
pub mod http;
pub mod introspect;
pub mod metrics;
pub mod token;
pub mod unread_body;
pub mod userinfo;

use actix_web::http::header;
use actix_web::{HttpMessage, HttpRequest};

use crate::client_auth::{Caller, ClientAuth};
use crate::oauth::{ClientCredentials, OAuthError};
use http::header_list;

/// The client id of an authenticated request (client credentials, or a live Bearer token), kept
/// in the request extensions for the access log. Never a claimed id before it is checked:
/// anyone can send any text as a `client_id`, a secret pasted there included.
#[derive(Clone)]
pub struct LoggedClient(pub String);

/// The log target of access lines: `RUST_LOG=sso_token::access=info` turns them on alone.
pub(crate) const ACCESS_LOG_TARGET: &str = "sso_token::access";

/// Whether access lines are written (the logger's filter is fixed at start).
pub(crate) fn access_log_on() -> bool {
    log::log_enabled!(target: ACCESS_LOG_TARGET, log::Level::Info)
}

/// Names the authenticated client in the access log line of `request`, when there is one (the
/// copy and the extension map are per request).
pub(crate) fn log_client(request: &HttpRequest, client_id: &str) {
    if access_log_on() {
        request
            .extensions_mut()
            .insert(LoggedClient(client_id.to_owned()));
    }
}

/// Client authentication (throttled, counted) from the request's source address; the access
/// log names the client once it has passed.
pub(crate) async fn authenticate(
    request: &HttpRequest,
    auth: &ClientAuth,
    credentials: &ClientCredentials,
) -> Result<Caller, OAuthError> {
    let source = auth.source(
        request.peer_addr().map(|a| a.ip()),
        header_list(request, header::X_FORWARDED_FOR).as_deref(),
    );
    let caller = auth.authenticate(credentials, source).await?;
    log_client(request, &caller.client().id);
    Ok(caller)
}
