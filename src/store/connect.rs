//! Connections for each Redis topology, from the redis / deadpool-redis crates' own clients:
//! a plain or Sentinel-found node gives a multiplexed connection to that node, a Cluster a
//! cluster connection that routes each command by its keys' slot and follows MOVED/ASK.

use std::time::Duration;

use deadpool_redis::redis::aio::{ConnectionLike, MultiplexedConnection};
use deadpool_redis::redis::cluster::{ClusterClient, ClusterClientBuilder};
use deadpool_redis::redis::cluster_async::ClusterConnection;
use deadpool_redis::redis::io::tcp::TcpSettings;
use deadpool_redis::redis::io::tcp::socket2::TcpKeepalive;
use deadpool_redis::redis::{
    self, AsyncConnectionConfig, Cmd, IntoConnectionInfo, Pipeline, RedisFuture, Value,
};
use deadpool_redis::{ConfigError, CreatePoolError, PoolConfig, Runtime, Timeouts};
use tokio::sync::Semaphore;

use super::StoreError;
use super::fence::Address;
use super::sentinel::{Node, Sentinels};
use crate::config::{RedisMode, RedisSettings};

/// A connection of any topology; cheap to clone (clones share the underlying connection).
///
/// `WAIT` (`redis.replica_acks`) must reach the node that ran the write it waits for (see
/// `ack`): a `Node` sends it as it is, a `Cluster` routes it to the master of the write's slot.
#[derive(Clone)]
pub enum Conn {
    Node(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Node(conn) => conn.req_packed_command(cmd),
            Self::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Node(conn) => conn.req_packed_commands(pipeline, offset, count),
            Self::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Node(conn) => conn.get_db(),
            Self::Cluster(conn) => conn.get_db(),
        }
    }
}

/// Makes new connections: a deadpool pool for a plain node, used only as a factory (URL
/// parsing, connect timeouts; connections are taken out of it for good: see `Lane` in the parent
/// module), our own look-up for Sentinel (see [`Sentinels`]), the redis crate's cluster client
/// for a Cluster (deadpool's cannot be given TCP options).
pub enum Connector {
    Standalone(deadpool_redis::Pool),
    Sentinel(Sentinels),
    Cluster {
        /// Boxed: it is several times the other variants' size.
        client: Box<ClusterClient>,
        /// Cluster discoveries at once, as deadpool's pool size bounds a plain node's.
        connecting: Semaphore,
    },
}

/// TCP options of every connection to a Redis node, and of the sentinel look-ups' (the failover
/// watchers PING their sentinels after 5 s of silence instead). Keepalive probes after
/// `keepalive_secs` idle keep a quiet lane's flow in NAT and load-balancer tables (some drop a
/// flow idle for 4 minutes; Redis' own probes come every 300 s) and find a peer that vanished
/// without a word, instead of a request finding it after `redis.timeout_ms`. Nagle's algorithm
/// stays on, the crate's default: while one command of a multiplexed lane is in flight, it
/// gathers the next requests' commands into one segment. TCP_NODELAY lowered ES256 exchanges
/// from 18–22 % to 16 % of `/healthz` (BENCHMARKS.md, "Nagle on the Redis lanes").
pub fn tcp_settings(keepalive_secs: u64) -> TcpSettings {
    let settings = TcpSettings::default().set_nodelay(false);
    if keepalive_secs == 0 {
        return settings;
    }
    settings.set_keepalive(
        TcpKeepalive::new()
            .with_time(Duration::from_secs(keepalive_secs))
            .with_interval(KEEPALIVE_INTERVAL)
            .with_retries(KEEPALIVE_RETRIES),
    )
}

/// How long connecting to one node of several may take: a Sentinel look-up waits for the
/// master it found, and a Cluster connection greets every seed at once and waits for all, then
/// every master of the slot map, so two such waits in a row (hence a quarter of the timeout
/// there). A node whose packets are dropped (a host gone or hung, not yet failed over) must
/// not use up the whole `redis.timeout_ms` of the call on every new connection; the redis
/// crate's own default is 1 s.
fn node_connect_timeout(timeout: Duration, rounds: u32) -> Duration {
    (timeout / (2 * rounds)).min(Duration::from_secs(1))
}

/// How long the cluster client waits before it asks again after `TRYAGAIN` (a slot migrating
/// with the keys of one call split), `CLUSTERDOWN`, `LOADING` or a node it cannot reach: a random
/// wait from the start up to 10 ms × 2^retry, at most the end (25, 25–40, 25–80, 25–160, then
/// 25–200 ms). The crate's own minimum is 1.28 s, longer than a `redis.timeout_ms` of a second,
/// so every such reply ended as a timeout; these waits fit five or more tries into a second,
/// and a slot that finishes moving, or a master that comes back, is served within the call
/// (`tests/api/resharding.rs`), while a call that keeps failing costs a node a few requests.
const CLUSTER_RETRY_WAIT_MS: std::ops::Range<u64> = 25..200;

/// Unanswered probes, this far apart, end a connection: a dead peer is found within
/// `redis.tcp_keepalive_secs` + 30 s of silence.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVE_RETRIES: u32 = 3;

