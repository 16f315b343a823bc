//! Throttling of failed client authentication, per source address and per client id, shared by
//! all replicas through Redis.
//!
//! Semantics, with N = `throttle.max_failures` and W = `throttle.window_secs`:
//! - Every failed client authentication (unknown client, disabled client, wrong secret) adds one
//!   to three counters in Redis, one round trip for all: its source address's and, for a
//!   registered client id, that id's and that id's at that address. An unknown id has no secret
//!   to guess, and a counter per made-up id would let an attacker fill Redis and the local
//!   table with them: its failure adds twice to one decoy counter instead, which nothing reads,
//!   so that it costs the same calls as a registered id's and its answer takes as long (an
//!   attacker timing failed answers learns no registered ids). The first failure of a window
//!   starts it; it ends W seconds later (fixed window).
//! - Once an address has N failures in the window, its token, introspection and revocation
//!   requests get 429 until the window ends, for every client id that failed from it and every
//!   unknown one: the address is where the failures come from. A registered client id that has
//!   not failed from it is still let in (one more round trip, to ask Redis): several clients
//!   behind one NAT or egress gateway share its address, and one with a stale secret must not
//!   lock the others out. Its first failure there is counted as any and blocks it there too, so
//!   the address guesses one secret more per registered client id (and as many as it has
//!   requests in flight for that id when that failure lands). Unknown ids are refused without
//!   a check, registered ones checked: the time that takes tells them apart, but client ids
//!   are public anyway (below).
//! - Once a client id has N failures in the window, every further *failed* authentication for it
//!   gets 429 instead of 401 and is no longer counted against the client id (its address still
//!   counts it: otherwise fresh addresses could go on guessing); a request with the right secret
//!   still passes. A hard lock per client id would let anyone who knows a client id (they are
//!   public: they appear in authorization URLs) lock that client out.
//! - Successful requests pay nothing (but for the other clients of a blocked address, above):
//!   no Redis round trip, no counter. What a replica learns of a counter (from the answers to
//!   its own failures) is kept in a small local table; only for an address it has seen at N/2
//!   failures or more does a replica read the counter before authenticating (one round trip),
//!   so a block that other replicas' failures completed is enforced there too. A replica that
//!   has seen no failure of an address lets its requests through to authentication, and
//!   answers its first failure from the shared counter. A full table (failures from more than
//!   10,000 addresses in a window) makes room for an address at N/2 or more by dropping those
//!   below, which it would not read anyway; once it has had to turn away one at N/2 or more
//!   (10,000 such addresses), it reads the counter of every address it does not hold before
//!   authenticating, until that address's window ends.
//! - Answers are exact across replicas: the N-th failure of a window gets 401, the next 429,
//!   whichever replica sees it (Redis counts atomically).
//! - If Redis fails while counting, the failure is counted in the replica's own table instead
//!   (as one more on what it last learned), so each replica still blocks after N failures in a
//!   window while Redis is down (but for addresses its full table turns away, above); a local
//!   count lasts its window at most. If Redis cannot say whether a client id failed from a
//!   blocked address, the answer is 503, before authentication: nothing was checked, so nothing
//!   is given away.
//!
//! The source address is the peer's, or, when the peer is one of `throttle.trusted_proxies`,
//! the right-most `X-Forwarded-For` entry that is not a trusted proxy (none when that entry is
//! not an address, or the proxy sent no `X-Forwarded-For`: see [`source_address`]). That
//! choice is in `source.rs`, the local table of counters in `table.rs`.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::clients::Registry;
use crate::config::ThrottleSettings;
use crate::metrics::{Metrics, RedisOp, ThrottledBy};
use crate::oauth::OAuthError;
use crate::store::{Store, StoreError};

mod source;
mod table;

pub use self::source::{Network, Unnamed, source_address};
use self::source::{counted_as, is_trusted};
#[doc(hidden)]
pub use self::table::MAX_TRACKED;
use self::table::{Seen, Table};

/// The throttle of one replica: settings, what it learned, and the shared counters' store.
pub struct Throttle {
    enabled: bool,
    max_failures: u64,
    window: Duration,
    trusted: Vec<Network>,
    addresses: Table<IpAddr>,
    clients: Table<String>,
    /// Client ids that failed from an address, by their Redis key.
    pairs: Table<String>,
    store: Store,
    metrics: Arc<Metrics>,
    /// Set once an untrusted peer's `X-Forwarded-For` has been warned about.
    warned_untrusted: AtomicBool,
}

/// One client authentication, as the throttle sees it.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    /// The client id presented, whatever it is.
    pub client_id: &'a str,
    /// The registry it is checked against: asked whether it knows the id only on the rare
    /// paths (a blocked address, a failure), not on every request.
    pub registry: &'a Registry,
    /// The address its failures count against (see [`Throttle::source`]).
    pub source: Option<IpAddr>,
}

