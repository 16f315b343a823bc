//! Two gates in front of Redis, one pool for all workers:
//! - exchange slots ([`Slots::enter`] gives a [`Slot`]): how many exchanges are between taking
//!   their code and answering at once (`server.exchange_slots`);
//! - a per-shard fail-fast gate, much like a circuit breaker, for the Redis calls of every
//!   endpoint: while Redis fails for a shard of the key space, one call at a time tries it and
//!   the others get a 503 at once. Exchanges pass it with their slot; introspection, revocation
//!   and user info take no slot, only a [`Turn`] ([`Slots::call`]).
//!
//! A bare "slot" here is an exchange slot; a Redis Cluster hash slot (0..16384), which picks the
//! shard, is always a `hash_slot`.
//!
//! A Redis reply is read when its worker gets to it: with 1,000 exchanges in flight on one
//! worker each signing RS256 (~0.3–1 ms), a reply waited up to a second behind the others'
//! signatures, past `redis.timeout_ms`, and the client got a 503 for a code Redis had in fact
//! spent. An exchange takes its slot before it touches Redis, so one that cannot get a slot in
//! `server.slot_wait_ms` gets a 503 with its code untouched.
//!
//! A call to a Redis that does not answer holds its slot for `redis.timeout_ms`. Left alone,
//! such calls take every slot, and queueing behind them turns an outage into waits of
//! `slot_wait_ms` (10 s); in a Cluster, one hung master's calls would take the slots of the
//! codes on the masters that still answer. So the key space is cut into [`SHARDS`] shards by
//! Cluster hash slot (one shard outside Cluster), and once an exchange's Redis call fails, its
//! shard is *failing* until a call for it succeeds. While it fails, one exchange at a time tries
//! Redis for it (the shard's probe), and its others get a 503 at once, code untouched; those
//! already waiting for a slot are sent away too. The other shards' exchanges go on as before,
//! and a hung master, once its shards are known, holds one slot per shard. The price: after a
//! one-off failure, the shard's exchanges that come while its probe is out get a 503 even with
//! slots free. A Redis that failed a call is likely to fail the next, and a prompt 503 beats a
//! wait of `redis.timeout_ms`.
//!
//! Introspection, revocation and user info take no slot (they have no signature to queue
//! behind), but their calls for a token record take a turn at its shard ([`Slots::call`]):
//! while Redis does not answer for it (a timeout, no connection: the last call of any endpoint
//! found so), one of their calls at a time tries it, beside the exchanges' probe, and the
//! others get a 503 at once rather than a wait of `redis.timeout_ms` each, which a resource
//! server asking on every request of its own would pile up. An error Redis answers promptly (a
//! full Redis's `OOM`, a `WAIT` short of replicas) holds back exchanges only: reads still work
//! there.
//!
//! Once a stop's grace has begun ([`Slots::stop_queueing`]), no exchange waits for a slot: one
//! that got its slot late in the grace could have its code spent and its answer cut off when
//! the grace ends.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, SemaphorePermit};
use tokio::time::Instant;

use crate::oauth::OAuthError;
use crate::store::StoreError;
use crate::store::keys::SLOTS as HASH_SLOTS;

/// Shards of the Cluster key space, 512 hash slots each. A master's slot range need not end on
/// a shard's edge: the codes of a master that shares a shard with a failing one are refused
/// with it (1–4 % of all codes with three masters). Smaller shards would share less, and take
/// longer to learn: each is marked by a failed call of its own, and until then its calls take
/// slots.
pub const SHARDS: usize = 32;

/// The exchange slots of all workers, and the shards' health (see the module).
pub struct Slots {
    semaphore: Semaphore,
    wait: Duration,
    /// One outside Cluster.
    shards: Box<[Shard]>,
    stopping: AtomicBool,
    /// Wakes the exchanges waiting for a slot when a shard starts failing or a stop begins.
    give_up: Notify,
}

