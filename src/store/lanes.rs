//! The lanes: the connections each thread keeps to, how a call gets one (connecting,
//! reconnecting after a drop, rebuilding a Cluster connection off the request path).

use std::future::Future;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::{Conn, Store, StoreError};

pub(super) fn lock(lane: &Lane) -> std::sync::MutexGuard<'_, Option<Held>> {
    lane.held
        .lock()
        .unwrap_or_else(|poison| poison.into_inner())
}

/// A multiplexed (or cluster) connection that the threads mapped to it share; empty until first
/// use and after an error. Each thread keeps to one lane, so a connection's I/O is driven on the
/// worker that created it, and a request checks nothing out of the pool: deadpool's recycle
/// sends UNWATCH + PING on every check-out, one more round trip per request. New connections
/// come from a [`Connector`] (deadpool's pool as a factory for a plain node, our own Sentinel
/// look-up, the crate's cluster client).
///
/// [`Connector`]: super::connect::Connector
#[derive(Default)]
pub(super) struct Lane {
    held: Mutex<Option<Held>>,
    /// One new connection at a time: the requests that find the lane empty together (after
    /// an outage, all of a lane's) take the one the first of them makes, rather than each
    /// making its own (in a Cluster a discovery of every node, with Sentinel a look-up). Held
    /// by the task that makes it ([`Store::connect`]), not by a request.
    connecting: Arc<tokio::sync::Mutex<()>>,
    /// Cluster mode: a replacement connection is being built off the request path.
    rebuilding: AtomicBool,
}

/// A lane's connection, with the fence generation it was made in (always 1 outside Sentinel
/// mode) and a serial of its own: a request that failed on a connection empties the lane only
/// if it still holds that one, not one that another request has made since.
#[derive(Clone)]
pub(super) struct Held {
    generation: u64,
    serial: u64,
    conn: Conn,
}

impl Held {
    fn new(generation: u64, conn: Conn) -> Self {
        static SERIAL: AtomicU64 = AtomicU64::new(0);
        let serial = SERIAL.fetch_add(1, Ordering::Relaxed);
        Self {
            generation,
            serial,
            conn,
        }
    }
}

/// A lane's replacement under way: clears its `rebuilding` flag when the task ends, or is dropped
/// unfinished (or unstarted) with its runtime; left set, the lane would never be rebuilt again.
struct Rebuilding {
    store: Store,
    index: usize,
}

impl Drop for Rebuilding {
    fn drop(&mut self) {
        let lane = &self.store.lanes[self.index];
        lane.rebuilding.store(false, Ordering::Release);
    }
}

/// Which lanes an operation uses. `WAIT` holds up every later command of its connection until
/// the replicas answer (a replica round trip; `redis.replica_ack_timeout_ms` when they do not),
/// so with `redis.replica_acks` the operations that wait (exchange, revocation) get
/// `pool_size` lanes of their own, and reads, throttling and readiness never queue behind one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lanes {
    Plain,
    Waiting,
}

/// A single master's outage, for the line that says it is over: the failure lines are held to
/// one a second, and without it the log never said when Redis answered again.
pub(super) struct Outage {
    /// The target as the start named it (password hidden).
    target: String,
    failed: AtomicU64,
    /// When the last call failed, in milliseconds since `since`.
    last_failed_ms: AtomicU64,
    /// The monotonic clock's start for it: a wall clock stepped back would hold the line.
    since: std::time::Instant,
    /// Told each time an outage is said to be over ([`Store::outage_ended`]).
    ended: tokio::sync::Notify,
}

/// How long calls must have stopped failing before the outage is said to be over. In a partial
/// one (Redis at `maxclients` refusing some connections, the others working) failures and
/// successes interleave, and a line at the first success after failures said "answers again"
/// every second while half the calls failed. It also keeps a flapping Redis to a line a second
/// at most, the failures in between counted into the next.
const QUIET_MS: u64 = 1_000;

