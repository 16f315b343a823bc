//! Redis: authorization codes and token records, on a standalone server, a
//! Sentinel-managed master or a Cluster. The only module that knows key names and talks to Redis.
//!
//! Keys, with `<prefix>` from `redis.key_prefix` (in Cluster mode with hash tags: see [`keys`]):
//! - `<prefix>code:<code>`: the code record, written by the authorize service with its TTL.
//! - `<prefix>token:<record id>`: the token record, TTL = `expires_in`; its presence means
//!   "live". The record id (a `jti` less its random part) comes from the code, so the record is
//!   also the code's replay marker (see [`keys`]).
//! - `<prefix>token:<record id>:revoking`: written and deleted at once by a revocation, or an
//!   exchange that found an unknown code (`settle_unknown`), that has nothing to delete, so
//!   that its `WAIT` has a write to count (`redis.replica_acks`).
//! - `<prefix>throttle:client:<hash of the id>`, `<prefix>throttle:addr:<ip>`,
//!   `<prefix>throttle:pair:<hash of the id>@<ip>`: failed client authentications in the
//!   current window, TTL = the window (see `throttle`); `<prefix>throttle:decoy`, what an
//!   unknown id's failures count on instead, never read.
//! - `<prefix>assertion:<hash of the client id and jti>`: a client assertion's single-use
//!   marker, expiring with the assertion (plus leeway); see `client_assertion`.
//!
//! Besides this file ([`Store`]: its failover state, keys and slots, lanes, `PING`):
//! - `codes.rs`: taking a code (the exchange) and writing one; `tokens.rs`: reading, deleting
//!   and revoking token records; `counters.rs`: the throttle's failure counters;
//!   `assertions.rs`: client assertions' single-use markers.
//! - `fitness.rs`: whether a Redis can run the exchange, for the start's report.
//! - `scripts.rs`: the Lua scripts and `run_script`, which runs one by its hash.
//! - `error.rs`: [`StoreError`], and which errors leave a lane's connection in use.
//! - `lanes.rs`: the lanes, the connections each thread keeps to, and how a call gets one; the
//!   outage a single master's failed calls make, for the line that says it is over.
//! - `connect.rs`: making a connection, for each topology.
//! - `keys.rs`: key names, record ids and `jti`s, Cluster slots.
//! - `record.rs`: the token record's format: how it starts, which the scripts match, and
//!   [`TokenRecord`], what introspection and user info read of it.
//! - `ack.rs`: `WAIT` after a write (`redis.replica_acks`).
//! - `durability.rs`: the Redis settings the guarantees need, read at start.
//! - `sentinel.rs`: asking sentinels for the master; `fence.rs`: holding operations back
//!   while a failover is under way.

mod ack;
mod assertions;
mod codes;
mod connect;
mod counters;
mod durability;
mod error;
mod fence;
mod fitness;
pub mod keys;
mod lanes;
mod record;
mod scripts;
mod sentinel;
mod tokens;

use std::sync::Arc;
use std::time::Duration;

use deadpool_redis::redis::{self, Script};

use self::ack::Acks;
pub use self::codes::Taken;
pub use self::connect::Conn;
use self::connect::Connector;
pub use self::durability::Doubt;
pub use self::error::StoreError;
use self::fence::Fence;
pub use self::fitness::Fitness;
use self::keys::Keys;
use self::lanes::{Lane, Lanes, Outage, lock};
pub use self::record::{
    RecordedGrant, TokenRecord, UnreadableRecord, record_head, write_record_start,
};
use self::scripts::{DELETE_SCRIPT, EXCHANGE_SCRIPT};
use crate::config::{RedisMode, RedisSettings};

/// The Redis side of the service. Cheap to clone (the connector and the lanes are shared).
#[derive(Clone)]
pub struct Store {
    connector: Arc<Connector>,
    lanes: Arc<[Lane]>,
    keys: Keys,
    timeout: Duration,
    exchange: Script,
    delete: Script,
    /// `redis.replica_acks`: `None` when off.
    acks: Option<Acks>,
    /// Sentinel mode only.
    fence: Option<Arc<Fence>>,
    /// Outside a Cluster: calls failed since the last that succeeded (see `lanes`).
    outage: Option<Arc<Outage>>,
}

