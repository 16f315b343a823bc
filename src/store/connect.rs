//! Connections for each Redis topology, from the redis / deadpool-redis crates' own clients:
//! a plain or Sentinel-found node gives a multiplexed connection to that node, a Cluster a
//! cluster connection that routes each command by its keys' slot and follows MOVED/ASK.

use deadpool_redis::redis::aio::{ConnectionLike, MultiplexedConnection};
use deadpool_redis::redis::cluster_async::ClusterConnection;
use deadpool_redis::redis::{self, AsyncConnectionConfig, Cmd, Pipeline, RedisFuture, Value};
use deadpool_redis::{ConfigError, CreatePoolError, PoolConfig, Runtime, Timeouts, cluster};

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

/// Makes new connections; a deadpool pool per topology, used only as a factory (URL parsing,
/// cluster discovery, connect timeouts; Sentinel has its own, see [`Sentinels`]). Connections
/// are taken out of it for good: see `Lane` in the parent module.
pub enum Connector {
    Standalone(deadpool_redis::Pool),
    Sentinel(Sentinels),
    Cluster(cluster::Pool),
}

impl Connector {
    /// Builds the pool without connecting: the service starts even when Redis is down.
    pub fn new(settings: &RedisSettings) -> Result<Self, StoreError> {
        let timeout = settings.timeout();
        let pool = PoolConfig {
            max_size: settings.pool_size,
            timeouts: Timeouts {
                wait: Some(timeout),
                create: Some(timeout),
                recycle: Some(timeout),
            },
            ..PoolConfig::default()
        };
        let runtime = Some(Runtime::Tokio1);
        Ok(match settings.mode {
            RedisMode::Standalone => {
                // `redis.timeout_ms` bounds every call in `Store::with_conn`; the redis crate's
                // own per-command timeout (500 ms by default) would be a second timer per call
                // and would cut a longer `redis.timeout_ms` (or WAIT) short.
                let connection = AsyncConnectionConfig::new()
                    .set_response_timeout(None)
                    .set_connection_timeout(Some(timeout));
                let manager =
                    deadpool_redis::Manager::new_with_config(settings.url.as_str(), connection)
                        .map_err(|e| {
                            StoreError::Config(CreatePoolError::Config(ConfigError::Redis(e)))
                        })?;
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
                };
                let sentinels = Sentinels::new(
                    &settings.sentinels,
                    &settings.master_name,
                    node,
                    settings.pool_size,
                )
                .map_err(|e| StoreError::Config(CreatePoolError::Config(ConfigError::Redis(e))))?;
                Self::Sentinel(sentinels)
            }
            RedisMode::Cluster => {
                let mut config = cluster::Config::from_urls(settings.nodes.clone());
                config.pool = Some(pool);
                Self::Cluster(config.create_pool(runtime)?)
            }
        })
    }

    /// A new connection; in Sentinel mode to `master` when given, else to the master that
    /// the sentinels name.
    pub async fn connect(&self, master: Option<&Address>) -> Result<Conn, StoreError> {
        Ok(match self {
            Self::Standalone(pool) => {
                Conn::Node(deadpool_redis::Connection::take(pool.get().await?))
            }
            Self::Sentinel(sentinels) => Conn::Node(sentinels.connect(master).await?),
            Self::Cluster(pool) => Conn::Cluster(cluster::Connection::take(pool.get().await?)),
        })
    }
}
