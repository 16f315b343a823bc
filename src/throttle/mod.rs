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
//! choice is in `source.rs`, the local table of counters in `table.rs`; the check before
//! authentication in `admit.rs`, the count after a failure in `failures.rs`, the 429 in
//! `refusal.rs`.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use crate::clients::Registry;
use crate::config::ThrottleSettings;
use crate::metrics::Metrics;
use crate::store::Store;

mod admit;
mod counted_as;
mod failures;
mod network;
mod refusal;
mod source;
mod table;

pub use self::network::Network;
pub use self::source::{Unnamed, source_address};
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
}