impl Outage {
    pub(super) fn new(target: String) -> Self {
        Self {
            target,
            failed: AtomicU64::new(0),
            last_failed_ms: AtomicU64::new(0),
            since: std::time::Instant::now(),
            ended: tokio::sync::Notify::new(),
        }
    }

    /// Now, in milliseconds since `since`.
    fn now_ms(&self) -> u64 {
        u64::try_from(self.since.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// A call failed for want of Redis, at `now_ms`. Its time first: a recovery that sees the
    /// count sees the time too, and does not report a failure of this instant as over.
    fn call_failed(&self, now_ms: u64) {
        self.last_failed_ms.fetch_max(now_ms, Ordering::SeqCst);
        self.failed.fetch_add(1, Ordering::SeqCst);
    }

    /// A call succeeded at `now_ms`: the failed calls to report, if any and if none failed in
    /// the [`QUIET_MS`] before.
    fn recovered(&self, now_ms: u64) -> Option<NonZeroU64> {
        let failed = self.failed.load(Ordering::SeqCst);
        if failed == 0
            || now_ms.saturating_sub(self.last_failed_ms.load(Ordering::SeqCst)) < QUIET_MS
        {
            return None;
        }
        // Only the failures seen quiet: one counted since (or reported by another thread)
        // leaves the count to a later success.
        (self.failed)
            .compare_exchange(failed, 0, Ordering::SeqCst, Ordering::SeqCst)
            .ok()
            .and_then(NonZeroU64::new)
    }
}

thread_local! {
    static LANE: usize = {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed)
    };
}

impl Store {
    /// Runs `op` on this thread's lane, bounded by `redis.timeout_ms` end to end (connecting
    /// included). After a failure the lane is emptied, so the next call reconnects, unless
    /// the connection is known to be good (see [`StoreError::keeps_connection`]). A connection
    /// that turns out to be dropped (Redis restarted, or closed it while idle: its `timeout`, a
    /// proxy, a NAT; or it was cut after Redis ran `op`, a new connection as much as an old one)
    /// is replaced and `op` runs once more within the same deadline, so a quiet spell does not
    /// end in a 503, nor a cut answer in a spent code. Every `op` is safe to repeat: reads,
    /// deletions, the exchange script (it answers a repeat of itself with what it took: see
    /// [`EXCHANGE_SCRIPT`]); a failure count or `put_code` whose first answer was lost counts
    /// twice or reports the code as taken. In Sentinel mode the failover fence may refuse the
    /// call, its repeat or its result (see [`fence`]).
    ///
    /// [`EXCHANGE_SCRIPT`]: super::scripts::EXCHANGE_SCRIPT
    /// [`fence`]: super::fence
    pub(super) async fn with_conn<T, F, Fut>(&self, lanes: Lanes, op: F) -> Result<T, StoreError>
    where
        F: Fn(Conn) -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let generation = match &self.fence {
            Some(fence) => fence.enter()?,
            None => 1,
        };
        let index = self.lane_index(lanes);
        let lane = &self.lanes[index];
        // The serial of the connection the call ran on last, if it got one.
        let mut used = None;
        let work = async {
            let cached = lock(lane)
                .clone()
                .filter(|held| held.generation == generation);
            let held = match cached {
                Some(held) => held,
                None => {
                    let held = self.connect(index, generation, None).await?;
                    // A failover may have begun while it connected (a look-up, a turn behind
                    // another's): not sent then, as a repeat is not.
                    self.fence_still_holds(generation)?;
                    held
                }
            };
            used = Some(held.serial);
            match op(held.conn).await {
                Err(e) if e.is_connection_dropped() => {
                    self.fence_still_holds(generation)?;
                    log::debug!("redis connection dropped ({e}); reconnecting");
                    let again = self.connect(index, generation, Some(held.serial)).await?;
                    // As after a first connection: a failover begun while it connected.
                    self.fence_still_holds(generation)?;
                    used = Some(again.serial);
                    op(again.conn).await
                }
                result => result,
            }
        };
        let timed_out = match (lanes, &self.acks) {
            (Lanes::Waiting, Some(_)) => StoreError::TimeoutBehindWait(self.timeout),
            _ => StoreError::Timeout(self.timeout),
        };
        let mut result = tokio::time::timeout(self.timeout, work)
            .await
            .unwrap_or(Err(timed_out));
        if self.fence.as_ref().is_some_and(|f| !f.held(generation)) {
            // The node may have been demoted under us: what it said may not survive.
            result = Err(StoreError::Failover);
        }
        self.note_outage(&result);
        if let Err(e) = &result
            && !e.keeps_connection(self.fence.is_some())
        {
            match used {
                Some(serial)
                    if self.connector.is_cluster()
                        && matches!(
                            e,
                            StoreError::Timeout(_) | StoreError::TimeoutBehindWait(_)
                        ) =>
                {
                    self.rebuild_in_background(index, generation, serial);
                }
                Some(serial) => {
                    let mut held = lock(lane);
                    if held.as_ref().is_some_and(|h| h.serial == serial) {
                        *held = None;
                    }
                }
                None => {}
            }
        }
        result
    }

