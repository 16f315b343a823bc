//! Settings: `config/default.toml`, then `config/<env>.toml` when `SSO_ENV` names one (it must
//! exist), then `SSO__…` environment variables (`SSO__REDIS__URL` sets `redis.url`; lists are
//! comma-separated).
//!
//! Everything is checked once at start-up so that a bad value stops the process with a message
//! naming the setting, instead of surfacing as a failed request later.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::oauth::Sensitive;
use crate::redact;

/// Why the settings could not be loaded; the message always names the setting.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The files or the environment did not read into settings. Kept as text made by
    /// [`describe`], not as the `config` error: that one quotes values (a password) and, for a
    /// TOML syntax error, the whole offending line of the file.
    #[error("configuration: {0}")]
    Load(String),
    #[error("configuration: `{setting}` {problem}")]
    Invalid {
        setting: &'static str,
        problem: String,
    },
}

impl From<config::ConfigError> for ConfigError {
    fn from(error: config::ConfigError) -> Self {
        Self::Load(describe(&error))
    }
}

/// `config`'s message without the values it quotes, and a TOML syntax error as its line and
/// column and toml's message, never the line itself.
fn describe(error: &config::ConfigError) -> String {
    use config::ConfigError as E;

    let located = |message: String, key: &Option<String>, origin: &Option<String>| {
        let key = key.as_ref().map(|k| format!(" for key `{k}`"));
        let origin = origin.as_ref().map(|o| format!(" in {o}"));
        format!(
            "{message}{}{}",
            key.unwrap_or_default(),
            origin.unwrap_or_default()
        )
    };
    match error {
        E::FileParse { uri, cause } => {
            let problem = match cause.downcast_ref::<toml::de::Error>() {
                Some(toml) => {
                    // Only for the position; the text itself is never shown.
                    let text = uri.as_ref().and_then(|u| std::fs::read_to_string(u).ok());
                    redact::toml_error(toml, text.as_deref())
                }
                None => redact::serde_message(&cause.to_string()),
            };
            format!(
                "{}: {problem}",
                uri.as_deref().unwrap_or("a configuration file")
            )
        }
        E::Type {
            origin,
            unexpected,
            expected,
            key,
        } => {
            let message =
                redact::serde_message(&format!("invalid type: {unexpected}, expected {expected}"));
            located(message, key, origin)
        }
        E::At { error, origin, key } => located(describe(error), key, origin),
        E::Message(message) => config_message(message),
        other => {
            let message = other.to_string();
            // A missing config file: its path is no secret, and the one clue to a mistyped
            // SSO_ENV or a wrong working directory.
            if message.starts_with("configuration file \"") && message.ends_with("\" not found") {
                let here = std::env::current_dir().map(|d| d.display().to_string());
                format!(
                    "{message} (relative to the working directory, {})",
                    here.unwrap_or_else(|_| "unknown".into())
                )
            } else {
                redact::serde_message(&message)
            }
        }
    }
}

