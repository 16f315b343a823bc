//! A client's `redirect_uris`: which entries load, and which request URIs an entry registers.
//! An entry is a URI matched exactly (RFC 6749 §3.1.2.3), or a prefix: one ending in `*`, for
//! an authorize service that matches prefixes, as the reference implementation's did.

/// Why `entry` cannot be registered, or `None`. A URI must be absolute (RFC 3986 §4.3; a
/// native app's `com.example.app:/cb` too), with a host after `//` for http and https, without
/// a fragment (RFC 6749 §3.1.2), white space, control characters or `\` (no part of a URI, RFC
/// 3986 Appendix C: a request's URI would never match), and of no scheme that runs or reads
/// what it names (`javascript:`, `data:`, `vbscript:`, `file:`). A prefix must be such a URI
/// before its `*` and fix the host: a host, then a path (`https://app.example*` would take
/// `https://app.example.evil.com`) wherever there is a `//`, or else something after the `:`.
pub(super) fn refusal(entry: &str) -> Option<String> {
    let shown = entry.escape_debug();
    let Some(prefix) = entry.strip_suffix('*') else {
        return (!is_redirect_uri(entry)).then(|| {
            format!(
                "redirect URI `{shown}` must be absolute (with a host if http or https), \
                 {WITHOUT}"
            )
        });
    };
    if !is_redirect_uri(prefix) {
        return Some(format!(
            "redirect URI prefix `{shown}` must be an absolute URI before its `*` (with a host \
             if http or https), {WITHOUT}"
        ));
    }
    let rest = after_scheme(prefix);
    let fixed = match rest.strip_prefix("//") {
        Some(host_on) => host_on.find('/').is_some_and(|at| has_host(&host_on[..at])),
        None => !rest.is_empty(),
    };
    (!fixed).then(|| {
        format!(
            "redirect URI prefix `{shown}` must fix the host: a host and then a path after a \
             `//` (`https://app.example/cb/*`), something after the `:` otherwise"
        )
    })
}

/// Whether `entry` (one that loaded) registers the request's `uri`. A prefix takes a URI
/// that begins with it, and the prefix itself without its last `/` (`…/cb/*` takes `…/cb`), as
/// Keycloak's wildcard does; only a URI that could be registered on its own, that adds no host
/// to a prefix without one (`com.example.app:/*` does not take `com.example.app://evil/x`),
/// and whose path does not climb out of the prefix (see [`climbs`]; Keycloak's CVE-2026-3872
/// was `/cb/..;/admin`).
pub(super) fn registers(entry: &str, uri: &str) -> bool {
    match entry.strip_suffix('*') {
        None => entry == uri,
        Some(prefix) => {
            (uri.starts_with(prefix) || prefix.strip_suffix('/') == Some(uri))
                && is_redirect_uri(uri)
                && (after_scheme(prefix).starts_with("//") || !after_scheme(uri).starts_with("//"))
                && !climbs(uri)
        }
    }
}

/// Whether a loaded `entry` is a prefix whose `*` continues its last path segment
/// (`…/cb*`, which also takes `…/cbx` and `…/cb-other/…`), rather than following a `/` or
/// standing in the query. Loaded all the same (Keycloak's wildcard works so); warned of.
pub(super) fn ends_mid_segment(entry: &str) -> bool {
    entry
        .strip_suffix('*')
        .is_some_and(|prefix| !prefix.ends_with('/') && !prefix.contains('?'))
}

fn is_web(scheme: &str) -> bool {
    ["http", "https"]
        .iter()
        .any(|web| scheme.eq_ignore_ascii_case(web))
}

/// What [`is_redirect_uri`] refuses besides a missing scheme or host, for both refusals.
const WITHOUT: &str = "without a fragment, white space, control characters or `\\`, and not of \
                       a javascript, data, vbscript or file scheme";

/// Schemes whose URI the user agent runs or reads rather than sends the code to.
const UNSAFE_SCHEMES: [&str; 4] = ["javascript", "data", "vbscript", "file"];

fn is_redirect_uri(uri: &str) -> bool {
    let Some((scheme, rest)) = uri.split_once(':') else {
        return false;
    };
    !scheme.is_empty()
        && !UNSAFE_SCHEMES
            .iter()
            .any(|s| scheme.eq_ignore_ascii_case(s))
        && !uri.contains(['#', '\\'])
        && !uri.contains(|c: char| c.is_whitespace() || c.is_control())
        && (!is_web(scheme)
            || rest
                .strip_prefix("//")
                .is_some_and(|r| !r.is_empty() && !r.starts_with(['/', '?'])))
}

/// What follows the scheme's `:` (all of `uri` when it has none).
fn after_scheme(uri: &str) -> &str {
    uri.split_once(':').map_or(uri, |(_, rest)| rest)
}

/// Whether an authority (`user@host:port`) names a host.
fn has_host(authority: &str) -> bool {
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host_port.strip_prefix('[') {
        Some(ipv6) => ipv6.split(']').next().unwrap_or_default(),
        None => host_port.split(':').next().unwrap_or_default(),
    };
    !host.is_empty()
}

/// Encoded characters that a server which decodes twice, or splits at a decoded `;`, may read
/// as a path step (Keycloak's #48978): `.`, `/`, `\`, `;`, `%` itself and control characters.
const ENCODED: [&str; 9] = [
    "%2e", "%2f", "%5c", "%3b", "%25", "%00", "%09", "%0a", "%0d",
];

/// Whether the path of `uri` (a redirect URI) could lead out of where it seems to be: a `.`
/// or `..` segment (`;` parameters aside), any of [`ENCODED`], a `%` not followed by two hex
/// digits (`%2%65`, `%u002e`, which a lenient decoder keeps, to make `%2e` of it at a second
/// pass), or percent-encoded bytes that are not UTF-8 (`%c0%ae`, an overlong `.`). The query
/// does not change the path: it may hold any of these.
fn climbs(uri: &str) -> bool {
    let before_query = uri.split('?').next().unwrap_or(uri);
    let rest = after_scheme(before_query);
    let path = match rest.strip_prefix("//") {
        Some(host_on) => host_on.find('/').map_or("", |at| &host_on[at..]),
        None => rest,
    };
    let lower = path.to_ascii_lowercase();
    let stray_percent = (path.split('%').skip(1))
        .any(|after| after.bytes().take(2).filter(u8::is_ascii_hexdigit).count() < 2);
    ENCODED.iter().any(|coded| lower.contains(coded))
        || stray_percent
        || percent_encoding::percent_decode_str(path)
            .decode_utf8()
            .is_err()
        || path
            .split('/')
            .map(|segment| segment.split(';').next().unwrap_or(segment))
            .any(|segment| segment == "." || segment == "..")
}
