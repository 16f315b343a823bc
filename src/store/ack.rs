//! Replica acknowledgement (`redis.replica_acks`): `WAIT` after a write, on its connection.
//!
//! `WAIT n t` blocks the connection that sent it until `n` replicas have acknowledged every
//! write that connection made, or `t` ms passed, and answers how many did. So it goes over the
//! connection, and to the node, that ran the write: on a single node's connection as it is; in a
//! Cluster routed to the master of the write's slot, whose connection the write used
//! (`tests/api/replica_acks.rs` proves it on a cluster where only one master has a replica).
//!
//! Not in one pipeline with the write, although that would save a round trip: a pipelined
//! `WAIT` also runs when Redis refuses the write (`NOREPLICAS` all through a failover, when a
//! new master has no replica yet), and then holds its connection for the whole timeout while
//! every request behind it waits. In `scripts/failover-load.sh` that turned 503s into
//! seconds-long stalls (p90 5.7 s). Sent after the write's answer, it waits only for writes
//! that happened.
//!
//! `WAIT` holds up every later command of its connection until it answers, so operations that
//! wait use lanes of their own (see `Lanes` in the parent module).
//!
//! A connection that breaks between the write and its `WAIT`: on a node's connection the `WAIT`
//! fails and `Store::with_conn` runs the whole operation again on a new one (the exchange script
//! answers its own repeat with a write of its own). In a Cluster the crate sends the `WAIT` again
//! by itself, on a new connection to the master, which has run nothing but a `PING`: Redis 7.0
//! moves a connection's write offset with every command, so that `WAIT` still covers the take,
//! but later versions move it only with a write, and a `WAIT` on a connection without one counts
//! every replica at once, a frozen one too. So in a Cluster the `WAIT` travels with a write of
//! its own in the same slot (`Keys::ack_mark`, gone in a millisecond): a resend carries it,
//! and replicas acknowledge in order, so acknowledging it acknowledges the take before it
//! (`tests/api/replica_acks.rs` cuts such a connection with a proxy).

use deadpool_redis::redis::cluster_routing::{Route, SingleNodeRoutingInfo, SlotAddr};
use deadpool_redis::redis::{self, RedisResult, Value};

use super::keys::{Keys, slot};
use super::{Conn, StoreError};

/// How many replicas must acknowledge, and how long to wait for them.
#[derive(Debug, Clone, Copy)]
pub struct Acks {
    pub replicas: u32,
    pub timeout_ms: u64,
}

impl Acks {
    /// Waits for the replicas of the node that holds `key`, which this connection just wrote;
    /// returns how many acknowledged.
    pub async fn wait(self, conn: &mut Conn, key: &str, keys: &Keys) -> RedisResult<u32> {
        let mut wait = redis::cmd("WAIT");
        wait.arg(self.replicas).arg(self.timeout_ms);
        match conn {
            Conn::Node(node) => wait.query_async(node).await,
            Conn::Cluster(cluster) => {
                // WAIT has no key: unrouted, a cluster connection would ask every master and
                // answer the lowest count. The mark is in `key`'s slot, so on the same master.
                let master = Route::new(slot(key.as_bytes()), SlotAddr::Master);
                let mut pipe = redis::pipe();
                pipe.cmd("SET")
                    .arg(keys.ack_mark(key))
                    .arg("")
                    .arg("PX")
                    .arg(1)
                    .add_command(wait);
                let replies = cluster
                    .route_pipeline(pipe, 0, 2, SingleNodeRoutingInfo::SpecificNode(master))
                    .await?;
                let [mark, acked]: [Value; 2] = replies.try_into().map_err(|_| {
                    redis::RedisError::from((
                        redis::ErrorKind::UnexpectedReturnType,
                        "not two replies to SET + WAIT",
                    ))
                })?;
                // A refused mark (NOREPLICAS, OOM) leaves the WAIT no write of its own to wait
                // for, and its count says nothing: none acknowledged, and the caller cleans up
                // as after any shortfall.
                if let Err(e) = mark.extract_error() {
                    log::debug!("the write before WAIT was refused: {e}");
                    return Ok(0);
                }
                Ok(redis::from_redis_value(acked)?)
            }
        }
    }

    /// An error when `acked` replicas are fewer than asked for.
    pub fn check(self, acked: u32) -> Result<(), StoreError> {
        if acked >= self.replicas {
            Ok(())
        } else {
            Err(StoreError::Unacknowledged {
                wanted: self.replicas,
                acked,
                within_ms: self.timeout_ms,
            })
        }
    }
}
