//! [`StoreError`], and which errors leave a lane's connection in use.

use std::time::Duration;

use deadpool_redis::redis;

/// Its `Debug` is its `Display` (below): actix's access-log middleware prints errors with `{:?}`
/// at debug level, and a derived `Debug` would show Redis's quotes of a command's arguments.
#[derive(thiserror::Error)]
pub enum StoreError {
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    /// A timeout on a lane that sends `WAIT` (`redis.replica_acks`): each `WAIT` holds up the
    /// commands behind it on its connection, so a replica slow to acknowledge looks like a
    /// master that does not answer; said so, where the master's own words could not.
    #[error(
        "redis did not answer within {0:?}, on a connection whose WAITs for replica \
         acknowledgements (redis.replica_acks) hold up the commands behind them: a slow \
         replica shows so too (see sso_replica_ack_failures_total)"
    )]
    TimeoutBehindWait(Duration),
    #[error("a sentinel failover is under way")]
    Failover,
    #[error("redis connection: {}{}", crate::redact::redis_error(.0), reset_hint(.0))]
    Pool(#[from] deadpool_redis::PoolError),
    #[error("redis: {}", crate::redact::redis_error(.0))]
    Redis(#[from] redis::RedisError),
    #[error("redis pool configuration: {}", crate::redact::redis_error(.0))]
    Config(#[from] deadpool_redis::CreatePoolError),
    #[error("unexpected reply from the exchange script")]
    Reply,
    #[error("the node the sentinels name is not a master (or none names one)")]
    NotMaster,
    /// `redis.replica_acks`: the write is on the master, but a failover could still lose it.
    #[error("{acked} of {wanted} replica(s) acknowledged the write within {within_ms} ms")]
    Unacknowledged {
        wanted: u32,
        acked: u32,
        within_ms: u64,
    },
    #[error("encoding a record: {0}")]
    Encode(#[from] serde_json::Error),
}

impl std::fmt::Debug for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StoreError({self})")
    }
}

/// What a new connection that Redis closes at once most often is: at `maxclients` Redis
/// writes its refusal and closes, and the redis crate's first commands, sent before the refusal
/// was read, turn the close into a reset (or a broken pipe) that loses Redis's words.
fn reset_hint(error: &deadpool_redis::PoolError) -> &'static str {
    let deadpool_redis::PoolError::Backend(error) = error else {
        return "";
    };
    let closed = std::error::Error::source(error)
        .and_then(|source| {
            // The redis crate keeps an I/O error in an `Arc`, and gives that as the source.
            type Shared = std::sync::Arc<dyn std::error::Error + Send + Sync>;
            source.downcast_ref::<std::io::Error>().or_else(|| {
                source
                    .downcast_ref::<Shared>()
                    .and_then(|shared| shared.downcast_ref::<std::io::Error>())
            })
        })
        .is_some_and(|io| {
            matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
            )
        });
    match closed {
        true => {
            " (Redis closed the new connection at once, as it does at maxclients: see its INFO clients)"
        }
        false => "",
    }
}

impl StoreError {
    /// The connection is gone (closed by Redis or on the way), as opposed to a slow Redis or
    /// an error reply: a new connection may well succeed at once.
    pub(super) fn is_connection_dropped(&self) -> bool {
        matches!(self, Self::Redis(e) if e.is_connection_dropped())
    }

    /// Redis did not answer: a timeout, no connection, a connection lost or refused; not an
    /// error it answered with (`OOM`, `NOPERM`, a `WAIT` short of replicas), which leaves its
    /// reads working (`slots`).
    pub fn is_unanswered(&self) -> bool {
        match self {
            Self::Timeout(_) | Self::TimeoutBehindWait(_) | Self::Pool(_) => true,
            Self::Redis(e) => {
                e.is_timeout()
                    || e.is_connection_dropped()
                    || e.is_connection_refusal()
                    || e.is_io_error()
            }
            _ => false,
        }
    }

    /// Redis refused the user or password (`AUTH` failed, or `NOAUTH`: none given where one is
    /// needed): no retry mends that, unlike Redis not answering.
    pub fn is_refused_credentials(&self) -> bool {
        // NOAUTH refusing the `SELECT` of a database in the URL reaches us as a plain
        // response error: Redis's words for it are what is left to tell.
        let refused = |e: &redis::RedisError| {
            e.kind() == redis::ErrorKind::AuthenticationFailed
                || matches!(e.code(), Some("NOAUTH" | "WRONGPASS"))
                || e.to_string().contains("Authentication required")
        };
        match self {
            Self::Redis(e) | Self::Pool(deadpool_redis::PoolError::Backend(e)) => refused(e),
            _ => false,
        }
    }

