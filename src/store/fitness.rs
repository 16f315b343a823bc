//! Whether a Redis can run the exchange (version, ACL, replicas), asked at start for the log.
//! Apart because no request uses it.

use std::net::IpAddr;

use deadpool_redis::redis::{self, Value};

use super::lanes::Lanes;
use super::scripts::PERMISSIONS_SCRIPT;
use super::{Store, StoreError};

/// Whether a Redis can run the exchange (`Store::fitness`).
#[derive(Debug, PartialEq, Eq)]
pub enum Fitness {
    Runs {
        version: String,
    },
    /// The service's Redis user may not run these commands on its keys (an ACL): each one
    /// refused is a 503 for what needs it.
    Refused {
        version: String,
        commands: Vec<String>,
    },
    /// Why every exchange would fail there.
    Cannot(&'static str),
}

impl Store {
    /// Whether this Redis can run the exchange at all, for the start to say so: it needs Redis
    /// 7 (the script's `#!lua` flags, `GETDEL`), a user that may run scripts, and the commands
    /// of [`PERMISSIONS_SCRIPT`] on the service's keys. A PING, and so readiness, passes
    /// whatever the answer.
    pub async fn fitness(&self) -> Result<Fitness, StoreError> {
        let is_noperm =
            |e: &StoreError| matches!(e, StoreError::Redis(e) if e.code() == Some("NOPERM"));
        // `EVAL_RO` and `redis.REDIS_VERSION` exist from Redis 7.0 on. `EVAL_RO` first: the
        // exchange's own calls are then the only `EVAL`s Redis counts; `EVAL` only for a user
        // allowed that but not `EVAL_RO`.
        let mut asked = self.version_by("EVAL_RO").await;
        if asked.as_ref().is_err_and(is_noperm) {
            asked = self.version_by("EVAL").await;
        }
        match asked {
            Ok(Some(mut reply)) if !reply.is_empty() => {
                let version = reply.remove(0);
                if reply.is_empty() {
                    Ok(Fitness::Runs { version })
                } else {
                    Ok(Fitness::Refused {
                        version,
                        commands: reply,
                    })
                }
            }
            Ok(_) => Ok(Fitness::Cannot(OLDER_THAN_7)),
            Err(StoreError::Redis(e))
                if e.detail().is_some_and(|d| d.contains("unknown command")) =>
            {
                Ok(Fitness::Cannot(OLDER_THAN_7))
            }
            Err(e) if is_noperm(&e) => Ok(Fitness::Cannot(
                "its user may not run scripts: every exchange fails; grant +@scripting, or at \
                 least +evalsha +eval",
            )),
            Err(other) => Err(other),
        }
    }

    /// With `redis.replica_acks`, outside a Cluster: the replicas the master has now and the
    /// number asked for, when that is fewer, for the start to say so. Until enough connect,
    /// every exchange spends its code on the master and answers 503, while `/readyz` (a PING)
    /// passes. `None` also when `ROLE` is refused or not a master's answer: then nothing is
    /// known.
    pub async fn replicas_short(&self) -> Option<(usize, u32)> {
        let acks = self.acks.filter(|_| !self.keys.tagged())?;
        let role: Value = (self.with_conn(Lanes::Plain, |mut conn| async move {
            Ok(redis::cmd("ROLE").query_async(&mut conn).await?)
        }))
        .await
        .ok()?;
        // A master's: `master`, its replication offset, then one entry per replica.
        let Value::Array(role) = role else {
            return None;
        };
        let connected = match role.as_slice() {
            [Value::BulkString(name), _, Value::Array(replicas), ..] if name == b"master" => {
                replicas.len()
            }
            _ => return None,
        };
        (connected < acks.replicas as usize).then_some((connected, acks.replicas))
    }

    /// [`PERMISSIONS_SCRIPT`] through `eval` (`EVAL` or `EVAL_RO`): the version, then the
    /// commands refused; nil before Redis 7.0.
    async fn version_by(&self, eval: &'static str) -> Result<Option<Vec<String>>, StoreError> {
        let sample = "fitness";
        let mut command = redis::cmd(eval);
        command
            .arg(PERMISSIONS_SCRIPT)
            .arg(0)
            .arg(self.exchange.get_hash())
            .arg(self.code_key(sample))
            .arg(self.token_key_of_code(sample))
            .arg(self.throttle_address_key(IpAddr::from([127, 0, 0, 1])))
            .arg(if self.acks.is_some() { "1" } else { "0" });
        let command = &command;
        self.with_conn(Lanes::Plain, |mut conn| async move {
            Ok(command.query_async(&mut conn).await?)
        })
        .await
    }
}

/// Why a Redis before 7.0 cannot serve (`Store::fitness`).
const OLDER_THAN_7: &str = "it is older than 7.0, which the exchange script needs (`#!lua` \
                            flags, GETDEL): every exchange fails";
