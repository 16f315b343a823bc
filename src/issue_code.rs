//! Writing authorization codes the way the authorize service does, for `issue-code`, demos,
//! tests and load tests. The service itself only ever reads and deletes codes.

use serde::Serialize;

use crate::clients::Registry;
use crate::oauth::pkce;
use crate::store::{Store, StoreError};
use crate::userinfo::Profile;

/// A code record in the contract's format (see README, "The code record").
#[derive(Debug, Clone, Serialize)]
pub struct NewCode {
    pub client_id: String,
    pub redirect_uri: String,
    pub username: String,
    pub account_id: String,
    pub scope: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code_challenge: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code_challenge_method: Option<String>,
    pub issued_at: u64,
    #[serde(flatten)]
    pub profile: Profile,
}

const ALPHANUMERIC: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// A code shaped like the reference implementation's: `OC-<4-digit serial>-<24 alphanumerics>`.
pub fn new_code() -> Result<String, aws_lc_rs::error::Unspecified> {
    let mut random = [0u8; 26];
    aws_lc_rs::rand::fill(&mut random)?;
    let serial = 1000 + u16::from_le_bytes([random[0], random[1]]) % 9000;
    // 62 does not divide 256; the bias (under 2 %) does not matter for a 143-bit code.
    let tail: String = random[2..]
        .iter()
        .map(|b| char::from(ALPHANUMERIC[usize::from(*b) % ALPHANUMERIC.len()]))
        .collect();
    Ok(format!("OC-{serial}-{tail}"))
}

/// Stores `record` under `code` with a TTL; `false` if that code is already live.
pub async fn write(
    store: &Store,
    code: &str,
    record: &NewCode,
    ttl_secs: u64,
) -> Result<bool, StoreError> {
    let json = serde_json::to_string(record)?;
    store.put_code(code, &json, ttl_secs).await
}

