//! The snapshot a request keeps to its end: what a reload loads, the checks that refuse it
//! ([`LoadError`]) and the mistakes that are only warned of.

use std::path::{Path, PathBuf};

use crate::clients::{Client, Registry, RegistryError};
use crate::clock::unix_now;
use crate::config::{ConfigError, DiscoverySettings, RedisSettings, Settings, TokenSettings};
use crate::discovery;
use crate::grant;
use crate::secret_hash::Argon2Limit;
use crate::store::keys::{self, jti_len};
use crate::tokens::{Claims, Keyring, KeyringError, MAX_TOKEN, MintError};

/// Everything a request needs that a reload may change.
#[derive(Debug)]
pub struct Snapshot {
    pub token: TokenSettings,
    pub discovery: DiscoverySettings,
    pub registry: Registry,
    pub keys: Keyring,
    /// The RFC 8414 metadata document, rendered once.
    pub metadata: String,
}

/// Why a configuration could not be loaded; the message names the setting or file at fault.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Keys(#[from] KeyringError),
    #[error(transparent)]
    Clients(#[from] RegistryError),
    #[error("rendering the metadata document: {0}")]
    Metadata(#[from] serde_json::Error),
    #[error(
        "client {client}: its shortest token would be {bytes} bytes, over the {MAX_TOKEN} that \
         introspection and user info read, and every exchange would be refused with its code \
         spent: shorten token.issuer, token.typ, token.base_scopes or the client's audience"
    )]
    TokenTooLong { client: String, bytes: usize },
    #[error("minting a sample token: {0}")]
    Mint(#[from] MintError),
    #[error(
        "clients.file `{0}` registers no enabled client: every client would be refused, and \
         every live token with it (a file truncated or half-written, a mount gone?). To turn \
         every client away on purpose, restart with it"
    )]
    NoClientLeft(PathBuf),
}

impl Snapshot {
    /// Reads the key files and the clients file that `settings` names. `redis`: the Redis
    /// settings the process started with (a reload does not change them), whose mode sizes a
    /// token's `jti`.
    pub fn load(
        settings: &Settings,
        redis: &RedisSettings,
        argon2: &Argon2Limit,
    ) -> Result<Self, LoadError> {
        let keys = Keyring::load(&settings.token)?;
        let registry = Registry::load(&settings.clients.file, argon2)?;
        let tagged = keys::tagged(redis);
        a_token_fits(&settings.token, tagged, &keys, &registry)?;
        let metadata = discovery::metadata(&settings.token, &settings.discovery, &registry)?;
        Ok(Self {
            token: settings.token.clone(),
            discovery: settings.discovery.clone(),
            registry,
            keys,
            metadata,
        })
    }

    /// Seconds a token issued now may be accepted: `expires_in` plus leeway.
    pub(super) fn token_lifetime(&self) -> u64 {
        self.token.expires_in + self.token.leeway_secs
    }

    /// Settings that load but leave the service unable to serve, said at every start and
    /// reload: a forgotten registry mount answers every client 401 while `/readyz` says 200.
    /// An issuer that discovery clients refuse is said at start and when a reload changes it
    /// (the seed's own issuer is such a one: said at every reload, it would teach operators
    /// to skip warnings).
    pub(super) fn warn_of_mistakes(&self, clients_file: &Path, running: Option<&Snapshot>) {
        let issuer_changed = running.is_none_or(|running| {
            running.token.issuer != self.token.issuer
                || running.discovery.base_url != self.discovery.base_url
        });
        if issuer_changed {
            discovery::warn_of_an_undiscoverable_issuer(&self.token, &self.discovery);
        }
        if !self.registry.has_enabled() {
            log::warn!(
                "clients.file `{}` registers no enabled client: every token request is refused \
                 (invalid_client) until one is registered and the service reloaded (SIGHUP); \
                 a running service that has one refuses to reload to it (restart instead)",
                clients_file.display()
            );
        }
        // Here, not as the file is read: a reload that is refused applies none of it.
        for doubt in self.registry.doubts() {
            log::warn!("{doubt}");
        }
        // A base scope that no enabled client may have is added to no grant: a typo, most
        // likely, which nothing else would show (without an enabled client, said above).
        if self.registry.has_enabled() {
            let unregistered = (self.token.base_scopes.iter())
                .filter(|base| !self.registry.enabled().any(|c| c.allows_scope(base)));
            for base in unregistered {
                log::warn!(
                    "token.base_scopes: `{}` is a scope of no enabled client, so no grant \
                     carries it (a typo? `[]` says none is meant)",
                    base.escape_debug()
                );
            }
        }
    }

    pub(super) fn describe(&self) -> String {
        format!(
            "{}; {} client(s) registered",
            self.keys.describe(),
            self.registry.len()
        )
    }
}

/// Refuses settings under which no token of some enabled client fits in [`MAX_TOKEN`] (an issuer
/// or audience of kilobytes): the exchange checks each token it mints and refuses one too long,
/// after its code is spent. The shortest token a client can get (a one-letter `sub`, its
/// fewest scopes) is minted once, for the client whose own fields are the longest, with a
/// `jti` as long as a real one (`tagged`: Cluster mode's).
fn a_token_fits(
    token: &TokenSettings,
    tagged: bool,
    keys: &Keyring,
    registry: &Registry,
) -> Result<(), LoadError> {
    // The fewest scopes a grant of the client carries: the base scopes it may have (a record
    // naming one of them gets the others added), else its shortest scope.
    let fewest_scopes = |client: &Client| {
        let mut scopes = Vec::new();
        grant::add_base_scopes(&mut scopes, &token.base_scopes, client);
        if scopes.is_empty() {
            scopes.extend(client.scopes.iter().min_by_key(|s| s.len()).cloned());
        }
        scopes
    };
    let own = |client: &Client| {
        let scopes: usize = fewest_scopes(client).iter().map(|s| s.len() + 3).sum();
        client.id.len() + client.audience_or(&token.audience).len() + scopes
    };
    let Some(client) = registry.enabled().max_by_key(|c| own(c)) else {
        return Ok(());
    };
    let scope = fewest_scopes(client);
    let jti = "A".repeat(jti_len(tagged));
    let claims = Claims::issued_to(client, token, "a", &scope, &jti, unix_now());
    let bytes = keys.minter().mint(&claims)?.len();
    match bytes > MAX_TOKEN {
        true => Err(LoadError::TokenTooLong {
            client: client.id.clone(),
            bytes,
        }),
        false => Ok(()),
    }
}