/// `config`'s own messages that quote a value, without it; serde's otherwise.
fn config_message(message: &str) -> String {
    if let Some((enum_name, _)) = message.split_once(" does not have variant constructor ") {
        return format!("{enum_name} has no such variant");
    }
    if let Some((variable, _)) = message.split_once(" contains non-Unicode data") {
        return format!("{variable} contains non-Unicode data");
    }
    redact::serde_message(message)
}

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub server: ServerSettings,
    pub redis: RedisSettings,
    pub token: TokenSettings,
    pub clients: ClientsSettings,
    #[serde(default)]
    pub discovery: DiscoverySettings,
    pub metrics: MetricsSettings,
    #[serde(default)]
    pub throttle: ThrottleSettings,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ServerSettings {
    /// `host:port`; port 0 picks a free port (tests).
    pub listen: String,
    /// Worker threads; 0 means one per core.
    pub workers: usize,
    /// Largest request body accepted, in bytes.
    pub body_limit: usize,
    /// How long a request's body may take to arrive once its head has, milliseconds. actix
    /// bounds only the head (`client_request_timeout`); without this a client that declares a
    /// body and never finishes it holds a connection for ever.
    #[serde(default = "default_body_timeout")]
    pub body_timeout_ms: u64,
    /// Exchanges per worker that may be past taking their code at once, in one pool of
    /// `exchange_slots` × workers (see `exchange::Slots`); the others wait before they touch Redis.
    #[serde(default = "default_exchange_slots")]
    pub exchange_slots: usize,
    /// How long an exchange waits for a slot before it gets a 503 (its code untouched), ms.
    #[serde(default = "default_slot_wait")]
    pub slot_wait_ms: u64,
    /// Seconds that in-flight requests get to finish after SIGTERM.
    pub shutdown_timeout_secs: u64,
    /// After SIGTERM, how long to go on serving, unready, before closing the listener: time
    /// for load balancers to stop sending requests here (see `shutdown`). Milliseconds.
    #[serde(default)]
    pub shutdown_delay_ms: u64,
    /// Serve HTTPS instead of HTTP; absent: plain HTTP (TLS ends at the load balancer).
    #[serde(default)]
    pub tls: Option<TlsSettings>,
}

/// `[server.tls]`: PEM files, read once at start-up.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TlsSettings {
    /// Certificate chain, leaf first.
    pub cert: PathBuf,
    /// Its private key: PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
    pub key: PathBuf,
}

/// The longest idle time before keepalive probes that Linux accepts (`TCP_KEEPIDLE`).
const MAX_TCP_KEEPALIVE_SECS: u64 = 32_767;

/// How Redis is deployed; each mode reads its own settings and refuses the others'.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RedisMode {
    /// One server (or a fixed address in front of one): `redis.url`.
    #[default]
    Standalone,
    /// A master found through Redis Sentinel: `redis.sentinels` and `redis.master_name`.
    Sentinel,
    /// Redis Cluster: `redis.nodes` (seed nodes; the rest is discovered).
    Cluster,
}

#[derive(Clone, Deserialize)]
pub struct RedisSettings {
    /// `standalone` (default), `sentinel` or `cluster`.
    #[serde(default)]
    pub mode: RedisMode,
    /// Standalone only: `redis://`, `rediss://` (TLS) or `redis+unix:///path/to/socket`.
    pub url: String,
    /// Sentinel only: the sentinels' addresses, `redis://host:port` (`rediss://` for TLS).
    #[serde(default, deserialize_with = "list")]
    pub sentinels: Vec<String>,
    /// Sentinel only: the name the sentinels monitor the master under.
    #[serde(default)]
    pub master_name: String,
    /// Sentinel only: the data nodes' user and password (the sentinels' own go in their URLs).
    #[serde(default)]
    pub node_username: String,
    #[serde(default)]
    pub node_password: Option<Sensitive>,
    /// Sentinel only: TLS to the data nodes.
    #[serde(default)]
    pub node_tls: bool,
    /// Cluster only: seed nodes, `redis://host:port` (`rediss://` for TLS, a password in the URL).
    #[serde(default, deserialize_with = "list")]
    pub nodes: Vec<String>,
    /// Multiplexed connections (lanes) per process, twice that with `replica_acks`; each thread
    /// (a worker) takes the next lane in turn at its first Redis call and keeps it.
    pub pool_size: usize,
    /// Upper bound for any Redis operation, connection included: past it the request gets a 503.
    pub timeout_ms: u64,
    /// Prefix of every key we read or write (`<prefix>code:<code>`, …).
    pub key_prefix: String,
    /// Replicas that must acknowledge an exchange's or a revocation's writes (`WAIT`) before
    /// the answer; 0 = off. Fewer in time: 503, and no token is handed out (README, "Replica
    /// acknowledgement").
    #[serde(default)]
    pub replica_acks: u32,
    /// How long `WAIT` waits for them, milliseconds; below `timeout_ms`, so that it is never
    /// what times a request out.
    #[serde(default = "default_replica_ack_timeout")]
    pub replica_ack_timeout_ms: u64,
    /// Seconds a connection may idle before TCP keepalive probes start; 0 = off. Keeps idle
    /// lanes' flows in NAT and load-balancer tables and finds a peer that vanished silently.
    #[serde(default = "default_tcp_keepalive")]
    pub tcp_keepalive_secs: u64,
}

