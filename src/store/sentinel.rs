//! The master of a Sentinel set-up: asked of every sentinel at once, each answer reached with
//! the data nodes' own TLS and credentials and checked to be a master (`ROLE`), the first one
//! that is taken.
//!
//! The redis crate's look-up (under deadpool's Sentinel pool) took the sentinels' answers in
//! list order, each behind a fixed 1 s connect timeout and one lock for all look-ups: with the
//! first listed sentinel's host down (packets dropped), every new connection waited that
//! second and, with `redis.timeout_ms` at 1 s, every lane that lost its connection stayed a
//! 503 until the host came back.

use deadpool_redis::redis::aio::MultiplexedConnection;
use deadpool_redis::redis::{
    self, AsyncConnectionConfig, ConnectionAddr, IntoConnectionInfo, RedisResult, Value,
};
use futures_util::future::select_ok;

use super::StoreError;
use super::fence::Address;

/// The sentinels, the name they know the master by, and how to reach a data node.
pub struct Sentinels {
    urls: Vec<String>,
    master_name: String,
    node: Node,
}

/// How to reach a data node once its address is known.
pub struct Node {
    pub tls: bool,
    pub redis: redis::RedisConnectionInfo,
}

impl Sentinels {
    pub fn new(urls: &[String], master_name: &str, node: Node) -> Self {
        Self {
            urls: urls.to_vec(),
            master_name: master_name.to_owned(),
            node,
        }
    }

    /// A connection to `master` when given (a failover announced it: see `fence`), else to
    /// the master that the first sentinel to answer names; either way one that says it is the
    /// master (a sentinel that has not caught up may name a replica: then the next answer
    /// counts). The caller bounds it in time (`redis.timeout_ms`).
    pub async fn connect(
        &self,
        master: Option<&Address>,
    ) -> Result<MultiplexedConnection, StoreError> {
        if let Some(master) = master {
            return self.node.connect_master(master).await;
        }
        if self.urls.is_empty() {
            return Err(StoreError::NotMaster);
        }
        let tries = self.urls.iter().map(|url| {
            Box::pin(async move {
                let address = ask(url, &self.master_name).await?;
                self.node.connect_master(&address).await
            })
        });
        Ok(select_ok(tries).await?.0)
    }
}

/// One sentinel's answer to `SENTINEL GET-MASTER-ADDR-BY-NAME`.
async fn ask(url: &str, master_name: &str) -> RedisResult<Address> {
    let client = redis::Client::open(url)?;
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&AsyncConnectionConfig::new())
        .await?;
    let address: Option<(String, u16)> = redis::cmd("SENTINEL")
        .arg("GET-MASTER-ADDR-BY-NAME")
        .arg(master_name)
        .query_async(&mut conn)
        .await?;
    let (host, port) = address.ok_or_else(|| {
        redis::RedisError::from((
            redis::ErrorKind::MasterNameNotFoundBySentinel,
            "the sentinel does not know the master",
        ))
    })?;
    Ok(Address { host, port })
}

/// `ROLE`'s first element: `master`.
fn is_master(role: &Value) -> bool {
    let Value::Array(items) = role else {
        return false;
    };
    matches!(items.first(), Some(Value::BulkString(name)) if name == b"master")
        || matches!(items.first(), Some(Value::SimpleString(name)) if name == "master")
}

impl Node {
    /// A connection to the node at `address`, once it says it is the master.
    async fn connect_master(&self, address: &Address) -> Result<MultiplexedConnection, StoreError> {
        let mut conn = self.connect(address).await?;
        let role: Value = redis::cmd("ROLE").query_async(&mut conn).await?;
        if !is_master(&role) {
            return Err(StoreError::NotMaster);
        }
        Ok(conn)
    }

    /// A connection to the node at `address`, with the redis crate's defaults (among them
    /// the 500 ms response timeout that `SENTINEL_COMMAND_LIMIT_MS` in config counts on).
    async fn connect(&self, address: &Address) -> Result<MultiplexedConnection, StoreError> {
        let (host, port) = (address.host.clone(), address.port);
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
        Ok(redis::Client::open(info)?
            .get_multiplexed_async_connection_with_config(&AsyncConnectionConfig::new())
            .await?)
    }
}
