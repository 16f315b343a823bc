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
//!
//! Besides this file (the operations, on [`Store`]):
//! - `scripts.rs`: the Lua scripts and `run_script`, which runs one by its hash.
//! - `error.rs`: [`StoreError`], and which errors leave a lane's connection in use.
//! - `lanes.rs`: the lanes, the connections each thread keeps to, and how a call gets one.
//! - `connect.rs`: making a connection, for each topology.
//! - `keys.rs`: key names, record ids and `jti`s, Cluster slots.
//! - `record.rs`: how a token record starts, which the scripts match.
//! - `ack.rs`: `WAIT` after a write (`redis.replica_acks`).
//! - `durability.rs`: the Redis settings the guarantees need, read at start.
//! - `sentinel.rs`: asking sentinels for the master; `fence.rs`: holding operations back
//!   while a failover is under way.

mod ack;
mod connect;
mod durability;
mod error;
mod fence;
pub mod keys;
mod lanes;
mod record;
mod scripts;
mod sentinel;

use std::net::IpAddr;
use std::num::NonZeroU64;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use deadpool_redis::redis::{self, AsyncCommands, Script, Value};

use self::ack::{Acks, Repeat};
pub use self::connect::Conn;
use self::connect::Connector;
pub use self::durability::Doubt;
pub use self::error::StoreError;
use self::fence::Fence;
use self::keys::Keys;
use self::lanes::{Lane, Lanes, lock};
use self::record::utf8_record;
pub use self::record::{record_head, write_record_start};
use self::scripts::{
    COUNT_FAILURE_SCRIPT, DELETE_SCRIPT, EXCHANGE_SCRIPT, PERMISSIONS_SCRIPT, run_script,
};
use crate::config::{RedisMode, RedisSettings};
use crate::log_limit::EverySecond;

/// Whether a Redis can run the exchange (`Store::fitness`).
#[derive(Debug, PartialEq, Eq)]
pub enum Fitness {
    Runs {
        version: String,
    },
    /// The service's Redis user may not run these commands on its keys (an ACL): each one
    /// refused is a 503 for what needs it.
    Refused {
        version: String,
        commands: Vec<String>,
    },
    /// Why every exchange would fail there.
    Cannot(&'static str),
}

/// What the exchange script found under a code.
#[derive(Debug, PartialEq, Eq)]
pub enum Taken {
    /// The code was live and is now spent; its token record is written. An empty `record` is
    /// the script's answer for a code that held nothing usable (over 64 KiB, another Redis
    /// type, or its token-record key another writer's): spent, no record written, and
    /// refused as malformed by `grant::check` like any record it cannot read.
    Fresh { record: Vec<u8> },
    /// The code was spent before, and the record of the token with this `jti` is still there.
    Replayed { jti: String },
    /// No such code: never issued, expired, or spent and its token record gone (expired,
    /// revoked, or deleted when the exchange was refused); or a string that is no token record
    /// of this code under its token-record key (another writer's), the code spent if it was
    /// there.
    Unknown,
}

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

/// A single master's outage, for the line that says it is over: the failure lines are held to
/// one a second, and without it the log never said when Redis answered again.
struct Outage {
    /// The target as the start named it (password hidden).
    target: String,
    failed: AtomicU64,
    /// One such line a second at most (a flapping Redis), the failures in between counted
    /// into the next.
    said: EverySecond,
}

impl Outage {
    fn new(target: String) -> Self {
        Self {
            target,
            failed: AtomicU64::new(0),
            said: EverySecond::new(),
        }
    }

    /// A call failed for want of Redis.
    fn call_failed(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
    }

    /// A call succeeded in second `now`: the failed calls to report, if any and if no line
    /// was let through this second. Calls that succeed with nothing to report leave the
    /// limit alone, or they would hold back a recovery in the same second.
    fn recovered(&self, now: u64) -> Option<NonZeroU64> {
        if self.failed.load(Ordering::Relaxed) == 0 {
            return None;
        }
        self.said.admit(now)?;
        // Another thread may have reported them since the load.
        NonZeroU64::new(self.failed.swap(0, Ordering::Relaxed))
    }
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
            keys: Keys::new(&settings.key_prefix, settings.mode == RedisMode::Cluster),
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