fn default_body_timeout() -> u64 {
    5_000
}

fn default_exchange_slots() -> usize {
    64
}

fn default_slot_wait() -> u64 {
    10_000
}

fn default_replica_ack_timeout() -> u64 {
    300
}

fn default_tcp_keepalive() -> u64 {
    60
}

#[derive(Debug, Clone, Deserialize)]
pub struct TokenSettings {
    pub issuer: String,
    /// Default `aud` claim; empty means "the client id". A client may override it.
    pub audience: String,
    /// The JWT header `typ`.
    pub typ: String,
    /// Lifetime of an access token, in seconds.
    pub expires_in: u64,
    /// Joins the granted scopes in the response's `scope` and splits string scopes in code records.
    pub scope_separator: String,
    /// PEM file holding the private signing key (PKCS#8 or PKCS#1); relative to the working
    /// directory, like `clients.file`.
    pub signing_key: PathBuf,
    /// Keys published and accepted for verification only: the next signer before it signs, the
    /// previous one until its tokens have expired (README, "Key rotation"). Public key files
    /// (SPKI or PKCS#1 RSA), so that a retired private key need not stay on disk, or private
    /// keys, of which only the public half is used.
    #[serde(default, deserialize_with = "list")]
    pub verify_keys: Vec<PathBuf>,
    /// Clock skew tolerated when introspection and user info check `exp`, in seconds.
    #[serde(default = "default_leeway")]
    pub leeway_secs: u64,
    /// Oldest code (by its record's `issued_at`) exchanged, in seconds; 0: only the record's TTL.
    #[serde(default = "default_code_max_age")]
    pub code_max_age_secs: u64,
}

/// RFC 6749 §4.1.2 recommends 10 minutes at most.
fn default_code_max_age() -> u64 {
    600
}

fn default_leeway() -> u64 {
    30
}

/// Where clients find us: RFC 8414 metadata and the JWKS document.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct DiscoverySettings {
    /// Public base URL of the service as clients reach it (the load balancer), without a
    /// trailing slash; every endpoint URL in the metadata starts with it.
    pub base_url: String,
    /// The authorize service's URL; empty means `<base_url>/identity/sso/oauth2/authorize`.
    pub authorization_endpoint: String,
    /// `Cache-Control: max-age` of the JWKS and metadata documents, in seconds.
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
pub struct ClientsSettings {
    /// TOML file with the client registry.
    pub file: PathBuf,
}

impl DiscoverySettings {
    /// `base_url` without its trailing slash.
    pub fn base(&self) -> &str {
        self.base_url.trim_end_matches('/')
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |setting, problem: &str| ConfigError::Invalid {
            setting,
            problem: problem.to_owned(),
        };
        let is_url = |url: &str| {
            (url.starts_with("https://") || url.starts_with("http://"))
                && !url.contains(['?', '#'])
                && !url.contains(char::is_whitespace)
        };
        if !is_url(&self.base_url) {
            return Err(invalid(
                "discovery.base_url",
                "must be an http(s) URL without query or fragment",
            ));
        }
        if !self.authorization_endpoint.is_empty() && !is_url(&self.authorization_endpoint) {
            return Err(invalid(
                "discovery.authorization_endpoint",
                "must be empty or an http(s) URL without query or fragment",
            ));
        }
        if self.max_age_secs > 86_400 {
            return Err(invalid(
                "discovery.max_age_secs",
                "must be at most 86400 seconds",
            ));
        }
        Ok(())
    }
}

