//! Redis: authorization codes, token records and replay markers. The only module that knows
//! key names and talks to Redis.
//!
//! Keys, with `<prefix>` from `redis.key_prefix`:
//! - `<prefix>code:<code>`: the code record, written by the authorize service with its TTL.
//! - `<prefix>token:<jti>`: the token record, TTL = `expires_in`; its presence means "live".
//! - `<prefix>used:<code>`: the replay marker, the `jti` issued for a spent code, same TTL.

use std::future::Future;
use std::time::Duration;

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

/// The Redis side of the service. Cheap to clone (the pool is shared).
#[derive(Clone)]
pub struct Store {
    pool: Pool,
    prefix: String,
    timeout: Duration,
    exchange: Script,
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

    /// Runs `op` on a pooled connection, bounded by `redis.timeout_ms` end to end.
    async fn with_conn<T, F, Fut>(&self, op: F) -> Result<T, StoreError>
    where
        F: FnOnce(deadpool_redis::Connection) -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let work = async {
            let conn = self.pool.get().await?;
            op(conn).await
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| StoreError::Timeout(self.timeout))?
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

    /// Readiness: Redis answers a PING within the timeout.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.with_conn(|mut conn| async move {
            redis::cmd("PING").query_async::<String>(&mut conn).await?;
            Ok(())
        })
        .await
    }
}
