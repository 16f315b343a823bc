//! `[redis]`: the deployment mode and its connection settings, checked at start-up.

use std::time::Duration;

use deadpool_redis::redis::IntoConnectionInfo;
use serde::Deserialize;

use super::{ConfigError, MAX_REDIS_TIMEOUT_MS, MAX_THREADS_OR_LANES, list, whole};
use crate::oauth::Sensitive;
use crate::redact;

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
#[serde(default, deny_unknown_fields)]
pub struct RedisSettings {
    /// `standalone` (default), `sentinel` or `cluster`.
    pub mode: RedisMode,
    /// Standalone only: `redis://`, `rediss://` (TLS) or `redis+unix:///path/to/socket` (or
    /// `unix://`).
    pub url: String,
    /// Sentinel only: the sentinels' addresses, `redis://host:port` (`rediss://` for TLS).
    #[serde(deserialize_with = "list")]
    pub sentinels: Vec<String>,
    /// Sentinel only: the name the sentinels monitor the master under.
    pub master_name: String,
    /// Sentinel only: the data nodes' user and password (the sentinels' own go in their URLs).
    pub node_username: String,
    pub node_password: Option<Sensitive>,
    /// Sentinel only: TLS to the data nodes.
    pub node_tls: bool,
    /// Cluster only: seed nodes, `redis://host:port` (`rediss://` for TLS, a password in the URL).
    #[serde(deserialize_with = "list")]
    pub nodes: Vec<String>,
    /// Multiplexed connections (lanes) per process, twice that with `replica_acks`; each thread
    /// (a worker, and the main thread) takes the next lane in turn at its first Redis call and
    /// keeps it. 0: one per worker thread and one for the main thread, at least 8 (see `lanes`).
    #[serde(deserialize_with = "whole")]
    pub pool_size: usize,
    /// The lanes `pool_size` comes to, filled in by `Settings::validate` (0 before it): the
    /// pool is built with these. Not read from the files, and not compared by a reload, which
    /// compares what the files say: the CPUs changing under `pool_size` 0 is no new setting.
    #[serde(skip)]
    pub lanes: usize,
    /// Upper bound for any Redis operation, connection included: past it the request gets a 503.
    #[serde(deserialize_with = "whole")]
    pub timeout_ms: u64,
    /// Prefix of every key we read or write (`<prefix>code:<code>`, …).
    pub key_prefix: String,
    /// Replicas that must acknowledge an exchange's or a revocation's writes (`WAIT`) before
    /// the answer; 0 = off. Fewer in time: 503, and no token is handed out (README, "Replica
    /// acknowledgement").
    #[serde(deserialize_with = "whole")]
    pub replica_acks: u32,
    /// How long `WAIT` waits for them, milliseconds; below `timeout_ms`, so that it is never
    /// what times a request out.
    #[serde(deserialize_with = "whole")]
    pub replica_ack_timeout_ms: u64,
    /// Seconds a connection may idle before TCP keepalive probes start; 0 = off. Keeps idle
    /// lanes' flows in NAT and load-balancer tables and finds a peer that vanished silently.
    #[serde(deserialize_with = "whole")]
    pub tcp_keepalive_secs: u64,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            mode: RedisMode::Standalone,
            url: "redis://127.0.0.1:6379".into(),
            sentinels: Vec::new(),
            master_name: String::new(),
            node_username: String::new(),
            node_password: None,
            node_tls: false,
            nodes: Vec::new(),
            pool_size: 0,
            lanes: 0,
            timeout_ms: 1000,
            key_prefix: "sso:".into(),
            replica_acks: 0,
            replica_ack_timeout_ms: 300,
            tcp_keepalive_secs: 60,
        }
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
            .field("lanes", &self.lanes)
            .field("timeout_ms", &self.timeout_ms)
            .field("key_prefix", &self.key_prefix)
            .field("replica_acks", &self.replica_acks)
            .field("replica_ack_timeout_ms", &self.replica_ack_timeout_ms)
            .field("tcp_keepalive_secs", &self.tcp_keepalive_secs)
            .finish()
    }
}