/// `GET /metrics` (Prometheus text format).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct MetricsSettings {
    /// Serve `GET /metrics` at all.
    pub enabled: bool,
    /// `host:port` of a separate listener for `/metrics` only (then the main listener does not
    /// serve it); empty: `/metrics` is served on `server.listen`.
    pub listen: String,
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
#[serde(default)]
pub struct ThrottleSettings {
    pub enabled: bool,
    /// Failures in one window after which an address, or a client id's failures, get 429.
    pub max_failures: u64,
    /// Length of the window, seconds; it starts at its first failure.
    pub window_secs: u64,
    /// Peers whose `X-Forwarded-For` is believed: addresses or networks (`10.0.0.0/8`).
    #[serde(deserialize_with = "list")]
    pub trusted_proxies: Vec<String>,
}

impl Default for ThrottleSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            max_failures: 20,
            window_secs: 60,
            trusted_proxies: Vec::new(),
        }
    }
}

/// `SSO__<SECTION>__<KEY>` variables; lists comma-separated. Values stay strings until the
/// setting's type reads them (no `try_parsing`): a password `0123` must not become the number 123.
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

/// Field by field, the password's text included. Only a reload compares settings (`live`), and
/// no attacker chooses either side, so it need not be constant-time; `Sensitive` has no `==` of
/// its own on purpose. The destructuring makes a new field a compile error here until added.
impl PartialEq for RedisSettings {
    fn eq(&self, other: &Self) -> bool {
        let Self {
            mode,
            url,
            sentinels,
            master_name,
            node_username,
            node_password,
            node_tls,
            nodes,
            pool_size,
            timeout_ms,
            key_prefix,
            replica_acks,
            replica_ack_timeout_ms,
            tcp_keepalive_secs,
        } = self;
        let password = |p: &Option<Sensitive>| p.as_ref().map(|p| p.expose().to_owned());
        *mode == other.mode
            && *url == other.url
            && *sentinels == other.sentinels
            && *master_name == other.master_name
            && *node_username == other.node_username
            && password(node_password) == password(&other.node_password)
            && *node_tls == other.node_tls
            && *nodes == other.nodes
            && *pool_size == other.pool_size
            && *timeout_ms == other.timeout_ms
            && *key_prefix == other.key_prefix
            && *replica_acks == other.replica_acks
            && *replica_ack_timeout_ms == other.replica_ack_timeout_ms
            && *tcp_keepalive_secs == other.tcp_keepalive_secs
    }
}

/// The URLs without their passwords (`redact::redis_url`): `{settings:?}` in a log line or a
/// panic message would print them.
impl std::fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let urls = |list: &[String]| {
            list.iter()
                .map(|u| redact::redis_url(u))
                .collect::<Vec<_>>()
        };
        f.debug_struct("RedisSettings")
            .field("mode", &self.mode)
            .field("url", &redact::redis_url(&self.url))
            .field("sentinels", &urls(&self.sentinels))
            .field("master_name", &self.master_name)
            .field("node_username", &self.node_username)
            .field("node_password", &self.node_password)
            .field("node_tls", &self.node_tls)
            .field("nodes", &urls(&self.nodes))
            .field("pool_size", &self.pool_size)
            .field("timeout_ms", &self.timeout_ms)
            .field("key_prefix", &self.key_prefix)
            .field("replica_acks", &self.replica_acks)
            .field("replica_ack_timeout_ms", &self.replica_ack_timeout_ms)
            .field("tcp_keepalive_secs", &self.tcp_keepalive_secs)
            .finish()
    }
}