#[derive(Default)]
struct Shard {
    /// Whether the last answer to an exchange's call for this shard was an error, or the last
    /// call of any endpoint found Redis not answering.
    failing: AtomicBool,
    /// Whether the last call for this shard, of any endpoint, found Redis not answering
    /// (`StoreError::is_unanswered`): what the other endpoints go by. An error Redis answers
    /// promptly (a full Redis's `OOM`, a `WAIT` short of replicas) refuses exchanges, not reads.
    unanswered: AtomicBool,
    /// Held by the one exchange that tries Redis for this shard while it fails.
    probe: AtomicBool,
    /// Held by the one call of another endpoint that tries it while Redis does not answer:
    /// apart from the exchanges' probe, which may wait for a slot before it calls.
    call_probe: AtomicBool,
}

/// An exchange's slot, taken by [`Slots::enter`]: its place among the exchanges in flight, and
/// its turn at its shard; frees both when dropped.
pub struct Slot<'a> {
    /// Held only to be dropped: that frees the slot.
    _permit: SemaphorePermit<'a>,
    turn: Turn<'a>,
}

/// A Redis call's turn at its shard (the fail-fast gate, see the module): the shard's probe,
/// held when the shard fails. Another endpoint's stands alone ([`Slots::call`]); an exchange's
/// is part of its [`Slot`]. Gives the probe back when dropped.
pub struct Turn<'a> {
    probe: Probe<'a>,
    give_up: &'a Notify,
}

/// The call's shard, and whether it holds its probe (the exchanges' or the other endpoints');
/// gives the probe back when dropped, whatever happened.
struct Probe<'a> {
    shard: &'a Shard,
    /// The shard's `probe` or `call_probe`.
    flag: &'a AtomicBool,
    held: bool,
}

impl Probe<'_> {
    fn give_back(&mut self) {
        if std::mem::take(&mut self.held) {
            self.flag.store(false, Ordering::Relaxed);
        }
    }
}

impl Drop for Probe<'_> {
    fn drop(&mut self) {
        self.give_back();
    }
}

impl Slots {
    /// `cluster`: whether calls name their key's hash slot ([`Slots::enter`], [`Slots::call`]).
    pub fn new(count: usize, wait: Duration, cluster: bool) -> Self {
        let shards = if cluster { SHARDS } else { 1 };
        Self {
            semaphore: Semaphore::new(count.min(Semaphore::MAX_PERMITS)),
            wait,
            shards: (0..shards).map(|_| Shard::default()).collect(),
            stopping: AtomicBool::new(false),
            give_up: Notify::new(),
        }
    }

    /// The shard of a Cluster hash slot (0..16384); the only shard outside Cluster.
    fn shard(&self, hash_slot: Option<u16>) -> &Shard {
        &self.shards[self.shard_index(hash_slot)]
    }

    fn shard_index(&self, hash_slot: Option<u16>) -> usize {
        let index = hash_slot.map_or(0, |hash_slot| usize::from(hash_slot) * SHARDS / HASH_SLOTS);
        index.min(self.shards.len() - 1)
    }

    /// From the start of a stop's grace on, no exchange waits for a slot (see the module).
    pub fn stop_queueing(&self) {
        self.stopping.store(true, Ordering::Relaxed);
        self.give_up.notify_waiters();
    }

