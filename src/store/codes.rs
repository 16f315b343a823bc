//! Codes: taking one (the exchange script, its `WAIT`, an unknown code settled) and writing one
//! as the authorize service does. Apart from the token records: this is what spends a code.

use deadpool_redis::redis::{self, Value};

use super::ack::Repeat;
use super::lanes::Lanes;
use super::scripts::{EXCHANGE_SCRIPT, run_script};
use super::{Store, StoreError};

/// What the exchange script found under a code.
#[derive(Debug, PartialEq, Eq)]
pub enum Taken {
    /// The code was live and is now spent; its token record is written. An empty `record` is
    /// the script's answer for a code that held nothing usable (over 64 KiB, another Redis
    /// type, or its token-record key another writer's): spent, no record written, and
    /// refused as malformed by `grant::check` like any record it cannot read.
    Fresh { record: Vec<u8> },
    /// The code was spent before, and the record of the token with this `jti` is still there.
    Replayed { jti: String },
    /// No such code: never issued, expired, or spent and its token record gone (expired,
    /// revoked, or deleted when the exchange was refused); or a string that is no token record
    /// of this code under its token-record key (another writer's), the code spent if it was
    /// there.
    Unknown,
}

impl Store {
    /// Takes `code` out of Redis and, when it was live, records the token `jti` with
    /// `record_head` + the code record + `}` as its value, in one round trip. `jti` comes from
    /// [`Store::new_jti`] for this `code`, and `record_head` starts with it (see
    /// [`EXCHANGE_SCRIPT`]). With `redis.replica_acks`, a fresh take is followed by `WAIT` on the
    /// same connection (see [`ack`]), and one with too few acknowledgements is
    /// [`StoreError::Unacknowledged`]: spent on the master, but a failover could bring it back,
    /// so no token may be handed out. Its token record is then deleted (best effort). With
    /// acknowledgements, neither code nor token record found is final only once the replicas
    /// hold it too: see [`Store::settle_unknown`].
    ///
    /// [`ack`]: super::ack
    pub async fn take_code(
        &self,
        code: &str,
        jti: &str,
        ttl_secs: u64,
        record_head: &[u8],
    ) -> Result<Taken, StoreError> {
        if !self.keys.admits(code) {
            // No authorize service can have written it (README, the Cluster contract).
            return Ok(Taken::Unknown);
        }
        let (code_key, token_key) = (self.code_key(code), self.token_key(jti));
        // `EVALSHA <hash>`, or `EVAL <script>`; sized up front: seven arguments, the record head
        // (or the script) the largest.
        let exchange_call = |verb: &str, script: &str| {
            let size = 64 + script.len() + code_key.len() + token_key.len() + record_head.len();
            let mut call = redis::Cmd::with_capacity(7, size);
            call.arg(verb)
                .arg(script)
                .arg(2)
                .arg(&code_key)
                .arg(&token_key)
                .arg(ttl_secs)
                .arg(record_head);
            call
        };
        let call = &exchange_call("EVALSHA", self.exchange.get_hash());
        let (exchange_call, code_key) = (&exchange_call, &code_key);
        // The acknowledgements are checked inside the call, so that a shortfall is judged with
        // the lane's connection (see `StoreError::keeps_connection`).
        let taken = self
            .with_conn(Lanes::Waiting, |mut conn| async move {
                let whole = || exchange_call("EVAL", EXCHANGE_SCRIPT);
                let reply: Value = run_script(&mut conn, call, whole).await?;
                // Only a fresh take wrote anything that a failover could undo. In a Cluster
                // the WAIT travels with this call again, which answers the record again on a
                // node that holds this take (or takes the code there, if the take never
                // reached it).
                match (self.acks, &reply) {
                    // An empty record is a malformed one (see the script): no token comes of it.
                    (Some(acks), Value::BulkString(record)) if !record.is_empty() => {
                        let repeat = Repeat {
                            call: &whole,
                            holds: &|again| matches!(again, Value::BulkString(r) if r == record),
                        };
                        acks.check(acks.wait(&mut conn, code_key, repeat).await?)?;
                    }
                    _ => {}
                }
                Ok(reply)
            })
            .await;
        let reply = match taken {
            Err(unacknowledged @ StoreError::Unacknowledged { .. }) => {
                // The rare paths are boxed, here and below: unboxed, their futures would be
                // part of every exchange's, which is moved (copied) a few times a request.
                if let Err(e) = Box::pin(self.delete_token(jti)).await {
                    log::warn!("could not delete an unacknowledged token record: {e}");
                }
                return Err(unacknowledged);
            }
            taken => taken?,
        };
        self.read_take(reply, jti, &token_key).await
    }

    /// What the exchange script's reply says of the code (see [`Taken`]).
    async fn read_take(
        &self,
        reply: Value,
        jti: &str,
        token_key: &str,
    ) -> Result<Taken, StoreError> {
        match reply {
            Value::BulkString(record) => Ok(Taken::Fresh { record }),
            Value::SimpleString(jti) if self.token_key(&jti) == token_key => {
                Ok(Taken::Replayed { jti })
            }
            // A string under the code's token-record key that names no `jti` of this code:
            // another writer's, no token of this code, nothing to revoke. Revoking it would
            // touch another key, in a Cluster one of another slot (`CROSSSLOT`, a 503 for
            // ever); the code, if this call took it, is spent like a malformed one. `OK` is
            // such a string too (no `jti` of ours), which the redis crate reads as `Okay`.
            Value::SimpleString(_) | Value::Okay => {
                log::warn!(
                    "a token-record key holds a string this service did not write (another \
                     writer under the key prefix?); the code is answered as unknown"
                );
                Ok(Taken::Unknown)
            }
            Value::Nil => {
                Box::pin(self.settle_unknown(jti)).await?;
                Ok(Taken::Unknown)
            }
            _ => Err(StoreError::Reply),
        }
    }

    /// With `redis.replica_acks`, before a code is answered as unknown: what this master lacks,
    /// its replicas may still have. A replayed code's revocation, or a refused take, deleted
    /// here what too few replicas acknowledged (that answer was a 503, and this call may be the
    /// client's retry), and a failover would bring back the token or the code. A write in the
    /// same slot and its `WAIT` ([`DELETE_SCRIPT`] with nothing of `jti`'s to delete) cover
    /// those deletions, as a revocation's retry does; too few acknowledgements are a 503 again.
    ///
    /// [`DELETE_SCRIPT`]: super::scripts::DELETE_SCRIPT
    async fn settle_unknown(&self, jti: &str) -> Result<(), StoreError> {
        let Some(acks) = self.acks else {
            return Ok(());
        };
        // Another token's record where the script found none (a failover or a late write
        // between the two calls) counts as no acknowledgement: a 503, and the retry finds the
        // replay.
        let holds = |v: &Value| v == &Value::Int(0);
        let counted = |found, acked| if found == 0 { acked } else { 0 };
        self.delete_record(jti, None, Some(acks), holds, counted)
            .await
            .map(drop)
    }

    /// Writes a code record the way the authorize service does (for `issue-code`, demos and
    /// load tests). Refuses to overwrite a live code.
    pub async fn put_code(
        &self,
        code: &str,
        record: &str,
        ttl_secs: u64,
    ) -> Result<bool, StoreError> {
        let key = &self.code_key(code);
        self.with_conn(Lanes::Plain, |mut conn| async move {
            let written: Option<String> = redis::cmd("SET")
                .arg(key)
                .arg(record)
                .arg("EX")
                .arg(ttl_secs)
                .arg("NX")
                .query_async(&mut conn)
                .await?;
            Ok(written.is_some())
        })
        .await
    }
}
