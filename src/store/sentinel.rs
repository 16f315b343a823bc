//! The master of a Sentinel set-up: asked of every sentinel at once, each answer reached with
//! the data nodes' own TLS and credentials and checked to be a master (`ROLE`), the first one
//! that is taken.
//!
//! The redis crate's look-up (under deadpool's Sentinel pool) took the sentinels' answers in
//! list order: with the first listed sentinel hung or its host down (packets dropped), every
//! new connection waited for it, past a `redis.timeout_ms` of a second or less.

use std::collections::HashMap;
use std::time::Duration;

use deadpool_redis::redis::aio::MultiplexedConnection;
use deadpool_redis::redis::io::tcp::TcpSettings;
use deadpool_redis::redis::{
    self, AsyncConnectionConfig, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisResult,
    Value,
};
use futures_util::future::select_ok;
use tokio::sync::Semaphore;

use super::StoreError;
use super::fence::Address;

/// The sentinels, the name they know the master by, and how to reach a data node.
pub struct Sentinels {
    sentinels: Vec<ConnectionInfo>,
    master_name: String,
    node: Node,
    /// Look-ups at once: each opens a connection to every sentinel and to what they name, and
    /// a reconnection storm (every request on an empty lane looks up) must not multiply them.
    look_ups: Semaphore,
}

/// How to reach a data node once its address is known (and, `tcp`, a sentinel).
pub struct Node {
    pub tls: bool,
    pub redis: redis::RedisConnectionInfo,
    pub tcp: TcpSettings,
    pub connect_timeout: Duration,
}

impl Sentinels {
    /// Reads the sentinels' URLs (a bad one is refused here, at start-up); `at_once`: how many
    /// look-ups may run together.
    pub fn new(
        urls: &[String],
        master_name: &str,
        node: Node,
        at_once: usize,
    ) -> RedisResult<Self> {
        Ok(Self {
            sentinels: (urls.iter())
                .map(|url| {
                    let info = url.as_str().into_connection_info()?;
                    Ok(info.set_tcp_settings(node.tcp.clone()))
                })
                .collect::<RedisResult<_>>()?,
            master_name: master_name.to_owned(),
            node,
            look_ups: Semaphore::new(at_once.max(1)),
        })
    }

    /// A connection to `master` when given (a failover announced it: see `fence`), else to
    /// the master that the first sentinel to answer names, unless it calls that master down or
    /// in a failover; either way one that says it is the master (a sentinel that has not caught
    /// up may name a replica: then the next answer counts). The caller bounds it in time
    /// (`redis.timeout_ms`).
    pub async fn connect(
        &self,
        master: Option<&Address>,
    ) -> Result<MultiplexedConnection, StoreError> {
        let _turn = self
            .look_ups
            .acquire()
            .await
            .map_err(|_| StoreError::NotMaster)?;
        if let Some(master) = master {
            return self.node.connect_master(master).await;
        }
        if self.sentinels.is_empty() {
            return Err(StoreError::NotMaster);
        }
        let tries = self.sentinels.iter().map(|sentinel| {
            Box::pin(async move {
                let address = ask(sentinel, &self.master_name).await?;
                self.node.connect_master(&address).await
            })
        });
        Ok(select_ok(tries).await?.0)
    }
}

/// What one sentinel says of the master (`SENTINEL MASTER`): its address, unless it counts the
/// master as down or in a failover (then the fence, or a later look-up, has the answer).
async fn ask(sentinel: &ConnectionInfo, master_name: &str) -> Result<Address, StoreError> {
    let client = redis::Client::open(sentinel.clone())?;
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&AsyncConnectionConfig::new())
        .await?;
    let master = master_entry(&mut conn, master_name).await?;
    if ["s_down", "o_down", "failover_in_progress"]
        .iter()
        .any(|flag| flagged(&master, flag))
    {
        return Err(StoreError::NotMaster);
    }
    let port = master.get("port").and_then(|port| port.parse().ok());
    match (master.get("ip"), port) {
        (Some(host), Some(port)) => Ok(Address {
            host: host.clone(),
            port,
        }),
        _ => Err(StoreError::NotMaster),
    }
}

