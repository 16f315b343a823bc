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
//! wait use lanes of their own (see `Lanes` in `lanes.rs`).
//!
//! A connection that breaks between the write and its `WAIT`: on a node's connection the `WAIT`
//! fails and `Store::with_conn` runs the whole operation again on a new one (the exchange script
//! answers its own repeat with a write of its own). In a Cluster the crate sends the `WAIT` again
//! by itself, on a new connection, which has run nothing but a `PING`: from Redis 7.2 on a
//! `WAIT` on a connection without a write counts every replica at once, a frozen one too. And
//! if the master failed over meanwhile, the new connection is to the promoted replica, which may
//! never have received the write. So in a Cluster the `WAIT` travels with the operation itself,
//! sent again ([`Repeat`]; both scripts are written to be repeated): a resend carries it, and
//! wherever it runs, the `WAIT` waits for that node's replicas to hold the operation's outcome
//! on that node: the take (or this very take found again), the deletion. A repeat that finds the
//! code taken for another token, or gone, is no acknowledgement (`tests/api/replica_acks.rs`
//! cuts such a connection with a proxy, and rewinds the take behind it).

use std::future::Future;
use std::pin::Pin;

use deadpool_redis::redis::cluster_routing::{Route, SingleNodeRoutingInfo, SlotAddr};
use deadpool_redis::redis::{self, Cmd, ErrorKind, RedisResult, Value};

use super::keys::slot;
use super::{Conn, StoreError};

/// How many replicas must acknowledge, and how long to wait for them.
#[derive(Debug, Clone, Copy)]
pub struct Acks {
    pub replicas: u32,
    pub timeout_ms: u64,
}

/// The operation a Cluster `WAIT` travels with, sent again (see the module's comment).
pub struct Repeat<'a> {
    /// `EVAL` of the operation's whole script, with its keys and arguments: whole, since the
    /// node may be a promoted replica, which has none of its old master's scripts (an
    /// `EVALSHA` refused there with `NOSCRIPT` would still run its `WAIT`, for nothing).
    /// Built only for a Cluster.
    pub call: &'a (dyn Fn() -> Cmd + Sync),
    /// Whether the repeat's reply shows this operation's outcome on the node that ran it.
    pub holds: &'a (dyn Fn(&Value) -> bool + Sync),
}

impl Acks {
    /// Waits for the replicas of the node that holds `key`, which this connection just wrote;
    /// returns how many acknowledged. In a Cluster `repeat` goes first, in the same pipeline.
    ///
    /// Boxed: the future is ~1.7 KB, and unboxed it would be part of every exchange's future
    /// (which is moved, and so copied, a few times per request) with acknowledgements off too.
    pub fn wait<'a>(
        self,
        conn: &'a mut Conn,
        key: &'a str,
        repeat: Repeat<'a>,
    ) -> Pin<Box<dyn Future<Output = RedisResult<u32>> + Send + 'a>> {
        Box::pin(self.wait_unboxed(conn, key, repeat))
    }

    async fn wait_unboxed(
        self,
        conn: &mut Conn,
        key: &str,
        repeat: Repeat<'_>,
    ) -> RedisResult<u32> {
        let mut wait = redis::cmd("WAIT");
        wait.arg(self.replicas).arg(self.timeout_ms);
        let cluster = match conn {
            Conn::Node(node) => return wait.query_async(node).await,
            Conn::Cluster(cluster) => cluster,
        };
        // WAIT has no key: unrouted, a cluster connection would ask every master and answer
        // the lowest count. The repeat has `key`, so it runs on the same master.
        let master = Route::new(slot(key.as_bytes()), SlotAddr::Master);
        let mut pipe = redis::pipe();
        pipe.add_command((repeat.call)()).add_command(wait);
        let replies = cluster
            .route_pipeline(pipe, 0, 2, SingleNodeRoutingInfo::SpecificNode(master))
            .await?;
        let replies: [Value; 2] = replies.try_into().map_err(|_| {
            redis::RedisError::from((
                ErrorKind::UnexpectedReturnType,
                "not two replies to a repeat + WAIT",
            ))
        })?;
        let [done, acked] = replies;
        match done.extract_error() {
            Ok(done) if (repeat.holds)(&done) => Ok(redis::from_redis_value(acked)?),
            // A refused repeat (NOREPLICAS, OOM), or one that found another outcome: the
            // count says nothing of this operation. None acknowledged; the caller cleans up
            // as after any shortfall.
            Err(e) => {
                log::debug!(
                    "the operation sent again before WAIT was refused: {}",
                    crate::redact::redis_error(&e)
                );
                Ok(0)
            }
            Ok(_) => Ok(0),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `redis.replica_acks` is a minimum: as many replicas as asked for, or more, acknowledge;
    /// one fewer is a shortfall that names what was wanted, what came and the wait.
    #[test]
    fn fewer_acknowledgements_than_asked_for_are_an_error_as_many_or_more_are_not() {
        let acks = Acks {
            replicas: 2,
            timeout_ms: 300,
        };
        assert!(acks.check(2).is_ok());
        assert!(acks.check(3).is_ok());
        for acked in [0, 1] {
            let shortfall = acks.check(acked);
            assert!(
                matches!(
                    shortfall,
                    Err(StoreError::Unacknowledged {
                        wanted: 2,
                        acked: a,
                        within_ms: 300,
                    }) if a == acked
                ),
                "{acked}: {shortfall:?}"
            );
        }
    }
}