/// `redis.pool_size` 0 gives one lane per worker thread, and at least this many.
const MIN_AUTO_LANES: usize = 8;

impl RedisSettings {
    /// The lanes to build: `lanes`, and at least one, since tools build a store from settings
    /// that skipped `Settings::validate` (where `lanes` is still 0).
    pub fn lanes_in_force(&self) -> usize {
        self.lanes.max(1)
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// Checks the pool and the timeout, and fills in `lanes` for `workers` worker threads;
    /// then [`Self::check_mode`] and [`Self::check_common`].
    pub(super) fn validate(&mut self, workers: usize) -> Result<(), ConfigError> {
        // Past this a typo would take all memory (a lane each, built at start).
        if self.pool_size > MAX_THREADS_OR_LANES {
            return Err(ConfigError::invalid(
                "redis.pool_size",
                format!(
                    "must be at most {MAX_THREADS_OR_LANES} (0: one per worker and the main \
                     thread)"
                ),
            ));
        }
        self.lanes = match self.pool_size {
            // A lane per worker: a worker beyond the lanes has its Redis replies read by the
            // worker whose lane it shares, which may be busy signing. And one for the main
            // thread, which takes a lane too (the start's checks, the Sentinel failover watch),
            // and first: the worker sharing its lane would have its replies read there.
            0 => (workers + 1).max(MIN_AUTO_LANES),
            set => set,
        };
        if !(10..=MAX_REDIS_TIMEOUT_MS).contains(&self.timeout_ms) {
            return Err(ConfigError::invalid(
                "redis.timeout_ms",
                format!("must be between 10 and {MAX_REDIS_TIMEOUT_MS}"),
            ));
        }
        self.check_mode()?;
        self.check_common()
    }

    /// Each mode needs its own settings and must not be given another mode's (a sentinel list
    /// under `mode = "cluster"` is a mistake that would otherwise go unnoticed).
    fn check_mode(&self) -> Result<(), ConfigError> {
        let invalid = |setting, problem: String| Err(ConfigError::invalid(setting, problem));
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
                None => urls.iter().try_for_each(|url| parses(setting, url)),
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
                parses("redis.url", &self.url)?;
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
        Ok(())
    }

    /// The settings every mode shares: the key prefix's characters, the TCP keepalive and the
    /// replica-ack wait. Run after [`Self::check_mode`]: a file with problems of both kinds is
    /// told of the mode's first.
    fn check_common(&self) -> Result<(), ConfigError> {
        let invalid = |setting, problem: String| Err(ConfigError::invalid(setting, problem));
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

    /// Which Redis this replica uses, passwords hidden: for the start's log line and its
    /// warnings, so that among many copies the one with a wrong address can be found.
    pub fn target(&self) -> String {
        let list = |urls: &[String]| {
            urls.iter()
                .map(|url| redact::redis_url(url))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self.mode {
            RedisMode::Standalone => redact::redis_url(&self.url),
            RedisMode::Sentinel => format!(
                "master `{}` of sentinels {}",
                self.master_name,
                list(&self.sentinels)
            ),
            RedisMode::Cluster => format!("cluster of seed nodes {}", list(&self.nodes)),
        }
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

/// The redis crate's own verdict on a URL, told at load with the setting named, instead of
/// "Redis URL did not parse" from the first connection. Passwords from secret managers often
/// hold characters a URL reserves.
fn parses(setting: &'static str, url: &str) -> Result<(), ConfigError> {
    match url.into_connection_info() {
        Ok(_) => Ok(()),
        Err(_) => Err(ConfigError::invalid(
            setting,
            format!(
                "`{}` is no valid Redis URL: percent-encode / ? # @ % in the password (`%2F` \
                 for /), give a port of 1-65535, and after the host a database number or \
                 nothing (`/0`)",
                redact::redis_url(url)
            ),
        )),
    }
}

fn has_scheme(url: &str, schemes: &[&str]) -> bool {
    schemes.iter().any(|scheme| url.starts_with(scheme))
}
