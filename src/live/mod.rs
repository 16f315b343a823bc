//! What SIGHUP reloads: the client registry, the keys and the `[token]` and `[discovery]`
//! settings, as one snapshot swapped atomically (`[server]`, `[redis]`, `[throttle]`,
//! `[metrics]` and `clients.argon2_slots` need a restart, and a reload that changes them says
//! so, and is refused where that restart would fail: see [`restart`]). A request loads the
//! snapshot once (one atomic pointer load, no lock) and keeps it to its end, so a reload
//! neither waits for in-flight requests nor changes one half-way. A new configuration that
//! does not load is refused with a log line and the running one stays. Either outcome is
//! counted in the metrics, which name the key that signs now.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use arc_swap::{ArcSwap, Guard};
use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::config::{ConfigError, Overridden, RELOADED_SECTIONS, Settings};
use crate::metrics::Metrics;
use crate::secret_hash::Argon2Limit;
use crate::tls::{Certificate, Renewal};

mod changes;
mod restart;
mod rotation;
mod snapshot;

use self::restart::{refuse_what_a_restart_would_refuse, restart_only};
use self::rotation::{Published, warn_of_a_new_algorithm, warn_of_an_unpublished_signer};
pub use self::snapshot::{LoadError, Snapshot};

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
    /// Keys that a reload published, and when: a reload that makes one the signer before
    /// resource servers' cached JWKS can hold it is warned of.
    published: Mutex<Published>,
    /// The longest token lifetime (`expires_in` plus leeway) in force since the current signer
    /// began to sign: a reload that shortens it leaves the tokens issued before living longer.
    signer_lifetime: AtomicU64,
    /// Told of each outcome, after the swap: when they name a signer, it signs.
    metrics: Arc<Metrics>,
    /// Held through a reload: two at once could store one snapshot and leave the metrics
    /// naming the other, or lose what one inherited from the running registry.
    reloading: Mutex<()>,
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
        let snapshot = first_snapshot(settings, &argon2)?;
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
            published: Mutex::new(Published::new()),
            signer_lifetime: AtomicU64::new(lifetime),
            metrics,
            reloading: Mutex::new(()),
        })
    }

    /// The snapshot in force; keep it for the whole request.
    pub fn snapshot(&self) -> Guard<Arc<Snapshot>> {
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
        self.warn_of_a_signer_published_too_recently(&running, &snapshot);
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
    let tls = match live.certificate {
        Some(_) => ", the TLS files",
        None => "",
    };
    while hangups.recv().await.is_some() {
        log::info!(
            "SIGHUP: reloading the configuration (keys, the clients file{tls}, [{}])",
            RELOADED_SECTIONS.join("], [")
        );
        let live = Arc::clone(&live);
        // The outcome is logged by `reload`.
        let _ = tokio::task::spawn_blocking(move || live.reload()).await;
    }
}

/// The snapshot a start serves, its summary logged and its mistakes warned of.
fn first_snapshot(settings: &Settings, argon2: &Argon2Limit) -> Result<Snapshot, LoadError> {
    let snapshot = Snapshot::load(settings, &settings.redis, argon2)?;
    log::info!("{}", snapshot.describe());
    snapshot.warn_of_mistakes(&settings.clients.file, None);
    Ok(snapshot)
}

/// What a start loads besides the settings (keys, clients file), loaded, checked and warned
/// of as a start does, for `sso-token check-config`; returns the start's summary.
pub fn check(settings: &Settings) -> Result<String, LoadError> {
    let argon2 = Argon2Limit::configured(settings.clients.argon2_slots);
    Ok(first_snapshot(settings, &argon2)?.describe())
}
