//! Throttling of failed client authentication, per source address and per client id, shared by
//! all replicas through Redis.
//!
//! Semantics, with N = `throttle.max_failures` and W = `throttle.window_secs`:
//! - Every failed client authentication (unknown client, disabled client, wrong secret) adds one
//!   to two counters in Redis, one round trip for both: its source address's and its client
//!   id's. The first failure of a window starts it; it ends W seconds later (fixed window).
//! - Once an address has N failures in the window, every token request from it gets 429 until
//!   the window ends: the address is where the failures come from.
//! - Once a client id has N failures in the window, every further *failed* authentication for it
//!   gets 429 instead of 401 and is no longer counted against the client id (its address still
//!   counts it: otherwise fresh addresses could go on guessing); a request with the right secret
//!   still passes. A hard lock per client id would let anyone who knows a client id (they are
//!   public: they appear in authorization URLs) lock that client out.
//! - Successful requests pay nothing: no Redis round trip, no counter. What a replica learns of
//!   a counter (from the answers to its own failures) is kept in a small local table; only for
//!   an address it has seen at N/2 failures or more does a replica read the counter before
//!   authenticating (one round trip), so a block that other replicas' failures completed is
//!   enforced there too. A replica that has seen no failure of an address lets its requests
//!   through to authentication, and answers its first failure from the shared counter. Once
//!   its table has had to turn an address away (failures from more than 10,000 addresses in a
//!   window), it reads the counter of every address it does not hold before authenticating,
//!   until that address's window ends.
//! - Answers are exact across replicas: the N-th failure of a window gets 401, the next 429,
//!   whichever replica sees it (Redis counts atomically).
//! - If Redis fails while counting, the answer stays 401 (the failure is not counted).
//!
//! The source address is the peer's, or, when the peer is one of `throttle.trusted_proxies`,
//! the right-most `X-Forwarded-For` entry that is not a trusted proxy (none when that entry is
//! not an address: see [`source_address`]).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::ThrottleSettings;
use crate::metrics::{Metrics, RedisOp, ThrottledBy};
use crate::oauth::OAuthError;
use crate::store::Store;

/// Entries kept per table; past it, expired ones are dropped, and new ones are not kept (see
/// [`Throttle::admit`] for what a full table costs).
const MAX_TRACKED: usize = 10_000;

/// A network given as `address` or `address/prefix-length`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    address: IpAddr,
    prefix: u8,
}

impl Network {
    pub fn parse(text: &str) -> Option<Self> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address.parse().ok()?, prefix.parse().ok()?),
            None => {
                let address: IpAddr = text.parse().ok()?;
                (address, if address.is_ipv4() { 32 } else { 128 })
            }
        };
        let bits = if address.is_ipv4() { 32 } else { 128 };
        if prefix > bits {
            return None;
        }
        // `::ffff:10.0.0.5` (how a dual-stack listener shows an IPv4 peer) is that IPv4
        // address: `contains` compares peers in their canonical form, so the network must be
        // in it too.
        match address.to_canonical() {
            IpAddr::V4(v4) if address.is_ipv6() && prefix >= 96 => Some(Self {
                address: IpAddr::V4(v4),
                prefix: prefix - 96,
            }),
            _ => Some(Self { address, prefix }),
        }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let (net, ip, bits) = match (self.address, ip.to_canonical()) {
            (IpAddr::V4(n), IpAddr::V4(i)) => {
                (u128::from(n.to_bits()), u128::from(i.to_bits()), 32)
            }
            (IpAddr::V6(n), IpAddr::V6(i)) => (n.to_bits(), i.to_bits(), 128),
            _ => return false,
        };
        let shift = bits - u32::from(self.prefix);
        shift >= bits || net >> shift == ip >> shift
    }
}

/// Whether `ip` is one of the trusted proxies.
fn is_trusted(trusted: &[Network], ip: IpAddr) -> bool {
    trusted.iter().any(|n| n.contains(ip))
}

