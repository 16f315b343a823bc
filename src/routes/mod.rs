//! HTTP handlers: extract, call the core, render. No protocol logic lives here.

pub mod discovery;
pub mod health;
pub mod introspect;
pub mod metrics;
pub mod token;
pub mod userinfo;

use actix_web::{HttpMessage, HttpRequest};

/// The client id of an authenticated request (client credentials, or a live Bearer token), kept
/// in the request extensions for the access log. Never a claimed id before it is checked:
/// anyone can send any text as a `client_id`, a secret pasted there included.
#[derive(Clone)]
pub struct LoggedClient(pub String);

/// Names the authenticated client in the access log line of `request`.
pub(crate) fn log_client(request: &HttpRequest, client_id: &str) {
    request
        .extensions_mut()
        .insert(LoggedClient(client_id.to_owned()));
}
