//! What one replica learned of the shared counters, in a bounded table whose entries go when
//! their window ends.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Entries kept per table; past it, expired ones are dropped, and new ones are not kept (see
/// [`Throttle::admit`](super::Throttle::admit) for what a full table costs). Public for the API
/// test that fills a table, and only for it.
pub const MAX_TRACKED: usize = 10_000;

/// What this replica last learned of one counter.
#[derive(Debug, Clone, Copy)]
pub(super) struct Seen {
    pub(super) count: u64,
    pub(super) until: Instant,
}

/// Counters learned from Redis' answers, dropped when their window ends.
pub(super) struct Table<K> {
    entries: Mutex<Entries<K>>,
    /// Milliseconds after `epoch` until which some entry's window lasts: past it (no failure
    /// anywhere lately, the common case) a look-up skips the lock.
    live_until: AtomicU64,
    epoch: Instant,
    /// Milliseconds after `epoch` until which a key may be missing for want of room: the end
    /// of the window of the last key turned away at `floor` or more (0: none ever was).
    turned_away_until: AtomicU64,
    /// The count from which a key is worth its place: below it, a key is kept only while there
    /// is room, given up for one at `floor` or more, and turned away without a note.
    floor: u64,
}

struct Entries<K> {
    held: HashMap<K, Seen>,
    /// How many of `held` count less than the floor: with none, a key at the floor that finds
    /// the table full is turned away without reading every entry for room (once the table is
    /// full of keys at the floor, each new one from a spread-out attack would).
    below_floor: usize,
    /// When the expired entries were last swept out (a sweep reads all of them, under the lock).
    swept: Option<Instant>,
    /// Passes that gave up keys below the floor for one at it.
    #[cfg(test)]
    floor_passes: usize,
}

/// How often a full table may be swept: in between, new keys are turned away.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Two reports of one counter whose windows end this close together are of the same window
/// (each is "now + milliseconds left", read at a slightly different moment).
const SAME_WINDOW: Duration = Duration::from_secs(1);

impl<K: std::hash::Hash + Eq> Table<K> {
    /// A table in which every key is worth its place.
    pub(super) fn new() -> Self {
        Self::with_floor(0)
    }

    /// A table that keeps keys below `floor` only while there is room: for addresses, those
    /// below half the limit, whose counter `admit` reads no more when held than when missing.
    /// Failures spread thin over many addresses then leave the others' requests unread.
    pub(super) fn with_floor(floor: u64) -> Self {
        Self {
            entries: Mutex::new(Entries {
                held: HashMap::new(),
                below_floor: 0,
                swept: None,
                #[cfg(test)]
                floor_passes: 0,
            }),
            live_until: AtomicU64::new(0),
            epoch: Instant::now(),
            turned_away_until: AtomicU64::new(0),
            floor,
        }
    }

    pub(super) fn get<Q>(&self, key: &Q, now: Instant) -> Option<Seen>
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

    /// Keeps `seen` for `key`: always for a key it holds (but a lower count of the same window:
    /// answers to concurrent requests arrive in any order), for a new one if there is room (once
    /// the expired entries are gone); otherwise notes how long the key's window lasts.
    pub(super) fn put(&self, key: K, seen: Seen, now: Instant) {
        let mut entries = self.lock(now);
        self.keep(&mut entries, key, seen, now, |known| {
            known.until <= now
                || seen.count >= known.count
                || seen.until > known.until + SAME_WINDOW
        });
    }

    /// One more failure for `key`, counted here (Redis could not): on top of the count it holds
    /// in a window still open, or the first of a new `window`. One lock for the read and the
    /// write, so that concurrent failures each count.
    pub(super) fn add_one(&self, key: K, window: Duration, now: Instant) -> Seen {
        let mut entries = self.lock(now);
        let seen = match entries.held.get(&key).filter(|known| known.until > now) {
            Some(known) => Seen {
                count: known.count + 1,
                until: known.until,
            },
            None => Seen {
                count: 1,
                until: now + window,
            },
        };
        self.keep(&mut entries, key, seen, now, |_| true);
        seen
    }

    fn lock(&self, now: Instant) -> std::sync::MutexGuard<'_, Entries<K>> {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if self.idle(now) {
            // Every window has ended: start afresh.
            entries.held.clear();
            entries.below_floor = 0;
        }
        entries
    }

    /// Stores `seen` for `key` under the lock: over a held entry when `replaces` says so.
    fn keep(
        &self,
        entries: &mut Entries<K>,
        key: K,
        seen: Seen,
        now: Instant,
        replaces: impl FnOnce(&Seen) -> bool,
    ) {
        // Rounded up, so that `idle` never says so of a window still open.
        let open_until = self.millis(seen.until + Duration::from_nanos(999_999));
        self.live_until.fetch_max(open_until, Ordering::Relaxed);
        let floor = self.floor;
        if let Some(known) = entries.held.get_mut(&key) {
            if replaces(known) {
                let was_below = known.count < floor;
                *known = seen;
                match (was_below, seen.count < floor) {
                    (true, false) => entries.below_floor = entries.below_floor.saturating_sub(1),
                    (false, true) => entries.below_floor += 1,
                    _ => {}
                }
            }
            return;
        }
        let sweep_due = entries
            .swept
            .is_none_or(|swept| now.saturating_duration_since(swept) >= SWEEP_EVERY);
        if entries.held.len() >= MAX_TRACKED && sweep_due {
            let mut below = 0;
            entries.held.retain(|_, s| {
                let live = s.until > now;
                below += usize::from(live && s.count < floor);
                live
            });
            entries.below_floor = below;
            entries.swept = Some(now);
        }
        let worth_noting = seen.count >= floor;
        if entries.held.len() >= MAX_TRACKED && worth_noting && entries.below_floor > 0 {
            // Room at the cost of keys below the floor: a full pass under the lock, as the
            // sweep's, paid only by a key at the floor that finds the table full while some
            // key below it is there to give up its place.
            entries.held.retain(|_, s| s.count >= floor);
            entries.below_floor = 0;
            #[cfg(test)]
            {
                entries.floor_passes += 1;
            }
        }
        if entries.held.len() < MAX_TRACKED {
            entries.below_floor += usize::from(seen.count < floor);
            entries.held.insert(key, seen);
        } else if worth_noting {
            let until = self.millis(seen.until);
            self.turned_away_until.fetch_max(until, Ordering::Relaxed);
        }
    }

    /// Whether every window it holds has ended (or it never held one).
    pub(super) fn idle(&self, now: Instant) -> bool {
        self.millis(now) >= self.live_until.load(Ordering::Relaxed)
    }

    /// Whether a key it does not hold may yet have a live count: one was turned away for want
    /// of room, and its window has not ended. Then only Redis knows.
    pub(super) fn may_miss(&self, now: Instant) -> bool {
        self.millis(now) < self.turned_away_until.load(Ordering::Relaxed)
    }

    fn millis(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
#[path = "table_tests.rs"]
mod tests;