/// The address failures are counted under: the peer, or what trusted proxies say it forwarded
/// (the right-most hop that is not a trusted proxy). `None` when that hop is not an address: its
/// failures then count against the client id only, never against the proxy (which would block
/// everyone behind it).
pub fn source_address(
    peer: Option<IpAddr>,
    forwarded_for: Option<&str>,
    trusted: &[Network],
) -> Option<IpAddr> {
    let peer = peer?.to_canonical();
    if !is_trusted(trusted, peer) {
        return Some(peer);
    }
    let Some(forwarded_for) = forwarded_for else {
        // The proxy's own request (a health check, say).
        return Some(peer);
    };
    let mut source = peer;
    for hop in forwarded_for.rsplit(',') {
        let Some(ip) = hop_address(hop.trim()) else {
            crate::warn_every_second!(
                "throttle: an X-Forwarded-For hop behind a trusted proxy is not an address; \
                 such requests are throttled by client id only"
            );
            return None;
        };
        source = ip.to_canonical();
        if !is_trusted(trusted, source) {
            break;
        }
    }
    Some(source)
}

/// One `X-Forwarded-For` hop: an address, or one with a port as some proxies write it
/// (`203.0.113.7:51234`, `[2001:db8::7]:443`, `[2001:db8::7]`).
fn hop_address(hop: &str) -> Option<IpAddr> {
    hop.parse()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| hop.strip_prefix('[')?.strip_suffix(']')?.parse().ok())
}

/// An IPv6 address counts as its /64 network: a host is routinely given a whole /64 (SLAAC,
/// privacy addresses), so one address alone would let it pick a fresh one for every guess.
fn counted_as(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => IpAddr::V6((v6.to_bits() & !u128::from(u64::MAX)).into()),
        v4 => v4,
    }
}

/// What this replica last learned of one counter.
#[derive(Debug, Clone, Copy)]
struct Seen {
    count: u64,
    until: Instant,
}

/// Counters learned from Redis' answers, dropped when their window ends.
struct Table<K> {
    entries: Mutex<Entries<K>>,
    /// Milliseconds after `epoch` until which some entry's window lasts: past it (no failure
    /// anywhere lately, the common case) a look-up skips the lock.
    live_until: AtomicU64,
    epoch: Instant,
    /// Milliseconds after `epoch` until which a key may be missing for want of room: the end
    /// of the window of the last key turned away (0: none ever was).
    turned_away_until: AtomicU64,
}

struct Entries<K> {
    held: HashMap<K, Seen>,
    /// When the expired entries were last swept out (a sweep reads all of them, under the lock).
    swept: Option<Instant>,
}

/// How often a full table may be swept: in between, new keys are turned away.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

impl<K: std::hash::Hash + Eq> Table<K> {
    fn new() -> Self {
        Self {
            entries: Mutex::new(Entries {
                held: HashMap::new(),
                swept: None,
            }),
            live_until: AtomicU64::new(0),
            epoch: Instant::now(),
            turned_away_until: AtomicU64::new(0),
        }
    }

    fn get<Q>(&self, key: &Q, now: Instant) -> Option<Seen>
    where
        K: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        if self.idle(now) {
            return None;
        }
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .held
            .get(key)
            .copied()
            .filter(|seen| seen.until > now)
    }

    /// Keeps `seen` for `key`: always for a key it holds, for a new one if there is room (once
    /// the expired entries are gone); otherwise notes how long the key's window lasts.
    fn put(&self, key: K, seen: Seen, now: Instant) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if self.idle(now) {
            // Every window has ended: start afresh.
            entries.held.clear();
        }
        // Rounded up, so that `idle` never says so of a window still open.
        let open_until = self.millis(seen.until + Duration::from_nanos(999_999));
        self.live_until.fetch_max(open_until, Ordering::Relaxed);
        if let Some(known) = entries.held.get_mut(&key) {
            *known = seen;
            return;
        }
        let sweep_due = entries
            .swept
            .is_none_or(|swept| now.saturating_duration_since(swept) >= SWEEP_EVERY);
        if entries.held.len() >= MAX_TRACKED && sweep_due {
            entries.held.retain(|_, s| s.until > now);
            entries.swept = Some(now);
        }
        if entries.held.len() < MAX_TRACKED {
            entries.held.insert(key, seen);
        } else {
            let until = self.millis(seen.until);
            self.turned_away_until.fetch_max(until, Ordering::Relaxed);
        }
    }

    /// Whether every window it holds has ended (or it never held one).
    fn idle(&self, now: Instant) -> bool {
        self.millis(now) >= self.live_until.load(Ordering::Relaxed)
    }

    /// Whether a key it does not hold may yet have a live count: one was turned away for want
    /// of room, and its window has not ended. Then only Redis knows.
    fn may_miss(&self, now: Instant) -> bool {
        self.millis(now) < self.turned_away_until.load(Ordering::Relaxed)
    }

    fn millis(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
    }
}

