//! Token records: reading one (parsed as `record.rs` says), and deleting one (after a refused
//! exchange, or revoked), with the deletion script and its `WAIT`. Apart from codes: these act
//! on a record already written.

use deadpool_redis::redis::{self, AsyncCommands, Value};

use super::ack::{Acks, Repeat};
use super::lanes::Lanes;
use super::record::utf8_record;
use super::scripts::{DELETE_SCRIPT, run_script};
use super::{Store, StoreError, TokenRecord, UnreadableRecord, write_record_start};

impl Store {
    /// Deletes a token record that no client holds a token for: clean-up after a refused
    /// exchange (best effort; never waits for replicas). Returns whether it deleted this
    /// token's record (not: none there, or another token's under its key, which stays).
    pub async fn delete_token(&self, jti: &str) -> Result<bool, StoreError> {
        let deleted = self
            .delete_record(jti, None, None, |_| true, |_, acked| acked)
            .await?;
        Ok(deleted == 1)
    }

    /// [`Store::delete_token`] on the lane [`Store::take_code`] uses, so that it runs after a
    /// take this thread sent: for an exchange dropped while its take was under way.
    pub async fn delete_token_after_take(&self, jti: &str) -> Result<bool, StoreError> {
        let deleted = self
            .delete_record_on(Lanes::Waiting, jti, None, None, |_| true, |_, acked| acked)
            .await?;
        Ok(deleted == 1)
    }

    /// Revokes `client_id`'s token `jti`: deletes its record if that client's (the revocation
    /// endpoint, a replayed code: another client's token is left alone). With
    /// `redis.replica_acks`, a deletion too few replicas acknowledged is
    /// [`StoreError::Unacknowledged`], since a failover could bring the token back; the caller
    /// answers 503 and the client retries (revocation is idempotent, and the retry's `WAIT`
    /// covers the earlier deletion too: see [`DELETE_SCRIPT`]). Returns whether it deleted
    /// this token's record (not: none there, or another token's or client's, which stays).
    pub async fn revoke_token(&self, jti: &str, client_id: &str) -> Result<bool, StoreError> {
        let holds = |v: &Value| matches!(v, Value::Int(_));
        let deleted = self
            .delete_record(jti, Some(client_id), self.acks, holds, |_, acked| acked)
            .await?;
        Ok(deleted == 1)
    }

    /// Runs [`DELETE_SCRIPT`] for `jti`'s record (only if `client_id`'s, when given) and, with
    /// `acks`, its `WAIT`: the script's answer, or [`StoreError::Unacknowledged`] when the
    /// acknowledgements that `counted` admits for that answer fall short (checked within the
    /// call, with its connection: see `StoreError::keeps_connection`). In a Cluster, `holds`
    /// tells whether the answer of the script sent again with the `WAIT` is the outcome being
    /// acknowledged.
    pub(super) async fn delete_record(
        &self,
        jti: &str,
        client_id: Option<&str>,
        acks: Option<Acks>,
        holds: fn(&Value) -> bool,
        counted: fn(i64, u32) -> u32,
    ) -> Result<i64, StoreError> {
        let lanes = match acks {
            Some(_) => Lanes::Waiting,
            None => Lanes::Plain,
        };
        self.delete_record_on(lanes, jti, client_id, acks, holds, counted)
            .await
    }

    /// [`Store::delete_record`] on `lanes`.
    async fn delete_record_on(
        &self,
        lanes: Lanes,
        jti: &str,
        client_id: Option<&str>,
        acks: Option<Acks>,
        holds: fn(&Value) -> bool,
        counted: fn(i64, u32) -> u32,
    ) -> Result<i64, StoreError> {
        let key = &self.token_key(jti);
        let mut start = Vec::with_capacity(48 + jti.len());
        write_record_start(&mut start, jti, client_id);
        let written = self.keys.revoking(key);
        let wait = if acks.is_some() { "1" } else { "0" };
        let delete_call = |verb: &str, script: &str| {
            let mut call = redis::cmd(verb);
            (call.arg(script).arg(2).arg(key).arg(&written))
                .arg(&start)
                .arg(wait);
            call
        };
        let call = &delete_call("EVALSHA", self.delete.get_hash());
        let delete_call = &delete_call;
        self.with_conn(lanes, |mut conn| async move {
            let whole = || delete_call("EVAL", DELETE_SCRIPT);
            let answer: i64 = run_script(&mut conn, call, whole).await?;
            let Some(acks) = acks else {
                return Ok(answer);
            };
            // In a Cluster the WAIT travels with the deletion again (see `ack`).
            let repeat = Repeat {
                call: &whole,
                holds: &holds,
            };
            let acked = acks.wait(&mut conn, key, repeat).await?;
            acks.check(counted(answer, acked))?;
            Ok(answer)
        })
        .await
    }

    /// Reads a token record (introspection, user info): `None` once revoked or expired. Text
    /// that Redis holds but that is no token record is an [`UnreadableRecord`], inside `Ok`:
    /// Redis answered, so it is no [`StoreError`].
    pub async fn get_token(
        &self,
        jti: &str,
    ) -> Result<Result<Option<TokenRecord>, UnreadableRecord>, StoreError> {
        let key = &self.token_key(jti);
        let text = self
            .with_conn(Lanes::Plain, |mut conn| async move {
                match conn.get::<_, Option<Vec<u8>>>(key).await {
                    // Another writer's key under the prefix, or bytes no record of ours holds
                    // (the records are JSON): no record, as the exchange script takes it, not a
                    // 503 for as long as that key lives.
                    Err(e) if e.code() == Some("WRONGTYPE") => Ok(None),
                    read => Ok(read?.and_then(utf8_record)),
                }
            })
            .await?;
        Ok(text.as_deref().map(TokenRecord::parse).transpose())
    }
}
