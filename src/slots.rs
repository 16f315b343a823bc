//! Exchange slots: how many exchanges are between taking their code and answering at once
//! (`server.exchange_slots` per worker), and which of them may go to Redis while it fails.
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
//! shard is *failing* until a call for it succeeds. While it fails, one exchange at a time
//! tries Redis for the failing shards (the probe) and the others get a 503 at once, code
//! untouched; those already waiting for a slot are sent away too. The other shards' exchanges
//! go on as before. So too for every shard once a stop's grace has begun
//! ([`Slots::stop_queueing`]): an exchange that got its slot late in the grace could have its
//! code spent and its answer cut off when the grace ends.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, SemaphorePermit};
use tokio::time::Instant;

use crate::oauth::OAuthError;

/// Shards of the Cluster key space, 512 hash slots each. A master's slot range need not end on
/// a shard's edge: the codes of a master that shares a shard with a failing one are refused
/// with it (1–4 % of all codes with three masters). Smaller shards would share less, and take
/// longer to learn: each is marked by a failed call of its own, and until then its calls take
/// slots.
pub const SHARDS: usize = 32;

pub struct Slots {
    semaphore: Semaphore,
    wait: Duration,
    /// Whether the last Redis call of an exchange of this shard failed; one entry outside Cluster.
    failing: Box<[AtomicBool]>,
    /// Held by the one exchange that tries Redis for a failing shard.
    probe: AtomicBool,
    stopping: AtomicBool,
    /// Wakes the exchanges waiting for a slot when a shard starts failing or a stop begins.
    give_up: Notify,
}

/// An exchange's slot, taken by [`Slots::enter`]; frees it when dropped.
pub struct Slot<'a> {
    _permit: SemaphorePermit<'a>,
    probe: Probe<'a>,
    shard: usize,
}

/// The probe, when this exchange holds it; gives it back when dropped, whatever happened.
struct Probe<'a> {
    slots: &'a Slots,
    held: bool,
}

impl Drop for Probe<'_> {
    fn drop(&mut self) {
        if self.held {
            self.slots.probe.store(false, Ordering::Release);
        }
    }
}

impl Slots {
    /// `cluster`: whether exchanges name their code's hash slot ([`Slots::enter`]).
    pub fn new(count: usize, wait: Duration, cluster: bool) -> Self {
        let shards = if cluster { SHARDS } else { 1 };
        Self {
            semaphore: Semaphore::new(count.min(Semaphore::MAX_PERMITS)),
            wait,
            failing: (0..shards).map(|_| AtomicBool::new(false)).collect(),
            probe: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            give_up: Notify::new(),
        }
    }

    /// The shard of a Cluster hash slot (0..16384); the only shard outside Cluster.
    fn shard(&self, slot: Option<u16>) -> usize {
        let shard = slot.map_or(0, |slot| usize::from(slot) * SHARDS / 16384);
        shard.min(self.failing.len() - 1)
    }

    /// From the start of a stop's grace on, no exchange waits for a slot (see the module).
    pub fn stop_queueing(&self) {
        self.stopping.store(true, Ordering::Relaxed);
        self.give_up.notify_waiters();
    }

    /// Takes a slot for an exchange whose code is in the Cluster hash `slot` (`None` outside
    /// Cluster), or says [`OAuthError::Busy`] (see the module).
    pub async fn enter(&self, slot: Option<u16>) -> Result<Slot<'_>, OAuthError> {
        let shard = self.shard(slot);
        let mut probe = Probe {
            slots: self,
            held: false,
        };
        if self.is_failing(shard) {
            let free =
                self.probe
                    .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed);
            if free.is_err() {
                return Err(OAuthError::Busy);
            }
            probe.held = true;
        }
        let permit = self.permit(shard, probe.held).await?;
        Ok(Slot {
            _permit: permit,
            probe,
            shard,
        })
    }

    async fn permit(&self, shard: usize, probing: bool) -> Result<SemaphorePermit<'_>, OAuthError> {
        if let Ok(permit) = self.semaphore.try_acquire() {
            return Ok(permit);
        }
        // The probe waits its turn like any exchange; only a stop sends it away.
        let closed =
            || self.stopping.load(Ordering::Relaxed) || (!probing && self.is_failing(shard));
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

    fn is_failing(&self, shard: usize) -> bool {
        self.failing[shard].load(Ordering::Relaxed)
    }
}

impl Slot<'_> {
    /// Records how the exchange's Redis call went (see the module). A probe gives its turn back
    /// here: what remains of its exchange does not touch Redis.
    pub fn redis_answered(&mut self, ok: bool) {
        let slots = self.probe.slots;
        let failing = &slots.failing[self.shard];
        if ok {
            // Read first: a store on every exchange would bounce the line between workers.
            if failing.load(Ordering::Relaxed) {
                failing.store(false, Ordering::Relaxed);
            }
        } else {
            failing.store(true, Ordering::Relaxed);
            slots.give_up.notify_waiters();
        }
        if std::mem::take(&mut self.probe.held) {
            slots.probe.store(false, Ordering::Release);
        }
    }
}

#[cfg(test)]
#[path = "slots_tests.rs"]
mod tests;