/// The throttle of one replica: settings, what it learned, and the shared counters' store.
pub struct Throttle {
    enabled: bool,
    max_failures: u64,
    window: Duration,
    trusted: Vec<Network>,
    addresses: Table<IpAddr>,
    clients: Table<String>,
    store: Store,
    metrics: Arc<Metrics>,
    /// Set once an untrusted peer's `X-Forwarded-For` has been warned about.
    warned_untrusted: AtomicBool,
}

/// Why the throttle settings were refused.
#[derive(Debug, thiserror::Error)]
#[error("throttle.trusted_proxies: `{0}` is not an IP address or network (address/length)")]
pub struct BadProxy(String);

impl Throttle {
    pub fn new(
        settings: &ThrottleSettings,
        store: Store,
        metrics: Arc<Metrics>,
    ) -> Result<Self, BadProxy> {
        let trusted = settings
            .trusted_proxies
            .iter()
            .map(|p| Network::parse(p).ok_or_else(|| BadProxy(p.clone())))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            enabled: settings.enabled,
            max_failures: settings.max_failures,
            window: Duration::from_secs(settings.window_secs),
            trusted,
            addresses: Table::new(),
            clients: Table::new(),
            store,
            metrics,
            warned_untrusted: AtomicBool::new(false),
        })
    }

    /// The address a request's failures are counted under: an IPv6 one by its /64.
    pub fn source(&self, peer: Option<IpAddr>, forwarded_for: Option<&str>) -> Option<IpAddr> {
        if forwarded_for.is_some() {
            self.warn_of_an_untrusted_forwarder(peer);
        }
        source_address(peer, forwarded_for, &self.trusted).map(counted_as)
    }

    /// Once per process: a peer sends `X-Forwarded-For` but is not a trusted proxy. Behind a
    /// load balancer left out of `throttle.trusted_proxies`, every client counts as the
    /// balancer, and one client's wrong guesses block all of them.
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
             your load balancer, one client's wrong secrets will block every client behind it; \
             list it there (said once)"
        );
    }

    /// Before authentication: refuses a request from an address that is blocked, as far as
    /// this replica knows, or, near the limit, as Redis says. After its table of addresses
    /// turned one away (failures from more than [`MAX_TRACKED`] addresses in a window: an attack
    /// spread over many), an address it does not hold is looked up in Redis too, until that
    /// one's window ends.
    pub async fn admit(&self, source: Option<IpAddr>) -> Result<(), OAuthError> {
        let Some(address) = source.filter(|_| self.enabled) else {
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
            let read = self.store.failures(&key);
            match self.metrics.redis(RedisOp::Throttle, read).await {
                Ok((count, ttl_ms)) => {
                    seen = Some(self.learn_address(address, count, ttl_ms, now));
                }
                // One line a second: with Redis down, every request near the limit comes here.
                Err(e) => crate::warn_every_second!("throttle: reading a counter: {e}"),
            }
        }
        match seen {
            Some(seen) if seen.count >= self.max_failures => {
                Err(self.throttled(ThrottledBy::Address, seen.until, now))
            }
            _ => Ok(()),
        }
    }

    /// After a failed authentication: counts it and answers `failure`, or 429 past the limit.
    pub async fn failed(
        &self,
        client_id: &str,
        source: Option<IpAddr>,
        failure: OAuthError,
    ) -> OAuthError {
        if !self.enabled {
            return failure;
        }
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
        let client_key = client_blocked
            .is_none()
            .then(|| self.store.throttle_client_key(client_id));
        let address_key = source.map(|a| self.store.throttle_address_key(a));
        let keys: Vec<String> = client_key.into_iter().chain(address_key).collect();
        if keys.is_empty() {
            return answer(blocked);
        }
        let window_ms = u64::try_from(self.window.as_millis()).unwrap_or(u64::MAX);
        let counted = self.store.count_failure(&keys, window_ms);
        let mut counts = match self.metrics.redis(RedisOp::Throttle, counted).await {
            Ok(counts) => counts.into_iter(),
            Err(e) => {
                // One line a second: with Redis down, every wrong secret comes here.
                crate::warn_every_second!("throttle: counting a failed authentication: {e}");
                return answer(blocked);
            }
        };
        // The counts come back in the order of `keys`: the client id's (unless blocked) first.
        let client_count = if client_blocked.is_none() {
            counts.next()
        } else {
            None
        };
        if let Some((count, ttl_ms)) = client_count {
            let seen = Seen {
                count,
                until: now + ttl(ttl_ms, self.window),
            };
            self.clients.put(client_id.to_owned(), seen, now);
            if count > self.max_failures {
                blocked = Some((ThrottledBy::Client, seen.until));
            }
        }
        if let (Some(address), Some((count, ttl_ms))) = (source, counts.next()) {
            let seen = self.learn_address(address, count, ttl_ms, now);
            if count > self.max_failures {
                // Named first: the address's block covers every request from it.
                blocked = Some((ThrottledBy::Address, seen.until));
            }
        }
        answer(blocked)
    }

    fn learn_address(&self, address: IpAddr, count: u64, ttl_ms: i64, now: Instant) -> Seen {
        let seen = Seen {
            count,
            until: now + ttl(ttl_ms, self.window),
        };
        if count > 0 {
            self.addresses.put(address, seen, now);
        }
        seen
    }

    fn throttled(&self, by: ThrottledBy, until: Instant, now: Instant) -> OAuthError {
        self.metrics.throttled(by);
        let left = until.saturating_duration_since(now);
        OAuthError::Throttled {
            retry_after_secs: left.as_secs() + u64::from(left.subsec_nanos() > 0),
        }
    }
}

