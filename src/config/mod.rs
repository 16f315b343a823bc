//! Settings: `config/default.toml`, then `config/<env>.toml` when `SSO_ENV` names one (it must
//! exist), then `SSO__…` environment variables (`SSO__REDIS__URL` sets `redis.url`; lists are
//! comma-separated).
//!
//! Everything is checked once at start-up so that a bad value stops the process with a message
//! naming the setting, instead of surfacing as a failed request later. An unknown key does too
//! (`deny_unknown_fields`): a misspelt `SSO__SERVER__TLS_CERT` must not start a plain-HTTP server.

mod clients;
mod env;
mod error;
mod redis;
mod server;
mod throttle;
mod token;
mod whole;

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::throttle::Network;

pub use self::clients::ClientsSettings;
use self::env::{environment, misspelt_prefix, reloadable_in, sso_variables};
pub use self::error::ConfigError;
pub use self::redis::{RedisMode, RedisSettings};
pub use self::server::{
    MIN_CONNECTIONS_PER_WORKER, MetricsSettings, RESERVED_OPEN_FILES, ServerSettings, TlsSettings,
};
pub use self::throttle::ThrottleSettings;
pub use self::token::{AssertionAudience, DiscoverySettings, MAX_LEEWAY_SECS, TokenSettings};
use self::whole::whole;

/// Every setting has a default, the value `config/default.toml` ships (a test holds them
/// equal): an operator's own `default.toml` needs only what it changes.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub redis: RedisSettings,
    pub token: TokenSettings,
    pub clients: ClientsSettings,
    pub discovery: DiscoverySettings,
    pub metrics: MetricsSettings,
    pub throttle: ThrottleSettings,
    /// The reloadable settings the environment sets ([`Settings::load`]), not a file's section.
    #[serde(skip)]
    pub overridden: Vec<Overridden>,
}

/// A setting a reload applies that an `SSO__` variable sets, and the value the files give it:
/// the environment wins at every reload, and a running process's environment does not change,
/// so a new value in the files does nothing until the variable goes (a key rotation's new
/// `token.signing_key`, say). A reload says so when the files' value changed.
#[derive(Debug, Clone, PartialEq)]
pub struct Overridden {
    pub variable: String,
    pub setting: String,
    /// `None`: no file sets it.
    pub in_files: Option<String>,
}

/// The most `server.workers` and `redis.pool_size` may be.
const MAX_THREADS_OR_LANES: usize = 1024;

/// The sections a reload (SIGHUP) applies, but for [`RESTART_ONLY_IN_RELOADED`]; a change to
/// any other setting waits for a restart (`live::restart` lists those one by one).
pub const RELOADED_SECTIONS: [&str; 3] = ["token", "discovery", "clients"];

/// The one setting of [`RELOADED_SECTIONS`] that needs a restart: the Argon2 slots are made
/// once, at start.
pub const RESTART_ONLY_IN_RELOADED: &str = "clients.argon2_slots";

/// The longest `redis.timeout_ms`: the Redis metrics' buckets reach it.
pub const MAX_REDIS_TIMEOUT_MS: u64 = 60_000;

/// The settings the layers of `builder` make, checked.
fn settings_of(
    builder: config::ConfigBuilder<config::builder::DefaultState>,
) -> Result<Settings, ConfigError> {
    builder.build()?.try_deserialize::<Settings>()?.validate()
}

/// A list setting: a TOML array, or one comma-separated string (how it arrives from the
/// environment, e.g. `SSO__REDIS__NODES=redis://a:7000,redis://b:7000`).
fn list<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: From<String>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum List {
        Many(Vec<String>),
        One(String),
    }
    let items = match List::deserialize(deserializer)? {
        List::Many(items) => items,
        List::One(text) => text
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(str::to_owned)
            .collect(),
    };
    Ok(items.into_iter().map(T::from).collect())
}

/// The files [`Settings::load`] reads, in order: `default.toml`, then `<env>.toml` (an empty
/// `env` is none).
fn layer_files(dir: &Path, env: Option<&str>) -> Vec<PathBuf> {
    let mut files = vec![dir.join("default.toml")];
    if let Some(env) = env.filter(|e| !e.is_empty()) {
        files.push(dir.join(format!("{env}.toml")));
    }
    files
}

