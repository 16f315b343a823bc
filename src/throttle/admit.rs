//! Before authentication: whether a request's source address is blocked, and for a registered
//! client id, whether that id failed from it.

use std::net::IpAddr;
use std::time::Instant;

use super::{Attempt, Throttle};
use crate::metrics::{RedisOp, ThrottledBy};
use crate::oauth::OAuthError;
use crate::store::StoreError;

impl Throttle {
    /// Before authentication: refuses a request from an address that is blocked, as far as
    /// this replica knows, or, near the limit, as Redis says, unless it comes for a registered
    /// client id that has not failed from that address in the window (see [`Self::failed_at`]).
    /// After its table of addresses turned one at N/2 or more away (that many failures from
    /// more than [`MAX_TRACKED`](super::MAX_TRACKED) addresses in a window: an attack spread over
    /// many), an address it does not hold is looked up in Redis too, until that one's window
    /// ends.
    pub async fn admit(&self, attempt: Attempt<'_>) -> Result<(), OAuthError> {
        let Some(address) = attempt.source.filter(|_| self.enabled) else {
            return Ok(());
        };
        let now = Instant::now();
        let known = self.addresses.get(&address, now);
        let ask_redis = match known {
            Some(seen) => seen.count < self.max_failures && seen.count * 2 >= self.max_failures,
            None => self.addresses.may_miss(now),
        };
        let mut seen = known;
        if ask_redis {
            let key = self.store.throttle_address_key(address);
            // Boxed, like `failed_at`'s: rare, and unboxed part of every request's future.
            let read = Box::pin(
                self.metrics
                    .time_redis(RedisOp::Throttle, self.store.failures(&key)),
            );
            match read.await {
                Ok(count) => seen = Some(self.learn(&self.addresses, address, Some(count), now)),
                // One line a second: with Redis down, every request near the limit comes here.
                Err(e) => crate::warn_every_second!("throttle: reading a counter: {e}"),
            }
        }
        let Some(seen) = seen.filter(|seen| seen.count >= self.max_failures) else {
            return Ok(());
        };
        if !attempt.registered() {
            return Err(self.throttled(ThrottledBy::Address, seen.until, now));
        }
        // Redis unable to say: 503, before authentication. Let in, a guess would show right or
        // wrong by its answer; refused with 429, a neighbour would wait out the whole window.
        match Box::pin(self.failed_at(attempt.client_id, address, now)).await {
            Ok(None) => Ok(()),
            // It is let in again when either window ends: the pair's may have begun earlier.
            Ok(Some(until)) => {
                Err(self.throttled(ThrottledBy::Address, seen.until.min(until), now))
            }
            Err(e) => Err(OAuthError::Unavailable(RedisOp::Throttle, e)),
        }
    }

    /// Until when `client_id`'s failure from the blocked `address` counts, if it failed there
    /// in a window, as this replica learned or else as Redis says. Another client behind the
    /// same address (a NAT, an egress gateway) is still let in: its first failure there is
    /// counted like any and blocks it there too (see the module's doc for what that lets an
    /// address guess).
    async fn failed_at(
        &self,
        client_id: &str,
        address: IpAddr,
        now: Instant,
    ) -> Result<Option<Instant>, StoreError> {
        let key = self.store.throttle_client_at_key(client_id, address);
        if let Some(seen) = self.pairs.get(&key, now) {
            return Ok(Some(seen.until));
        }
        let read = self.store.failures(&key);
        let count = self.metrics.time_redis(RedisOp::Throttle, read).await?;
        let seen = self.learn(&self.pairs, key, Some(count), now);
        Ok((seen.count > 0).then_some(seen.until))
    }
}
