//! Redis: authorization codes, token records and replay markers. The only module that knows
//! key names and talks to Redis.
//!
//! Keys, with `<prefix>` from `redis.key_prefix`:
//! - `<prefix>code:<code>`: the code record, written by the authorize service with its TTL.
//! - `<prefix>token:<jti>`: the token record, TTL = `expires_in`; its presence means "live".
//! - `<prefix>used:<code>`: the replay marker, the `jti` issued for a spent code, same TTL.
//! - `<prefix>throttle:client:<id>`, `<prefix>throttle:addr:<ip>`: failed client
//!   authentications in the current window, TTL = the window (see `throttle`).

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deadpool_redis::redis::aio::MultiplexedConnection;
use deadpool_redis::redis::{self, AsyncCommands, Script};
use deadpool_redis::{Config, Pool, PoolConfig, Runtime, Timeouts};

use crate::config::RedisSettings;

/// One atomic step for the whole state change of an exchange, so that of any number of
/// concurrent requests for one code, on any number of replicas, exactly one sees the record:
/// take the code, write the token record and the replay marker; or, when the code is gone,
/// report the `jti` that was issued for it.
const EXCHANGE_SCRIPT: &str = r"
local record = redis.call('GET', KEYS[1])
if record then
  redis.call('DEL', KEYS[1])
  redis.call('SET', KEYS[3], ARGV[3] .. record .. '}', 'EX', ARGV[2])
  redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2])
  return {1, record}
end
local issued = redis.call('GET', KEYS[2])
if issued then
  return {2, issued}
end
return {0, false}
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

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("redis connection: {0}")]
    Pool(#[from] deadpool_redis::PoolError),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis pool configuration: {0}")]
    Config(#[from] deadpool_redis::CreatePoolError),
    #[error("unexpected reply from the exchange script")]
    Reply,
    #[error("encoding a record: {0}")]
    Encode(#[from] serde_json::Error),
}

fn lock(lane: &Lane) -> std::sync::MutexGuard<'_, Option<MultiplexedConnection>> {
    lane.lock().unwrap_or_else(|poison| poison.into_inner())
}

/// What the exchange script found under a code.
#[derive(Debug, PartialEq, Eq)]
pub enum Taken {
    /// The code was live and is now spent; the token record and replay marker are written.
    Fresh { record: String },
    /// The code was spent before, and this token id was issued for it.
    Replayed { jti: String },
    /// No such code: never issued, expired, or spent so long ago that the marker is gone.
    Unknown,
}

/// The Redis side of the service. Cheap to clone (pool and lanes are shared).
#[derive(Clone)]
pub struct Store {
    pool: Pool,
    lanes: Arc<[Lane]>,
    prefix: String,
    timeout: Duration,
    exchange: Script,
}

/// A multiplexed connection that the threads mapped to it share; empty until first use and
/// after an error. Each thread keeps to one lane, so a connection's I/O is driven on the worker
/// that created it, and a request checks nothing out of the pool: deadpool's recycle sends
/// UNWATCH + PING on every check-out, one more round trip per request. The pool stays the
/// factory (URL, timeouts) for new connections.
type Lane = Mutex<Option<MultiplexedConnection>>;

thread_local! {
    static LANE: usize = {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed)
    };
}

impl Store {
    /// Builds the pool without connecting: the service starts even when Redis is down.
    pub fn new(settings: &RedisSettings) -> Result<Self, StoreError> {
        let timeout = settings.timeout();
        let mut config = Config::from_url(settings.url.clone());
        config.pool = Some(PoolConfig {
            max_size: settings.pool_size,
            timeouts: Timeouts {
                wait: Some(timeout),
                create: Some(timeout),
                recycle: Some(timeout),
            },
            ..PoolConfig::default()
        });
        Ok(Self {
            pool: config.create_pool(Some(Runtime::Tokio1))?,
            lanes: (0..settings.pool_size).map(|_| Mutex::new(None)).collect(),
            prefix: settings.key_prefix.clone(),
            timeout,
            exchange: Script::new(EXCHANGE_SCRIPT),
        })
    }

    pub fn code_key(&self, code: &str) -> String {
        format!("{}code:{code}", self.prefix)
    }

    pub fn token_key(&self, jti: &str) -> String {
        format!("{}token:{jti}", self.prefix)
    }

