//! What a registry that loads may still get wrong: clients that can never get a token, grant
//! types OAuth does not define, redirect prefixes wider than they look, plaintext secrets, ids
//! that some libraries garble.

use super::Registry;
use crate::oauth::AUTHORIZATION_CODE;

/// The grant types of IANA's OAuth registry (RFC 6749, 7522, 7523, 8628, 8693, OpenID CIBA,
/// UMA 2.0); this service serves `authorization_code`.
const KNOWN_GRANT_TYPES: [&str; 11] = [
    AUTHORIZATION_CODE,
    "implicit",
    "password",
    "client_credentials",
    "refresh_token",
    "urn:ietf:params:oauth:grant-type:device_code",
    "urn:ietf:params:oauth:grant-type:jwt-bearer",
    "urn:ietf:params:oauth:grant-type:saml2-bearer",
    "urn:ietf:params:oauth:grant-type:token-exchange",
    "urn:openid:params:grant-type:ciba",
    "urn:ietf:params:oauth:grant-type:uma-ticket",
];

impl Registry {
    /// Entries that load but are likely a mistake, each said in words that name the client;
    /// `live` logs them as warnings when the registry is applied (as `Settings::doubts`).
    pub fn doubts(&self) -> Vec<String> {
        let mut doubts = Vec::new();
        for (id, grant_type) in self.unknown_grant_types() {
            doubts.push(format!(
                "client {id}: grant type {grant_type:?} is none that OAuth defines (a typo of \
                 authorization_code?); without authorization_code its token requests are \
                 refused (unauthorized_client)"
            ));
        }
        for (id, why) in self.dead_ends() {
            doubts.push(format!("client {id}: {why}"));
        }
        for (id, entry) in self.prefixes_mid_segment() {
            let shown = entry.escape_debug();
            let base = entry.trim_end_matches('*').escape_debug();
            doubts.push(format!(
                "client {id}: redirect URI prefix `{shown}` ends inside a path segment, so it \
                 also takes `{base}x` and `{base}-other/…`; `{base}/*` takes the paths below \
                 it, `{base}?*` its queries"
            ));
        }
        for id in self.plaintext_secrets() {
            doubts.push(format!(
                "client `{id}` has a plaintext secret; store a hash (sso-token hash-secret)"
            ));
        }
        for id in self.ids_basic_may_garble() {
            doubts.push(format!(
                "client {id}: its id has characters outside A-Z a-z 0-9 - . _ ~, which client \
                 libraries that skip the form-encoding of Basic credentials ({}) send \
                 changed: such a client must send its credentials in the body, or get a \
                 plainer id (README, Compatibility)",
                crate::oauth::BASIC_WITHOUT_ENCODING
            ));
        }
        doubts
    }

    /// Each client's `grant_types` entries that name no grant type OAuth defines (IANA's
    /// registry): a typo such as `authorisation_code` leaves a client refused
    /// (`unauthorized_client`) with nothing else to say why. Other services' grant types
    /// (`refresh_token`, `client_credentials`) are fine in a registry shared with them.
    pub fn unknown_grant_types(&self) -> impl Iterator<Item = (&str, &str)> {
        self.clients.values().flat_map(|client| {
            (client.grant_types.iter())
                .filter(|g| !KNOWN_GRANT_TYPES.contains(&g.as_str()))
                .map(|g| (client.id.as_str(), g.as_str()))
        })
    }

    /// Enabled clients for which no token request can succeed here, and why: no grant type at
    /// all, or the code grant without a scope to grant (every code would be `invalid_scope`).
    /// Loaded all the same: a registry shared with other services may hold clients that are
    /// not for this one, and `enabled = false` says so. A client with neither grant types nor
    /// redirect URIs is a resource server that only introspects: meant, not warned of.
    pub fn dead_ends(&self) -> impl Iterator<Item = (&str, &'static str)> {
        self.enabled().filter_map(|client| {
            let why = if client.grant_types.is_empty() && client.redirect_uris.is_empty() {
                return None;
            } else if client.grant_types.is_empty() {
                "grant_types is empty: its token requests are refused (unauthorized_client)"
            } else if client.may_exchange_codes() && client.scopes.is_empty() {
                "it has no scopes: every code it exchanges is refused (invalid_scope)"
            } else {
                return None;
            };
            Some((client.id.as_str(), why))
        })
    }

    /// Each client's prefix entries whose `*` continues the last path segment
    /// (`redirect::ends_mid_segment`): meant as `…/cb/*` or `…/cb?*` far more often than as
    /// every path that begins with the same letters.
    pub fn prefixes_mid_segment(&self) -> impl Iterator<Item = (&str, &str)> {
        self.clients.values().flat_map(|client| {
            (client.redirect_uris.iter())
                .filter(|entry| super::redirect::ends_mid_segment(entry))
                .map(|entry| (client.id.as_str(), entry.as_str()))
        })
    }

    /// The clients whose secret the file holds in plain text (`plain:`).
    pub fn plaintext_secrets(&self) -> impl Iterator<Item = &str> {
        (self.clients.values())
            .filter(|client| client.plaintext_secret)
            .map(|client| client.id.as_str())
    }

    /// The ids that many client libraries send wrong in HTTP Basic credentials: they put the id
    /// in the header without the form-encoding of RFC 6749 §2.3.1
    /// ([`crate::oauth::BASIC_WITHOUT_ENCODING`]), which this service undoes, so a `+` or `%` in
    /// it arrives changed, and a `:` splits it. Any character outside `A-Z a-z 0-9 - . _ ~`.
    pub fn ids_basic_may_garble(&self) -> impl Iterator<Item = &str> {
        self.clients
            .keys()
            .map(String::as_str)
            .filter(|id| !id.bytes().all(crate::oauth::is_unreserved))
    }
}
