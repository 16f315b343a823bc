//! Replica acknowledgement (`redis.replica_acks`): a write and `WAIT` travel as one pipeline.
//!
//! `WAIT n t` blocks the connection that sent it until `n` replicas have acknowledged every
//! write that connection made, or `t` ms passed, and answers how many did. So it must go over
//! the connection, and to the node, that ran the write: in one pipeline with it, that is one
//! round trip, on the same connection, and in a Cluster on the same node (redis-rs routes a
//! pipeline by its keyed commands, and WAIT has no key; `tests/api/replica_acks.rs` proves it
//! on a cluster where only one master has a replica).
//!
//! WAIT holds up every later command of its connection until it answers, so operations that
//! wait use lanes of their own (see `Lanes` in the parent module).

use deadpool_redis::redis::{self, Cmd, ErrorKind, FromRedisValue, RedisResult, Script};

use super::{Conn, StoreError};

/// How many replicas must acknowledge, and how long to wait for them.
#[derive(Debug, Clone, Copy)]
pub struct Acks {
    pub replicas: u32,
    pub timeout_ms: u64,
}

impl Acks {
    /// Runs `script` (`body` is its source; `args` appends the key count, keys and
    /// arguments) followed by `WAIT`, as one pipeline; returns the script's reply and the
    /// number of replicas that acknowledged. EVALSHA first; EVAL with the body when the node
    /// does not know the script yet (NOSCRIPT: it restarted or was just promoted).
    pub async fn script_and_wait<T: FromRedisValue>(
        self,
        conn: &mut Conn,
        script: &Script,
        body: &str,
        args: impl Fn(&mut Cmd),
    ) -> RedisResult<(T, u32)> {
        let mut by_hash = redis::cmd("EVALSHA");
        by_hash.arg(script.get_hash());
        args(&mut by_hash);
        match self.write_and_wait(conn, by_hash).await {
            Err(e) if e.kind() == ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                let mut by_body = redis::cmd("EVAL");
                by_body.arg(body);
                args(&mut by_body);
                self.write_and_wait(conn, by_body).await
            }
            other => other,
        }
    }

    async fn write_and_wait<T: FromRedisValue>(
        self,
        conn: &mut Conn,
        write: Cmd,
    ) -> RedisResult<(T, u32)> {
        let mut pipe = redis::pipe();
        pipe.add_command(write)
            .cmd("WAIT")
            .arg(self.replicas)
            .arg(self.timeout_ms);
        pipe.query_async(conn).await
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
