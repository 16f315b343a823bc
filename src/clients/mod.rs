//! The client registry: the clients loaded from a TOML file, what each may do, and the check of
//! a presented secret against its entry ([`Registry::verify_secret`]). Client authentication as
//! the endpoints do it (throttle, metrics, one snapshot) is `client_auth`'s; the stored secrets
//! and their verification are `secret_hash`'s.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use subtle::ConstantTimeEq;

use crate::clock::unix_now;
use crate::log_limit::{EverySecond, HeldBack};
use crate::oauth::{AUTHORIZATION_CODE, ClientCredentials, OAuthError};
use crate::secret_hash::{Argon2Limit, Digest, SecretHash, VerifyError, sha256};

mod doubts;
mod file;
pub mod jwks;
mod redirect;

pub use self::file::RegistryError;
use self::jwks::ClientKeys;

/// A registered client, as the exchange needs it.
#[derive(Debug)]
pub struct Client {
    pub id: String,
    /// URIs matched exactly (RFC 6749 §3.1.2.3), or prefixes ending in `*` (see `redirect`).
    pub redirect_uris: Vec<String>,
    pub scopes: Vec<String>,
    /// Grant types the client may use; `authorization_code` unless the file says otherwise.
    pub grant_types: Vec<String>,
    pub enabled: bool,
    /// Overrides `token.audience` for this client's tokens.
    pub audience: Option<String>,
    /// `None` for a client with [`Client::keys`] instead.
    secret: Option<SecretHash>,
    /// The public keys of a `private_key_jwt` client (`jwks_file`); `None` for one with a secret.
    keys: Option<ClientKeys>,
    /// Secrets that still pass after `secret`, while a rotation reaches every instance of the
    /// client (at most [`file::MAX_PREVIOUS_SECRETS`], none the same as another or `secret`).
    previous_secrets: Vec<SecretHash>,
    /// A secret, current or previous, stored as `plain:` in the file (hashed at load): said
    /// when the registry is applied.
    plaintext_secret: bool,
    /// Its lines of why it was refused, one a second of each kind: a client may retry in a
    /// loop, and one client's loop, or one kind of refusal, must not hold back another's lines.
    auth_failures: EverySecond,
    token_refusals: EverySecond,
    foreign_replays: EverySecond,
    revoking_replays: EverySecond,
    previous_secret_uses: EverySecond,
}

/// Every registered client by id.
#[derive(Debug)]
pub struct Registry {
    clients: HashMap<String, Arc<Client>>,
    /// The process's one bound on concurrent Argon2 verifications, shared across reloads.
    argon2: Argon2Limit,
}

impl Registry {
    pub fn len(&self) -> usize {
        self.clients.len()
    }

    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    /// Whether any client may ask for tokens at all.
    pub fn has_enabled(&self) -> bool {
        self.enabled().next().is_some()
    }

    /// The clients that may ask for tokens.
    pub fn enabled(&self) -> impl Iterator<Item = &Client> {
        self.clients.values().map(Arc::as_ref).filter(|c| c.enabled)
    }

    /// Every scope some enabled client may be granted (for the metadata document).
    pub fn scopes(&self) -> BTreeSet<&str> {
        self.enabled()
            .flat_map(|c| c.scopes.iter().map(String::as_str))
            .collect()
    }

    /// Keeps what `older` (the registry this one replaces) remembers of Argon2 verifications,
    /// for every stored hash that the client's entry there held too, as its secret or a
    /// previous one: a rotation that moves the secret into `previous_secrets` does not send
    /// the instances still on it back to an Argon2 slot.
    pub fn inherit_verified(&self, older: &Registry) {
        for (id, client) in &self.clients {
            if let Some(old) = older.clients.get(id) {
                for hash in client.secrets() {
                    old.secrets().for_each(|old_hash| hash.inherit(old_hash));
                }
            }
        }
    }

    pub fn get(&self, id: &str) -> Option<&Arc<Client>> {
        self.clients.get(id)
    }