    /// Takes `code` out of Redis and, when it was live, records the token `jti` with
    /// `record_head` + the code record + `}` as its value, in one round trip. `jti` comes from
    /// [`Store::new_jti`] for this `code`, and `record_head` starts with it (see
    /// [`EXCHANGE_SCRIPT`]). With `redis.replica_acks`, a fresh take is followed by `WAIT` on the
    /// same connection (see [`ack`]), and one with too few acknowledgements is
    /// [`StoreError::Unacknowledged`]: spent on the master, but a failover could bring it back,
    /// so no token may be handed out. Its token record is then deleted (best effort). With
    /// acknowledgements, neither code nor token record found is final only once the replicas
    /// hold it too: see [`Store::settle_unknown`].
    pub async fn take_code(
        &self,
        code: &str,
        jti: &str,
        ttl_secs: u64,
        record_head: &[u8],
    ) -> Result<Taken, StoreError> {
        if !self.keys.admits(code) {
            // No authorize service can have written it (README, the Cluster contract).
            return Ok(Taken::Unknown);
        }
        let (code_key, token_key) = (self.code_key(code), self.token_key(jti));
        // `EVALSHA <hash>`, or `EVAL <script>`; sized up front: seven arguments, the record head
        // (or the script) the largest.
        let exchange_call = |verb: &str, script: &str| {
            let size = 64 + script.len() + code_key.len() + token_key.len() + record_head.len();
            let mut call = redis::Cmd::with_capacity(7, size);
            call.arg(verb)
                .arg(script)
                .arg(2)
                .arg(&code_key)
                .arg(&token_key)
                .arg(ttl_secs)
                .arg(record_head);
            call
        };
        let call = &exchange_call("EVALSHA", self.exchange.get_hash());
        let (exchange_call, code_key) = (&exchange_call, &code_key);
        // The acknowledgements are checked inside the call, so that a shortfall is judged with
        // the lane's connection (see `StoreError::keeps_connection`).
        let taken = self
            .with_conn(Lanes::Waiting, |mut conn| async move {
                let whole = || exchange_call("EVAL", EXCHANGE_SCRIPT);
                let reply: Value = run_script(&mut conn, call, whole).await?;
                // Only a fresh take wrote anything that a failover could undo. In a Cluster
                // the WAIT travels with this call again, which answers the record again on a
                // node that holds this take (or takes the code there, if the take never
                // reached it).
                match (self.acks, &reply) {
                    // An empty record is a malformed one (see the script): no token comes of it.
                    (Some(acks), Value::BulkString(record)) if !record.is_empty() => {
                        let repeat = Repeat {
                            call: &whole,
                            holds: &|again| matches!(again, Value::BulkString(r) if r == record),
                        };
                        acks.check(acks.wait(&mut conn, code_key, repeat).await?)?;
                    }
                    _ => {}
                }
                Ok(reply)
            })
            .await;
        let reply = match taken {
            Err(unacknowledged @ StoreError::Unacknowledged { .. }) => {
                // The rare paths are boxed, here and below: unboxed, their futures would be
                // part of every exchange's, which is moved (copied) a few times a request.
                if let Err(e) = Box::pin(self.delete_token(jti)).await {
                    log::warn!("could not delete an unacknowledged token record: {e}");
                }
                return Err(unacknowledged);
            }
            taken => taken?,
        };
        self.read_take(reply, jti, &token_key).await
    }

    /// What the exchange script's reply says of the code (see [`Taken`]).
    async fn read_take(
        &self,
        reply: Value,
        jti: &str,
        token_key: &str,
    ) -> Result<Taken, StoreError> {
        match reply {
            Value::BulkString(record) => Ok(Taken::Fresh { record }),
            Value::SimpleString(jti) if self.token_key(&jti) == token_key => {
                Ok(Taken::Replayed { jti })
            }
            // A string under the code's token-record key that names no `jti` of this code:
            // another writer's, no token of this code, nothing to revoke. Revoking it would
            // touch another key, in a Cluster one of another slot (`CROSSSLOT`, a 503 for
            // ever); the code, if this call took it, is spent like a malformed one. `OK` is
            // such a string too (no `jti` of ours), which the redis crate reads as `Okay`.
            Value::SimpleString(_) | Value::Okay => {
                log::warn!(
                    "a token-record key holds a string this service did not write (another \
                     writer under the key prefix?); the code is answered as unknown"
                );
                Ok(Taken::Unknown)
            }
            Value::Nil => {
                Box::pin(self.settle_unknown(jti)).await?;
                Ok(Taken::Unknown)
            }
            _ => Err(StoreError::Reply),
        }
    }

