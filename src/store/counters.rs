//! The throttle's failure counters: their keys and the two calls on them. Apart because the
//! throttle uses nothing else of the store, and the exchange none of this.

use std::net::IpAddr;

use deadpool_redis::redis;

use super::lanes::Lanes;
use super::scripts::COUNT_FAILURE_SCRIPT;
use super::{Store, StoreError};

impl Store {
    /// See [`Keys::throttle_decoy`].
    ///
    /// [`Keys::throttle_decoy`]: super::keys::Keys::throttle_decoy
    pub fn throttle_decoy_key(&self) -> String {
        self.keys.throttle_decoy()
    }

    /// The failure counter of a client id.
    pub fn throttle_client_key(&self, client_id: &str) -> String {
        self.keys.throttle_client(client_id)
    }

    /// The failure counter of a source address.
    pub fn throttle_address_key(&self, address: IpAddr) -> String {
        self.keys.throttle_address(&address.to_string())
    }

    /// The failure counter of a client id at a source address.
    pub fn throttle_client_at_key(&self, client_id: &str, address: IpAddr) -> String {
        self.keys
            .throttle_client_at(client_id, &address.to_string())
    }

    /// Adds one failure to a counter; returns its count and the milliseconds left in its
    /// window. Calls made at once go out together on the multiplexed connection (one round
    /// trip on a single node); in Cluster mode each is routed to its own key's node.
    pub async fn count_failure(&self, key: &str, window_ms: u64) -> Result<(u64, i64), StoreError> {
        self.with_conn(Lanes::Plain, |mut conn| async move {
            Ok(redis::cmd("EVAL")
                .arg(COUNT_FAILURE_SCRIPT)
                .arg(1)
                .arg(key)
                .arg(window_ms)
                .query_async(&mut conn)
                .await?)
        })
        .await
    }

    /// A failure counter and the milliseconds left in its window (0 and -2 when there is none).
    pub async fn failures(&self, key: &str) -> Result<(u64, i64), StoreError> {
        let mut pipe = redis::pipe();
        // Both commands name the same key, so a Cluster routes the pipeline to one node. In
        // one transaction: read apart, a counter that expires between them (or expires and is
        // started again by another replica) would read as its count with a whole new window,
        // keeping a blocked source blocked a window longer than Redis keeps it.
        pipe.atomic().cmd("GET").arg(key).cmd("PTTL").arg(key);
        let pipe = &pipe;
        let (count, ttl): (Option<u64>, i64) = self
            .with_conn(Lanes::Plain, |mut conn| async move {
                Ok(pipe.query_async(&mut conn).await?)
            })
            .await?;
        Ok((count.unwrap_or(0), ttl))
    }
}