    /// Before a dropped call is sent again: a failover that began (or ended) since the call
    /// entered the fence makes it a 503 without touching Redis. Sent again, it would run on
    /// the master a look-up finds mid-failover, or on that of an earlier switch still pending.
    fn fence_still_holds(&self, generation: u64) -> Result<(), StoreError> {
        match &self.fence {
            Some(fence) if fence.enter()? != generation => Err(StoreError::Failover),
            _ => Ok(()),
        }
    }

    /// Cluster mode, after a timeout. The lane keeps its cluster connection: a master that
    /// hangs costs its own slots a timeout each, while the connection serves the others'
    /// (dropped, every request would pay a new connection's greeting of every node, the hung
    /// one included, and time out too). Its replacement, with a fresh view of the slots (the
    /// hung master may since have been failed over), is built here, off the request path, one
    /// at a time per lane and only with a connecting turn to spare, and takes the lane unless
    /// another connection already has.
    fn rebuild_in_background(&self, index: usize, generation: u64, serial: u64) {
        if self.lanes[index].rebuilding.swap(true, Ordering::AcqRel) {
            return;
        }
        // Made before the task, so that it is dropped with the task even if that never runs.
        let rebuilding = Rebuilding {
            store: self.clone(),
            index,
        };
        tokio::spawn(async move {
            let store = &rebuilding.store;
            let lane = &store.lanes[index];
            // Greeting the seeds and then every master are two rounds of node connections.
            let deadline = store.timeout * 4;
            let spare = store.connector.spare_cluster_connection();
            match tokio::time::timeout(deadline, spare).await {
                Ok(None) => log::debug!("redis cluster: no turn free for a replacement connection"),
                Ok(Some(Ok(conn))) => {
                    let mut held = lock(lane);
                    if held.as_ref().is_none_or(|h| h.serial == serial) {
                        *held = Some(Held::new(generation, conn));
                    }
                }
                Ok(Some(Err(e))) => {
                    log::debug!("redis cluster: a replacement connection failed: {e}");
                }
                Err(_) => log::debug!("redis cluster: no replacement connection in {deadline:?}"),
            }
        });
    }