    pub fn used_key(&self, code: &str) -> String {
        format!("{}used:{code}", self.prefix)
    }

    /// Runs `op` on this thread's lane, bounded by `redis.timeout_ms` end to end (connecting
    /// included). After any failure the lane is emptied, so the next call reconnects.
    async fn with_conn<T, F, Fut>(&self, op: F) -> Result<T, StoreError>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let lane = &self.lanes[LANE.with(|i| *i) % self.lanes.len()];
        let work = async {
            let cached = lock(lane).clone();
            let conn = match cached {
                Some(conn) => conn,
                None => {
                    let conn = deadpool_redis::Connection::take(self.pool.get().await?);
                    *lock(lane) = Some(conn.clone());
                    conn
                }
            };
            op(conn).await
        };
        let result = tokio::time::timeout(self.timeout, work)
            .await
            .unwrap_or(Err(StoreError::Timeout(self.timeout)));
        if result.is_err() {
            *lock(lane) = None;
        }
        result
    }

    /// Takes `code` out of Redis and, when it was live, records the token `jti` with
    /// `record_head` + the code record + `}` as its value, in one round trip.
    pub async fn take_code(
        &self,
        code: &str,
        jti: &str,
        ttl_secs: u64,
        record_head: &str,
    ) -> Result<Taken, StoreError> {
        let (code_key, used_key, token_key) = (
            self.code_key(code),
            self.used_key(code),
            self.token_key(jti),
        );
        let (kind, value): (u8, Option<String>) = self
            .with_conn(|mut conn| async move {
                let mut invocation = self.exchange.prepare_invoke();
                invocation
                    .key(code_key)
                    .key(used_key)
                    .key(token_key)
                    .arg(jti)
                    .arg(ttl_secs)
                    .arg(record_head);
                Ok(invocation.invoke_async(&mut conn).await?)
            })
            .await?;
        match (kind, value) {
            (1, Some(record)) => Ok(Taken::Fresh { record }),
            (2, Some(jti)) => Ok(Taken::Replayed { jti }),
            (0, None) => Ok(Taken::Unknown),
            _ => Err(StoreError::Reply),
        }
    }

    /// Deletes a token record: revocation, or clean-up after a refused exchange. Returns whether
    /// a record was there.
    pub async fn delete_token(&self, jti: &str) -> Result<bool, StoreError> {
        let key = self.token_key(jti);
        self.with_conn(|mut conn| async move {
            let deleted: u32 = conn.del(key).await?;
            Ok(deleted > 0)
        })
        .await
    }

    /// Reads a token record (introspection, user info): `None` once revoked or expired.
    pub async fn get_token(&self, jti: &str) -> Result<Option<String>, StoreError> {
        let key = self.token_key(jti);
        self.with_conn(|mut conn| async move { Ok(conn.get(key).await?) })
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
        let key = self.code_key(code);
        self.with_conn(|mut conn| async move {
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

    /// The failure counter of a client id (`kind` = `client`) or an address (`addr`).
    pub fn throttle_key(&self, kind: &str, id: &str) -> String {
        format!("{}throttle:{kind}:{id}", self.prefix)
    }

    /// Adds one failure to each counter, in one round trip; returns each one's count and
    /// milliseconds left in its window.
    pub async fn count_failure(
        &self,
        keys: &[String],
        window_ms: u64,
    ) -> Result<Vec<(u64, i64)>, StoreError> {
        let mut pipe = redis::pipe();
        for key in keys {
            pipe.cmd("EVAL")
                .arg(COUNT_FAILURE_SCRIPT)
                .arg(1)
                .arg(key)
                .arg(window_ms);
        }
        self.with_conn(|mut conn| async move { Ok(pipe.query_async(&mut conn).await?) })
            .await
    }

    /// A failure counter and the milliseconds left in its window (0 and -2 when there is none).
    pub async fn failures(&self, key: &str) -> Result<(u64, i64), StoreError> {
        let mut pipe = redis::pipe();
        pipe.cmd("GET").arg(key).cmd("PTTL").arg(key);
        let (count, ttl): (Option<u64>, i64) = self
            .with_conn(|mut conn| async move { Ok(pipe.query_async(&mut conn).await?) })
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
        self.with_conn(|mut conn| async move {
            redis::cmd("PING").query_async::<String>(&mut conn).await?;
            Ok(())
        })
        .await
    }
}
