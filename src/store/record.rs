//! The token record's format, written and read: JSON that starts `{"jti":"<jti>"` (and for a
//! revocation's match `,"client_id":…`), which the Lua scripts match, then what the exchange
//! adds: `iat`, `exp` and the code record as `grant`; read back as a [`TokenRecord`].

use serde::Deserialize;

use crate::redact;
use crate::userinfo::Profile;

/// Writes how every token record starts: `{"jti":"<jti>"`, then with a client
/// `,"client_id":<the id as JSON>`. The exchange's record head begins so, and the scripts match
/// it: by `jti` alone for that token, with the client for that token of that client.
pub fn write_record_start(out: &mut Vec<u8>, jti: &str, client_id: Option<&str>) {
    out.extend_from_slice(br#"{"jti":""#);
    out.extend_from_slice(jti.as_bytes());
    out.push(b'"');
    if let Some(client_id) = client_id {
        out.extend_from_slice(br#","client_id":"#);
        // Serialising a str into a Vec cannot fail.
        let _ = serde_json::to_writer(out, client_id);
    }
}

/// The start of the token record's JSON; the exchange script appends the code record and `}`,
/// so the record holds what introspection needs without a second round trip. It starts with
/// `{"jti":"<jti>"`, which the scripts match (see [`write_record_start`]).
pub fn record_head(jti: &str, client_id: &str, iat: u64, exp: u64) -> Vec<u8> {
    use std::io::Write;
    let mut head = Vec::with_capacity(72 + jti.len() + client_id.len());
    write_record_start(&mut head, jti, Some(client_id));
    // Writing to a Vec cannot fail: nothing to report.
    let _ = write!(head, r#","iat":{iat},"exp":{exp},"grant":"#);
    head
}

/// The part of the token record (see [`record_head`]) that introspection and user info read.
#[derive(Debug, Deserialize)]
pub struct TokenRecord {
    pub jti: String,
    pub client_id: String,
    pub grant: RecordedGrant,
}

impl TokenRecord {
    /// Reads a token record's text; one that is not a record of ours is an [`UnreadableRecord`].
    pub fn parse(text: &str) -> Result<Self, UnreadableRecord> {
        serde_json::from_str(text).map_err(|e| UnreadableRecord(redact::json_error(&e)))
    }
}

/// A token record Redis holds but that does not read as one: serde's reason, without the
/// record's values (`redact::json_error`), so that it can be logged.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UnreadableRecord(String);

/// The code record inside the token record: the user, and the optional profile.
#[derive(Debug, Deserialize)]
#[serde(from = "GrantFields")]
pub struct RecordedGrant {
    pub username: String,
    pub account_id: String,
    pub profile: Profile,
}

/// Read field by field like `grant::CodeRecord`, not with `#[serde(flatten)]`: flatten buffers
/// the record and reads the fields the exchange skipped (an unknown field holding `1e400` or a
/// lone surrogate), so a record the exchange turned into a token could not be read here.
#[derive(Deserialize)]
struct GrantFields {
    username: String,
    account_id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    avatar: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    mobile: Option<String>,
}

impl From<GrantFields> for RecordedGrant {
    fn from(fields: GrantFields) -> Self {
        Self {
            username: fields.username,
            account_id: fields.account_id,
            profile: Profile {
                name: fields.name,
                avatar: fields.avatar,
                email: fields.email,
                mobile: fields.mobile,
            },
        }
    }
}

/// A token record's bytes as text; bytes that are not UTF-8 are no record of ours (they are
/// JSON), said once a second.
pub(super) fn utf8_record(bytes: Vec<u8>) -> Option<String> {
    let text = String::from_utf8(bytes).ok();
    if text.is_none() {
        crate::warn_every_second!(
            "a token record holds bytes that are not UTF-8 (another writer under the key \
             prefix?): read as no record"
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_head_plus_a_code_record_is_one_json_object() {
        let mut record = record_head("abc", r#"app "x" \y"#, 10, 20);
        record.extend_from_slice(br#"{"username":"u"}}"#);
        let value: serde_json::Value = serde_json::from_slice(&record).unwrap();
        assert_eq!(value["jti"], "abc");
        assert!(
            record.starts_with(br#"{"jti":"abc""#),
            "the scripts match this start"
        );
        assert_eq!(value["client_id"], r#"app "x" \y"#);
        assert_eq!(value["exp"], 20);
        assert_eq!(value["grant"]["username"], "u");
    }
}