impl RedisSettings {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// Each mode needs its own settings and must not be given another mode's (a sentinel list
    /// under `mode = "cluster"` is a mistake that would otherwise go unnoticed).
    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |setting, problem: String| Err(ConfigError::Invalid { setting, problem });
        let mode = format!("{:?}", self.mode).to_lowercase();
        let unused = |setting, given: bool| {
            if given {
                invalid(
                    setting,
                    format!("is not used with redis.mode = \"{mode}\": remove it"),
                )
            } else {
                Ok(())
            }
        };
        let tcp_urls = |setting, urls: &[String], what: &str| {
            if urls.is_empty() {
                return invalid(
                    setting,
                    format!("must list {what} for redis.mode = \"{mode}\""),
                );
            }
            match urls
                .iter()
                .find(|u| !has_scheme(u, &["redis://", "rediss://"]))
            {
                Some(bad) => invalid(
                    setting,
                    format!(
                        "entry `{}` must start with redis:// or rediss://",
                        redact::redis_url(bad)
                    ),
                ),
                None => Ok(()),
            }
        };
        match self.mode {
            RedisMode::Standalone => {
                if !has_scheme(
                    &self.url,
                    &["redis://", "rediss://", "redis+unix://", "unix://"],
                ) {
                    return invalid(
                        "redis.url",
                        "must start with redis://, rediss://, redis+unix:// or unix://".into(),
                    );
                }
                unused("redis.sentinels", !self.sentinels.is_empty())?;
                unused("redis.master_name", !self.master_name.is_empty())?;
                self.no_node_settings(&unused)?;
                unused("redis.nodes", !self.nodes.is_empty())?;
            }
            RedisMode::Sentinel => {
                tcp_urls(
                    "redis.sentinels",
                    &self.sentinels,
                    "the sentinels' addresses",
                )?;
                if self.master_name.is_empty() {
                    return invalid(
                        "redis.master_name",
                        "must name the monitored master for redis.mode = \"sentinel\"".into(),
                    );
                }
                unused("redis.nodes", !self.nodes.is_empty())?;
            }
            RedisMode::Cluster => {
                tcp_urls("redis.nodes", &self.nodes, "seed nodes")?;
                unused("redis.sentinels", !self.sentinels.is_empty())?;
                unused("redis.master_name", !self.master_name.is_empty())?;
                self.no_node_settings(&unused)?;
                // Our keys carry their own hash tags (README, "Redis topologies"); a brace in
                // the prefix would take that role and move every key into one slot.
                if self.key_prefix.contains(['{', '}']) {
                    return invalid(
                        "redis.key_prefix",
                        "must not contain { or } with redis.mode = \"cluster\"".into(),
                    );
                }
            }
        }
        if self.key_prefix.contains(char::is_whitespace) {
            return invalid("redis.key_prefix", "must not contain white space".into());
        }
        if self.tcp_keepalive_secs > MAX_TCP_KEEPALIVE_SECS {
            return invalid(
                "redis.tcp_keepalive_secs",
                format!("must be at most {MAX_TCP_KEEPALIVE_SECS} (Linux's TCP_KEEPIDLE limit)"),
            );
        }
        if self.replica_acks > 0 && !(1..self.timeout_ms).contains(&self.replica_ack_timeout_ms) {
            return invalid(
                "redis.replica_ack_timeout_ms",
                format!(
                    "must be at least 1 and below redis.timeout_ms ({}) when redis.replica_acks \
                     is on",
                    self.timeout_ms
                ),
            );
        }
        Ok(())
    }

    /// `WAIT <replicas> <timeout>` after each exchange and revocation, when switched on.
    pub fn replica_ack(&self) -> Option<(u32, u64)> {
        (self.replica_acks > 0).then_some((self.replica_acks, self.replica_ack_timeout_ms))
    }

    /// The `node_*` settings are Sentinel's: elsewhere the URLs carry credentials and TLS.
    fn no_node_settings(
        &self,
        unused: &dyn Fn(&'static str, bool) -> Result<(), ConfigError>,
    ) -> Result<(), ConfigError> {
        unused("redis.node_username", !self.node_username.is_empty())?;
        unused("redis.node_password", self.node_password.is_some())?;
        unused("redis.node_tls", self.node_tls)
    }
}