    /// With `redis.replica_acks`, before a code is answered as unknown: what this master lacks,
    /// its replicas may still have. A replayed code's revocation, or a refused take, deleted
    /// here what too few replicas acknowledged (that answer was a 503, and this call may be the
    /// client's retry), and a failover would bring back the token or the code. A write in the
    /// same slot and its `WAIT` ([`DELETE_SCRIPT`] with nothing of `jti`'s to delete) cover
    /// those deletions, as a revocation's retry does; too few acknowledgements are a 503 again.
    async fn settle_unknown(&self, jti: &str) -> Result<(), StoreError> {
        let Some(acks) = self.acks else {
            return Ok(());
        };
        // Another token's record where the script found none (a failover or a late write
        // between the two calls) counts as no acknowledgement: a 503, and the retry finds the
        // replay.
        let holds = |v: &Value| v == &Value::Int(0);
        let counted = |found, acked| if found == 0 { acked } else { 0 };
        self.delete_record(jti, None, Some(acks), holds, counted)
            .await
            .map(drop)
    }

    /// Deletes a token record that no client holds a token for: clean-up after a refused
    /// exchange (best effort; never waits for replicas). Returns whether it deleted this
    /// token's record (not: none there, or another token's under its key, which stays).
    pub async fn delete_token(&self, jti: &str) -> Result<bool, StoreError> {
        let deleted = self
            .delete_record(jti, None, None, |_| true, |_, acked| acked)
            .await?;
        Ok(deleted == 1)
    }

    /// [`Store::delete_token`] on the lane [`Store::take_code`] uses, so that it runs after a
    /// take this thread sent: for an exchange dropped while its take was under way.
    pub async fn delete_token_after_take(&self, jti: &str) -> Result<bool, StoreError> {
        let deleted = self
            .delete_record_on(Lanes::Waiting, jti, None, None, |_| true, |_, acked| acked)
            .await?;
        Ok(deleted == 1)
    }

    /// Revokes `client_id`'s token `jti`: deletes its record if that client's (the revocation
    /// endpoint, a replayed code: another client's token is left alone). With
    /// `redis.replica_acks`, a deletion too few replicas acknowledged is
    /// [`StoreError::Unacknowledged`], since a failover could bring the token back; the caller
    /// answers 503 and the client retries (revocation is idempotent, and the retry's `WAIT`
    /// covers the earlier deletion too: see [`DELETE_SCRIPT`]). Returns whether it deleted
    /// this token's record (not: none there, or another token's or client's, which stays).
    pub async fn revoke_token(&self, jti: &str, client_id: &str) -> Result<bool, StoreError> {
        let holds = |v: &Value| matches!(v, Value::Int(_));
        let deleted = self
            .delete_record(jti, Some(client_id), self.acks, holds, |_, acked| acked)
            .await?;
        Ok(deleted == 1)
    }

    /// Runs [`DELETE_SCRIPT`] for `jti`'s record (only if `client_id`'s, when given) and, with
    /// `acks`, its `WAIT`: the script's answer, or [`StoreError::Unacknowledged`] when the
    /// acknowledgements that `counted` admits for that answer fall short (checked within the
    /// call, with its connection: see `StoreError::keeps_connection`). In a Cluster, `holds`
    /// tells whether the answer of the script sent again with the `WAIT` is the outcome being
    /// acknowledged.
    async fn delete_record(
        &self,
        jti: &str,
        client_id: Option<&str>,
        acks: Option<Acks>,
        holds: fn(&Value) -> bool,
        counted: fn(i64, u32) -> u32,
    ) -> Result<i64, StoreError> {
        let lanes = match acks {
            Some(_) => Lanes::Waiting,
            None => Lanes::Plain,
        };
        self.delete_record_on(lanes, jti, client_id, acks, holds, counted)
            .await
    }

