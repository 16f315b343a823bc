//! Settings: `config/default.toml`, then `config/<env>.toml` when `SSO_ENV` names one (it must
//! exist), then `SSO__…` environment variables (`SSO__REDIS__URL` sets `redis.url`; lists are
//! comma-separated).
//!
//! Everything is checked once at start-up so that a bad value stops the process with a message
//! naming the setting, instead of surfacing as a failed request later. An unknown key does too
//! (`deny_unknown_fields`): a misspelt `SSO__SERVER__TLS_CERT` must not start a plain-HTTP server.

mod error;
mod redis;
mod whole;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::throttle::Network;

pub use self::error::ConfigError;
pub use self::redis::{RedisMode, RedisSettings};
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

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    /// `host:port`; port 0 picks a free port (tests).
    pub listen: String,
    /// Worker threads; 0 means one per core.
    #[serde(deserialize_with = "whole")]
    pub workers: usize,
    /// Largest request body accepted, in bytes.
    #[serde(deserialize_with = "whole")]
    pub body_limit: usize,
    /// How long a request's body may take to arrive once its head has, milliseconds. actix
    /// bounds only the head (`client_request_timeout`); without this a client that declares a
    /// body and never finishes it holds a connection for ever.
    #[serde(deserialize_with = "whole")]
    pub body_timeout_ms: u64,
    /// How long an idle keep-alive connection stays open, seconds; 0: none does (each answer
    /// closes its connection). Above the load balancer's idle timeout, so that the balancer,
    /// never the server, closes an idle connection: a server closing it just as the balancer
    /// sends a request on it costs that request its answer.
    #[serde(deserialize_with = "whole")]
    pub keep_alive_secs: u64,
    /// Connections each worker serves at once; past it the listener stops accepting until one
    /// closes (new ones wait in the backlog). Bounds what idle or slow clients can hold:
    /// descriptors, and memory (a connection's buffers can grow to 128 KiB). 0: see
    /// [`ServerSettings::connections_per_worker`].
    #[serde(deserialize_with = "whole")]
    pub max_connections: usize,
    /// Exchanges per worker that may be past taking their code at once, in one pool of
    /// `exchange_slots` × workers (see `slots::Slots`); the others wait before they touch Redis.
    #[serde(deserialize_with = "whole")]
    pub exchange_slots: usize,
    /// How long an exchange waits for a slot before it gets a 503 (its code untouched), ms.
    #[serde(deserialize_with = "whole")]
    pub slot_wait_ms: u64,
    /// Seconds that in-flight requests get to finish after SIGTERM.
    #[serde(deserialize_with = "whole")]
    pub shutdown_timeout_secs: u64,
    /// After SIGTERM, how long to go on serving, unready, before closing the listener: time
    /// for load balancers to stop sending requests here (see `shutdown`). Milliseconds.
    #[serde(deserialize_with = "whole")]
    pub shutdown_delay_ms: u64,
    /// Serve HTTPS instead of HTTP; absent: plain HTTP (TLS ends at the load balancer).
    pub tls: Option<TlsSettings>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:8080".into(),
            workers: 0,
            body_limit: 4096,
            body_timeout_ms: 5_000,
            // Above the 60 s idle timeout of nginx's upstream keep-alive and of AWS ALB.
            keep_alive_secs: 75,
            max_connections: 0,
            exchange_slots: 64,
            slot_wait_ms: 10_000,
            shutdown_timeout_secs: 30,
            shutdown_delay_ms: 0,
            tls: None,
        }
    }
}

