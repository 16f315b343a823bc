//! The code record (the contract with the authorize service) and the checks that decide whether
//! a spent code grants a token to the client that presented it.

use std::collections::HashSet;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

use crate::clients::Client;
use crate::config::TokenSettings;
use crate::oauth::{OAuthError, TokenRequest, pkce};
use crate::redact;

/// What the authorize service stored under `<prefix>code:<code>`.
#[derive(Debug, Deserialize)]
pub struct CodeRecord {
    pub client_id: String,
    pub redirect_uri: String,
    pub username: String,
    pub account_id: String,
    pub scope: ScopeField,
    #[serde(default)]
    pub code_challenge: Option<String>,
    #[serde(default)]
    pub code_challenge_method: Option<pkce::Method>,
    /// Seconds since the epoch. When present, a code older than `token.code_max_age_secs` is
    /// refused even if its record is still in Redis (the record's TTL is set by the writer).
    #[serde(default, deserialize_with = "whole_seconds")]
    pub issued_at: Option<u64>,
    /// The optional profile for user info (`userinfo::Profile`), typed here so that a record
    /// user info could not read never becomes a token. Not `#[serde(flatten)]`: that would
    /// buffer the whole record on the exchange's hot path.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub avatar: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub mobile: Option<String>,
}

/// Any JSON number of seconds, its fraction dropped: JavaScript's `Date.now() / 1000`, Python's
/// `time.time()` and Jackson's `1.7E9` are seconds too. A negative or non-number one is malformed.
fn whole_seconds<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    let Some(number) = Option::<serde_json::Number>::deserialize(deserializer)? else {
        return Ok(None);
    };
    let seconds = number.as_u64().or_else(|| {
        number
            .as_f64()
            .filter(|f| f.is_finite() && *f >= 0.0)
            // Saturates past u64::MAX, which the clock check then refuses.
            .map(|f| f.floor() as u64)
    });
    seconds
        .map(Some)
        .ok_or_else(|| D::Error::custom("issued_at must be a non-negative number of seconds"))
}

/// Scopes as an array, or as one string joined by `token.record_scope_separator`.
#[derive(Debug)]
pub enum ScopeField {
    List(Vec<String>),
    Joined(String),
}

/// Read by the JSON type it meets rather than `#[serde(untagged)]`, which buffers the value
/// and tries each variant in turn: one allocation per scope less on every exchange.
impl<'de> Deserialize<'de> for ScopeField {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = ScopeField;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an array of strings or one string")
            }

            fn visit_str<E: serde::de::Error>(self, joined: &str) -> Result<ScopeField, E> {
                Ok(ScopeField::Joined(joined.to_owned()))
            }

            fn visit_string<E: serde::de::Error>(self, joined: String) -> Result<ScopeField, E> {
                Ok(ScopeField::Joined(joined))
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<ScopeField, A::Error> {
                let mut list = Vec::with_capacity(seq.size_hint().unwrap_or(4).min(16));
                while let Some(scope) = seq.next_element()? {
                    list.push(scope);
                }
                Ok(ScopeField::List(list))
            }
        }

        deserializer.deserialize_any(Visitor)
    }
}

/// A grant that passed every check: who the token is for and what it allows.
#[derive(Debug)]
pub struct Grant {
    pub username: String,
    pub account_id: String,
    pub scopes: Vec<String>,
}

impl ScopeField {
    /// Trimmed, empty ones and repeats dropped; a list that is already clean is kept as it is.
    fn into_scopes(self, separator: &str) -> Vec<String> {
        let scopes = match self {
            Self::List(mut list) => {
                for scope in &mut list {
                    if scope.trim().len() != scope.len() {
                        *scope = scope.trim().to_owned();
                    }
                }
                list.retain(|scope| !scope.is_empty());
                list
            }
            Self::Joined(joined) => joined
                .split(separator)
                .map(str::trim)
                .filter(|scope| !scope.is_empty())
                .map(str::to_owned)
                .collect(),
        };
        without_repeats(scopes)
    }
}

/// The first of equal scopes only: a scope is a set (RFC 6749 §3.3), and a client that compares
/// the granted scope with the one it asked for, word by word, would see `a a` as a change.
fn without_repeats(mut scopes: Vec<String>) -> Vec<String> {
    // A few scopes are the rule: compared with those kept so far, in place, with no set to
    // allocate on every exchange.
    if scopes.len() <= 16 {
        let mut kept = 0;
        for i in 0..scopes.len() {
            if !scopes[..kept].contains(&scopes[i]) {
                scopes.swap(kept, i);
                kept += 1;
            }
        }
        scopes.truncate(kept);
        return scopes;
    }
    let mut seen = HashSet::with_capacity(scopes.len());
    let first: Vec<bool> = scopes.iter().map(|s| seen.insert(s.as_str())).collect();
    if !first.contains(&false) {
        return scopes;
    }
    (scopes.into_iter().zip(first))
        .filter_map(|(scope, first)| first.then_some(scope))
        .collect()
}

/// What the token settings say about codes, at the time of the exchange.
#[derive(Debug, Clone, Copy)]
pub struct CodeRules<'a> {
    /// Splits a scope stored as one string.
    pub scope_separator: &'a str,
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
/// registered), PKCE, and the scopes the client may have.
/// `raw_record` is the bytes Redis holds: one that is not UTF-8 is malformed like one that is
/// not JSON (serde_json checks both in the same pass).
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
    let scopes = record.scope.into_scopes(rules.scope_separator);
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
    Ok(Grant {
        username: record.username,
        account_id: record.account_id,
        scopes,
    })
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

/// The record, or what is wrong with it, in words that quote none of its values.
fn parse(raw_record: &[u8]) -> Result<CodeRecord, String> {
    if raw_record.is_empty() {
        // What the exchange script answers for a code key that held no string or over 64 KiB,
        // and for a code whose token-record key holds no string (another writer's).
        return Err(
            "empty, not a string in Redis, over 64 KiB, or its token-record key holds \
             another Redis type"
                .into(),
        );
    }
    // serde's derived struct also reads a JSON array, by position; introspection reads token
    // records as objects only, so an array would make a token nobody can introspect.
    if raw_record.trim_ascii_start().first() != Some(&b'{') {
        return Err("not a JSON object".into());
    }
    // JSON is UTF-8 (RFC 8259 §8.1), and serde checks only the fields it reads: a byte of
    // another charset in an unknown field would pass here, and Redis would then hand
    // introspection and user info a token record that is not a string.
    let text = std::str::from_utf8(raw_record).map_err(|_| "not UTF-8".to_string())?;
    // Never serde's own message: it quotes the value (the user's data).
    let record: CodeRecord = serde_json::from_str(text).map_err(|e| redact::json_error(&e))?;
    // A method without its challenge is a writer's mistake that would otherwise switch PKCE
    // off for this code without anyone noticing; a challenge no verifier can meet (empty,
    // padded, standard base64) one that would blame the client for it.
    match (&record.code_challenge, record.code_challenge_method) {
        (Some(challenge), method)
            if !pkce::challenge_well_formed(method.unwrap_or_default(), challenge) =>
        {
            Err(
                "code_challenge is no RFC 7636 challenge (S256: a SHA-256 digest in base64url, \
                 43 characters; plain: 43 to 128 unreserved characters)"
                    .into(),
            )
        }
        (None, Some(_)) => Err("code_challenge_method without code_challenge".into()),
        _ => Ok(record),
    }
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
