//! The checks that decide whether a spent code grants a token to the client that presented it.
//! The code record they read (the contract with the authorize service) is in `grant/record.rs`.

mod record;

use crate::clients::Client;
use crate::config::TokenSettings;
use crate::oauth::{OAuthError, TokenRequest, pkce};

use self::record::parse;
pub use self::record::{CodeRecord, ScopeField};

/// A grant that passed every check: who the token is for and what it allows.
#[derive(Debug)]
pub struct Grant {
    pub username: String,
    pub account_id: String,
    pub scopes: Vec<String>,
}

/// What the token settings say about codes, at the time of the exchange.
#[derive(Debug, Clone, Copy)]
pub struct CodeRules<'a> {
    /// Splits a scope stored as one string.
    pub scope_separator: &'a str,
    /// Added to the record's scopes where the client is registered for them
    /// (`token.base_scopes`).
    pub base_scopes: &'a [String],
    /// A code issued longer ago than this (plus `leeway_secs`) is expired; 0: no limit but the
    /// record's TTL.
    pub max_age_secs: u64,
    /// Clock skew allowed between the authorize service and us.
    pub leeway_secs: u64,
    /// Seconds since the epoch.
    pub now: u64,
}

impl<'a> CodeRules<'a> {
    pub fn new(settings: &'a TokenSettings, now: u64) -> Self {
        Self {
            scope_separator: &settings.record_scope_separator,
            base_scopes: &settings.base_scopes,
            max_age_secs: settings.code_max_age_secs,
            leeway_secs: settings.leeway_secs,
            now,
        }
    }

    fn expired(&self, issued_at: Option<u64>) -> bool {
        let limit = self.max_age_secs.saturating_add(self.leeway_secs);
        self.max_age_secs > 0 && issued_at.is_some_and(|at| self.now.saturating_sub(at) > limit)
    }

    /// An `issued_at` more than a day ahead of our clock is no skew: most likely milliseconds
    /// (a Java writer's `currentTimeMillis()`), which would switch the age check off for good.
    fn ahead_of_any_skew(&self, issued_at: Option<u64>) -> bool {
        issued_at.is_some_and(|at| at > self.now.saturating_add(MAX_CLOCK_AHEAD_SECS))
    }
}

/// The answer to a code record that no authorize service should have written.
fn malformed() -> OAuthError {
    OAuthError::invalid_grant("the authorization code record is malformed; sign in again")
}

/// How far ahead of ours the authorize service's clock may be for a code's `issued_at`.
const MAX_CLOCK_AHEAD_SECS: u64 = 86_400;

/// Checks, in this order: the record is well-formed and not too old (RFC 6749 §4.1.2: codes
/// live 10 minutes at most), was issued to this client for this redirect URI (which is still
/// registered), PKCE, and the scopes the client may have; then adds the base scopes it may have.
/// `raw_record` is the bytes Redis holds: one that is not UTF-8 is malformed like one that is
/// not JSON (`record::parse` checks UTF-8 first: serde would pass bad bytes in the fields it
/// skips).
pub fn check(
    raw_record: &[u8],
    client: &Client,
    request: &TokenRequest,
    rules: CodeRules<'_>,
) -> Result<Grant, OAuthError> {
    let record = parse(raw_record).map_err(|problem| {
        log::warn!("client {}: code record is malformed: {problem}", client.id);
        malformed()
    })?;
    // Blank is as good as empty: a `sub` of spaces names nobody.
    if record.username.trim().is_empty() || record.account_id.trim().is_empty() {
        log::warn!(
            "client {}: code record lacks username or account_id",
            client.id
        );
        return Err(OAuthError::invalid_grant(
            "the authorization code record is incomplete; sign in again",
        ));
    }
    if rules.ahead_of_any_skew(record.issued_at) {
        log::warn!(
            "client {}: code record's issued_at is over a day ahead of this clock (milliseconds \
             instead of seconds?)",
            client.id
        );
        return Err(malformed());
    }
    if rules.expired(record.issued_at) {
        return Err(OAuthError::invalid_grant(
            "the authorization code has expired; sign in again",
        ));
    }
    if record.client_id != client.id {
        return Err(OAuthError::invalid_grant(
            "the authorization code was not issued to this client",
        ));
    }
    if record.redirect_uri != request.redirect_uri {
        return Err(OAuthError::invalid_grant(
            "redirect_uri differs from the one of the authorization request",
        ));
    }
    if !client.has_redirect_uri(&request.redirect_uri) {
        return Err(OAuthError::invalid_grant(
            "redirect_uri is not registered for this client",
        ));
    }
    check_pkce(&record, request)?;
    let mut scopes = record.scope.into_scopes(rules.scope_separator);
    // RFC 6749 §3.3: a token's scope is at least one scope token; the request names none, so
    // there is no default to fall back on.
    if scopes.is_empty() {
        return Err(OAuthError::InvalidScope(
            "the authorization code carries no scope; sign in again".into(),
        ));
    }
    if let Some(denied) = scopes.iter().find(|s| !client.allows_scope(s)) {
        return Err(OAuthError::InvalidScope(
            format!("scope `{}` is not allowed for this client", quoted(denied)).into(),
        ));
    }
    // None is added to an empty record, which the writer got wrong.
    add_base_scopes(&mut scopes, rules.base_scopes, client);
    Ok(Grant {
        username: record.username,
        account_id: record.account_id,
        scopes,
    })
}

/// Adds to a grant's `scopes` the base scopes (`token.base_scopes`) that `client` is registered
/// for and that they lack, after them: the record's own keep their order. Public for the load
/// tool, which expects what the exchange grants.
pub fn add_base_scopes(scopes: &mut Vec<String>, base_scopes: &[String], client: &Client) {
    for base in base_scopes {
        if client.allows_scope(base) && !scopes.contains(base) {
            scopes.push(base.clone());
        }
    }
}

/// The most of a record's scope a description quotes.
const MAX_QUOTED_SCOPE: usize = 64;

/// A scope from the record as a description (and the log line that names the refusal) may
/// quote it: escaped, so that a newline in it cannot start a forged log line, and cut short.
fn quoted(scope: &str) -> String {
    let mut quoted: String = scope.chars().take(MAX_QUOTED_SCOPE).collect();
    if quoted.len() < scope.len() {
        quoted.push('…');
    }
    quoted.escape_debug().to_string()
}

/// RFC 7636 §4.6, and no downgrade: a verifier for a code issued without a challenge is refused.
fn check_pkce(record: &CodeRecord, request: &TokenRequest) -> Result<(), OAuthError> {
    let verifier = request.code_verifier.as_ref().map(|v| v.expose());
    match (&record.code_challenge, verifier) {
        (None, None) => Ok(()),
        (None, Some(_)) => Err(OAuthError::invalid_grant(
            "code_verifier given, but the code was issued without a code_challenge",
        )),
        (Some(_), None) => Err(OAuthError::invalid_grant(
            "code_verifier is required: the code was issued with a code_challenge",
        )),
        (Some(challenge), Some(verifier)) => {
            let method = record.code_challenge_method.unwrap_or_default();
            if pkce::verify(method, challenge, verifier) {
                Ok(())
            } else {
                Err(OAuthError::invalid_grant(
                    "code_verifier does not match the code_challenge",
                ))
            }
        }
    }
}

#[cfg(test)]
#[path = "grant_tests.rs"]
mod tests;
