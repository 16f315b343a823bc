//! Redis: authorization codes and token records, on a standalone server, a
//! Sentinel-managed master or a Cluster. The only module that knows key names and talks to Redis.
//!
//! Keys, with `<prefix>` from `redis.key_prefix` (in Cluster mode with hash tags: see [`keys`]):
//! - `<prefix>code:<code>`: the code record, written by the authorize service with its TTL.
//! - `<prefix>token:<record id>`: the token record, TTL = `expires_in`; its presence means
//!   "live". The record id (a `jti` less its random part) comes from the code, so the record is
//!   also the code's replay marker (see [`keys`]).
//! - `<prefix>token:<record id>:revoking`: written and deleted at once by a revocation that
//!   finds nothing to delete, so that its `WAIT` has a write to count (`redis.replica_acks`).
//! - `<prefix>throttle:client:<hash of the id>`, `<prefix>throttle:addr:<ip>`: failed client
//!   authentications in the current window, TTL = the window (see `throttle`).

mod ack;
mod connect;
mod fence;
pub mod keys;
mod sentinel;

use std::future::Future;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deadpool_redis::redis::{self, AsyncCommands, Script, Value};

use self::ack::{Acks, Repeat};
pub use self::connect::Conn;
use self::connect::Connector;
use self::fence::Fence;
use self::keys::Keys;
use crate::config::{RedisMode, RedisSettings};

/// One atomic step for the whole state change of an exchange, so that of any number of
/// concurrent requests for one code, on any number of replicas, exactly one sees the record:
/// take the code and write the token record; or, when the code is gone, report the `jti` of
/// the token issued for it. The token record's key follows from the code (see [`keys`]), so it
/// is the replay marker too: one new key per exchange. Its two keys share one hash slot in
/// Cluster mode. The reply is one value, told apart by its RESP type: the code record as a bulk
/// string (fresh), the issued `jti` as a status reply (replayed), or nil. One value parses in
/// about half the time of an array of two (the reply parser's cost is per value).
///
/// `ARGV[2]`, the record head, starts with this call's `jti`, whose last 72 bits are random: a
/// token record that starts with this head is this very call's, repeated (`Store::with_conn`
/// repeats a call whose connection dropped before the answer came back; in a Cluster the WAIT
/// travels with it, see `ack`), and gets its record again; any other caller of a spent code is
/// a replay. The record is written only if no token record exists for the code (`NX`): an
/// authorize service that reused a code value while the first token lives gets a replay (and
/// that token revoked), not a second token for one code.
///
/// A code key that holds no string (`WRONGTYPE`), or a record over 64 KiB, is spent without a
/// token record and answered as an empty record, which `grant::check` refuses as malformed: an
/// authorize service's mistake is then an `invalid_grant` instead of a 503 for ever, and a huge
/// record is not copied into a token record.
///
/// The `#!lua` line (Redis 7) declares a writing script, which Redis then refuses up front on a
/// replica (READONLY) or on a master without enough replicas (NOREPLICAS, with
/// `min-replicas-to-write`), even when this call would only read. So a lane still connected to a
/// master that a Sentinel failover demoted gets an error, and reconnects to the new master,
/// instead of reading stale data there (an unknown code, a missed replay).
const EXCHANGE_SCRIPT: &str = r#"#!lua
local record = redis.pcall('GETDEL', KEYS[1])
if type(record) == 'table' then
  redis.call('DEL', KEYS[1])
  return ''
end
if record then
  if #record > 65536 then
    return ''
  end
  if redis.call('SET', KEYS[2], ARGV[2] .. record .. '}', 'EX', ARGV[1], 'NX') then
    return record
  end
end
local token = redis.call('GET', KEYS[2])
if not token then
  return false