    /// A new connection, kept in lane `index` for the threads that share it, unless the
    /// request that connected before this one's turn left one (other than `stale`, the
    /// connection that just dropped). Right after a Sentinel failover, to the master it
    /// announced rather than one the sentinels name (see [`fence`]).
    ///
    /// Made by a task of its own, bounded by a whole `redis.timeout_ms` from its start, which
    /// the request only waits for. Made by the request, it was cut off at the request's
    /// deadline: after a hang, the requests queued for the lane's turn each had only what was
    /// left of theirs, less than a connection takes (a network round trip, TLS, a look-up), so
    /// none was ever finished while requests kept coming, though Redis answered again. A
    /// connection now outlives the request that asked for it and serves the next.
    ///
    /// [`fence`]: super::fence
    async fn connect(
        &self,
        index: usize,
        generation: u64,
        stale: Option<u64>,
    ) -> Result<Held, StoreError> {
        let lane = &self.lanes[index];
        let turn = Arc::clone(&lane.connecting).lock_owned().await;
        let fresh = lock(lane)
            .clone()
            .filter(|held| held.generation == generation && Some(held.serial) != stale);
        if let Some(held) = fresh {
            return Ok(held);
        }
        let switched = (self.fence.as_ref()).and_then(|fence| fence.switched_master());
        if let Some(master) = &switched {
            log::debug!(
                "connecting to {}:{}, the new master",
                master.host,
                master.port
            );
        }
        let store = self.clone();
        let making = tokio::spawn(async move {
            let _turn = turn;
            let connecting = store.connector.connect(switched.as_ref());
            let conn = tokio::time::timeout(store.timeout, connecting)
                .await
                .unwrap_or(Err(StoreError::Timeout(store.timeout)))?;
            let held = Held::new(generation, conn);
            *lock(&store.lanes[index]) = Some(held.clone());
            Ok(held)
        });
        // Not finished: the runtime is shutting down (or the connector panicked).
        making
            .await
            .unwrap_or(Err(StoreError::Timeout(self.timeout)))
    }

    /// Closes the connection of the calling thread's lane. For the start's checks, which run
    /// on a thread that serves no request: left open, that connection, which nothing used or
    /// checked again, kept `sso_redis_connections` at 1 through an outage in which every
    /// connection that serves requests had gone.
    pub fn close_this_threads_lane(&self) {
        *lock(&self.lanes[self.lane_index(Lanes::Plain)]) = None;
    }

    /// Counts a call that failed for want of Redis (refused, timed out, cut), and says so once
    /// a call succeeds after such failures, none in the last second ([`QUIET_MS`]). A node that answers it cannot serve now (a demoted
    /// or loading one) is Redis answering, though its connection is replaced: counted, a
    /// read-only Redis had every exchange's failure and each `/readyz` PING after it logged as
    /// an outage that ended. Other error replies that end a connection (`max number of
    /// clients reached`, a proxy whose backend is gone) count.
    fn note_outage<T>(&self, result: &Result<T, StoreError>) {
        let Some(outage) = &self.outage else {
            return;
        };
        match result {
            Err(e) if !e.keeps_connection(self.fence.is_some()) && !e.is_node_unable() => {
                outage.call_failed(outage.now_ms())
            }
            Err(_) => {}
            Ok(_) => {
                if let Some(failed) = outage.recovered(outage.now_ms()) {
                    log::info!(
                        "Redis {} answers again, after {failed} failed call(s)",
                        outage.target
                    );
                    outage.ended.notify_one();
                }
            }
        }
    }

    /// Waits for the next outage to be said over ("answers again"); an end that came while
    /// nobody waited is kept for the next wait. Never, in a Cluster, which has no one outage.
    pub async fn outage_ended(&self) {
        match &self.outage {
            Some(outage) => outage.ended.notified().await,
            None => std::future::pending().await,
        }
    }

    /// This thread's lane. With acks the lanes come in two halves, `Plain` then `Waiting`;
    /// without, every operation shares them all.
    fn lane_index(&self, lanes: Lanes) -> usize {
        let thread = LANE.with(|i| *i);
        if self.acks.is_none() {
            return thread % self.lanes.len();
        }
        let half = self.lanes.len() / 2;
        let offset = if lanes == Lanes::Waiting { half } else { 0 };
        offset + thread % half
    }
}

#[cfg(test)]
#[path = "lanes_tests.rs"]
mod tests;
