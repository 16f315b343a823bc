//! Connections for each Redis topology, from the redis / deadpool-redis crates' own clients:
//! a plain or Sentinel-found node gives a multiplexed connection to that node, a Cluster a
//! cluster connection that routes each command by its keys' slot and follows MOVED/ASK.

use deadpool_redis::redis::aio::{ConnectionLike, MultiplexedConnection};
use deadpool_redis::redis::cluster_async::ClusterConnection;
use deadpool_redis::redis::{
    self, AsyncConnectionConfig, Cmd, ConnectionAddr, IntoConnectionInfo, Pipeline, RedisFuture,
    Value,
};
use deadpool_redis::{
    ConfigError, CreatePoolError, PoolConfig, Runtime, Timeouts, cluster, sentinel,
};

use super::StoreError;
use super::fence::Address;
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
/// Sentinel look-up, cluster discovery, connect timeouts). Connections are taken out of it for
/// good: see `Lane` in the parent module.
pub enum Connector {
    Standalone(deadpool_redis::Pool),
    Sentinel(sentinel::Pool, Node),
    Cluster(cluster::Pool),
}

/// How to reach a Sentinel-managed node once its address is known: as the Sentinel pool does
/// after its look-up (same TLS, credentials and connection settings), for a master that a
/// failover announced (see `fence`). Not asked for its `ROLE`: a node demoted since refuses
/// the exchange script (READONLY), and the lane reconnects.
pub struct Node {
    tls: bool,
    redis: redis::RedisConnectionInfo,
}

impl Node {
    async fn connect(&self, master: &Address) -> Result<MultiplexedConnection, StoreError> {
        let (host, port) = (master.host.clone(), master.port);
        let address = if self.tls {
            ConnectionAddr::TcpTls {
                host,
                port,
                insecure: false,
                tls_params: None,
            }
        } else {
            ConnectionAddr::Tcp(host, port)
        };
        let info = address
            .into_connection_info()?
            .set_redis_settings(self.redis.clone());
        // The defaults, as the pool's: among them the 500 ms response timeout that
        // `SENTINEL_COMMAND_LIMIT_MS` (config) counts on.
        let config = AsyncConnectionConfig::new();
        Ok(redis::Client::open(info)?
            .get_multiplexed_async_connection_with_config(&config)
            .await?)
    }
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
                let mut config = sentinel::Config::from_urls(
                    settings.sentinels.clone(),
                    settings.master_name.clone(),
                    sentinel::SentinelServerType::Master,
                );
                config.pool = Some(pool);
                let redis = deadpool_redis::RedisConnectionInfo {
                    username: Some(settings.node_username.clone()).filter(|u| !u.is_empty()),
                    password: settings
                        .node_password
                        .as_ref()
                        .map(|p| p.expose().to_owned()),
                    ..Default::default()
                };
                config.node_connection_info = Some(sentinel::SentinelNodeConnectionInfo {
                    tls_mode: settings.node_tls.then_some(sentinel::TlsMode::Secure),
                    redis_connection_info: Some(redis.clone()),
                });
                let node = Node {
                    tls: settings.node_tls,
                    redis: redis.into(),
                };
                Self::Sentinel(config.create_pool(runtime)?, node)
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
            Self::Sentinel(pool, node) => Conn::Node(match master {
                Some(master) => node.connect(master).await?,
                None => sentinel::Connection::take(pool.get().await?),
            }),
            Self::Cluster(pool) => Conn::Cluster(cluster::Connection::take(pool.get().await?)),
        })
    }
}
