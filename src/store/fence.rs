//! Sentinel failover fence: no exchange may succeed on a master that a failover is replacing.
//!
//! A failover of a healthy master promotes a replica while the old master still takes writes
//! (until Sentinel reconfigures it, seconds later) and still has its other replicas, so
//! `min-replicas-to-write` does not stop it; whatever is written there is lost, and a code
//! taken there would come back on the new master. Sentinel announces a failover on its pub/sub
//! channels (`+try-failover`) a few timer ticks (≥ 100 ms) before it sends `REPLICAOF NO ONE`.
//! A watcher per sentinel closes the fence on that event and opens it on `+switch-master` (or an
//! abort): while closed every operation is a 503 without touching Redis; an operation that was
//! under way when the fence moved is a 503 too, whatever Redis answered; and lanes reconnect
//! after each move.
//!
//! Sentinels announce `+switch-master` one by one: the others as soon as the leader's hello
//! reaches them, the leader itself only at the end of the failover, once every replica is
//! reconfigured (a second later in the tests here; up to its `failover-timeout` when replicas
//! resync). Until then the leader's `SENTINEL MASTER(S)` entry still names the outgoing master,
//! which still takes writes while it keeps a replica, and a lane that looked the master up
//! through it would take codes there. So after a switch, lanes connect to the announced master
//! directly, until every sentinel has announced it too (or [`TRUST_SWITCH`] has passed).

mod watch;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use self::watch::WATCH_TICK;
use super::StoreError;

/// A failover whose end we miss (a watcher down) must not stop the service for good.
const LONGEST_FAILOVER: Duration = Duration::from_secs(10);
/// How long lanes connect to the master a `+switch-master` named rather than look it up, at
/// most: a sentinel that is down never announces the switch, and those that did demote the
/// outgoing master about 8 s later (`+convert-to-slave`), after which a look-up through a
/// lagging sentinel finds a replica there, which the look-up passes over.
const TRUST_SWITCH: Duration = Duration::from_secs(60);
/// The longest a watcher's first check takes: connecting, subscribing and asking its sentinel,
/// each cut off after [`WATCH_TICK`] × 4, and a tick more for the task to start.
const FIRST_CHECK: Duration = WATCH_TICK.saturating_mul(3 * 4 + 1);

/// Whether operations may run: closed while a failover is, or may be, under way.
pub struct Fence {
    /// Bumped on every close and open; lanes and operations remember the one they started in.
    generation: AtomicU64,
    /// Milliseconds since `epoch` until which the fence is closed; 0 when open.
    closed_until: AtomicU64,
    epoch: Instant,
    /// Watcher tasks alive; they die with the runtime that ran them, and are then started again.
    watchers: AtomicUsize,
    sentinels: Vec<String>,
    master_name: String,
    /// The last switch announced.
    switch: Mutex<Option<Switch>>,
    /// Per sentinel, milliseconds since `epoch` until which a failover it started may still be
    /// running (0: none): an abort opens the fence only when no other sentinel's is, since the
    /// sentinels that lose the vote abort theirs while the leader's goes on.
    attempts: Mutex<Vec<u64>>,
    /// Per sentinel, whether its watcher has asked it once whether a failover is under way
    /// (or could not reach it). Until every one has, the fence is closed: a failover begun
    /// before the watchers subscribed announced itself to no one, and a look-up through a
    /// sentinel that is not leading it still names the outgoing master.
    checked: Vec<AtomicBool>,
    unchecked: AtomicUsize,
    /// Told when the last sentinel is checked.
    all_checked: tokio::sync::Notify,
}

/// A master's address as Sentinel announces it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Address {
    pub host: String,
    pub port: u16,
}

/// A `+switch-master`: the new master, and which sentinels (by index) have announced it so far.
struct Switch {
    master: Address,
    announced_by: Vec<bool>,
    until_ms: u64,
}

impl Switch {
    /// Whether lanes must still connect to its master: a sentinel has not announced it yet.
    fn pending(&self, now_ms: u64) -> bool {
        now_ms < self.until_ms && self.announced_by.iter().any(|announced| !announced)
    }

    fn has_announced(&self, sentinel: usize) -> bool {
        self.announced_by
            .get(sentinel)
            .is_some_and(|announced| *announced)
    }

    fn mark_announced(&mut self, sentinel: usize) {
        if let Some(announced) = self.announced_by.get_mut(sentinel) {
            *announced = true;
        }
    }
}