end
if string.sub(token, 1, #ARGV[2]) == ARGV[2] then
  -- This very call again: its record, written again for a WAIT on this connection to cover.
  redis.call('SET', KEYS[2], token, 'KEEPTTL')
  return string.sub(token, #ARGV[2] + 1, -2)
end
return redis.status_reply(string.match(token, '^{"jti":"([^"]*)"') or '')
"#;

/// Deletes a token record if it is the one of `ARGV[1]`, the record's start (`{"jti":"<jti>"`):
/// a record under the same key that another exchange of the same code value wrote stays
/// (revocation, clean-up after a refused exchange). With `ARGV[2]` = 1 (`redis.replica_acks`),
/// when there is nothing to delete it writes and deletes `KEYS[2]` at once, a key of the same
/// slot: no trace, but a write that the replicas must acknowledge, and they acknowledge in
/// order, so the `WAIT` after it also covers a deletion that an earlier attempt made and that
/// was not acknowledged then (the client retried). Answers 1 when it deleted the record, 0
/// when there was none, -1 when the key holds another token's record. `allow-oom`: a Redis
/// full to `maxmemory` still runs it (a deletion frees memory; a revocation must not wait).
const DELETE_SCRIPT: &str = r"#!lua flags=allow-oom
local record = redis.call('GET', KEYS[1])
if record and string.sub(record, 1, #ARGV[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
if ARGV[2] == '1' then
  redis.call('SET', KEYS[2], '', 'PX', 1)
  redis.call('DEL', KEYS[2])
end
if record then
  return -1
end
return 0
";

/// Counts one failure under one key: the first failure of a window starts the key's TTL. One
/// key per script, so that every key of a call is in one hash slot (Redis Cluster); the calls
/// for several keys travel in one pipeline. Returns the count and the milliseconds left.
const COUNT_FAILURE_SCRIPT: &str = r"
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}
";

/// Its `Debug` is its `Display` (below): actix's access-log middleware prints errors with `{:?}`
/// at debug level, and a derived `Debug` would show Redis's quotes of a command's arguments.
#[derive(thiserror::Error)]
pub enum StoreError {
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("a sentinel failover is under way")]
    Failover,
    #[error("redis connection: {}", crate::redact::redis_error(.0))]
    Pool(#[from] deadpool_redis::PoolError),
    #[error("redis: {}", crate::redact::redis_error(.0))]
    Redis(#[from] redis::RedisError),
    #[error("redis pool configuration: {}", crate::redact::redis_error(.0))]
    Config(#[from] deadpool_redis::CreatePoolError),
    #[error("unexpected reply from the exchange script")]
    Reply,
    #[error("the node the sentinels name is not a master (or none names one)")]
    NotMaster,
    /// `redis.replica_acks`: the write is on the master, but a failover could still lose it.
    #[error("{acked} of {wanted} replica(s) acknowledged the write within {within_ms} ms")]
    Unacknowledged {
        wanted: u32,
        acked: u32,
        within_ms: u64,
    },
    #[error("encoding a record: {0}")]
    Encode(#[from] serde_json::Error),
}

impl std::fmt::Debug for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StoreError({self})")
    }
}

impl StoreError {
    /// The connection is gone (closed by Redis or on the way), as opposed to a slow Redis or
    /// an error reply: a new connection may well succeed at once.
    fn is_connection_dropped(&self) -> bool {
        matches!(self, Self::Redis(e) if e.is_connection_dropped())
    }

    /// Whether the lane's connection is still good after this failure: an error reply about
    /// the data, the node's replicas, its memory or disk (`MISCONF`: a failed save), or the
    /// user's rights says nothing against it (a replica outage or a full disk would otherwise
    /// cost a reconnection, or a Cluster discovery, per failed call). Anything else
    /// (I/O, a timeout, a fence move, a demoted or loading node, an unknown reply) gets a new
    /// connection. With Sentinel, so does `NOREPLICAS`: the master may be the one a failover
    /// is replacing (one the watchers missed), and a look-up finds its successor.
    fn keeps_connection(&self, sentinel: bool) -> bool {
        match self {
            Self::Unacknowledged { .. } | Self::Encode(_) => true,
            Self::Redis(e) => match e.code() {
                Some("NOREPLICAS") => !sentinel,
                code => matches!(
                    code,
                    Some("WRONGTYPE" | "TRYAGAIN" | "OOM" | "BUSY" | "MISCONF" | "NOPERM")
                ),
            },
            _ => false,
        }
    }
}

/// Runs a script by its hash (`by_hash`, an `EVALSHA`). A restarted or failed-over Redis has no
/// scripts: then `whole()`, the same call as `EVAL` with the script, which caches it there. Not
/// `SCRIPT LOAD`: in a Cluster the redis crate sends that to every node, replicas too, and
/// fails if one is down.
async fn run_script<T: redis::FromRedisValue>(
    conn: &mut Conn,
    by_hash: &redis::Cmd,
    whole: impl Fn() -> redis::Cmd,
) -> redis::RedisResult<T> {
    match by_hash.query_async(&mut *conn).await {
        Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
            whole().query_async(conn).await
        }
        done => done,
    }
}

fn lock(lane: &Lane) -> std::sync::MutexGuard<'_, Option<Held>> {
    lane.held
        .lock()
        .unwrap_or_else(|poison| poison.into_inner())
}

/// What the exchange script found under a code.
#[derive(Debug, PartialEq, Eq)]
pub enum Taken {
    /// The code was live and is now spent; its token record is written.
    Fresh { record: Vec<u8> },
    /// The code was spent before, and the record of the token with this `jti` is still there.
    Replayed { jti: String },
    /// No such code: never issued, expired, or spent and its token record gone (expired,
    /// revoked, or deleted when the exchange was refused).
    Unknown,
}

/// The Redis side of the service. Cheap to clone (pool and lanes are shared).
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
}

