//! The code record: what the authorize service stores under a code (the contract with it), and
//! how it is read: strictly, quoting none of its values, its scopes cleaned.

use std::collections::HashSet;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

use crate::oauth::pkce;
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

impl ScopeField {
    /// Trimmed, empty ones and repeats dropped; a list that is already clean is kept as it is.
    pub(super) fn into_scopes(self, separator: &str) -> Vec<String> {
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

/// The record, or what is wrong with it, in words that quote none of its values.
pub(super) fn parse(raw_record: &[u8]) -> Result<CodeRecord, String> {
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
