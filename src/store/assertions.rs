//! Client assertions' single-use markers (`client_assertion`): one `SET NX` per assertion
//! that passed every other check. Apart because nothing else of the store touches them.

use deadpool_redis::redis;

use super::lanes::Lanes;
use super::{Store, StoreError};

impl Store {
    /// The marker key of the assertion `jti` of `client_id` (a hash of both: see
    /// [`Keys::assertion`](super::keys::Keys::assertion)).
    pub fn assertion_key(&self, client_id: &str, jti: &str) -> String {
        self.keys.assertion(client_id, jti)
    }

    /// The Cluster hash slot of `key`; `None` outside Cluster mode.
    pub fn key_cluster_slot(&self, key: &str) -> Option<u16> {
        self.keys.slot_of_key(key)
    }

    /// Writes the marker `key` unless it exists, holding `nonce` (random, this call's own) and
    /// expiring in `ttl_ms`: `true` when this call wrote it (the
    /// assertion's first use), `false` when another did (a replay). `SET NX GET` (Redis 7.0) is
    /// one atomic command, so of two replicas presented the same assertion at once one only is
    /// told `true`; and it answers with what the key held, so a repeat of this call after a
    /// dropped connection (`with_conn`) finds its own nonce and is not taken for a replay.
    pub async fn spend_assertion(
        &self,
        key: &str,
        nonce: &str,
        ttl_ms: u64,
    ) -> Result<bool, StoreError> {
        self.with_conn(Lanes::Plain, |mut conn| async move {
            let held: Option<String> = redis::cmd("SET")
                .arg(key)
                .arg(nonce)
                .arg("NX")
                .arg("GET")
                .arg("PX")
                .arg(ttl_ms)
                .query_async(&mut conn)
                .await?;
            Ok(held.is_none_or(|held| held == nonce))
        })
        .await
    }
}
