//! The access log: one line per request with its source, method, path, status, latency and the
//! client id once that client has authenticated; never bodies, headers or queries.

use std::sync::Arc;

use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Logger;
use actix_web::{HttpMessage, HttpRequest};

use crate::routes::http::header_list;
use crate::routes::paths::{HEALTHZ_PATH, READYZ_PATH};
use crate::throttle::{Network, source_address};

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

/// Source, method, path without query, status, latency and client id; never bodies, headers
/// or queries. `proxies` are `throttle.trusted_proxies`. Not the health probes: a balancer and
/// an orchestrator ask every few seconds, per replica, and their lines would bury the rest
/// (a Redis outage, which turns `/readyz` to 503, is logged as such).
pub(crate) fn access_log(proxies: Arc<[Network]>) -> Logger {
    Logger::new(r#"%{source}xi "%{method}xi %{path}xi" %s %Dms client=%{client}xo"#)
        .exclude(HEALTHZ_PATH)
        .exclude(READYZ_PATH)
        .log_target(ACCESS_LOG_TARGET)
        .custom_request_replace("source", move |req| source(req, &proxies))
        .custom_request_replace("method", |req| {
            cut(req.method().as_str(), MAX_LOGGED_METHOD)
        })
        .custom_request_replace("path", |req| cut(req.path(), MAX_LOGGED_PATH))
        .custom_response_replace("client", logged_client)
}

/// The address the throttle counts a request under, before it groups IPv6 by /64 (the peer,
/// or the client a trusted proxy forwarded for), and the proxy after `via`: behind a balancer
/// the peer alone is the balancer on every line, and a burst of 429s names no one.
fn source(request: &ServiceRequest, proxies: &[Network]) -> String {
    let Some(peer) = request.peer_addr().map(|a| a.ip()) else {
        return "-".to_owned();
    };
    let forwarded_for = header_list(request.request(), header::X_FORWARDED_FOR);
    let peer = peer.to_canonical();
    match source_address(Some(peer), forwarded_for.as_deref(), proxies) {
        Ok(source) if source == peer => source.to_string(),
        Ok(source) => format!("{source} via {peer}"),
        Err(_) => format!("- via {peer}"),
    }
}

/// The most of a path a line shows: a path may be 64 KiB, and a line that long is split by log
/// pipelines (Docker's json-file at 16 KiB) and costs its size in every store it reaches.
const MAX_LOGGED_PATH: usize = 256;
/// The most of a method: any token is one to the HTTP parser, up to the head's 128 KiB.
const MAX_LOGGED_METHOD: usize = 16;

/// `text` (a path without its query, or a method) cut to `max` bytes (at a character's edge)
/// with `…` after what was cut. Printable ASCII only: the HTTP parser refuses anything else,
/// but takes `"` in a path, which would end the line's quoted field and let the rest of the
/// path pass for fields of its own: `"` and `\` are percent-encoded.
fn cut(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = String::with_capacity(end + 3);
    for c in text[..end].chars() {
        match c {
            '"' => out.push_str("%22"),
            '\\' => out.push_str("%5C"),
            c => out.push(c),
        }
    }
    if end < text.len() {
        out.push('…');
    }
    out
}

fn logged_client(response: &ServiceResponse) -> String {
    response
        .request()
        .extensions()
        .get::<LoggedClient>()
        .map_or_else(|| "-".to_owned(), |c| c.0.clone())
}

#[cfg(test)]
mod tests {
    use super::{MAX_LOGGED_PATH, cut};

    fn logged_path(path: &str) -> String {
        cut(path, MAX_LOGGED_PATH)
    }

    /// A path is ASCII once parsed, but the cut stays at a character's edge for any text: a
    /// two-byte character across the limit is left out whole, never split or kept past it.
    #[test]
    fn a_long_path_is_cut_at_a_characters_edge() {
        let short = "/a".repeat(MAX_LOGGED_PATH / 2);
        assert_eq!(logged_path(&short), short);
        let ascii = "/a".repeat(MAX_LOGGED_PATH);
        assert_eq!(
            logged_path(&ascii),
            format!("{}…", &ascii[..MAX_LOGGED_PATH])
        );
        // `é` is two bytes: the 128th starts at byte 255 and ends past the limit.
        let accented = format!("/{}", "é".repeat(MAX_LOGGED_PATH));
        assert_eq!(
            logged_path(&accented),
            format!("/{}…", "é".repeat(MAX_LOGGED_PATH / 2 - 1))
        );
    }

    /// The HTTP parser takes `"` in a path: unescaped, it would close the line's quoted field
    /// and what follows would read as fields of the line (a status, a client).
    #[test]
    fn a_quote_or_backslash_in_a_path_cannot_end_its_field() {
        assert_eq!(
            logged_path(r#"/x"%20200%20client=admin\"#),
            "/x%22%20200%20client=admin%5C"
        );
        // Cut before escaping: the limit is the path's bytes, not the line's.
        let quotes = "\"".repeat(MAX_LOGGED_PATH + 1);
        assert_eq!(
            logged_path(&quotes),
            format!("{}…", "%22".repeat(MAX_LOGGED_PATH))
        );
    }
}