impl Store {
    /// Builds the connector and the lanes without connecting: the service starts even when
    /// Redis is down.
    pub fn new(settings: &RedisSettings) -> Result<Self, StoreError> {
        let acks = settings.replica_ack().map(|(replicas, timeout_ms)| Acks {
            replicas,
            timeout_ms,
        });
        // At least one lane (`with_conn` picks one by modulo); twice as many with acks: `Lanes`.
        let lanes = settings.lanes_in_force() * if acks.is_some() { 2 } else { 1 };
        Ok(Self {
            connector: Arc::new(Connector::new(settings)?),
            lanes: (0..lanes).map(|_| Lane::default()).collect(),
            keys: Keys::of(settings),
            timeout: settings.timeout(),
            exchange: Script::new(EXCHANGE_SCRIPT),
            delete: Script::new(DELETE_SCRIPT),
            acks,
            fence: (settings.mode == RedisMode::Sentinel)
                .then(|| Fence::new(&settings.sentinels, &settings.master_name)),
            // In a Cluster one master's calls fail while the others' succeed: no one outage.
            outage: (settings.mode != RedisMode::Cluster)
                .then(|| Arc::new(Outage::new(settings.target()))),
        })
    }

    /// Sentinel mode: follows the sentinels' failover announcements from now on, in the Tokio
    /// runtime this is called in. Call it before serving: watchers started at the first
    /// operation would miss a failover that began before it (or just before it), and a code
    /// taken on the outgoing master could come back on the new one.
    pub fn watch_failovers(&self) {
        if let Some(fence) = &self.fence {
            fence.watch();
        }
    }

    /// Sentinel mode: starts the failover watchers and waits (a few seconds at most) until each
    /// has asked its sentinel whether a failover is under way; until then every operation is
    /// refused. For what runs right after the start: a command line, the start's report.
    pub async fn failovers_checked(&self) {
        if let Some(fence) = &self.fence {
            fence.first_checked().await;
        }
    }

    /// Sentinel mode: whether a failover is under way, so that every operation is refused.
    pub fn failover_under_way(&self) -> bool {
        self.fence.as_ref().is_some_and(|fence| fence.is_closed())
    }

    pub fn code_key(&self, code: &str) -> String {
        self.keys.code(code)
    }

    /// The one mapping from a `jti` to its token record's key (introspection, revocation).
    pub fn token_key(&self, jti: &str) -> String {
        self.keys.token(jti)
    }

    /// A fresh `jti` for the token about to be issued for `code`: its record's key follows from
    /// the code (in Cluster mode in the code's slot, so that [`Store::take_code`] stays one
    /// script on one node).
    pub fn new_jti(&self, code: &str) -> Result<String, aws_lc_rs::error::Unspecified> {
        self.keys.new_jti(code)
    }

    /// [`Store::new_jti`] with the code's [`Store::cluster_slot`] already at hand: an exchange
    /// computes it once, for its shard of the exchange slots and for its `jti`.
    pub fn new_jti_in(
        &self,
        code: &str,
        slot: Option<u16>,
    ) -> Result<String, aws_lc_rs::error::Unspecified> {
        self.keys.new_jti_in(code, slot)
    }

    /// The Cluster hash slot of `code`'s key, which names the master that holds it; `None`
    /// outside Cluster mode.
    pub fn cluster_slot(&self, code: &str) -> Option<u16> {
        self.keys.slot_of_code(code)
    }

    /// The Cluster hash slot of the token record of `jti` (its code's); `None` outside Cluster
    /// mode.
    pub fn token_cluster_slot(&self, jti: &str) -> Option<u16> {
        self.keys.slot_of_token(jti)
    }

    /// Whether `code` can exist in this deployment's key layout (see [`Store::take_code`]).
    pub fn admits(&self, code: &str) -> bool {
        self.keys.admits(code)
    }

    pub fn is_cluster(&self) -> bool {
        self.keys.tagged()
    }

    /// The key of the token record of any token issued for `code`.
    pub fn token_key_of_code(&self, code: &str) -> String {
        self.keys.token_of_code(code)
    }

    /// The lanes: connections at most (each a connection to every master in Cluster mode),
    /// twice `redis.pool_size`'s count with `redis.replica_acks`.
    pub fn lane_count(&self) -> usize {
        self.lanes.len()
    }

    /// Redis connections held open now (the `sso_redis_connections` gauge).
    pub fn connections(&self) -> usize {
        self.lanes
            .iter()
            .filter(|lane| lock(lane).is_some())
            .count()
    }

    /// Readiness: Redis answers a PING within the timeout. A user whose ACL leaves PING out
    /// (the commands the service runs and no more, or `+@read +@write +@scripting`) gets
    /// `NOPERM`, which is Redis answering all the same: counted a failure, it kept `/readyz` at
    /// 503 for a service that worked, and a balancer routing on it took out every replica.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.with_conn(Lanes::Plain, |mut conn| async move {
            match redis::cmd("PING").query_async::<String>(&mut conn).await {
                Err(e) if e.code() != Some("NOPERM") => Err(e.into()),
                _ => Ok(()),
            }
        })
        .await
    }
}