impl ServerSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |setting, problem| Err(ConfigError::invalid(setting, problem));
        if !(256..=1 << 20).contains(&self.body_limit) {
            return invalid("server.body_limit", "must be between 256 and 1048576 bytes");
        }
        if !(100..=60_000).contains(&self.body_timeout_ms) {
            return invalid("server.body_timeout_ms", "must be between 100 and 60000");
        }
        if self.keep_alive_secs > 3600 {
            return invalid("server.keep_alive_secs", "must be at most 3600 (0: off)");
        }
        if self.max_connections > 1_000_000 {
            return invalid("server.max_connections", "must be between 0 and 1000000");
        }
        if !(1..=100_000).contains(&self.exchange_slots) {
            return invalid("server.exchange_slots", "must be between 1 and 100000");
        }
        if !(1..=600_000).contains(&self.slot_wait_ms) {
            return invalid("server.slot_wait_ms", "must be between 1 and 600000");
        }
        // 0 would cut every exchange in flight at a stop, codes spent and answers lost.
        if !(1..=3600).contains(&self.shutdown_timeout_secs) {
            return invalid("server.shutdown_timeout_secs", "must be between 1 and 3600");
        }
        if self.shutdown_delay_ms > 600_000 {
            return invalid("server.shutdown_delay_ms", "must be at most 600000");
        }
        // Past this a typo would take all memory or panic, rather than stop the start with
        // the setting's name.
        if self.workers > MAX_THREADS_OR_LANES {
            return Err(ConfigError::invalid(
                "server.workers",
                format!("must be at most {MAX_THREADS_OR_LANES} (0: one per core)"),
            ));
        }
        Ok(())
    }

    /// The worker threads actix starts: `workers`, or one per available core when it is 0.
    pub fn worker_threads(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }

    /// `max_connections`, or with 0 actix's 25,600, fewer where the workers' connections
    /// together would pass the open-files limit (`open_files`, `None`: unlimited) less
    /// [`RESERVED_OPEN_FILES`]: clients that took every descriptor would leave none for a
    /// Redis lane to reconnect, nor for the listener, which then stops accepting for half a
    /// second at a time. At least [`MIN_CONNECTIONS_PER_WORKER`].
    pub fn connections_per_worker(&self, open_files: Option<u64>) -> usize {
        if self.max_connections != 0 {
            return self.max_connections;
        }
        let Some(limit) = open_files else {
            return ACTIX_MAX_CONNECTIONS;
        };
        let workers = u64::try_from(self.worker_threads()).unwrap_or(u64::MAX);
        let fits = limit.saturating_sub(RESERVED_OPEN_FILES) / workers.max(1);
        usize::try_from(fits).map_or(ACTIX_MAX_CONNECTIONS, |fits| {
            fits.clamp(MIN_CONNECTIONS_PER_WORKER, ACTIX_MAX_CONNECTIONS)
        })
    }
}

/// `[server.tls]`: PEM files, read at start and again by each reload (a renewal).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// Certificate chain, leaf first.
    pub cert: PathBuf,
    /// Its private key: PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
    pub key: PathBuf,
}

/// actix's own default, the most `server.max_connections = 0` gives a worker.
const ACTIX_MAX_CONNECTIONS: usize = 25_600;

/// The fewest connections `server.max_connections` 0 gives a worker, whatever the open-files
/// limit: a worker that could hold fewer would be of little use (the start warns instead).
pub const MIN_CONNECTIONS_PER_WORKER: usize = 64;

/// Descriptors kept for what is not a client's connection: Redis lanes, the metrics listener,
/// the sentinels' watchers, key and config files on a reload.
pub const RESERVED_OPEN_FILES: u64 = 512;

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
}

impl TokenSettings {
    fn validate(&self) -> Result<(), ConfigError> {
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
        if self.leeway_secs > 300 {
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
            signing_key: "keys/signing.pem".into(),
            verify_keys: Vec::new(),
            leeway_secs: 30,
            // RFC 6749 §4.1.2 recommends 10 minutes at most.
            code_max_age_secs: 600,
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

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientsSettings {
    /// TOML file with the client registry.
    pub file: PathBuf,
    /// Argon2 verifications that may run at once; 0: one per two CPUs (at least one).
    #[serde(deserialize_with = "whole")]
    pub argon2_slots: usize,
}

/// The most Argon2 slots `clients.argon2_slots` may ask for: each verification may take up to
/// 256 MiB (the most a stored hash may ask for), so more would risk the process's memory.
const MAX_ARGON2_SLOTS: usize = 64;

impl ClientsSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.argon2_slots > MAX_ARGON2_SLOTS {
            return Err(ConfigError::invalid(
                "clients.argon2_slots",
                format!("must be at most {MAX_ARGON2_SLOTS} (0: half the CPUs)"),
            ));
        }
        Ok(())
    }
}

impl Default for ClientsSettings {
    fn default() -> Self {
        Self {
            file: "config/clients.toml".into(),
            argon2_slots: 0,
        }
    }
}

impl DiscoverySettings {
    /// `base_url` without its trailing slash.
    pub fn base(&self) -> &str {
        self.base_url.trim_end_matches('/')
    }