    /// The clients added, removed, disabled, enabled or otherwise changed since `older` (the
    /// registry this one replaces), by id, sorted, each kind on its own; empty when none.
    pub fn changes_since<'a>(&'a self, older: &'a Registry) -> Vec<(&'static str, Vec<&'a str>)> {
        let (mut added, mut disabled, mut enabled, mut changed) = (vec![], vec![], vec![], vec![]);
        for (id, client) in &self.clients {
            let Some(old) = older.clients.get(id) else {
                added.push(id.as_str());
                continue;
            };
            match (old.enabled, client.enabled) {
                (true, false) => disabled.push(id.as_str()),
                (false, true) => enabled.push(id.as_str()),
                _ => {}
            }
            // Also when it was enabled or disabled: a re-enabled client with wider scopes.
            if !client.same_entry(old) {
                changed.push(id.as_str());
            }
        }
        let removed = (older.clients.keys())
            .filter(|id| !self.clients.contains_key(*id))
            .map(String::as_str)
            .collect();
        [
            ("added", added),
            ("removed", removed),
            ("disabled", disabled),
            ("enabled", enabled),
            ("changed", changed),
        ]
        .into_iter()
        .filter(|(_, ids)| !ids.is_empty())
        .map(|(kind, mut ids)| {
            ids.sort_unstable();
            (kind, ids)
        })
        .collect()
    }

    /// Checks the presented secret against the client's entry, its `secret` then each of its
    /// `previous_secrets` (`SecretHash::position_of`), and says when a previous one passed
    /// ([`Client::log_previous_secret`]); nothing more: the endpoints authenticate through
    /// `ClientAuth::authenticate`, which throttles and counts around this.
    /// Unknown client, disabled client and wrong secret give the same error, and an unknown or
    /// disabled id still costs a SHA-256 comparison, about what a `sha256:` client's costs (one
    /// comparison per stored secret; an Argon2 client's takes milliseconds: its timing shows,
    /// and client ids are public anyway). A
    /// disabled Argon2 client's secret is not verified: a flood for it takes no Argon2 slot.
    /// `Overloaded` when an Argon2 verification found neither its client id's turn nor a slot
    /// free in time, `Internal` when its blocking task failed: the one place where
    /// `secret_hash::VerifyError` becomes an HTTP answer.
    pub async fn verify_secret(
        &self,
        credentials: &ClientCredentials,
    ) -> Result<Verified, OAuthError> {
        let presented = credentials.secret.expose();
        let fail = OAuthError::authentication_failed;
        let enabled = self.clients.get(&credentials.id).filter(|c| c.enabled);
        let Some(client) = enabled else {
            let _ = sha256(presented).ct_eq(&Digest::ZERO);
            return Err(fail());
        };
        let matched =
            SecretHash::position_of(client.secrets(), &client.id, presented, &self.argon2)
                .await
                .map_err(|e| match e {
                    VerifyError::Busy => OAuthError::Overloaded,
                    VerifyError::Argon2Task(cause) => OAuthError::internal(cause),
                })?;
        let position = matched.ok_or_else(fail)?;
        if position > 0 {
            client.log_previous_secret(position);
        }
        Ok(Verified {
            client: Arc::clone(client),
            with_previous_secret: position > 0,
        })
    }
}

/// A client whose secret passed, and whether it was one of its `previous_secrets` (counted in
/// the metrics: a rotation is done once no instance of a client uses an old secret).
#[derive(Debug)]
pub struct Verified {
    pub client: Arc<Client>,
    pub with_previous_secret: bool,
}

impl Client {
    /// The `aud` of this client's tokens: its own override, else the configured default,
    /// else the client id (as the reference implementation does).
    pub fn audience_or<'a>(&'a self, default: &'a str) -> &'a str {
        self.audience
            .as_deref()
            .or(Some(default).filter(|a| !a.is_empty()))
            .unwrap_or(&self.id)
    }

    /// Says that this client failed to authenticate, for the operator it calls (the access log
    /// has only the status): at most a line a second, saying how many were held back.
    pub fn log_auth_failure(&self, used_basic: bool) {
        let why = match (self.enabled, used_basic) {
            (false, _) => "the client is disabled",
            _ if self.keys.is_some() => {
                "a secret was sent, but the client authenticates with private_key_jwt \
                 (jwks_file)"
            }
            // Libraries that skip Basic's form-encoding garble secrets outside A-Z a-z 0-9
            // - . _ ~ there (README, "Compatibility"): worth knowing which way it came.
            (true, true) => "wrong secret, sent in Basic credentials",
            (true, false) => "wrong secret, sent in the body",
        };
        self.log_limited(
            &self.auth_failures,
            format_args!("authentication failed: {why}"),
        );
    }

    /// Says why this client's assertion (`private_key_jwt`) was refused, as
    /// [`Client::log_auth_failure`] and sharing its limit. Never the assertion itself.
    pub fn log_assertion_failure(&self, why: impl std::fmt::Display) {
        self.log_limited(
            &self.auth_failures,
            format_args!("authentication failed: client assertion refused, {why}"),
        );
    }