impl Settings {
    /// Which files [`Settings::load`] reads and which `SSO__` variables override them (names
    /// only: values may be passwords), for an operator who wonders why a setting is what it is.
    pub fn describe_sources(dir: &Path, env: Option<&str>) -> String {
        let files: Vec<String> = (layer_files(dir, env).iter())
            .map(|file| file.display().to_string())
            .collect();
        let mut variables: Vec<String> = std::env::vars_os()
            .map(|(name, _)| name.to_string_lossy().into_owned())
            // config-rs reads the prefix in any case (`sso__redis__url` too).
            .filter(|name| name.to_ascii_lowercase().starts_with("sso__"))
            .collect();
        variables.sort();
        let environment = match variables.is_empty() {
            true => "no SSO__ variable".to_owned(),
            false => format!("overridden by {}", variables.join(", ")),
        };
        format!("configuration: {}; {environment}", files.join(" then "))
    }

    /// Loads the layered settings from `dir`; `env` names an overlay file, which must exist.
    pub fn load(dir: &Path, env: Option<&str>) -> Result<Self, ConfigError> {
        let names = std::env::vars_os().map(|(name, _)| name.to_string_lossy().into_owned());
        if let Some(name) = misspelt_prefix(names) {
            return Err(ConfigError::Load(format!(
                "environment variable `{name}` is not read: a setting is SSO__<SECTION>__<KEY>, \
                 with two underscores after SSO"
            )));
        }
        let mut builder = config::Config::builder();
        for file in layer_files(dir, env) {
            builder = builder.add_source(config::File::from(file).required(true));
        }
        let (variables, cut) = sso_variables(std::env::vars_os())?;
        for name in cut {
            log::warn!(
                "{name} ends with a line break, which is dropped (a value written with `echo`, \
                 not `echo -n`?)"
            );
        }
        // The files read once: their merge is the first layer of the settings, and says what
        // they give a setting the environment overrides.
        let files = builder.build()?;
        let overridden = reloadable_in(variables.keys().cloned())
            .into_iter()
            .map(|(variable, setting)| Overridden {
                in_files: (files.get::<config::Value>(&setting).ok()).map(|v| v.to_string()),
                variable,
                setting,
            })
            .collect();
        let layers = config::Config::builder()
            .add_source(files)
            .add_source(environment().source(Some(variables)));
        let mut settings = settings_of(layers)?;
        settings.overridden = overridden;
        Ok(settings)
    }

    /// Rejects values that would only fail later, naming the setting. Also normalises what it
    /// checks: an empty `redis.node_password` becomes none, `throttle.proxies` is parsed from
    /// `throttle.trusted_proxies`, and `redis.lanes` follows `redis.pool_size` and the worker
    /// count.
    pub fn validate(mut self) -> Result<Self, ConfigError> {
        // An empty password is none, as an empty `node_username` is: deployment templates
        // set variables they have no value for (`SSO__REDIS__NODE_PASSWORD=`).
        if (self.redis.node_password.as_ref()).is_some_and(|p| p.expose().is_empty()) {
            self.redis.node_password = None;
        }
        self.check_listeners()?;
        self.check_paths()?;
        self.throttle.proxies = self.throttle.validate()?;
        self.clients.validate()?;
        self.server.validate()?;
        self.redis.validate(self.server.worker_threads())?;
        self.token.validate()?;
        self.discovery.validate()?;
        Ok(self)
    }

    fn check_listeners(&self) -> Result<(), ConfigError> {
        if self.server.listen.parse::<std::net::SocketAddr>().is_err()
            && !self.server.listen.contains(':')
        {
            return Err(ConfigError::invalid("server.listen", "must be host:port"));
        }
        if !self.metrics.listen.is_empty() && !self.metrics.listen.contains(':') {
            return Err(ConfigError::invalid(
                "metrics.listen",
                "must be host:port, or empty",
            ));
        }
        if self.metrics.enabled && same_port(&self.server.listen, &self.metrics.listen) {
            return Err(ConfigError::invalid(
                "metrics.listen",
                "takes server.listen's address and port: the metrics listener needs a port of \
                 its own",
            ));
        }
        Ok(())
    }