    fn validate(&self) -> Result<(), ConfigError> {
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

/// `GET /metrics` (Prometheus text format).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSettings {
    /// Serve `GET /metrics` at all.
    pub enabled: bool,
    /// `host:port` of a separate listener for `/metrics` only (then the main listener does not
    /// serve it); empty: `/metrics` is served on `server.listen`.
    pub listen: String,
}

impl MetricsSettings {
    /// The address of the metrics' own listener: none when metrics are off, or served on
    /// `server.listen`.
    pub fn own_listener(&self) -> Option<&str> {
        (self.enabled && !self.listen.is_empty()).then_some(self.listen.as_str())
    }
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: String::new(),
        }
    }
}

/// Throttling of failed client authentication (see `throttle` for the exact semantics).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ThrottleSettings {
    pub enabled: bool,
    /// Failures in one window after which an address (for the client ids that failed from it,
    /// and unknown ones), or a client id's failures, get 429.
    #[serde(deserialize_with = "whole")]
    pub max_failures: u64,
    /// Length of the window, seconds; it starts at its first failure.
    #[serde(deserialize_with = "whole")]
    pub window_secs: u64,
    /// Peers whose `X-Forwarded-For` is believed: addresses, or networks that hold only proxies
    /// (`10.0.12.0/28`): a client inside a listed network could pick its counted address.
    #[serde(deserialize_with = "list")]
    pub trusted_proxies: Vec<String>,
    /// `trusted_proxies` parsed, filled in by `Settings::validate` (empty before it), which
    /// refuses an entry that is no address or network: what the throttle and the access log
    /// match peers against. Not read from the files.
    #[serde(skip)]
    pub proxies: Vec<Network>,
}

impl ThrottleSettings {
    /// Checks the settings; returns `trusted_proxies` parsed (for `proxies`).
    fn validate(&self) -> Result<Vec<Network>, ConfigError> {
        if self.max_failures == 0 {
            return Err(ConfigError::invalid(
                "throttle.max_failures",
                "must be at least 1",
            ));
        }
        if !(1..=86_400).contains(&self.window_secs) {
            return Err(ConfigError::invalid(
                "throttle.window_secs",
                "must be between 1 and 86400 seconds",
            ));
        }
        (self.trusted_proxies.iter())
            .map(|proxy| {
                Network::parse(proxy).ok_or_else(|| {
                    ConfigError::invalid(
                        "throttle.trusted_proxies",
                        format!("`{proxy}` is not an IP address or network (address/length)"),
                    )
                })
            })
            .collect()
    }
}

impl Default for ThrottleSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            max_failures: 20,
            window_secs: 60,
            trusted_proxies: Vec::new(),
            proxies: Vec::new(),
        }
    }
}

/// Every setting by section, for the variables written with single underscores that
/// [`misspelt_prefix`] refuses (a test checks the list against the settings' own fields).
const SETTINGS: [(&str, &[&str]); 7] = [
    (
        "server",
        &[
            "listen",
            "workers",
            "body_limit",
            "body_timeout_ms",
            "keep_alive_secs",
            "max_connections",
            "exchange_slots",
            "slot_wait_ms",
            "shutdown_timeout_secs",
            "shutdown_delay_ms",
            "tls",
        ],
    ),
    (
        "redis",
        &[
            "mode",
            "url",
            "sentinels",
            "master_name",
            "node_username",
            "node_password",
            "node_tls",
            "nodes",
            "pool_size",
            "timeout_ms",
            "key_prefix",
            "replica_acks",
            "replica_ack_timeout_ms",
            "tcp_keepalive_secs",
        ],
    ),
    (
        "token",
        &[
            "issuer",
            "audience",
            "typ",
            "expires_in",
            "scope_separator",
            "record_scope_separator",
            "signing_key",
            "verify_keys",
            "leeway_secs",
            "code_max_age_secs",
        ],
    ),
    ("clients", &["file", "argon2_slots"]),
    (
        "throttle",
        &["enabled", "max_failures", "window_secs", "trusted_proxies"],
    ),
    ("metrics", &["enabled", "listen"]),
    (
        "discovery",
        &["base_url", "authorization_endpoint", "max_age_secs"],
    ),
];