impl Connector {
    /// Builds the pool without connecting: the service starts even when Redis is down.
    pub fn new(settings: &RedisSettings) -> Result<Self, StoreError> {
        let timeout = settings.timeout();
        let pool = PoolConfig {
            max_size: settings.lanes_in_force(),
            timeouts: Timeouts {
                wait: Some(timeout),
                create: Some(timeout),
                recycle: Some(timeout),
            },
            ..PoolConfig::default()
        };
        let tcp = tcp_settings(settings.tcp_keepalive_secs);
        Ok(match settings.mode {
            RedisMode::Standalone => {
                // `redis.timeout_ms` bounds every call in `Store::with_conn`; the redis crate's
                // own per-command timeout (500 ms by default) would be a second timer per call
                // and would cut a longer `redis.timeout_ms` (or WAIT) short.
                let connection = AsyncConnectionConfig::new()
                    .set_response_timeout(None)
                    .set_connection_timeout(Some(timeout));
                let info = (settings.url.as_str().into_connection_info())
                    .map_err(config_error)?
                    .set_tcp_settings(tcp);
                let manager = deadpool_redis::Manager::new_with_config(info, connection)
                    .map_err(config_error)?;
                let pool = deadpool_redis::Pool::builder(manager)
                    .config(pool)
                    .runtime(Runtime::Tokio1)
                    .build()
                    .map_err(CreatePoolError::Build)?;
                Self::Standalone(pool)
            }
            RedisMode::Sentinel => {
                // Each new connection asks the sentinels for the current master: after a
                // failover, a lane that lost its connection finds the new master by itself.
                let mut redis = redis::RedisConnectionInfo::default();
                if !settings.node_username.is_empty() {
                    redis = redis.set_username(&settings.node_username);
                }
                if let Some(password) = &settings.node_password {
                    redis = redis.set_password(password.expose());
                }
                let node = Node {
                    tls: settings.node_tls,
                    redis,
                    tcp,
                    connect_timeout: node_connect_timeout(timeout, 1),
                };
                let sentinels = Sentinels::new(
                    &settings.sentinels,
                    &settings.master_name,
                    node,
                    settings.lanes_in_force(),
                )
                .map_err(config_error)?;
                Self::Sentinel(sentinels)
            }
            RedisMode::Cluster => {
                // As on a plain node, no response timeout of its own: `redis.timeout_ms`
                // bounds every call.
                let client = ClusterClientBuilder::new(settings.nodes.clone())
                    .tcp_settings(tcp)
                    .connection_timeout(node_connect_timeout(timeout, 2))
                    .min_retry_wait(CLUSTER_RETRY_WAIT_MS.start)
                    .max_retry_wait(CLUSTER_RETRY_WAIT_MS.end)
                    .retry_wait_formula(10, 2)
                    .build()
                    .map_err(config_error)?;
                Self::Cluster {
                    client: Box::new(client),
                    connecting: Semaphore::new(settings.lanes_in_force()),
                }
            }
        })
    }

    pub fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster { .. })
    }

    /// Cluster mode, off the request path: a new connection if a connecting turn is free now,
    /// `None` if not (requests come first; the next timeout asks again).
    pub async fn spare_cluster_connection(&self) -> Option<Result<Conn, StoreError>> {
        let Self::Cluster { client, connecting } = self else {
            return None;
        };
        let _turn = connecting.try_acquire().ok()?;
        let made = client.get_async_connection().await;
        Some(made.map(Conn::Cluster).map_err(StoreError::from))
    }

    /// A new connection; in Sentinel mode to `master` when given, else to the master that
    /// the sentinels name.
    pub async fn connect(&self, master: Option<&Address>) -> Result<Conn, StoreError> {
        Ok(match self {
            Self::Standalone(pool) => {
                Conn::Node(deadpool_redis::Connection::take(pool.get().await?))
            }
            Self::Sentinel(sentinels) => Conn::Node(sentinels.connect(master).await?),
            Self::Cluster { client, connecting } => {
                let _turn = connecting
                    .acquire()
                    .await
                    .map_err(|_| StoreError::NotMaster)?;
                Conn::Cluster(client.get_async_connection().await?)
            }
        })
    }
}

fn config_error(e: redis::RedisError) -> StoreError {
    StoreError::Config(CreatePoolError::Config(ConfigError::Redis(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A node connection takes at most half of `redis.timeout_ms` where the look-up waits for
    /// one (Sentinel), a quarter where two come in a row (Cluster), and never more than the
    /// redis crate's own second: a node whose packets are dropped must leave the call time.
    #[test]
    fn a_node_connection_gets_half_the_timeout_a_quarter_in_two_rounds_and_at_most_a_second() {
        let ms = Duration::from_millis;
        assert_eq!(node_connect_timeout(ms(600), 1), ms(300));
        assert_eq!(node_connect_timeout(ms(600), 2), ms(150));
        assert_eq!(node_connect_timeout(ms(3000), 1), ms(1000));
        assert_eq!(node_connect_timeout(ms(6000), 2), ms(1000));
    }
}