    /// [`Store::delete_record`] on `lanes`.
    async fn delete_record_on(
        &self,
        lanes: Lanes,
        jti: &str,
        client_id: Option<&str>,
        acks: Option<Acks>,
        holds: fn(&Value) -> bool,
        counted: fn(i64, u32) -> u32,
    ) -> Result<i64, StoreError> {
        let key = &self.token_key(jti);
        let mut start = Vec::with_capacity(48 + jti.len());
        write_record_start(&mut start, jti, client_id);
        let written = self.keys.revoking(key);
        let wait = if acks.is_some() { "1" } else { "0" };
        let delete_call = |verb: &str, script: &str| {
            let mut call = redis::cmd(verb);
            (call.arg(script).arg(2).arg(key).arg(&written))
                .arg(&start)
                .arg(wait);
            call
        };
        let call = &delete_call("EVALSHA", self.delete.get_hash());
        let delete_call = &delete_call;
        self.with_conn(lanes, |mut conn| async move {
            let whole = || delete_call("EVAL", DELETE_SCRIPT);
            let answer: i64 = run_script(&mut conn, call, whole).await?;
            let Some(acks) = acks else {
                return Ok(answer);
            };
            // In a Cluster the WAIT travels with the deletion again (see `ack`).
            let repeat = Repeat {
                call: &whole,
                holds: &holds,
            };
            let acked = acks.wait(&mut conn, key, repeat).await?;
            acks.check(counted(answer, acked))?;
            Ok(answer)
        })
        .await
    }

    /// Reads a token record (introspection, user info): `None` once revoked or expired.
    pub async fn get_token(&self, jti: &str) -> Result<Option<String>, StoreError> {
        let key = &self.token_key(jti);
        self.with_conn(Lanes::Plain, |mut conn| async move {
            match conn.get::<_, Option<Vec<u8>>>(key).await {
                // Another writer's key under the prefix, or bytes no record of ours holds (the
                // records are JSON): no record, as the exchange script takes it, not a 503 for
                // as long as that key lives.
                Err(e) if e.code() == Some("WRONGTYPE") => Ok(None),
                read => Ok(read?.and_then(utf8_record)),
            }
        })
        .await
    }

    /// Writes a code record the way the authorize service does (for `issue-code`, demos and
    /// load tests). Refuses to overwrite a live code.
    pub async fn put_code(
        &self,
        code: &str,
        record: &str,
        ttl_secs: u64,
    ) -> Result<bool, StoreError> {
        let key = &self.code_key(code);
        self.with_conn(Lanes::Plain, |mut conn| async move {
            let written: Option<String> = redis::cmd("SET")
                .arg(key)
                .arg(record)
                .arg("EX")
                .arg(ttl_secs)
                .arg("NX")
                .query_async(&mut conn)
                .await?;
            Ok(written.is_some())
        })
        .await
    }

    /// See [`Keys::throttle_decoy`].
    pub fn throttle_decoy_key(&self) -> String {
        self.keys.throttle_decoy()
    }

    /// The failure counter of a client id.
    pub fn throttle_client_key(&self, client_id: &str) -> String {
        self.keys.throttle_client(client_id)
    }

    /// The failure counter of a source address.
    pub fn throttle_address_key(&self, address: IpAddr) -> String {
        self.keys.throttle_address(&address.to_string())
    }

    /// The failure counter of a client id at a source address.
    pub fn throttle_client_at_key(&self, client_id: &str, address: IpAddr) -> String {
        self.keys
            .throttle_client_at(client_id, &address.to_string())
    }

    /// Adds one failure to a counter; returns its count and the milliseconds left in its
    /// window. Calls made at once go out together on the multiplexed connection (one round
    /// trip on a single node); in Cluster mode each is routed to its own key's node.
    pub async fn count_failure(&self, key: &str, window_ms: u64) -> Result<(u64, i64), StoreError> {
        self.with_conn(Lanes::Plain, |mut conn| async move {
            Ok(redis::cmd("EVAL")
                .arg(COUNT_FAILURE_SCRIPT)
                .arg(1)
                .arg(key)
                .arg(window_ms)
                .query_async(&mut conn)
                .await?)
        })
        .await
    }