/// A multiplexed (or cluster) connection that the threads mapped to it share; empty until first
/// use and after an error. Each thread keeps to one lane, so a connection's I/O is driven on the
/// worker that created it, and a request checks nothing out of the pool: deadpool's recycle
/// sends UNWATCH + PING on every check-out, one more round trip per request. New connections
/// come from a [`Connector`] (deadpool's pool as a factory for a plain node, our own Sentinel
/// look-up, the crate's cluster client).
#[derive(Default)]
struct Lane {
    held: Mutex<Option<Held>>,
    /// One new connection at a time: the requests that find the lane empty together (after
    /// an outage, all of a lane's) take the one the first of them makes, rather than each
    /// making its own (in a Cluster a discovery of every node, with Sentinel a look-up).
    connecting: tokio::sync::Mutex<()>,
    /// Cluster mode: a replacement connection is being built off the request path.
    rebuilding: AtomicBool,
}

/// A lane's connection, with the fence generation it was made in (always 1 outside Sentinel
/// mode) and a serial of its own: a request that failed on a connection empties the lane only
/// if it still holds that one, not one that another request has made since.
#[derive(Clone)]
struct Held {
    generation: u64,
    serial: u64,
    conn: Conn,
}

impl Held {
    fn new(generation: u64, conn: Conn) -> Self {
        static SERIAL: AtomicU64 = AtomicU64::new(0);
        let serial = SERIAL.fetch_add(1, Ordering::Relaxed);
        Self {
            generation,
            serial,
            conn,
        }
    }
}

/// Which lanes an operation uses. `WAIT` holds up every later command of its connection until
/// the replicas answer (a replica round trip; `redis.replica_ack_timeout_ms` when they do not),
/// so with `redis.replica_acks` the operations that wait (exchange, revocation) get
/// `pool_size` lanes of their own, and reads, throttling and readiness never queue behind one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lanes {
    Plain,
    Waiting,
}

thread_local! {
    static LANE: usize = {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed)
    };
}