impl Attempt<'_> {
    fn registered(&self) -> bool {
        self.registry.get(self.client_id).is_some()
    }
}

impl Throttle {
    /// From validated settings: their `proxies` are `trusted_proxies` parsed.
    pub fn new(settings: &ThrottleSettings, store: Store, metrics: Arc<Metrics>) -> Self {
        debug_assert_eq!(
            settings.proxies.len(),
            settings.trusted_proxies.len(),
            "throttle settings not validated"
        );
        Self {
            enabled: settings.enabled,
            max_failures: settings.max_failures,
            window: Duration::from_secs(settings.window_secs),
            trusted: settings.proxies.clone(),
            // An address below half the limit is not read before authentication (`admit`),
            // held or not: it need not crowd out one that is.
            addresses: Table::with_floor(settings.max_failures.div_ceil(2)),
            clients: Table::new(),
            pairs: Table::new(),
            store,
            metrics,
            warned_untrusted: AtomicBool::new(false),
        }
    }

    /// `throttle.trusted_proxies`, for the access log's source address.
    pub fn trusted_proxies(&self) -> &[Network] {
        &self.trusted
    }

    /// The address a request's failures are counted under: an IPv6 one by its /64.
    pub fn source(&self, peer: Option<IpAddr>, forwarded_for: Option<&str>) -> Option<IpAddr> {
        if forwarded_for.is_some() {
            self.warn_of_an_untrusted_forwarder(peer);
        }
        match source_address(peer, forwarded_for, &self.trusted) {
            Ok(source) => Some(counted_as(source)),
            Err(unnamed) => {
                if self.enabled {
                    unnamed.warn();
                }
                None
            }
        }
    }

    /// Once per process: a peer sends `X-Forwarded-For` but is not a trusted proxy. Behind a
    /// load balancer left out of `throttle.trusted_proxies`, every caller counts as the
    /// balancer, and anyone's wrong guesses block a client id for all of them.
    fn warn_of_an_untrusted_forwarder(&self, peer: Option<IpAddr>) {
        let Some(peer) = peer.map(|p| p.to_canonical()) else {
            return;
        };
        if !self.enabled
            || self.warned_untrusted.load(Ordering::Relaxed)
            || is_trusted(&self.trusted, peer)
            || self.warned_untrusted.swap(true, Ordering::Relaxed)
        {
            return;
        }
        log::warn!(
            "throttle: {peer} sends X-Forwarded-For but is not in throttle.trusted_proxies, so \
             failed client authentications through it count against {peer} itself: if it is \
             your load balancer, anyone's wrong secrets will block a client id for every caller \
             behind it; list it there (said once)"
        );
    }

    /// Before authentication: refuses a request from an address that is blocked, as far as
    /// this replica knows, or, near the limit, as Redis says, unless it comes for a registered
    /// client id that has not failed from that address in the window (see [`Self::failed_at`]).
    /// After its table of addresses turned one at N/2 or more away (that many failures from
    /// more than [`MAX_TRACKED`](table::MAX_TRACKED) addresses in a window: an attack spread over
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

    /// What one counter's answer teaches this replica about `key`: Redis' count, kept in
    /// `table` once there is one; or, when Redis did not answer (`None`), one more failure
    /// counted in `table` itself.
    fn learn<K: std::hash::Hash + Eq>(
        &self,
        table: &Table<K>,
        key: K,
        counter: Option<(u64, i64)>,
        now: Instant,
    ) -> Seen {
        let Some(counter) = counter else {
            return table.add_one(key, self.window, now);
        };
        let seen = self.seen(counter, now);
        if seen.count > 0 {
            table.put(key, seen, now);
        }
        seen
    }

    /// A counter as Redis reports it (count, milliseconds left): a key without a TTL, which
    /// the script never leaves, counts as a full window.
    fn seen(&self, (count, ttl_ms): (u64, i64), now: Instant) -> Seen {
        let left = u64::try_from(ttl_ms).map_or(self.window, Duration::from_millis);
        Seen {
            count,
            until: now + left,
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

    fn throttled(&self, by: ThrottledBy, until: Instant, now: Instant) -> OAuthError {
        self.metrics.throttled(by);
        OAuthError::Throttled {
            retry_after_secs: secs_left(until, now),
        }
    }
}

/// Whole seconds from `now` to `until`, rounded up.
fn secs_left(until: Instant, now: Instant) -> u64 {
    let left = until.saturating_duration_since(now);
    left.as_secs() + u64::from(left.subsec_nanos() > 0)
}