    /// A failure counter and the milliseconds left in its window (0 and -2 when there is none).
    pub async fn failures(&self, key: &str) -> Result<(u64, i64), StoreError> {
        let mut pipe = redis::pipe();
        // Both commands name the same key, so a Cluster routes the pipeline to one node. In
        // one transaction: read apart, a counter that expires between them (or expires and is
        // started again by another replica) would read as its count with a whole new window,
        // keeping a blocked source blocked a window longer than Redis keeps it.
        pipe.atomic().cmd("GET").arg(key).cmd("PTTL").arg(key);
        let pipe = &pipe;
        let (count, ttl): (Option<u64>, i64) = self
            .with_conn(Lanes::Plain, |mut conn| async move {
                Ok(pipe.query_async(&mut conn).await?)
            })
            .await?;
        Ok((count.unwrap_or(0), ttl))
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

    /// Readiness: Redis answers a PING within the timeout.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.with_conn(Lanes::Plain, |mut conn| async move {
            redis::cmd("PING").query_async::<String>(&mut conn).await?;
            Ok(())
        })
        .await
    }

    /// Whether this Redis can run the exchange at all, for the start to say so: it needs Redis
    /// 7 (the script's `#!lua` flags, `GETDEL`), a user that may run scripts, and the commands
    /// of [`PERMISSIONS_SCRIPT`] on the service's keys. A PING, and so readiness, passes
    /// whatever the answer.
    pub async fn fitness(&self) -> Result<Fitness, StoreError> {
        let is_noperm =
            |e: &StoreError| matches!(e, StoreError::Redis(e) if e.code() == Some("NOPERM"));
        // `EVAL_RO` and `redis.REDIS_VERSION` exist from Redis 7.0 on. `EVAL_RO` first: the
        // exchange's own calls are then the only `EVAL`s Redis counts; `EVAL` only for a user
        // allowed that but not `EVAL_RO`.
        let mut asked = self.version_by("EVAL_RO").await;
        if asked.as_ref().is_err_and(is_noperm) {
            asked = self.version_by("EVAL").await;
        }
        match asked {
            Ok(Some(mut reply)) if !reply.is_empty() => {
                let version = reply.remove(0);
                if reply.is_empty() {
                    Ok(Fitness::Runs { version })
                } else {
                    Ok(Fitness::Refused {
                        version,
                        commands: reply,
                    })
                }
            }
            Ok(_) => Ok(Fitness::Cannot(OLDER_THAN_7)),
            Err(StoreError::Redis(e))
                if e.detail().is_some_and(|d| d.contains("unknown command")) =>
            {
                Ok(Fitness::Cannot(OLDER_THAN_7))
            }
            Err(e) if is_noperm(&e) => Ok(Fitness::Cannot(
                "its user may not run scripts: every exchange fails; grant +@scripting, or at \
                 least +evalsha +eval",
            )),
            Err(other) => Err(other),
        }
    }

    /// With `redis.replica_acks`, outside a Cluster: the replicas the master has now and the
    /// number asked for, when that is fewer, for the start to say so. Until enough connect,
    /// every exchange spends its code on the master and answers 503, while `/readyz` (a PING)
    /// passes. `None` also when `ROLE` is refused or not a master's answer: then nothing is
    /// known.
    pub async fn replicas_short(&self) -> Option<(usize, u32)> {
        let acks = self.acks.filter(|_| !self.keys.tagged())?;
        let role: Value = (self.with_conn(Lanes::Plain, |mut conn| async move {
            Ok(redis::cmd("ROLE").query_async(&mut conn).await?)
        }))
        .await
        .ok()?;
        // A master's: `master`, its replication offset, then one entry per replica.
        let Value::Array(role) = role else {
            return None;
        };
        let connected = match role.as_slice() {
            [Value::BulkString(name), _, Value::Array(replicas), ..] if name == b"master" => {
                replicas.len()
            }
            _ => return None,
        };
        (connected < acks.replicas as usize).then_some((connected, acks.replicas))
    }

    /// [`PERMISSIONS_SCRIPT`] through `eval` (`EVAL` or `EVAL_RO`): the version, then the
    /// commands refused; nil before Redis 7.0.
    async fn version_by(&self, eval: &'static str) -> Result<Option<Vec<String>>, StoreError> {
        let sample = "fitness";
        let mut command = redis::cmd(eval);
        command
            .arg(PERMISSIONS_SCRIPT)
            .arg(0)
            .arg(self.exchange.get_hash())
            .arg(self.code_key(sample))
            .arg(self.token_key_of_code(sample))
            .arg(self.throttle_address_key(IpAddr::from([127, 0, 0, 1])))
            .arg(if self.acks.is_some() { "1" } else { "0" });
        let command = &command;
        self.with_conn(Lanes::Plain, |mut conn| async move {
            Ok(command.query_async(&mut conn).await?)
        })
        .await
    }
}

/// Why a Redis before 7.0 cannot serve (`Store::fitness`).
const OLDER_THAN_7: &str = "it is older than 7.0, which the exchange script needs (`#!lua` \
                            flags, GETDEL): every exchange fails";