/// A key's TTL as Redis reports it; a key without one (which the script never leaves) counts as
/// a full window.
fn ttl(ttl_ms: i64, window: Duration) -> Duration {
    u64::try_from(ttl_ms).map_or(window, Duration::from_millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn nets(list: &[&str]) -> Vec<Network> {
        list.iter().map(|n| Network::parse(n).unwrap()).collect()
    }

    #[test]
    fn networks_match_by_prefix_and_family() {
        let lan = Network::parse("10.1.0.0/16").unwrap();
        assert!(lan.contains(ip("10.1.200.3")));
        assert!(!lan.contains(ip("10.2.0.1")));
        assert!(lan.contains(ip("::ffff:10.1.0.9")), "IPv4-mapped IPv6");
        assert!(Network::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(Network::parse("fd00::/8").unwrap().contains(ip("fd12::1")));
        assert!(!Network::parse("fd00::/8").unwrap().contains(ip("10.0.0.1")));
        assert!(
            Network::parse("192.168.1.7")
                .unwrap()
                .contains(ip("192.168.1.7"))
        );
        // A proxy written IPv4-mapped is its IPv4 address, and matches it in either form.
        for mapped in ["::ffff:10.0.0.5", "::ffff:10.0.0.0/120"] {
            let proxy = Network::parse(mapped).unwrap();
            assert!(proxy.contains(ip("10.0.0.5")), "{mapped}");
            assert!(proxy.contains(ip("::ffff:10.0.0.5")), "{mapped}");
            assert!(!proxy.contains(ip("10.0.1.5")), "{mapped}");
        }
        for bad in ["10.0.0.0/33", "fd00::/129", "proxy", "10.0.0.0/x", ""] {
            assert_eq!(Network::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_proxy() {
        let trusted = nets(&["10.0.0.0/8"]);
        let xff = Some("203.0.113.9, 198.51.100.7, 10.0.0.2");
        // Not from a trusted proxy: the header is the client's own claim.
        assert_eq!(
            source_address(Some(ip("198.51.100.1")), xff, &trusted),
            Some(ip("198.51.100.1"))
        );
        // From a trusted proxy: the right-most hop that is not a trusted proxy.
        assert_eq!(
            source_address(Some(ip("10.0.0.1")), xff, &trusted),
            Some(ip("198.51.100.7"))
        );
        // No header: the proxy's own request.
        assert_eq!(
            source_address(Some(ip("10.0.0.1")), None, &trusted),
            Some(ip("10.0.0.1"))
        );
        // Garbage where the client's address should be: no address, never the proxy's.
        for garbage in ["1.2.3.4, junk, 10.0.0.3", "", "198.51.100.7, ", "\u{FFFD}"] {
            assert_eq!(
                source_address(Some(ip("10.0.0.1")), Some(garbage), &trusted),
                None,
                "{garbage:?}"
            );
        }
        // Garbage the client sent, left of what the proxy appended, is not read.
        assert_eq!(
            source_address(
                Some(ip("10.0.0.1")),
                Some("\u{FFFD}, 198.51.100.7"),
                &trusted
            ),
            Some(ip("198.51.100.7"))
        );
        // Hops with a port, as some proxies write them.
        for (hop, address) in [
            ("198.51.100.7:51234", "198.51.100.7"),
            ("[2001:db8::7]:443", "2001:db8::7"),
            ("[2001:db8::7]", "2001:db8::7"),
            ("2001:db8::7", "2001:db8::7"),
        ] {
            assert_eq!(
                source_address(Some(ip("10.0.0.1")), Some(hop), &trusted),
                Some(ip(address)),
                "{hop}"
            );
        }
        assert_eq!(source_address(None, xff, &trusted), None);
    }

    #[test]
    fn a_table_forgets_what_has_expired_and_stays_bounded() {
        let table: Table<u32> = Table::new();
        let now = Instant::now();
        assert!(table.get(&1, now).is_none());
        assert!(!table.may_miss(now));
        let live = Seen {
            count: 3,
            until: now + Duration::from_secs(60),
        };
        table.put(1, live, now);
        table.put(2, Seen { until: now, ..live }, now);
        assert_eq!(table.get(&1, now).map(|s| s.count), Some(3));
        assert!(table.get(&2, now).is_none(), "its window has ended");
        for key in 3..(MAX_TRACKED as u32 + 10) {
            table.put(key, live, now);
        }
        assert!(table.entries.lock().unwrap().held.len() <= MAX_TRACKED);
        // Keys were turned away: for as long as their window lasts, one may be missing.
        assert!(table.may_miss(now));
        assert!(table.may_miss(now + Duration::from_secs(59)));
        assert!(!table.may_miss(now + Duration::from_secs(60)));
        assert!(
            table.get(&(MAX_TRACKED as u32 + 5), now).is_none(),
            "no room for it"
        );
        // A key it holds is still brought up to date.
        table.put(1, Seen { count: 9, ..live }, now);
        assert_eq!(table.get(&1, now).map(|s| s.count), Some(9));
    }

    #[test]
    fn once_every_window_has_ended_a_look_up_skips_the_lock() {
        let table: Table<u32> = Table::new();
        let now = Instant::now();
        assert!(table.idle(now), "nothing held yet");
        let seen = Seen {
            count: 1,
            until: now + Duration::from_secs(60),
        };
        table.put(1, seen, now);
        table.put(
            2,
            Seen {
                until: now + Duration::from_secs(30),
                ..seen
            },
            now,
        );
        assert!(
            !table.idle(now + Duration::from_secs(59)),
            "key 1's window is open"
        );
        // (It may take the lock up to a millisecond longer: it counts whole ones.)
        let later = now + Duration::from_millis(60_001);
        assert!(
            table.idle(later),
            "the entries are still there, but all expired"
        );
        // The next failure starts afresh: the expired entries go.
        table.put(
            3,
            Seen {
                until: later + Duration::from_secs(60),
                ..seen
            },
            later,
        );
        assert_eq!(table.entries.lock().unwrap().held.len(), 1);
        assert!(!table.idle(later));
    }
}
