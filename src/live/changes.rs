//! What a reload changed, for its log line: an operator who disabled a client or lowered
//! `token.expires_in` reads in each replica's log that the replica took it.

use crate::config::{DiscoverySettings, TokenSettings};

use super::Snapshot;
use super::restart::differing;

/// At most this many client ids of one kind are named; the rest are counted.
const NAMED: usize = 10;

/// `settings changed: token.expires_in; clients disabled: app-b`, or `nothing changed`.
/// `renewed`: the listener's certificate files changed, and the new pair is served.
pub(super) fn described(running: &Snapshot, next: &Snapshot, renewed: bool) -> String {
    let mut said = Vec::new();
    let kid = |snapshot: &Snapshot| snapshot.keys.minter().key().kid().to_owned();
    if kid(running) != kid(next) {
        said.push("the signing key changed".to_owned());
    }
    if running.keys.jwks() != next.keys.jwks() {
        said.push("the published keys changed".to_owned());
    }
    if renewed {
        said.push("the TLS certificate changed".to_owned());
    }
    let mut changed = Vec::new();
    let (a, b) = (running, next);
    differing!(changed, "token", TokenSettings, a.token, b.token; [
        issuer, audience, typ, expires_in, scope_separator, record_scope_separator, base_scopes,
        signing_key, verify_keys, leeway_secs, code_max_age_secs, assertion_audience,
    ]);
    differing!(changed, "discovery", DiscoverySettings, a.discovery, b.discovery; [
        base_url, authorization_endpoint, max_age_secs,
    ]);
    if !changed.is_empty() {
        said.push(format!("settings changed: {}", changed.join(", ")));
    }
    for (kind, ids) in next.registry.changes_since(&running.registry) {
        let mut named = ids[..ids.len().min(NAMED)].join(", ");
        if ids.len() > NAMED {
            named.push_str(&format!(" and {} more", ids.len() - NAMED));
        }
        said.push(format!("clients {kind}: {named}"));
    }
    match said.is_empty() {
        true => "nothing changed".into(),
        false => said.join("; "),
    }
}