impl Store {
    /// Builds the pool without connecting: the service starts even when Redis is down.
    pub fn new(settings: &RedisSettings) -> Result<Self, StoreError> {
        let acks = settings.replica_ack().map(|(replicas, timeout_ms)| Acks {
            replicas,
            timeout_ms,
        });
        // At least one lane: `with_conn` picks one by modulo (validate() refuses 0 anyway, but
        // tools build a Store from settings of their own). Twice as many with acks: `Lanes`.
        let lanes = settings.pool_size.max(1) * if acks.is_some() { 2 } else { 1 };
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
        })
    }

    /// Sentinel mode: follows the sentinels' failover announcements from now on, in the Tokio
    /// runtime this is called in. Started at the first operation otherwise, the watchers missed
    /// a failover that began before it (or just before it): a code taken on the outgoing master
    /// then came back on the new one.
    pub fn watch_failovers(&self) {
        if let Some(fence) = &self.fence {
            fence.watch();
        }
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

    /// The key of the token record of any token issued for `code`.
    pub fn token_key_of_code(&self, code: &str) -> String {
        self.keys.token_of_code(code)
    }

    /// Runs `op` on this thread's lane, bounded by `redis.timeout_ms` end to end (connecting
    /// included). After a failure the lane is emptied, so the next call reconnects, unless
    /// the connection is known to be good (see [`StoreError::keeps_connection`]). A cached
    /// connection that turns out to be dropped (Redis restarted, or closed it while idle: its
    /// `timeout`, a proxy, a NAT) is replaced and `op` runs once more within the same deadline,
    /// so a quiet spell does not end in a 503. Every `op` is safe to repeat: reads, deletions,
    /// the exchange script (it answers a repeat of itself with what it took: see
    /// [`EXCHANGE_SCRIPT`]); a failure count or `put_code` whose first answer was lost counts
    /// twice or reports the code as taken. In Sentinel mode the failover fence may refuse the
    /// call or its result (see [`fence`]).
    async fn with_conn<T, F, Fut>(&self, lanes: Lanes, op: F) -> Result<T, StoreError>
    where
        F: Fn(Conn) -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let generation = match &self.fence {
            Some(fence) => fence.enter()?,
            None => 1,
        };
        let index = self.lane_index(lanes);
        let lane = &self.lanes[index];
        // The serial of the connection the call ran on last, if it got one.
        let mut used = None;
        let work = async {
            let cached = lock(lane)
                .clone()
                .filter(|held| held.generation == generation);
            let (held, cached) = match cached {
                Some(held) => (held, true),
                None => (self.connect(lane, generation, None).await?, false),
            };
            used = Some(held.serial);
            match op(held.conn).await {
                Err(e) if cached && e.is_connection_dropped() => {
                    log::debug!("redis connection dropped ({e}); reconnecting");
                    let again = self.connect(lane, generation, Some(held.serial)).await?;
                    used = Some(again.serial);
                    op(again.conn).await
                }
                result => result,
            }
        };
        let mut result = tokio::time::timeout(self.timeout, work)
            .await
            .unwrap_or(Err(StoreError::Timeout(self.timeout)));
        if self.fence.as_ref().is_some_and(|f| !f.held(generation)) {
            // The node may have been demoted under us: what it said may not survive.
            result = Err(StoreError::Failover);
        }
        if let Err(e) = &result
            && !e.keeps_connection(self.fence.is_some())
        {
            match used {
                Some(serial)
                    if self.connector.is_cluster() && matches!(e, StoreError::Timeout(_)) =>
                {
                    self.rebuild_in_background(index, generation, serial);
                }
                Some(serial) => {
                    let mut held = lock(lane);
                    if held.as_ref().is_some_and(|h| h.serial == serial) {
                        *held = None;
                    }
                }
                None => {}
            }
        }
        result
    }

    /// Cluster mode, after a timeout. The lane keeps its cluster connection: a master that
    /// hangs costs its own slots a timeout each, while the connection serves the others'
    /// (dropped, every request would pay a new connection's greeting of every node, the hung
    /// one included, and time out too). Its replacement, with a fresh view of the slots (the
    /// hung master may since have been failed over), is built here, off the request path, one
    /// at a time per lane and only with a connecting turn to spare, and takes the lane unless
    /// another connection already has.
    fn rebuild_in_background(&self, index: usize, generation: u64, serial: u64) {
        if self.lanes[index].rebuilding.swap(true, Ordering::AcqRel) {
            return;
        }
        let store = self.clone();
        tokio::spawn(async move {
            let lane = &store.lanes[index];
            // Greeting the seeds and then every master are two rounds of node connections.
            let deadline = store.timeout * 4;
            let spare = store.connector.spare_cluster_connection();
            match tokio::time::timeout(deadline, spare).await {
                Ok(None) => log::debug!("redis cluster: no turn free for a replacement connection"),
                Ok(Some(Ok(conn))) => {
                    let mut held = lock(lane);
                    if held.as_ref().is_none_or(|h| h.serial == serial) {
                        *held = Some(Held::new(generation, conn));
                    }
                }
                Ok(Some(Err(e))) => {
                    log::debug!("redis cluster: a replacement connection failed: {e}");
                }
                Err(_) => log::debug!("redis cluster: no replacement connection in {deadline:?}"),
            }
            lane.rebuilding.store(false, Ordering::Release);
        });
    }

    /// A new connection, kept in `lane` for the threads that share it, unless the request
    /// that connected before this one's turn left one (other than `stale`, the connection
    /// that just dropped). Right after a Sentinel failover, to the master it announced rather
    /// than one the sentinels name (see [`fence`]).
    async fn connect(
        &self,
        lane: &Lane,
        generation: u64,
        stale: Option<u64>,
    ) -> Result<Held, StoreError> {
        let _turn = lane.connecting.lock().await;
        let fresh = lock(lane)
            .clone()
            .filter(|held| held.generation == generation && Some(held.serial) != stale);
        if let Some(held) = fresh {
            return Ok(held);
        }
        let switched = (self.fence.as_ref()).and_then(|fence| fence.switched_master());
        if let Some(master) = &switched {
            log::debug!(
                "connecting to {}:{}, the new master",
                master.host,
                master.port
            );
        }
        // Boxed: the Sentinel and Cluster connect futures are kilobytes, and every in-flight
        // request would otherwise carry their space (RSS at 1000 connections).
        let conn = Box::pin(self.connector.connect(switched.as_ref())).await?;
        let held = Held::new(generation, conn);
        *lock(lane) = Some(held.clone());
        Ok(held)
    }

    /// This thread's lane. With acks the lanes come in two halves, `Plain` then `Waiting`;
    /// without, every operation shares them all.
    fn lane_index(&self, lanes: Lanes) -> usize {
        let thread = LANE.with(|i| *i);
        if self.acks.is_none() {
            return thread % self.lanes.len();
        }
        let half = self.lanes.len() / 2;
        let offset = if lanes == Lanes::Waiting { half } else { 0 };
        offset + thread % half
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
        let (reply, acked): (Value, Option<u32>) = self
            .with_conn(Lanes::Waiting, |mut conn| async move {
                let whole = || exchange_call("EVAL", EXCHANGE_SCRIPT);
                let reply: Value = run_script(&mut conn, call, whole).await?;
                // Only a fresh take wrote anything that a failover could undo. In a Cluster
                // the WAIT travels with this call again, which answers the record again on a
                // node that holds this take (or takes the code there, if the take never
                // reached it).
                let acked = match (self.acks, &reply) {
                    // An empty record is a malformed one (see the script): no token comes of it.
                    (Some(acks), Value::BulkString(record)) if !record.is_empty() => {
                        let repeat = Repeat {
                            call: &whole,
                            holds: &|again| matches!(again, Value::BulkString(r) if r == record),
                        };
                        Some(acks.wait(&mut conn, code_key, repeat).await?)
                    }
                    _ => None,
                };
                Ok((reply, acked))
            })
            .await?;
        match reply {
            Value::BulkString(record) => {
                if let (Some(acks), Some(acked)) = (self.acks, acked)
                    && let Err(unacknowledged) = acks.check(acked)
                {
                    if let Err(e) = self.delete_token(jti).await {
                        log::warn!("could not delete an unacknowledged token record: {e}");
                    }
                    return Err(unacknowledged);
                }
                Ok(Taken::Fresh { record })
            }
            Value::SimpleString(jti) => Ok(Taken::Replayed { jti }),
            Value::Nil => {
                self.settle_unknown(jti).await?;
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
        let (found, acked) = self
            .delete_record(jti, Some(acks), |v| v == &Value::Int(0))
            .await?;
        acks.check(acked.filter(|_| found == 0).unwrap_or(0))
    }

    /// Deletes a token record that no client holds a token for: clean-up after a refused
    /// exchange (best effort; never waits for replicas). Returns whether a record was there.
    pub async fn delete_token(&self, jti: &str) -> Result<bool, StoreError> {
        let (deleted, _) = self.delete_record(jti, None, |_| true).await?;
        Ok(deleted == 1)
    }

    /// Revokes a token: deletes its record (the revocation endpoint, a replayed code). With
    /// `redis.replica_acks`, a deletion too few replicas acknowledged is
    /// [`StoreError::Unacknowledged`], since a failover could bring the token back; the caller
    /// answers 503 and the client retries (revocation is idempotent, and the retry's `WAIT`
    /// covers the earlier deletion too: see [`DELETE_SCRIPT`]). Returns whether a record was
    /// there.
    pub async fn revoke_token(&self, jti: &str) -> Result<bool, StoreError> {
        let holds = |v: &Value| matches!(v, Value::Int(_));
        let (deleted, acked) = self.delete_record(jti, self.acks, holds).await?;
        if let (Some(acks), Some(acked)) = (self.acks, acked) {
            acks.check(acked)?;
        }
        Ok(deleted == 1)
    }

    /// Runs [`DELETE_SCRIPT`] for `jti`'s record and, with `acks`, its `WAIT`: the script's
    /// answer, and how many replicas acknowledged. In a Cluster, `holds` tells whether the
    /// answer of the script sent again with the `WAIT` is the outcome being acknowledged.
    async fn delete_record(
        &self,
        jti: &str,
        acks: Option<Acks>,
        holds: fn(&Value) -> bool,
    ) -> Result<(i64, Option<u32>), StoreError> {
        let key = &self.token_key(jti);
        let (written, start) = (self.keys.revoking(jti), format!(r#"{{"jti":"{jti}""#));
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
        let lanes = if acks.is_some() {
            Lanes::Waiting
        } else {
            Lanes::Plain
        };
        self.with_conn(lanes, |mut conn| async move {
            let whole = || delete_call("EVAL", DELETE_SCRIPT);
            let answer: i64 = run_script(&mut conn, call, whole).await?;
            let Some(acks) = acks else {
                return Ok((answer, None));
            };
            // In a Cluster the WAIT travels with the deletion again (see `ack`).
            let repeat = Repeat {
                call: &whole,
                holds: &holds,
            };
            Ok((answer, Some(acks.wait(&mut conn, key, repeat).await?)))
        })
        .await
    }

    /// Reads a token record (introspection, user info): `None` once revoked or expired.
    pub async fn get_token(&self, jti: &str) -> Result<Option<String>, StoreError> {
        let key = &self.token_key(jti);
        self.with_conn(
            Lanes::Plain,
            |mut conn| async move { Ok(conn.get(key).await?) },
        )
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

    /// The failure counter of a client id.
    pub fn throttle_client_key(&self, client_id: &str) -> String {
        self.keys.throttle_client(client_id)
    }

    /// The failure counter of a source address.
    pub fn throttle_address_key(&self, address: IpAddr) -> String {
        self.keys.throttle_address(&address.to_string())
    }

    /// Adds one failure to each counter; returns each one's count and milliseconds left in its
    /// window. The calls go out together on the multiplexed connection (one round trip on a
    /// single node); in Cluster mode each is routed to its own key's node.
    pub async fn count_failure(
        &self,
        keys: &[String],
        window_ms: u64,
    ) -> Result<Vec<(u64, i64)>, StoreError> {
        self.with_conn(Lanes::Plain, |conn| async move {
            let calls = keys.iter().map(|key| {
                let mut conn = conn.clone();
                async move {
                    redis::cmd("EVAL")
                        .arg(COUNT_FAILURE_SCRIPT)
                        .arg(1)
                        .arg(key)
                        .arg(window_ms)
                        .query_async::<(u64, i64)>(&mut conn)
                        .await
                }
            });
            Ok(futures_util::future::try_join_all(calls).await?)
        })
        .await
    }

    /// A failure counter and the milliseconds left in its window (0 and -2 when there is none).
    pub async fn failures(&self, key: &str) -> Result<(u64, i64), StoreError> {
        let mut pipe = redis::pipe();
        // Both commands name the same key, so a Cluster routes the pipeline to one node.
        pipe.cmd("GET").arg(key).cmd("PTTL").arg(key);
        let pipe = &pipe;
        let (count, ttl): (Option<u64>, i64) = self
            .with_conn(Lanes::Plain, |mut conn| async move {
                Ok(pipe.query_async(&mut conn).await?)
            })
            .await?;
        Ok((count.unwrap_or(0), ttl))
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
}