/// Why an exchange of `record` would be refused by `registry` (`issue-code` warns of each: a
/// typo in a smoke test would otherwise show only later, as the exchange's refusal).
pub fn doubts(record: &NewCode, registry: &Registry) -> Vec<String> {
    let id = &record.client_id;
    let Some(client) = registry.get(id) else {
        return vec![format!(
            "client {id:?} is not registered: its exchange is refused (invalid_client)"
        )];
    };
    let mut doubts = Vec::new();
    if !client.enabled {
        doubts.push(format!(
            "client {id} is disabled: its exchange is refused (invalid_client)"
        ));
    }
    if !client.may_exchange_codes() {
        doubts.push(format!(
            "client {id} may not use authorization_code: the exchange is refused \
             (unauthorized_client)"
        ));
    }
    if !client.has_redirect_uri(&record.redirect_uri) {
        doubts.push(format!(
            "redirect URI {:?} is not registered for client {id}: the exchange is refused \
             (invalid_grant)",
            record.redirect_uri
        ));
    }
    for scope in record.scope.iter().filter(|s| !client.allows_scope(s)) {
        doubts.push(format!(
            "scope {scope:?} is not one of client {id}'s: the exchange is refused \
             (invalid_scope)"
        ));
    }
    if let Some(challenge) = &record.code_challenge
        && record.code_challenge_method.as_deref() == Some("S256")
        && !pkce::challenge_well_formed(pkce::Method::S256, challenge)
    {
        doubts.push(
            "an S256 code challenge is the 43-character base64url of a SHA-256 digest \
             (RFC 7636 §4.2), which this is not: the record is malformed and the exchange \
             refused (invalid_grant); for a plain challenge, say --code-challenge-method plain"
                .into(),
        );
    }
    doubts
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn codes_have_the_reference_shape_and_differ() {
        let (a, b) = (new_code().unwrap(), new_code().unwrap());
        assert_ne!(a, b);
        let parts: Vec<&str> = a.split('-').collect();
        assert_eq!(parts.len(), 3, "{a}");
        assert_eq!(parts[0], "OC");
        assert!(parts[1].len() == 4 && parts[1].bytes().all(|c| c.is_ascii_digit()));
        assert!(parts[2].len() == 24 && parts[2].bytes().all(|c| c.is_ascii_alphanumeric()));
    }

    /// The serial is any of 1000 to 9999 and the tail any alphanumeric: over 500 codes, the
    /// serials start with every digit 1 to 9, and the tails hold every one of the 62
    /// characters (the chance that a fair draw misses one is below 1e-24).
    #[test]
    fn codes_draw_from_every_serial_digit_and_every_alphanumeric() {
        let codes: Vec<String> = (0..500).map(|_| new_code().unwrap()).collect();
        let leading: BTreeSet<u8> = codes.iter().map(|c| c.as_bytes()[3]).collect();
        let tails: BTreeSet<u8> = codes.iter().flat_map(|c| c.bytes().skip(8)).collect();
        assert_eq!(leading, (b'1'..=b'9').collect());
        assert_eq!(tails, ALPHANUMERIC.iter().copied().collect());
    }

    #[test]
    fn doubts_name_what_an_exchange_of_the_record_would_refuse() {
        let file = std::env::temp_dir().join(format!("doubts-{}.toml", uuid::Uuid::new_v4()));
        std::fs::write(
            &file,
            r#"
            [[clients]]
            id = "app"
            secret = "plain:s3cret"
            redirect_uris = ["https://app.example/cb"]
            scopes = ["user:basic"]
            [[clients]]
            id = "off"
            secret = "plain:s3cret"
            redirect_uris = ["https://off.example/cb"]
            scopes = ["user:basic"]
            enabled = false
            "#,
        )
        .expect("clients file");
        let registry = Registry::load(&file, &crate::secret_hash::Argon2Limit::new(1));
        let _ = std::fs::remove_file(&file);
        let registry = registry.expect("registry");
        let record = |client: &str, uri: &str, scopes: &[&str]| NewCode {
            client_id: client.into(),
            redirect_uri: uri.into(),
            username: "u".into(),
            account_id: "a".into(),
            scope: scopes.iter().map(|s| (*s).to_owned()).collect(),
            code_challenge: None,
            code_challenge_method: None,
            issued_at: 0,
            profile: Profile::default(),
        };

        let fine = record("app", "https://app.example/cb", &["user:basic"]);
        assert_eq!(doubts(&fine, &registry), Vec::<String>::new());
        let unknown = doubts(&record("nosuch", "https://app.example/cb", &[]), &registry);
        assert!(
            unknown.len() == 1 && unknown[0].contains("invalid_client"),
            "{unknown:?}"
        );
        let wrong = record("app", "https://wrong/cb", &["user:basic", "admin"]);
        let wrong = doubts(&wrong, &registry);
        assert!(wrong.len() == 2, "{wrong:?}");
        assert!(wrong[0].contains("https://wrong/cb") && wrong[0].contains("invalid_grant"));
        assert!(wrong[1].contains("\"admin\"") && wrong[1].contains("invalid_scope"));
        let off = doubts(&record("off", "https://off.example/cb", &[]), &registry);
        assert!(off.len() == 1 && off[0].contains("disabled"), "{off:?}");
        // A verifier where an S256 challenge belongs (RFC 7636's appendix B pair).
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        let pkce = |challenge: &str, method: &str| NewCode {
            code_challenge: Some(challenge.into()),
            code_challenge_method: Some(method.into()),
            ..record("app", "https://app.example/cb", &["user:basic"])
        };
        for fine in [pkce(challenge, "S256"), pkce(verifier, "plain")] {
            assert_eq!(doubts(&fine, &registry), Vec::<String>::new());
        }
        let long = format!("{verifier}abc");
        for wrong in [
            pkce(&long, "S256"),
            pkce(&format!("{}-", &challenge[..42]), "S256"),
        ] {
            let doubted = doubts(&wrong, &registry);
            assert!(
                doubted.len() == 1 && doubted[0].contains("S256"),
                "{doubted:?}"
            );
        }
    }
}