    /// A node that answers but cannot serve writes now: demoted (`READONLY`), loading its
    /// data (`LOADING`), or a replica cut from its master (`MASTERDOWN`). Redis answered; a new
    /// connection may find it replaced.
    pub(super) fn is_node_unable(&self) -> bool {
        matches!(self, Self::Redis(e) if matches!(e.code(), Some("READONLY" | "LOADING" | "MASTERDOWN")))
    }

    /// Whether the lane's connection is still good after this failure: an error reply about
    /// the data, the node's replicas, its memory or disk (`MISCONF`: a failed save), or the
    /// user's rights says nothing against it (a replica outage or a full disk would otherwise
    /// cost a reconnection, or a Cluster discovery, per failed call). Anything else
    /// (I/O, a timeout, a fence move, a demoted or loading node, an unknown reply) gets a new
    /// connection. With Sentinel, so do `NOREPLICAS` and a `WAIT` that no replica acknowledged:
    /// the master may be the one a failover is replacing (one the watchers missed: its replicas
    /// follow the new master), and a look-up finds its successor.
    pub(super) fn keeps_connection(&self, sentinel: bool) -> bool {
        match self {
            Self::Unacknowledged { acked, .. } => !sentinel || *acked > 0,
            Self::Encode(_) => true,
            Self::Redis(e) => match e.code() {
                Some("NOREPLICAS") => !sentinel,
                // Redis 7.0's `NOPERM` for a command a script may not run (7.2 says `NOPERM`).
                Some("ERR") => (e.detail()).is_some_and(|d| d.contains("can't run this command")),
                code => matches!(
                    code,
                    Some("WRONGTYPE" | "TRYAGAIN" | "OOM" | "BUSY" | "MISCONF" | "NOPERM")
                ),
            },
            _ => false,
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// An error reply from a connection that stays good, as Redis gives it.
    pub(in crate::store) fn refused(reply: &[u8]) -> StoreError {
        let value = redis::parse_redis_value(reply).expect("a RESP error reply");
        StoreError::Redis(value.extract_error().expect_err("an error reply"))
    }

    /// A Redis at maxclients closes a new connection at once (see `reset_hint`): the log says
    /// what that may be, and not for a connection in use or another failure.
    #[test]
    fn a_new_connection_closed_at_once_names_maxclients() {
        use std::io::ErrorKind::{BrokenPipe, ConnectionRefused, ConnectionReset, UnexpectedEof};
        let io = |kind| redis::RedisError::from(std::io::Error::from(kind));
        let connecting = |kind| StoreError::Pool(deadpool_redis::PoolError::Backend(io(kind)));
        for error in [connecting(ConnectionReset), connecting(BrokenPipe)] {
            assert!(error.to_string().contains("maxclients"), "{error}");
        }
        for error in [
            connecting(ConnectionRefused),
            connecting(UnexpectedEof),
            StoreError::Redis(io(ConnectionReset)),
            refused(b"-ERR max number of clients reached\r\n"),
        ] {
            assert!(!error.to_string().contains("maxclients"), "{error}");
        }
    }

    fn noreplicas() -> StoreError {
        refused(b"-NOREPLICAS Not enough good replicas to write.\r\n")
    }

    fn unacknowledged(acked: u32) -> StoreError {
        StoreError::Unacknowledged {
            wanted: 2,
            acked,
            within_ms: 300,
        }
    }

    /// Redis 7.0 refuses a script's command that the user may not run with an `ERR`; other
    /// `ERR`s still get a new connection.
    #[test]
    fn a_scripts_command_the_user_may_not_run_keeps_the_connection_on_redis_7_0() {
        let refusal = refused(
            b"-ERR The user executing the script can't run this command or subcommand \
              script: 29b1, on @user_script:1.\r\n",
        );
        assert!(refusal.keeps_connection(false), "{refusal}");
        assert!(refusal.keeps_connection(true), "{refusal}");
        let other = refused(b"-ERR unknown command 'GETDEL'\r\n");
        assert!(!other.keeps_connection(false), "{other}");
    }

    #[test]
    fn with_sentinel_a_wait_no_replica_acknowledged_drops_the_connection_as_noreplicas_does() {
        let cases = [
            (noreplicas(), false, true),
            (noreplicas(), true, false),
            (unacknowledged(0), false, true),
            (unacknowledged(0), true, false),
            // Some replica follows this master: not one a failover replaced.
            (unacknowledged(1), true, true),
            (unacknowledged(1), false, true),
        ];
        for (error, sentinel, keeps) in cases {
            assert_eq!(
                error.keeps_connection(sentinel),
                keeps,
                "{error} (sentinel: {sentinel})"
            );
        }
    }
}
