//! What SIGHUP reloads: the client registry, the keys and the `[token]` and `[discovery]`
//! settings, as one snapshot swapped atomically (`[server]`, `[redis]`, `[throttle]`,
//! `[metrics]` and `clients.argon2_slots` need a restart, and a reload that changes them says
//! so, and is refused where that restart would fail: see [`restart`]). A request loads the
//! snapshot once (one atomic pointer load, no lock) and keeps it to its end, so a reload
//! neither waits for in-flight requests nor changes one half-way. A new configuration that does not load is refused with a
//! log line and the running one stays. Either outcome is counted in the metrics, which name the
//! key that signs now.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use arc_swap::{ArcSwap, Guard};
use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::clients::{Client, Registry, RegistryError};
use crate::clock::unix_now;
use crate::config::{
    ConfigError, DiscoverySettings, Overridden, RedisMode, RedisSettings, Settings, TokenSettings,
};
use crate::discovery;
use crate::exchange::claims_for;
use crate::metrics::Metrics;
use crate::secret_hash::Argon2Limit;
use crate::store::keys::jti_len;
use crate::tls::{Certificate, Renewal};
use crate::tokens::{Keyring, KeyringError, MAX_TOKEN, MintError};

mod changes;
mod restart;

use self::restart::{refuse_what_a_restart_would_refuse, restart_only};

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
         spent: shorten token.issuer, token.typ or the client's audience"
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

/// Where a reload reads the settings from: the config files and environment in production,
/// whatever a test wants in tests.
pub type SettingsSource = Box<dyn Fn() -> Result<Settings, ConfigError> + Send + Sync>;

/// What a reload swaps in.
struct Next {
    snapshot: Snapshot,
    settings: Settings,
    renewal: Option<Renewal>,
}

/// The current snapshot and how to make the next one.
pub struct Live {
    current: ArcSwap<Snapshot>,
    source: SettingsSource,
    /// The settings as started, for the sections a reload cannot change (it warns instead).
    started: Settings,
    /// What the listener serves with `server.tls`: a reload reads its files again.
    certificate: Option<Arc<Certificate>>,
    /// The reloadable settings the environment sets, as the last load found the files.
    overridden: Mutex<Vec<Overridden>>,
    /// One bound on Argon2 verifications for every snapshot, so a reload does not reset it.
    argon2: Argon2Limit,
    /// Keys that stopped signing in this process, and until when their tokens live
    /// (`expires_in` plus leeway after): a reload that drops one sooner is warned of.
    retired: Mutex<Vec<(String, Instant)>>,
    /// The longest token lifetime (`expires_in` plus leeway) in force since the current signer
    /// began to sign: a reload that shortens it leaves the tokens issued before living longer.
    signer_lifetime: AtomicU64,
    /// Told of each outcome, after the swap: when they name a signer, it signs.
    metrics: Arc<Metrics>,
    /// Held through a reload: two at once could store one snapshot and leave the metrics
    /// naming the other, or lose what one inherited from the running registry.
    reloading: Mutex<()>,
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
        let tagged = redis.mode == RedisMode::Cluster;
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
    fn token_lifetime(&self) -> u64 {
        self.token.expires_in + self.token.leeway_secs
    }