fn has_scheme(url: &str, schemes: &[&str]) -> bool {
    schemes.iter().any(|scheme| url.starts_with(scheme))
}

impl Settings {
    /// Loads the layered settings from `dir`; `env` names an overlay file, which must exist.
    pub fn load(dir: &Path, env: Option<&str>) -> Result<Self, ConfigError> {
        let mut builder = config::Config::builder()
            .add_source(config::File::from(dir.join("default.toml")).required(true));
        if let Some(env) = env.filter(|e| !e.is_empty()) {
            let overlay = config::File::from(dir.join(format!("{env}.toml"))).required(true);
            builder = builder.add_source(overlay);
        }
        let settings: Settings = builder
            .add_source(environment())
            .build()?
            .try_deserialize()?;
        settings.validate()
    }

    /// Rejects values that would only fail later, naming the setting.
    pub fn validate(self) -> Result<Self, ConfigError> {
        let invalid = |setting, problem: &str| {
            Err(ConfigError::Invalid {
                setting,
                problem: problem.to_owned(),
            })
        };
        if self.server.listen.parse::<std::net::SocketAddr>().is_err()
            && !self.server.listen.contains(':')
        {
            return invalid("server.listen", "must be host:port");
        }
        if !self.metrics.listen.is_empty() && !self.metrics.listen.contains(':') {
            return invalid("metrics.listen", "must be host:port, or empty");
        }
        if self.throttle.max_failures == 0 {
            return invalid("throttle.max_failures", "must be at least 1");
        }
        if !(1..=86_400).contains(&self.throttle.window_secs) {
            return invalid(
                "throttle.window_secs",
                "must be between 1 and 86400 seconds",
            );
        }
        if let Some(bad) = (self.throttle.trusted_proxies.iter())
            .find(|proxy| crate::throttle::Network::parse(proxy).is_none())
        {
            return invalid(
                "throttle.trusted_proxies",
                &format!("`{bad}` is not an IP address or network (address/length)"),
            );
        }
        if !(256..=1 << 20).contains(&self.server.body_limit) {
            return invalid("server.body_limit", "must be between 256 and 1048576 bytes");
        }
        if !(100..=60_000).contains(&self.server.body_timeout_ms) {
            return invalid("server.body_timeout_ms", "must be between 100 and 60000");
        }
        if !(1..=100_000).contains(&self.server.exchange_slots) {
            return invalid("server.exchange_slots", "must be between 1 and 100000");
        }
        if !(1..=600_000).contains(&self.server.slot_wait_ms) {
            return invalid("server.slot_wait_ms", "must be between 1 and 600000");
        }
        if self.server.shutdown_delay_ms > 600_000 {
            return invalid("server.shutdown_delay_ms", "must be at most 600000");
        }
        if self.redis.pool_size == 0 {
            return invalid("redis.pool_size", "must be at least 1");
        }
        if !(10..=60_000).contains(&self.redis.timeout_ms) {
            return invalid("redis.timeout_ms", "must be between 10 and 60000");
        }
        self.redis.validate()?;
        if !(1..=86_400).contains(&self.token.expires_in) {
            return invalid("token.expires_in", "must be between 1 and 86400 seconds");
        }
        if self.token.issuer.is_empty() {
            return invalid("token.issuer", "must not be empty");
        }
        if self.token.typ.is_empty() {
            return invalid("token.typ", "must not be empty");
        }
        if self.token.scope_separator.is_empty() {
            return invalid("token.scope_separator", "must not be empty");
        }
        if self.token.leeway_secs > 300 {
            return invalid("token.leeway_secs", "must be at most 300 seconds");
        }
        if self.token.code_max_age_secs > 3600 {
            return invalid("token.code_max_age_secs", "must be at most 3600 seconds");
        }
        self.discovery.validate()?;
        Ok(self)
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