/// A sentinel's `SENTINEL MASTER <name>` entry, field by field.
pub(super) async fn master_entry(
    sentinel: &mut MultiplexedConnection,
    master_name: &str,
) -> redis::RedisResult<HashMap<String, String>> {
    redis::cmd("SENTINEL")
        .arg("MASTER")
        .arg(master_name)
        .query_async(sentinel)
        .await
}

/// Whether a [`master_entry`] carries `flag` among its `flags`.
pub(super) fn flagged(entry: &HashMap<String, String>, flag: &str) -> bool {
    let flags = entry.get("flags").map(String::as_str).unwrap_or_default();
    flags.split(',').any(|f| f == flag)
}

/// `ROLE`'s first element: `master`.
fn is_master(role: &Value) -> bool {
    let Value::Array(items) = role else {
        return false;
    };
    match items.first() {
        Some(Value::BulkString(name)) => name == b"master",
        Some(Value::SimpleString(name)) => name == "master",
        _ => false,
    }
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

    /// A connection to the node at `address`. No timeout of its own per command:
    /// `redis.timeout_ms` bounds each call (`Store::with_conn`), a `WAIT` included, as on a
    /// plain node (the crate's default of 500 ms per command cut a longer `WAIT` off).
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
            .set_redis_settings(self.redis.clone())
            .set_tcp_settings(self.tcp.clone());
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(None);
        Ok(redis::Client::open(info)?
            .get_multiplexed_async_connection_with_config(&config)
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `SENTINEL MASTER` entry whose `flags` are `flags`.
    fn entry(flags: &str) -> HashMap<String, String> {
        HashMap::from([
            ("name".to_owned(), "mymaster".to_owned()),
            ("flags".to_owned(), flags.to_owned()),
        ])
    }

    /// A master is down or failing over only by a whole flag of its comma-separated `flags`:
    /// `ask` skips such a master and the fence reads `failover_in_progress` from it, so a flag
    /// missing from the list, or only a part of another, must not count.
    #[test]
    fn a_flag_counts_only_when_it_is_one_of_the_entrys_flags() {
        let cases = [
            ("master", "s_down", false),
            ("master,s_down", "s_down", true),
            ("master,o_down,s_down", "o_down", true),
            ("master,failover_in_progress", "failover_in_progress", true),
            ("master,failover_in_progress", "failover", false),
            ("master,disconnected", "s_down", false),
        ];
        for (flags, flag, expected) in cases {
            assert_eq!(flagged(&entry(flags), flag), expected, "{flag} in {flags}");
        }
        assert!(
            !flagged(&HashMap::new(), "s_down"),
            "an entry without flags"
        );
    }

    /// `ROLE` as a master, a replica and a sentinel answer it, the role a bulk or a simple
    /// string: only the first is a master, so a look-up never settles on a replica that a
    /// sentinel that has not caught up still names.
    #[test]
    fn only_a_role_reply_that_starts_with_master_is_a_master() {
        let cases: [(&[u8], bool); 7] = [
            (b"*3\r\n$6\r\nmaster\r\n:0\r\n*0\r\n", true),
            (b"*3\r\n+master\r\n:0\r\n*0\r\n", true),
            (
                b"*5\r\n$5\r\nslave\r\n$9\r\n127.0.0.1\r\n:6379\r\n$9\r\nconnected\r\n:0\r\n",
                false,
            ),
            (
                b"*5\r\n+slave\r\n$9\r\n127.0.0.1\r\n:6379\r\n$9\r\nconnected\r\n:0\r\n",
                false,
            ),
            (b"*2\r\n$8\r\nsentinel\r\n*1\r\n$8\r\nmymaster\r\n", false),
            (b"*0\r\n", false),
            (b"$6\r\nmaster\r\n", false),
        ];
        for (reply, expected) in cases {
            let role = redis::parse_redis_value(reply).expect("a RESP reply");
            assert_eq!(is_master(&role), expected, "{role:?}");
        }
    }
}