    /// Settings that load but leave the service unable to serve, said at every start and
    /// reload: a forgotten registry mount answers every client 401 while `/readyz` says 200.
    /// An issuer that discovery clients refuse is said at start and when a reload changes it
    /// (the seed's own issuer is such a one: said at every reload, it would teach operators
    /// to skip warnings).
    fn warn_of_mistakes(&self, clients_file: &Path, running: Option<&Snapshot>) {
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
                 (invalid_client) until one is registered and the service reloaded (SIGHUP)",
                clients_file.display()
            );
        }
        for (id, grant_type) in self.registry.unknown_grant_types() {
            log::warn!(
                "client {id}: grant type {grant_type:?} is none that OAuth defines (a typo of \
                 authorization_code?); without authorization_code its token requests are \
                 refused (unauthorized_client)"
            );
        }
        for (id, why) in self.registry.dead_ends() {
            log::warn!("client {id}: {why}");
        }
        // Here, not as the file is read: a reload that is refused applies none of it.
        for id in self.registry.plaintext_secrets() {
            log::warn!(
                "client `{id}` has a plaintext secret; store a hash (sso-token hash-secret)"
            );
        }
        for id in self.registry.ids_basic_may_garble() {
            log::warn!(
                "client {id}: its id has characters outside A-Z a-z 0-9 - . _ ~, which client \
                 libraries that skip the form-encoding of Basic credentials ({}) send \
                 changed: such a client must send its credentials in the body, or get a \
                 plainer id (README, Compatibility)",
                crate::oauth::BASIC_WITHOUT_ENCODING
            );
        }
    }

    fn describe(&self) -> String {
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
/// shortest scope) is minted once, for the client whose own fields are the longest, with a
/// `jti` as long as a real one (`tagged`: Cluster mode's).
fn a_token_fits(
    token: &TokenSettings,
    tagged: bool,
    keys: &Keyring,
    registry: &Registry,
) -> Result<(), LoadError> {
    let shortest_scope = |client: &Client| {
        (client.scopes.iter())
            .min_by_key(|s| s.len())
            .cloned()
            .unwrap_or_default()
    };
    let own = |client: &Client| {
        client.id.len() + client.audience_or(&token.audience).len() + shortest_scope(client).len()
    };
    let Some(client) = registry.enabled().max_by_key(|c| own(c)) else {
        return Ok(());
    };
    let scope = [shortest_scope(client)];
    let jti = "A".repeat(jti_len(tagged));
    let claims = claims_for(token, client, "a", &scope, &jti, unix_now());
    let bytes = keys.minter().mint(&claims)?.len();
    match bytes > MAX_TOKEN {
        true => Err(LoadError::TokenTooLong {
            client: client.id.clone(),
            bytes,
        }),
        false => Ok(()),
    }
}

impl Live {
    /// Loads the first snapshot from `settings`; `source` gives the settings of each reload.
    /// `certificate`: the listener's, when it has `server.tls`.
    pub fn new(
        settings: &Settings,
        source: SettingsSource,
        metrics: Arc<Metrics>,
        certificate: Option<Arc<Certificate>>,
    ) -> Result<Self, LoadError> {
        let argon2 = Argon2Limit::configured(settings.clients.argon2_slots);
        let snapshot = Snapshot::load(settings, &settings.redis, &argon2)?;
        log::info!("{}", snapshot.describe());
        snapshot.warn_of_mistakes(&settings.clients.file, None);
        metrics.config_started(&snapshot.keys);
        let lifetime = snapshot.token_lifetime();
        Ok(Self {
            argon2,
            current: ArcSwap::from_pointee(snapshot),
            source,
            started: settings.clone(),
            certificate,
            overridden: Mutex::new(settings.overridden.clone()),
            retired: Mutex::new(Vec::new()),
            signer_lifetime: AtomicU64::new(lifetime),
            metrics,
            reloading: Mutex::new(()),
        })
    }

    /// The snapshot in force; keep it for the whole request.
    pub fn load(&self) -> Guard<Arc<Snapshot>> {
        self.current.load()
    }

    /// Loads the settings and files again and swaps them in, or keeps the running snapshot and
    /// says why. One at a time, so that the metrics name the snapshot stored last.
    pub fn reload(&self) -> Result<(), LoadError> {
        let _one_at_a_time = self
            .reloading
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match self.next_snapshot() {
            Ok(next) => {
                self.apply(next);
                Ok(())
            }
            Err(e) => {
                self.metrics.reload_refused();
                log::error!("configuration reload refused, the running one stays: {e}");
                Err(e)
            }
        }
    }

    /// The settings of `source`, checked as the next start would check them, the snapshot
    /// they make, and the listener's certificate if its files changed.
    fn next_snapshot(&self) -> Result<Next, LoadError> {
        let settings = (self.source)().and_then(|settings| {
            refuse_what_a_restart_would_refuse(&self.started, &settings)?;
            settings.validate()
        })?;
        // The listener's files, read again while `server.tls` names the same ones (a renewal);
        // other files wait for a restart (`restart_only`).
        let renewal = match &self.certificate {
            Some(certificate) if settings.server.tls == self.started.server.tls => certificate
                .read_again()
                .map_err(|e| ConfigError::invalid("server.tls", e.to_string()))?,
            _ => None,
        };
        let snapshot = Snapshot::load(&settings, &self.started.redis, &self.argon2)?;
        // A start without a client only warns (nothing is lost that ran); a reload would take
        // every replica's clients and tokens away at once.
        if !snapshot.registry.has_enabled() && self.current.load().registry.has_enabled() {
            return Err(LoadError::NoClientLeft(settings.clients.file));
        }
        Ok(Next {
            snapshot,
            settings,
            renewal,
        })
    }

    /// Swaps the next snapshot (and certificate) in, and says what the operator should know
    /// of the change.
    fn apply(&self, next: Next) {
        let Next {
            snapshot,
            settings,
            renewal,
        } = next;
        let settings = &settings;
        let running = self.current.load();
        snapshot.registry.inherit_verified(&running.registry);
        self.warn_of_dropped_signers(&running, &snapshot);
        warn_of_a_new_algorithm(&running, &snapshot);
        warn_of_an_unpublished_signer(&running, &snapshot);
        snapshot.warn_of_mistakes(&settings.clients.file, Some(&running));
        let described = format!(
            "{}; {}",
            snapshot.describe(),
            changes::described(&running, &snapshot, renewal.is_some())
        );
        let snapshot = Arc::new(snapshot);
        self.current.store(Arc::clone(&snapshot));
        self.metrics.reload_applied(&snapshot.keys);
        log::info!("configuration reloaded: {described}");
        if let (Some(certificate), Some(renewal)) = (&self.certificate, renewal) {
            certificate.serve(renewal);
            log::info!(
                "server.tls: the certificate or key file changed, and the new pair is served: \
                 to new connections (those made before keep theirs)"
            );
        }
        self.warn_of_files_the_environment_overrides(settings);
        let not_applied = restart_only(&self.started, settings);
        self.metrics.restart_pending(not_applied.len());
        if !not_applied.is_empty() {
            log::warn!(
                "changes to {} take effect on restart only",
                not_applied.join(", ")
            );
        }
    }

    /// A setting changed in the files that an `SSO__` variable sets: the change does nothing.
    /// Said when the files' value changed since the last load, not at every reload (a
    /// deployment may set one in the environment for good: docker-compose's base URL).
    fn warn_of_files_the_environment_overrides(&self, settings: &Settings) {
        let mut known = self
            .overridden
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for now in &settings.overridden {
            let before = known.iter().find(|o| o.variable == now.variable);
            if before.is_none_or(|before| before.in_files != now.in_files) {
                log::warn!(
                    "{} changed in the files, but it comes from the environment ({}), which a \
                     reload cannot change: the files' value takes effect only without it",
                    now.setting,
                    now.variable
                );
            }
        }
        known.clone_from(&settings.overridden);
    }

    /// Tokens of a key that signed until now, or until less than their lifetime ago, stop
    /// verifying when a reload drops it: right for a compromised key, a mistake in a rotation
    /// (README: it stays in `token.verify_keys` until its tokens expire); then introspection
    /// calls them inactive and revocation finds nothing to revoke here, while replicas not yet
    /// reloaded still accept them. Said loudly, since only the operator knows which it is.
    fn warn_of_dropped_signers(&self, running: &Snapshot, next: &Snapshot) {
        let now = Instant::now();
        let signer = running.keys.minter().key().kid();
        let next_signer = next.keys.minter().key().kid();
        let drops =
            |kid: &str| running.keys.verifier().knows(kid) && !next.keys.verifier().knows(kid);
        let mut retired = self.retired.lock().unwrap_or_else(|p| p.into_inner());
        // A key that signs again, or signed until now, gets a fresh deadline below.
        retired.retain(|(kid, deadline)| *deadline > now && kid != signer && kid != next_signer);
        for (kid, deadline) in retired.iter().filter(|(kid, _)| drops(kid)) {
            log::warn!(
                "this reload drops key {kid}, which signed tokens less than their lifetime ago: \
                 those of the next {} s no longer verify (inactive, not revocable) wherever it \
                 is applied. Intended for a compromised key only; otherwise keep the key in \
                 token.verify_keys until they expire (README, Key rotation)",
                deadline.saturating_duration_since(now).as_secs() + 1
            );
        }
        if signer == next_signer {
            (self.signer_lifetime).fetch_max(next.token_lifetime(), Ordering::Relaxed);
            return;
        }
        // Its tokens live until the deadline of the longest-lived settings they were issued
        // under.
        let lifetime = (self.signer_lifetime).swap(next.token_lifetime(), Ordering::Relaxed);
        let lifetime = lifetime.max(running.token_lifetime());
        retired.push((signer.to_owned(), now + Duration::from_secs(lifetime)));
        if drops(signer) {
            log::warn!(
                "this reload drops key {signer}, which signed tokens until now: those of the last \
                 {lifetime} s no longer verify (inactive, not revocable) wherever it is applied. \
                 Intended for a compromised key only; otherwise keep the key in \
                 token.verify_keys until they expire (README, Key rotation)"
            );
        }
    }
}

/// The tokens' `alg` follows the signing key's type, so making a key of another type the signer
/// changes what every resource server and client must accept (the seed's tokens are RS256); one
/// pinned to the old algorithm rejects every new token. Said at once, since nothing else fails.
fn warn_of_a_new_algorithm(running: &Snapshot, next: &Snapshot) {
    let (signer, next_signer) = (running.keys.minter().key(), next.keys.minter().key());
    let (was, is) = (signer.algorithm().name(), next_signer.algorithm().name());
    if was != is {
        log::warn!(
            "this reload changes the tokens' alg from {was} (key {}) to {is} (key {}): resource \
             servers and clients that accept only {was} reject every token signed from now on; \
             rotate to a key of the same type unless all of them accept {is} (README, Key \
             rotation)",
            signer.kid(),
            next_signer.kid()
        );
    }
}

/// A new signer that the running JWKS did not list: resource servers whose cached JWKS (kept
/// up to `discovery.max_age_secs`) lacks its `kid` reject its tokens until they fetch it again.
/// The README's rotation publishes a key as verify-only first; said at once, since only the
/// resource servers fail.
fn warn_of_an_unpublished_signer(running: &Snapshot, next: &Snapshot) {
    let next_signer = next.keys.minter().key().kid();
    if next_signer != running.keys.minter().key().kid()
        && !running.keys.verifier().knows(next_signer)
    {
        log::warn!(
            "this reload makes key {next_signer} the signer, which this replica did not publish \
             before: resource servers whose cached JWKS (up to discovery.max_age_secs, {} s) \
             lacks it reject its tokens until they fetch it again. Unless that is intended (a \
             compromised signer), publish a new key in token.verify_keys on every replica \
             first and wait (README, Key rotation)",
            running.discovery.max_age_secs
        );
    }
}

/// Starts listening for SIGHUP. Called while the server is built, before it accepts anything:
/// from then on a SIGHUP is queued for [`reload_on_sighup`] instead of killing the process
/// (the default action), however late the task that reloads gets to run.
pub fn listen_for_sighup() -> std::io::Result<Signal> {
    signal(SignalKind::hangup())
}

/// Reloads on every SIGHUP of `hangups` until the task is dropped. Reading files happens off
/// the workers.
pub async fn reload_on_sighup(live: Arc<Live>, mut hangups: Signal) {
    while hangups.recv().await.is_some() {
        log::info!("SIGHUP: reloading the configuration (clients, keys, [token], [discovery])");
        let live = Arc::clone(&live);
        // The outcome is logged by `reload`.
        let _ = tokio::task::spawn_blocking(move || live.reload()).await;
    }
}
