//! After a failed authentication: its count in Redis (or, while Redis fails, in this replica's
//! table), the answer it gets, and the warning for a block it begins.

use std::time::Instant;

use super::refusal::secs_left;
use super::table::Seen;
use super::{Attempt, Throttle};
use crate::metrics::{RedisOp, ThrottledBy};
use crate::oauth::OAuthError;

impl Throttle {
    /// After a failed authentication: counts it and answers `failure`, or 429 past the limit.
    pub async fn failed(&self, attempt: Attempt<'_>, failure: OAuthError) -> OAuthError {
        if !self.enabled {
            return failure;
        }
        let Attempt {
            client_id, source, ..
        } = attempt;
        let now = Instant::now();
        // A client id past the limit is not counted further; its failures are answered 429.
        let client_blocked = self
            .clients
            .get(client_id, now)
            .filter(|seen| seen.count >= self.max_failures);
        let mut blocked = client_blocked.map(|seen| (ThrottledBy::Client, seen.until));
        let answer = |blocked: Option<(ThrottledBy, Instant)>| match blocked {
            Some((by, until)) => self.throttled(by, until, now),
            None => failure,
        };
        // Only a registered id has a secret to guess, and only it is let past an address's
        // block (`admit`): only its failures are counted by id, and at the address. An unknown
        // id's go to the decoy counter instead, as many calls (see the module's doc).
        let registered = attempt.registered();
        let client_key = if registered {
            (client_blocked.is_none()).then(|| self.store.throttle_client_key(client_id))
        } else {
            Some(self.store.throttle_decoy_key())
        };
        let address_key = source.map(|a| self.store.throttle_address_key(a));
        let pair_key = source.map(|a| {
            if registered {
                self.store.throttle_client_at_key(client_id, a)
            } else {
                self.store.throttle_decoy_key()
            }
        });
        // At once (one round trip on a single node), and each on its own: in a Cluster with
        // one node down, the counters on the others still count and block.
        let (client_count, address_count, pair_count) = futures_util::future::join3(
            self.count(client_key.as_deref()),
            self.count(address_key.as_deref()),
            self.count(pair_key.as_deref()),
        )
        .await;
        if client_key.is_some() && registered {
            let counted = client_count.is_some();
            let seen = self.learn(&self.clients, client_id.to_owned(), client_count, now);
            if seen.count > self.max_failures {
                blocked = Some((ThrottledBy::Client, seen.until));
            }
            if counted && self.begins_a_block(&seen) {
                self.log_block(
                    format_args!("client {client_id}"),
                    "its failures get 429",
                    "its right secret still passes",
                    &seen,
                    now,
                );
            }
        }
        if let Some(address) = source {
            let counted = address_count.is_some();
            let seen = self.learn(&self.addresses, address, address_count, now);
            if seen.count > self.max_failures {
                // Named first: the address's block covers every request from it.
                blocked = Some((ThrottledBy::Address, seen.until));
            }
            if counted && self.begins_a_block(&seen) {
                self.log_block(
                    format_args!("address {address}"),
                    "blocked",
                    "429 for every client id that failed from it, and unknown ones",
                    &seen,
                    now,
                );
            }
        }
        if let Some(key) = pair_key.filter(|_| registered) {
            self.learn(&self.pairs, key, pair_count, now);
        }
        answer(blocked)
    }

    /// Adds one failure to the counter `key`, if any: its count and the milliseconds left in
    /// its window, or `None` when there is no key or Redis did not answer.
    async fn count(&self, key: Option<&str>) -> Option<(u64, i64)> {
        let window_ms = u64::try_from(self.window.as_millis()).unwrap_or(u64::MAX);
        let counted = self.store.count_failure(key?, window_ms);
        match self.metrics.time_redis(RedisOp::Throttle, counted).await {
            Ok(count) => Some(count),
            Err(e) => {
                // One line a second: with Redis down, every wrong secret comes here.
                crate::warn_every_second!("throttle: counting a failed authentication: {e}");
                None
            }
        }
    }

    /// The failure that completes a block: the limit's, answered 401 itself, after which the
    /// address's requests (a client id's failures) get 429. Asked only of a count Redis made:
    /// Redis counts atomically, so one replica sees it, and a block is logged once (a count a
    /// replica kept itself while Redis failed could reach the limit again in Redis).
    fn begins_a_block(&self, seen: &Seen) -> bool {
        seen.count == self.max_failures
    }

    /// The warning for a block that `seen` begins: `who` failed, and `what` follows.
    fn log_block(
        &self,
        who: std::fmt::Arguments<'_>,
        what: &str,
        note: &str,
        seen: &Seen,
        now: Instant,
    ) {
        log::warn!(
            "throttle: {who} failed {} client authentications within {} s: {what} for the next \
             {} s ({note})",
            self.max_failures,
            self.window.as_secs(),
            secs_left(seen.until, now)
        );
    }
}