impl Fence {
    pub fn new(sentinels: &[String], master_name: &str) -> Arc<Self> {
        Arc::new(Self {
            generation: AtomicU64::new(1),
            closed_until: AtomicU64::new(0),
            epoch: Instant::now(),
            watchers: AtomicUsize::new(0),
            sentinels: sentinels.to_vec(),
            master_name: master_name.to_owned(),
            switch: Mutex::new(None),
            attempts: Mutex::new(vec![0; sentinels.len()]),
            checked: sentinels.iter().map(|_| AtomicBool::new(false)).collect(),
            unchecked: AtomicUsize::new(sentinels.len()),
            all_checked: tokio::sync::Notify::new(),
        })
    }

    /// The generation to run an operation in, or a 503 while a failover is under way. Starts
    /// the watchers if they are not running (they should be since start-up: see
    /// [`super::Store::watch_failovers`]).
    pub fn enter(self: &Arc<Self>) -> Result<u64, StoreError> {
        self.watch();
        // The generation first: a close between the two reads then either shows in
        // `closed_until` (it is stored before the generation moves) or makes `held` false.
        let generation = self.generation.load(Ordering::Acquire);
        if self.is_closed() {
            return Err(StoreError::Failover);
        }
        Ok(generation)
    }

    /// Whether a failover is under way, or may be for all we know yet (a sentinel not asked
    /// since the start): every operation is refused until it ends.
    pub fn is_closed(&self) -> bool {
        self.failover_under_way() || self.unchecked.load(Ordering::Acquire) > 0
    }

    /// Whether a failover closed the fence and has not ended (nor outlasted its longest time).
    fn failover_under_way(&self) -> bool {
        let until = self.closed_until.load(Ordering::Acquire);
        until != 0 && self.now_ms() < until
    }

    /// Sentinel `sentinel` was asked whether a failover is under way, or could not be reached.
    pub(super) fn mark_checked(&self, sentinel: usize) {
        if (self.checked.get(sentinel)).is_some_and(|c| !c.swap(true, Ordering::AcqRel))
            && self.unchecked.fetch_sub(1, Ordering::AcqRel) == 1
        {
            self.all_checked.notify_waiters();
        }
    }

    /// Starts the watchers and waits until each has checked its sentinel, at most
    /// [`FIRST_CHECK`]: a command line, or the start's report, run at once would otherwise
    /// find the fence closed only because the watchers have just begun.
    pub async fn first_checked(self: &Arc<Self>) {
        self.watch();
        let deadline = tokio::time::Instant::now() + FIRST_CHECK;
        loop {
            // Created before the count is read, so the last check from now on wakes it.
            let told = self.all_checked.notified();
            if self.unchecked.load(Ordering::Acquire) == 0
                || tokio::time::timeout_at(deadline, told).await.is_err()
            {
                return;
            }
        }
    }

    /// Sentinel `sentinel` leads a failover: heard as `+try-failover`, or found on
    /// (re)connecting when its watcher did not hear that (it subscribed later, or was
    /// reconnecting). `how` says which, for the log.
    fn failover_begun(&self, sentinel: usize, how: &str) {
        log::warn!(
            "sentinel{}: failover of {} {how}",
            self.named(sentinel),
            self.master_name
        );
        self.attempted(
            sentinel,
            self.now_ms() + LONGEST_FAILOVER.as_millis() as u64,
        );
        self.close();
    }

    /// ` <url>` of sentinel `sentinel`, password hidden, to say which one spoke: with several
    /// groups (or test sets) in one log, a line is otherwise ambiguous.
    fn named(&self, sentinel: usize) -> String {
        (self.sentinels.get(sentinel)).map_or_else(String::new, |url| {
            format!(" {}", crate::redact::redis_url(url))
        })
    }

    /// Whether the fence stayed where it was since [`Fence::enter`] gave `generation`.
    pub fn held(&self, generation: u64) -> bool {
        self.generation.load(Ordering::Acquire) == generation
    }

    /// The master that new connections must go to while not every sentinel has announced the
    /// last switch; `None`: look it up through them.
    pub fn switched_master(&self) -> Option<Address> {
        let switch = self.switch();
        let switch = switch.as_ref()?;
        switch.pending(self.now_ms()).then(|| switch.master.clone())
    }