    /// Said here: an empty path would be reported as a file not found at ``.
    fn check_paths(&self) -> Result<(), ConfigError> {
        let tls = self.server.tls.as_ref();
        let paths = [
            ("token.signing_key", Some(&self.token.signing_key)),
            ("clients.file", Some(&self.clients.file)),
            ("server.tls.cert", tls.map(|tls| &tls.cert)),
            ("server.tls.key", tls.map(|tls| &tls.key)),
        ];
        if let Some((setting, _)) = paths
            .iter()
            .find(|(_, path)| path.is_some_and(|p| p.as_os_str().is_empty()))
        {
            return Err(ConfigError::invalid(
                setting,
                "must be a file's path, not empty",
            ));
        }
        if self
            .token
            .verify_keys
            .iter()
            .any(|p| p.as_os_str().is_empty())
        {
            return Err(ConfigError::invalid(
                "token.verify_keys",
                "must list files' paths, none empty",
            ));
        }
        Ok(())
    }

    /// Settings that load but are likely a mistake, each said in words that name them; the
    /// start logs them as warnings. Of validated settings (it reads `throttle.proxies`).
    pub fn doubts(&self) -> Vec<String> {
        let mut doubts = Vec::new();
        if !self.metrics.enabled && !self.metrics.listen.is_empty() {
            doubts.push(format!(
                "metrics.listen is `{}` but metrics.enabled is false: no metrics listener is \
                 started",
                self.metrics.listen
            ));
        }
        // An exchange whose code is taken late in the grace still needs its answer: four
        // Redis calls at worst (README, "Operations").
        let worst_exchange_ms = 4 * self.redis.timeout_ms;
        if self.server.shutdown_timeout_secs * 1000 < worst_exchange_ms {
            doubts.push(format!(
                "server.shutdown_timeout_secs ({} s) is below four redis.timeout_ms ({} ms): \
                 an exchange under way when a stop's grace ends may have spent its code \
                 without its answer",
                self.server.shutdown_timeout_secs, worst_exchange_ms
            ));
        }
        if self.throttle.proxies.iter().any(Network::is_everything) {
            doubts.push(
                "throttle.trusted_proxies trusts every address (a /0): any client can pick the \
                 address its failures count under with X-Forwarded-For; list only the \
                 balancers' addresses"
                    .into(),
            );
        }
        // Each thread keeps the lane it first took: beyond the lanes, a worker's Redis
        // replies are read by another worker, which may be busy signing.
        let workers = self.server.worker_threads();
        if workers > self.redis.lanes {
            doubts.push(format!(
                "{workers} workers share {} Redis connections (redis.pool_size): set \
                 redis.pool_size to at least {workers}",
                self.redis.lanes
            ));
        }
        doubts
    }
}

/// A file path as the process reads it, for messages about a file that is missing: relative
/// paths are read from the working directory, which the message should not leave to a guess.
pub fn absolute(path: &Path) -> String {
    std::path::absolute(path)
        .map_or_else(|_| path.display().to_string(), |p| p.display().to_string())
}

/// What to check when a file a setting names could not be read for want of permission; else
/// nothing. For messages that end with the I/O error.
pub fn readable_hint(error: &std::io::Error) -> &'static str {
    match error.kind() {
        std::io::ErrorKind::PermissionDenied => {
            " (the user the service runs as must be able to read it, and every folder above it)"
        }
        _ => "",
    }
}

/// Whether two listen addresses would take one port: the same text, or addresses with the same
/// port whose IPs are equal or one of them every address (`0.0.0.0`, `::`). Host names are not
/// resolved here: only their text is compared, and a bind of the two tells the rest.
fn same_port(one: &str, other: &str) -> bool {
    use std::net::SocketAddr;
    match (one.parse::<SocketAddr>(), other.parse::<SocketAddr>()) {
        (Ok(one), Ok(other)) => {
            one.port() == other.port()
                && one.port() != 0
                && (one.ip() == other.ip()
                    || one.ip().is_unspecified()
                    || other.ip().is_unspecified())
        }
        _ => one == other,
    }
}

#[cfg(test)]
#[path = "../config_tests.rs"]
mod tests;