    /// Says why this client's token request was refused, as [`Client::log_auth_failure`].
    pub fn log_token_refusal(&self, why: impl std::fmt::Display) {
        self.log_limited(
            &self.token_refusals,
            format_args!("token request refused, {why}"),
        );
    }

    /// Warns that this client presented a spent code of a token not its own (or gone), as
    /// [`Client::log_auth_failure`]: the client may repeat that at the endpoint's rate.
    pub fn log_foreign_replay(&self) {
        self.log_limited_at(
            log::Level::Warn,
            &self.foreign_replays,
            format_args!(
                "spent authorization code presented again; no token of this client's revoked"
            ),
        );
    }

    /// Warns that this client presented a spent code of its own, whose token is now revoked,
    /// as [`Client::log_auth_failure`]: each replay revokes another token, so a client that
    /// retries every exchange (a bug worth the operator's eye, or a stolen code in use) would
    /// otherwise write a line per token it was issued.
    /// `jti` names the token (the first of the second's replays): for the operator's look-up
    /// of whose it was (introspection, the access log's time); a `jti` is no credential.
    pub fn log_revoking_replay(&self, jti: &str) {
        self.log_limited_at(
            log::Level::Warn,
            &self.revoking_replays,
            format_args!("authorization code replayed; its token is revoked (jti {jti})"),
        );
    }

    /// Says that this client authenticated with its `previous_secrets` entry `position` (1 for
    /// the first), as [`Client::log_auth_failure`]: until no instance of the client uses it,
    /// and the operator may remove it. Names the entry, never the secret.
    fn log_previous_secret(&self, position: usize) {
        self.log_limited(
            &self.previous_secret_uses,
            format_args!(
                "authenticated with a previous secret (previous_secrets entry {position}); \
                 remove it from previous_secrets once every instance of the client has the \
                 new one"
            ),
        );
    }

    fn log_limited(&self, limit: &EverySecond, what: std::fmt::Arguments<'_>) {
        self.log_limited_at(log::Level::Info, limit, what);
    }

    fn log_limited_at(
        &self,
        level: log::Level,
        limit: &EverySecond,
        what: std::fmt::Arguments<'_>,
    ) {
        if let Some(more) = limit.admit(unix_now()) {
            log::log!(level, "client {}: {what}{}", self.id, HeldBack(more));
        }
    }

    /// Whether `uri` is registered: equal to an entry, or under a prefix entry (`redirect`).
    pub fn has_redirect_uri(&self, uri: &str) -> bool {
        (self.redirect_uris.iter()).any(|entry| redirect::registers(entry, uri))
    }

    pub fn allows_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// Whether `older` is this client's entry, unchanged but for `enabled`.
    fn same_entry(&self, older: &Client) -> bool {
        self.redirect_uris == older.redirect_uris
            && self.scopes == older.scopes
            && self.grant_types == older.grant_types
            && self.audience == older.audience
            && match (&self.secret, &older.secret) {
                (Some(mine), Some(theirs)) => mine.same_stored(theirs),
                (None, None) => true,
                _ => false,
            }
            && match (&self.keys, &older.keys) {
                (Some(mine), Some(theirs)) => mine.same_keys(theirs),
                (None, None) => true,
                _ => false,
            }
            && self.previous_secrets.len() == older.previous_secrets.len()
            && (self.previous_secrets.iter())
                .zip(&older.previous_secrets)
                .all(|(mine, theirs)| mine.same_stored(theirs))
    }

    /// Its secret, then its previous secrets, in the file's order; none for a client with keys.
    fn secrets(&self) -> impl Iterator<Item = &SecretHash> + Clone {
        self.secret.iter().chain(&self.previous_secrets)
    }

    /// The public keys it signs its assertions with, when it authenticates with
    /// `private_key_jwt`.
    pub fn keys(&self) -> Option<&ClientKeys> {
        self.keys.as_ref()
    }

    /// Whether the client's `grant_types` name the grant this service serves.
    pub fn may_exchange_codes(&self) -> bool {
        grants_codes(&self.grant_types)
    }
}

/// Whether `grant_types` name the grant this service serves: a client's, or a file entry's
/// before it is one.
fn grants_codes(grant_types: &[String]) -> bool {
    grant_types.iter().any(|g| g == AUTHORIZATION_CODE)
}

#[cfg(test)]
#[path = "clients_tests.rs"]
mod tests;