    fn close(&self) {
        let until = self.now_ms() + LONGEST_FAILOVER.as_millis() as u64;
        self.closed_until.store(until, Ordering::Release);
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    fn open(&self) {
        self.closed_until.store(0, Ordering::Release);
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// A sentinel announced a switch from `old` to `new`. The first announcement opens the
    /// fence, ends every bid and sends new connections to `new`; the others of that switch only
    /// count (a late one must not forget the bids of a failover begun since).
    fn switched(&self, sentinel: usize, old: Address, new: Address) {
        // Held across the opening, so no lane of the new generation connects before the
        // switch is recorded.
        let mut switch = self.switch();
        let now_ms = self.now_ms();
        // A sentinel announces a switch once: the same one again during a failover is a new
        // switch to the same master, the one back from it having gone unheard (its watchers
        // were reconnecting), and must open the fence.
        let failing_over = self.closed_until.load(Ordering::Acquire) != 0;
        match switch.as_mut() {
            Some(known)
                if known.master == new && !(failing_over && known.has_announced(sentinel)) =>
            {
                // Moves nothing: the fence opened at the first announcement (and if it closed
                // since, a new failover is under way).
                known.mark_announced(sentinel);
                return;
            }
            // (A repeated announcement, during a failover, of the recorded master is a new
            // switch to it: recorded below, not dropped here.)
            Some(known) if known.pending(now_ms) && known.master != old && known.master != new => {
                // Not a switch away from the master the last one named (a late announcement
                // of an earlier failover?): lanes look the master up. Not while a failover of
                // the recorded master runs: it may be that one's new master, announced by a
                // sentinel that missed the last switch, and a look-up through the leader would
                // still find the outgoing master, which takes writes. Its own announcement (or
                // its longest time) opens the fence.
                *switch = None;
                if !self.failover_under_way() {
                    self.attempts().fill(0);
                    self.open();
                }
                return;
            }
            _ => {}
        }
        self.attempts().fill(0);
        let mut record = Switch {
            master: new,
            announced_by: vec![false; self.sentinels.len()],
            until_ms: now_ms + TRUST_SWITCH.as_millis() as u64,
        };
        record.mark_announced(sentinel);
        *switch = Some(record);
        self.open();
    }

    fn switch(&self) -> MutexGuard<'_, Option<Switch>> {
        self.switch
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Moves the fence on an event from the sentinel with index `sentinel` about our master.
    pub(super) fn on_event(&self, sentinel: usize, channel: &str, payload: &str) {
        if !self.about_our_master(channel, payload) {
            return;
        }
        if channel == "+try-failover" {
            self.failover_begun(sentinel, "started");
        } else if channel == "+switch-master" {
            log::warn!("sentinel{}: {channel} {payload}", self.named(sentinel));
            match switch_addresses(payload) {
                Some((old, new)) => self.switched(sentinel, old, new),
                None => {
                    *self.switch() = None;
                    self.attempts().fill(0);
                    self.open();
                }
            }
        } else if channel.starts_with("-failover-abort") {
            log::warn!("sentinel{}: {channel} {payload}", self.named(sentinel));
            self.attempted(sentinel, 0);
            let now = self.now_ms();
            let closed = self.closed_until.load(Ordering::Acquire) != 0;
            if closed && self.attempts().iter().all(|&until| until <= now) {
                self.open();
            }
        }
    }

    /// Whether an event names our master where Sentinel puts a master's name: first in
    /// `+switch-master <name> <old ip> <old port> <new ip> <new port>`, second in the others'
    /// instance details `master <name> <ip> <port>`. Not any word: sentinels watching other
    /// groups too would otherwise close our fence on their failovers when our name is `master`,
    /// or one of their addresses.
    fn about_our_master(&self, channel: &str, payload: &str) -> bool {
        let mut words = payload.split(' ');
        let name = if channel == "+switch-master" {
            words.next()
        } else {
            words
                .next()
                .filter(|&kind| kind == "master")
                .and(words.next())
        };
        name == Some(self.master_name.as_str())
    }

    /// Records until when the failover that sentinel `sentinel` started may run (0: it ended).
    fn attempted(&self, sentinel: usize, until_ms: u64) {
        if let Some(attempt) = self.attempts().get_mut(sentinel) {
            *attempt = until_ms;
        }
    }

    fn attempts(&self) -> MutexGuard<'_, Vec<u64>> {
        self.attempts
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

/// The old and the new master of a `+switch-master` payload:
/// `<name> <old ip> <old port> <new ip> <new port>`.
fn switch_addresses(payload: &str) -> Option<(Address, Address)> {
    let words: Vec<&str> = payload.split(' ').collect();
    let [_, old_host, old_port, new_host, new_port] = words[..] else {
        return None;
    };
    let address = |host: &str, port: &str| {
        Some(Address {
            host: host.to_owned(),
            port: port.parse().ok()?,
        })
    };
    Some((address(old_host, old_port)?, address(new_host, new_port)?))
}

#[cfg(test)]
#[path = "fence_tests.rs"]
pub(super) mod tests;
