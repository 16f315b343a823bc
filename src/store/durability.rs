//! What a Redis must keep for the exchange's guarantees, read from `INFO` at start: a spent
//! code must stay spent, and a token record must live its TTL. An evicting `maxmemory-policy`
//! drops codes and live token records under memory pressure (every key here has a TTL, so the
//! `volatile-*` policies take them too); without `appendonly`, a crash brings back the state of
//! the last snapshot, codes spent since then among it, which can then be exchanged again.

use deadpool_redis::redis::{self, Value};

use super::lanes::Lanes;
use super::{Store, StoreError};

/// A setting of the Redis (any node of it) that the guarantees do not survive.
#[derive(Debug, PartialEq, Eq)]
pub enum Doubt {
    /// `maxmemory` is set and its policy evicts keys.
    Evicts { policy: String },
    /// `appendonly` is off.
    NoAppendOnly,
}

impl Store {
    /// The [`Doubt`]s of every node that answers `INFO` (in a Cluster, each master: the redis
    /// crate sends it to the masters), each once.
    pub async fn durability(&self) -> Result<Vec<Doubt>, StoreError> {
        let info = self.info(&["persistence", "memory"]).await?;
        let mut doubts = Vec::new();
        for text in texts(&info) {
            for doubt in doubts_of(&text) {
                if !doubts.contains(&doubt) {
                    doubts.push(doubt);
                }
            }
        }
        Ok(doubts)
    }

    /// The Redis process's `run_id` (`INFO server`), which a restart changes, as a failover
    /// does (another process); `None` when the reply has none (a Cluster's map of nodes).
    pub async fn run_id(&self) -> Result<Option<String>, StoreError> {
        let info = self.info(&["server"]).await?;
        // One node's text; several (a Cluster's map) read as none.
        let [text] = texts(&info).try_into().unwrap_or_default();
        Ok(text
            .lines()
            .find_map(|line| line.strip_prefix("run_id:"))
            .map(|id| id.trim().to_owned()))
    }

    /// `INFO` of `sections`, as Redis answers it (see [`texts`]).
    async fn info(&self, sections: &[&str]) -> Result<Value, StoreError> {
        self.with_conn(Lanes::Plain, |mut conn| async move {
            Ok(redis::cmd("INFO")
                .arg(sections)
                .query_async(&mut conn)
                .await?)
        })
        .await
    }
}

/// The `INFO` texts in a reply: one node's, or a Cluster's map of them by node.
fn texts(reply: &Value) -> Vec<String> {
    match reply {
        Value::BulkString(bytes) => vec![String::from_utf8_lossy(bytes).into_owned()],
        Value::VerbatimString { text, .. } => vec![text.clone()],
        Value::Map(nodes) => nodes.iter().flat_map(|(_, info)| texts(info)).collect(),
        _ => Vec::new(),
    }
}

/// Replica acknowledgement does not make `appendonly` optional: a master restarted before a
/// failover (systemd, a container's restart policy) resyncs its replicas to what it lost.
fn doubts_of(info: &str) -> Vec<Doubt> {
    let field = |name: &str| {
        info.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .map(str::trim)
    };
    let mut doubts = Vec::new();
    let limited = field("maxmemory").is_some_and(|bytes| bytes != "0");
    match field("maxmemory_policy") {
        Some(policy) if limited && policy != "noeviction" => doubts.push(Doubt::Evicts {
            policy: policy.to_owned(),
        }),
        _ => {}
    }
    if field("aof_enabled") == Some("0") {
        doubts.push(Doubt::NoAppendOnly);
    }
    doubts
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "# Persistence\r\nloading:0\r\naof_enabled:1\r\n\r\n# Memory\r\n\
                        maxmemory:0\r\nmaxmemory_human:0B\r\nmaxmemory_policy:allkeys-lru\r\n";

    #[test]
    fn an_evicting_policy_counts_only_with_a_memory_limit() {
        assert_eq!(doubts_of(INFO), []);
        let limited = INFO.replace("maxmemory:0", "maxmemory:1048576");
        assert_eq!(
            doubts_of(&limited),
            [Doubt::Evicts {
                policy: "allkeys-lru".into()
            }]
        );
        let kept = limited.replace("allkeys-lru", "noeviction");
        assert_eq!(doubts_of(&kept), []);
    }

    #[test]
    fn append_only_off_counts() {
        let off = INFO.replace("aof_enabled:1", "aof_enabled:0");
        assert_eq!(doubts_of(&off), [Doubt::NoAppendOnly]);
    }

    #[test]
    fn a_clusters_nodes_are_each_read() {
        let off = INFO.replace("aof_enabled:1", "aof_enabled:0");
        let nodes = Value::Map(vec![
            (
                Value::SimpleString("a:1".into()),
                Value::BulkString(INFO.into()),
            ),
            (
                Value::SimpleString("b:2".into()),
                Value::BulkString(off.into()),
            ),
        ]);
        assert_eq!(texts(&nodes).len(), 2);
    }
}
