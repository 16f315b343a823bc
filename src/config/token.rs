//! `[token]`: what a token says, how long it lives, which keys sign and verify it; and
//! `[discovery]`: where clients find us.

use std::path::PathBuf;

use serde::Deserialize;

use super::{ConfigError, list, whole};
use crate::oauth::is_scope_token;

/// The most `token.leeway_secs` may be: what a reload can raise it to, which single-use
/// markers kept by the leeway of their day must outlive (`client_assertion`).
pub const MAX_LEEWAY_SECS: u64 = 300;

/// Which `aud` a client assertion (`private_key_jwt`) may name (`token.assertion_audience`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AssertionAudience {
    /// RFC 7523 §3: `token.issuer`, the token endpoint's URL or the called endpoint's, alone or
    /// in an array; what client libraries send by default (authlib, Spring, openid-client).
    #[default]
    Any,
    /// draft-ietf-oauth-rfc7523bis: `token.issuer` alone, as a string. An assertion signed for
    /// another authorization server that names our token endpoint (audience injection) no
    /// longer passes; openid-client 6 sends this, authlib and Spring need their `aud` set.
    Issuer,
}

/// `[token]`: the access tokens minted, and the keys that sign and verify them.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenSettings {
    pub issuer: String,
    /// Default `aud` claim; empty means "the client id". A client may override it.
    pub audience: String,
    /// The JWT header `typ`.
    pub typ: String,
    /// Lifetime of an access token, in seconds.
    #[serde(deserialize_with = "whole")]
    pub expires_in: u64,
    /// Joins the granted scopes in the token response's `scope`: a space, as RFC 6749 §3.3 says
    /// and client libraries split it.
    pub scope_separator: String,
    /// Splits a code record's scope when the authorize service stores it as one string.
    pub record_scope_separator: String,
    /// Scopes added to every grant of a client registered for them: the reference
    /// implementation adds `user:basic` to every token (its consent screen shows it as
    /// required), so a code record that names only `user:contract` still shows the user.
    #[serde(deserialize_with = "list")]
    pub base_scopes: Vec<String>,
    /// PEM file holding the private signing key (PKCS#8, PKCS#1 RSA or SEC1 P-256); relative
    /// to the working directory, like `clients.file`.
    pub signing_key: PathBuf,
    /// Keys published and accepted for verification only: the next signer before it signs, the
    /// previous one until its tokens have expired (README, "Key rotation"). Public key files
    /// (SPKI or PKCS#1 RSA), so that a retired private key need not stay on disk, or private
    /// keys, of which only the public half is used.
    #[serde(deserialize_with = "list")]
    pub verify_keys: Vec<PathBuf>,
    /// Clock skew tolerated, in seconds: past `exp` at introspection, user info and revocation,
    /// past `code_max_age_secs` at the exchange, and in how long a retired key must stay.
    #[serde(deserialize_with = "whole")]
    pub leeway_secs: u64,
    /// Oldest code (by its record's `issued_at`) exchanged, in seconds; 0: only the record's TTL.
    #[serde(deserialize_with = "whole")]
    pub code_max_age_secs: u64,
    /// Which `aud` a client assertion may name.
    pub assertion_audience: AssertionAudience,
}

impl TokenSettings {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |setting, problem| Err(ConfigError::invalid(setting, problem));
        if !(1..=86_400).contains(&self.expires_in) {
            return invalid("token.expires_in", "must be between 1 and 86400 seconds");
        }
        let words = [
            ("token.issuer", &self.issuer),
            ("token.typ", &self.typ),
            ("token.scope_separator", &self.scope_separator),
            ("token.record_scope_separator", &self.record_scope_separator),
        ];
        if let Some((setting, _)) = words.iter().find(|(_, word)| word.is_empty()) {
            return invalid(setting, "must not be empty");
        }
        if let Some(scope) = self.base_scopes.iter().find(|s| !is_scope_token(s)) {
            return Err(ConfigError::invalid(
                "token.base_scopes",
                format!(
                    "`{}` is not a scope token (RFC 6749 §3.3: printable ASCII but space, `\"` \
                     and `\\`)",
                    scope.escape_debug()
                ),
            ));
        }
        if self.leeway_secs > MAX_LEEWAY_SECS {
            return invalid("token.leeway_secs", "must be at most 300 seconds");
        }
        if self.code_max_age_secs > 3600 {
            return invalid("token.code_max_age_secs", "must be at most 3600 seconds");
        }
        Ok(())
    }
}

impl Default for TokenSettings {
    fn default() -> Self {
        Self {
            issuer: "com.central-x.security".into(),
            audience: String::new(),
            typ: "access_token".into(),
            expires_in: 1800,
            scope_separator: " ".into(),
            record_scope_separator: ",".into(),
            base_scopes: vec!["user:basic".into()],
            signing_key: "keys/signing.pem".into(),
            verify_keys: Vec::new(),
            leeway_secs: 30,
            // RFC 6749 §4.1.2 recommends 10 minutes at most.
            code_max_age_secs: 600,
            assertion_audience: AssertionAudience::Any,
        }
    }
}

/// Where clients find us: RFC 8414 metadata and the JWKS document.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiscoverySettings {
    /// Public base URL of the service as clients reach it (the load balancer), without a
    /// trailing slash; every endpoint URL in the metadata starts with it.
    pub base_url: String,
    /// The authorize service's URL; empty means `<base_url>/identity/sso/oauth2/authorize`.
    pub authorization_endpoint: String,
    /// `Cache-Control: max-age` of the JWKS and metadata documents, in seconds.
    #[serde(deserialize_with = "whole")]
    pub max_age_secs: u64,
}

impl Default for DiscoverySettings {
    fn default() -> Self {
        Self {
            base_url: "http://127.0.0.1:8080".into(),
            authorization_endpoint: String::new(),
            max_age_secs: 300,
        }
    }
}

impl DiscoverySettings {
    /// `base_url` without its trailing slash.
    pub fn base(&self) -> &str {
        self.base_url.trim_end_matches('/')
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        // With a host: `https://` alone would publish `https:/identity/...` as every endpoint.
        let is_url = |url: &str| {
            let rest = (url.strip_prefix("https://")).or_else(|| url.strip_prefix("http://"));
            rest.is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'))
                && !url.contains(['?', '#'])
                && !url.contains(char::is_whitespace)
        };
        if !is_url(&self.base_url) {
            return Err(ConfigError::invalid(
                "discovery.base_url",
                "must be an http(s) URL with a host, without query or fragment",
            ));
        }
        if !self.authorization_endpoint.is_empty() && !is_url(&self.authorization_endpoint) {
            return Err(ConfigError::invalid(
                "discovery.authorization_endpoint",
                "must be empty or an http(s) URL with a host, without query or fragment",
            ));
        }
        if self.max_age_secs > 86_400 {
            return Err(ConfigError::invalid(
                "discovery.max_age_secs",
                "must be at most 86400 seconds",
            ));
        }
        Ok(())
    }
}
