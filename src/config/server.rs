//! `[server]`: the listener, its workers and connections, TLS, the stop; and `[metrics]`,
//! whose listener may be the same.

use std::path::PathBuf;

use serde::Deserialize;

use super::{ConfigError, MAX_THREADS_OR_LANES, whole};

/// `[server]`: how the HTTP listener serves, and how it stops.
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
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
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
