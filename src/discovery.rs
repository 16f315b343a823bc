//! RFC 8414 authorization server metadata: where every endpoint is and what it supports. URLs
//! start with `discovery.base_url`, the address clients reach through the load balancer, never
//! with the address a replica happens to listen on.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::clients::Registry;
use crate::config::{DiscoverySettings, TokenSettings};
use crate::oauth::AUTHORIZATION_CODE;
use crate::routes::paths::{
    AUTHORIZE_PATH, INTROSPECT_PATH, JWKS_PATH, REVOKE_PATH, TOKEN_PATH, USERINFO_PATH,
};

/// Client authentication at the token, introspection and revocation endpoints.
const AUTH_METHODS: [&str; 3] = [
    "client_secret_basic",
    "client_secret_post",
    "private_key_jwt",
];
/// The algorithms a `private_key_jwt` assertion may be signed with (`clients::jwks`).
const AUTH_SIGNING_ALGS: [&str; 4] = ["RS256", "PS256", "ES256", "EdDSA"];

#[derive(Serialize)]
struct Metadata<'a> {
    /// The `iss` of our tokens: RFC 8414 §3.3 and RFC 9068 §4 want the two identical.
    issuer: &'a str,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    introspection_endpoint: String,
    revocation_endpoint: String,
    userinfo_endpoint: String,
    grant_types_supported: [&'static str; 1],
    response_types_supported: [&'static str; 1],
    token_endpoint_auth_methods_supported: [&'static str; 3],
    token_endpoint_auth_signing_alg_values_supported: [&'static str; 4],
    introspection_endpoint_auth_methods_supported: [&'static str; 3],
    introspection_endpoint_auth_signing_alg_values_supported: [&'static str; 4],
    revocation_endpoint_auth_methods_supported: [&'static str; 3],
    revocation_endpoint_auth_signing_alg_values_supported: [&'static str; 4],
    code_challenge_methods_supported: [&'static str; 2],
    /// Left out when empty: RFC 8414 §3.2 wants claims with zero elements omitted.
    #[serde(skip_serializing_if = "BTreeSet::is_empty")]
    scopes_supported: BTreeSet<&'a str>,
}

/// Says so when clients that discover the metadata from `token.issuer` (openid-client) would
/// refuse it: RFC 8414 §3.3 wants the metadata's `issuer` to be the URL it was looked up under,
/// which here is `discovery.base_url`, or a path under it (served at
/// `/.well-known/oauth-authorization-server/<path>`). Checked at start and on a reload that
/// changes either.
pub fn warn_of_an_undiscoverable_issuer(token: &TokenSettings, discovery: &DiscoverySettings) {
    if !issuer_is_discoverable(&token.issuer, discovery.base()) {
        log::warn!(
            "token.issuer `{}` is neither discovery.base_url `{}` nor a path under it: clients \
             that use /.well-known/oauth-authorization-server will refuse the metadata (README, \
             \"Compatibility with client libraries\")",
            token.issuer,
            discovery.base()
        );
    }
}

fn issuer_is_discoverable(issuer: &str, base: &str) -> bool {
    issuer
        .strip_prefix(base)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The metadata document as JSON; `scopes_supported` is every scope some client may be granted.
pub fn metadata(
    token: &TokenSettings,
    discovery: &DiscoverySettings,
    registry: &Registry,
) -> Result<String, serde_json::Error> {
    let base = discovery.base();
    let url = |path: &str| format!("{base}{path}");
    let authorization_endpoint = if discovery.authorization_endpoint.is_empty() {
        url(AUTHORIZE_PATH)
    } else {
        discovery.authorization_endpoint.clone()
    };
    serde_json::to_string(&Metadata {
        issuer: &token.issuer,
        authorization_endpoint,
        token_endpoint: url(TOKEN_PATH),
        jwks_uri: url(JWKS_PATH),
        introspection_endpoint: url(INTROSPECT_PATH),
        revocation_endpoint: url(REVOKE_PATH),
        userinfo_endpoint: url(USERINFO_PATH),
        grant_types_supported: [AUTHORIZATION_CODE],
        response_types_supported: ["code"],
        token_endpoint_auth_methods_supported: AUTH_METHODS,
        token_endpoint_auth_signing_alg_values_supported: AUTH_SIGNING_ALGS,
        introspection_endpoint_auth_methods_supported: AUTH_METHODS,
        introspection_endpoint_auth_signing_alg_values_supported: AUTH_SIGNING_ALGS,
        revocation_endpoint_auth_methods_supported: AUTH_METHODS,
        revocation_endpoint_auth_signing_alg_values_supported: AUTH_SIGNING_ALGS,
        code_challenge_methods_supported: ["S256", "plain"],
        scopes_supported: registry.scopes(),
    })
}

#[cfg(test)]
mod tests {
    use super::issuer_is_discoverable;

    #[test]
    fn an_issuer_is_discoverable_at_the_base_url_or_a_path_under_it() {
        let base = "https://sso.example.com";
        for issuer in [
            base,
            "https://sso.example.com/",
            "https://sso.example.com/identity",
        ] {
            assert!(issuer_is_discoverable(issuer, base), "{issuer}");
        }
        for issuer in [
            "com.central-x.security",
            "https://sso.example.com.evil",
            "https://sso.example.co",
            "http://sso.example.com",
            "https://other.example.com/identity",
        ] {
            assert!(!issuer_is_discoverable(issuer, base), "{issuer}");
        }
    }
}