    /// Takes an exchange slot for an exchange whose code is in the Cluster `hash_slot` (`None`
    /// outside Cluster), or says [`OAuthError::Busy`] (see the module).
    pub async fn enter(&self, hash_slot: Option<u16>) -> Result<Slot<'_>, OAuthError> {
        let shard = self.shard(hash_slot);
        let probe = probe(shard, &shard.failing, &shard.probe)?;
        let permit = self.permit(&probe).await?;
        Ok(Slot {
            _permit: permit,
            turn: Turn {
                probe,
                give_up: &self.give_up,
            },
        })
    }

    /// A turn at Redis for a call of introspection, revocation or user info for a key in the
    /// Cluster `hash_slot` (`None` outside Cluster): no slot to wait for, but
    /// [`OAuthError::Busy`] at once while Redis does not answer for the shard and another such
    /// call tries it (see the module).
    pub fn call(&self, hash_slot: Option<u16>) -> Result<Turn<'_>, OAuthError> {
        let shard = self.shard(hash_slot);
        Ok(Turn {
            probe: probe(shard, &shard.unanswered, &shard.call_probe)?,
            give_up: &self.give_up,
        })
    }

    async fn permit(&self, probe: &Probe<'_>) -> Result<SemaphorePermit<'_>, OAuthError> {
        if let Ok(permit) = self.semaphore.try_acquire() {
            return Ok(permit);
        }
        // The probe waits its turn like any exchange; only a stop sends it away.
        let closed = || {
            self.stopping.load(Ordering::Relaxed)
                || (!probe.held && probe.shard.failing.load(Ordering::Relaxed))
        };
        // Kept across wake-ups, so the exchange keeps its place in the queue.
        let acquire = tokio::time::timeout_at(Instant::now() + self.wait, self.semaphore.acquire());
        tokio::pin!(acquire);
        loop {
            // Created before the flags are read, so setting one from now on wakes it.
            let give_up = self.give_up.notified();
            if closed() {
                return Err(OAuthError::Busy);
            }
            tokio::select! {
                // A slot first: when one came free as the shard started failing, the arm below
                // must see both.
                biased;
                waited = &mut acquire => return match waited {
                    // A slot freed by a call that failed goes to the next in line, not to Redis.
                    Ok(Ok(_)) if closed() => Err(OAuthError::Busy),
                    Ok(Ok(permit)) => Ok(permit),
                    // Timed out (the semaphore is never closed).
                    _ => Err(OAuthError::Busy),
                },
                // Another shard's failure wakes this one too: look again.
                () = give_up => {}
            }
        }
    }
}

impl Slot<'_> {
    /// Records how the exchange's Redis call went (see the module). A probe is given back here.
    /// The exchange's rare later calls (revoking a replayed code's token, deleting the record of
    /// a refused grant) are left out of the shard's health on purpose: its answer to the
    /// exchange script has told it.
    #[inline]
    pub fn redis_answered(&mut self, outcome: Result<(), &StoreError>) {
        self.turn.record(outcome, true);
    }
}

impl Turn<'_> {
    /// Records how the call went (see the module). A probe is given back here.
    #[inline]
    pub fn redis_answered(&mut self, outcome: Result<(), &StoreError>) {
        self.record(outcome, false);
    }

    /// `exchange`: whether the call was an exchange's (its [`Slot`]'s).
    fn record(&mut self, outcome: Result<(), &StoreError>, exchange: bool) {
        let shard = self.probe.shard;
        let unanswered = outcome.is_err_and(StoreError::is_unanswered);
        set(&shard.unanswered, unanswered);
        // Another endpoint's prompt refusal tells nothing of the exchange: left as it was.
        let failing = match outcome {
            Ok(()) => Some(false),
            Err(_) if exchange || unanswered => Some(true),
            Err(_) => None,
        };
        // Only when it starts failing: those waiting then have been told already.
        if failing.is_some_and(|failing| set(&shard.failing, failing)) {
            self.give_up.notify_waiters();
        }
        self.probe.give_back();
    }
}

/// `shard`'s probe `flag`, held when `failing` says it fails; `Busy` if another holds it.
fn probe<'a>(
    shard: &'a Shard,
    failing: &AtomicBool,
    flag: &'a AtomicBool,
) -> Result<Probe<'a>, OAuthError> {
    let mut probe = Probe {
        shard,
        flag,
        held: false,
    };
    if failing.load(Ordering::Relaxed) {
        let free = flag.compare_exchange(false, true, Ordering::Relaxed, Ordering::Relaxed);
        if free.is_err() {
            return Err(OAuthError::Busy);
        }
        probe.held = true;
    }
    Ok(probe)
}

/// Sets `flag` to `value`; whether it was false and now is true. Read first: a store on every
/// exchange would bounce the line between workers.
fn set(flag: &AtomicBool, value: bool) -> bool {
    if flag.load(Ordering::Relaxed) == value {
        return false;
    }
    !flag.swap(value, Ordering::Relaxed) && value
}

#[cfg(test)]
#[path = "slots_tests.rs"]
mod tests;