/// A variable meant as a setting whose prefix is misspelt (`SSO_SERVER__TLS__CERT`), or
/// written with single underscores throughout (`SSO_REDIS_URL`): the environment source skips
/// it unread, so `deny_unknown_fields` never sees it, and a server would start without the TLS
/// or the Redis it was given. Any case, as the source reads the names. Other `SSO_` names are
/// left alone: `SSO_ENV`, another program's, and those Kubernetes and Docker derive from a
/// service named `sso-redis` or `sso-token` (`SSO_REDIS_SERVICE_HOST`, `SSO_TOKEN_PORT`):
/// single underscores count only before one of the section's own settings.
fn misspelt_prefix(mut names: impl Iterator<Item = String>) -> Option<String> {
    names.find(|name| {
        let lower = name.to_ascii_lowercase();
        let Some(rest) = lower
            .strip_prefix("sso")
            .filter(|_| !lower.starts_with("sso__"))
        else {
            return false;
        };
        // `_<section>_<key>`, the key perhaps followed by more (`_tls_cert`).
        let a_setting = |(section, keys): &(&str, &[&str])| {
            let key = rest.strip_prefix('_').and_then(|r| r.strip_prefix(section));
            key.and_then(|r| r.strip_prefix('_')).is_some_and(|key| {
                keys.iter().any(|k| {
                    key.strip_prefix(k)
                        .is_some_and(|after| after.is_empty() || after.starts_with('_'))
                })
            })
        };
        rest.contains("__") || SETTINGS.iter().any(a_setting)
    })
}

/// The settings a reload applies among the variables `names`, as `(variable, setting)`.
fn reloadable_in(names: impl Iterator<Item = String>) -> Vec<(String, String)> {
    names
        .filter_map(|name| {
            let lower = name.to_ascii_lowercase();
            let (section, key) = lower.strip_prefix("sso__")?.split_once("__")?;
            let setting = format!("{section}.{}", key.replace("__", "."));
            // `clients.argon2_slots` needs a restart wherever it comes from (`live`).
            (["token", "discovery", "clients"].contains(&section)
                && setting != "clients.argon2_slots")
                .then(|| (name.clone(), setting))
        })
        .collect()
}

/// The most `server.workers` and `redis.pool_size` may be.
const MAX_THREADS_OR_LANES: usize = 1024;

/// The longest `redis.timeout_ms`: the Redis metrics' buckets reach it.
pub const MAX_REDIS_TIMEOUT_MS: u64 = 60_000;

/// `SSO__<SECTION>__<KEY>` variables; lists comma-separated. Values stay strings until the
/// setting's type reads them (no `try_parsing`): a password `0123` must not become the number 123.
/// The `SSO__` variables of `vars` (the process's), each without the line break its value may
/// end with, and the names of those it was cut from. A value written with `echo`, not
/// `echo -n`, into a Kubernetes secret or an env file ends with one, which no setting means: a
/// Redis URL read with it was shown as `redis://***` (a control character), a path with it
/// split its error message over lines. A value that is only line breaks is kept (a separator).
/// A value that is not UTF-8 is refused, naming the variable, as the config crate refuses it.
fn sso_variables(
    vars: impl Iterator<Item = (OsString, OsString)>,
) -> Result<(config::Map<String, String>, Vec<String>), ConfigError> {
    let (mut variables, mut cut) = (config::Map::new(), Vec::new());
    for (name, value) in vars {
        let Ok(name) = name.into_string() else {
            continue;
        };
        if !name.to_ascii_lowercase().starts_with("sso__") {
            continue;
        }
        let value = value.into_string().map_err(|_| {
            ConfigError::Load(format!("environment variable `{name}` is not UTF-8"))
        })?;
        // A value that is only a line break is meant (`token.record_scope_separator`).
        let kept = match value.trim_end_matches(['\r', '\n']) {
            "" => value.as_str(),
            kept => kept,
        };
        if kept.len() != value.len() {
            cut.push(name.clone());
        }
        variables.insert(name, kept.to_owned());
    }
    cut.sort_unstable();
    Ok((variables, cut))
}

/// The settings the layers of `builder` make, checked.
fn settings_of(
    builder: config::ConfigBuilder<config::builder::DefaultState>,
) -> Result<Settings, ConfigError> {
    builder.build()?.try_deserialize::<Settings>()?.validate()
}

fn environment() -> config::Environment {
    config::Environment::with_prefix("SSO")
        .prefix_separator("__")
        .separator("__")
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
