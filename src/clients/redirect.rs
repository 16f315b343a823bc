//! A client's `redirect_uris`: which entries load, and which request URIs an entry registers.
//! An entry is a URI matched exactly (RFC 6749 §3.1.2.3), or a prefix: one ending in `*`, for
//! an authorize service that matches prefixes, as the reference implementation's did.

/// Why `entry` cannot be registered, or `None`. A URI must be absolute (RFC 3986 §4.3; a
/// native app's `com.example.app:/cb` too), with a host after `//` for http and https, without
/// a fragment (RFC 6749 §3.1.2) or white space and control characters (no part of a URI, RFC
/// 3986 Appendix C: a request's URI would never match). A prefix must be such a URI before
/// its `*` and fix the host: a path after it (`https://app.example*` would take
/// `https://app.example.evil.com`), or for another scheme something after its `:`.
pub(super) fn refusal(entry: &str) -> Option<String> {
    let shown = entry.escape_debug();
    let Some(prefix) = entry.strip_suffix('*') else {
        return (!is_redirect_uri(entry)).then(|| {
            format!(
                "redirect URI `{shown}` must be absolute (with a host if http or https), \
                 without a fragment, white space or control characters"
            )
        });
    };
    if !is_redirect_uri(prefix) {
        return Some(format!(
            "redirect URI prefix `{shown}` must be an absolute URI before its `*` (with a host \
             if http or https), without a fragment, white space or control characters"
        ));
    }
    let (scheme, rest) = prefix.split_once(':')?;
    let fixed = match rest.strip_prefix("//") {
        Some(host_on) if is_web(scheme) => host_on.find('/').is_some_and(|at| at > 0),
        _ => !rest.is_empty(),
    };
    (!fixed).then(|| {
        format!(
            "redirect URI prefix `{shown}` must fix the host: a path after it if http or https \
             (`https://app.example/cb/*`), something after the `:` otherwise"
        )
    })
}

/// Whether `entry` (one that loaded) registers the request's `uri`. A prefix takes a URI
/// that begins with it, and the prefix itself without its last `/` (`…/cb/*` takes `…/cb`), as
/// Keycloak's wildcard does; only a URI that could be registered on its own, and whose path
/// does not climb out of the prefix: no `.` or `..` segment (`;` parameters aside), no `\`,
/// and none of [`ENCODED`], which browsers and servers may resolve (Keycloak's CVE-2026-3872
/// was `/cb/..;/admin`).
pub(super) fn registers(entry: &str, uri: &str) -> bool {
    match entry.strip_suffix('*') {
        None => entry == uri,
        Some(prefix) => {
            (uri.starts_with(prefix) || prefix.strip_suffix('/') == Some(uri))
                && is_redirect_uri(uri)
                && !climbs(uri)
        }
    }
}

fn is_web(scheme: &str) -> bool {
    ["http", "https"]
        .iter()
        .any(|web| scheme.eq_ignore_ascii_case(web))
}

fn is_redirect_uri(uri: &str) -> bool {
    let Some((scheme, rest)) = uri.split_once(':') else {
        return false;
    };
    !scheme.is_empty()
        && !uri.contains('#')
        && !uri.contains(|c: char| c.is_whitespace() || c.is_control())
        && (!is_web(scheme)
            || rest
                .strip_prefix("//")
                .is_some_and(|r| !r.is_empty() && !r.starts_with(['/', '?'])))
}

/// Encoded characters that a server which decodes twice, or splits at a decoded `;`, may read
/// as a path step (Keycloak's #48978): `.`, `/`, `\`, `;`, `%` itself and control characters.
const ENCODED: [&str; 9] = [
    "%2e", "%2f", "%5c", "%3b", "%25", "%00", "%09", "%0a", "%0d",
];

/// Whether the path of `uri` (a redirect URI) could lead out of where it seems to be.
fn climbs(uri: &str) -> bool {
    let before_query = uri.split('?').next().unwrap_or(uri);
    let after_scheme = before_query.split_once(':').map_or("", |(_, rest)| rest);
    let path = match after_scheme.strip_prefix("//") {
        Some(host_on) => host_on.find('/').map_or("", |at| &host_on[at..]),
        None => after_scheme,
    };
    let lower = path.to_ascii_lowercase();
    path.contains('\\')
        || ENCODED.iter().any(|coded| lower.contains(coded))
        || path
            .split('/')
            .map(|segment| segment.split(';').next().unwrap_or(segment))
            .any(|segment| segment == "." || segment == "..")
}
