//! The access log: one line per request with method, path, status, latency and the client id
//! once that client has authenticated; never bodies, headers or queries.

use actix_web::dev::ServiceResponse;
use actix_web::middleware::Logger;
use actix_web::{HttpMessage, HttpRequest};

/// The client id of an authenticated request (client credentials, or a live Bearer token), kept
/// in the request extensions for the access log. Never a claimed id before it is checked:
/// anyone can send any text as a `client_id`, a secret pasted there included.
#[derive(Clone)]
struct LoggedClient(String);

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

/// Method, path without query, status, latency and client id; never bodies, headers or queries.
pub(crate) fn access_log() -> Logger {
    Logger::new(r#"%a "%{method}xi %U" %s %Dms client=%{client}xo"#)
        .log_target(ACCESS_LOG_TARGET)
        .custom_request_replace("method", |req| req.method().to_string())
        .custom_response_replace("client", logged_client)
}

fn logged_client(response: &ServiceResponse) -> String {
    response
        .request()
        .extensions()
        .get::<LoggedClient>()
        .map_or_else(|| "-".to_owned(), |c| c.0.clone())
}
