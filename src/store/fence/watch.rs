//! The failover watchers: a task per sentinel that follows its events into the fence and
//! reconnects when its connection fails or goes silent. Apart from the fence's state, which
//! they only move.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use deadpool_redis::redis;
use futures_util::StreamExt;

use super::super::sentinel::{flagged, master_entry};
use super::Fence;

/// How often a watcher checks that its store still exists, and waits before reconnecting.
pub(super) const WATCH_TICK: Duration = Duration::from_millis(500);
/// How long a watcher's connection may stay silent before it is pinged: a connection that a
/// NAT or firewall dropped, or whose sentinel died, delivers nothing and reports nothing.
pub(super) const PING_AFTER: Duration = Duration::from_secs(5);

impl Fence {
    /// Starts a watcher per sentinel unless they run; in a Tokio runtime, whose tasks they
    /// become (they end with it, and the next call starts them again).
    pub fn watch(self: &Arc<Self>) {
        let count = self.sentinels.len();
        if self.watchers.load(Ordering::Relaxed) == 0
            && count > 0
            && (self.watchers)
                .compare_exchange(0, count, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            for (index, url) in self.sentinels.iter().enumerate() {
                let alive = Alive(Arc::downgrade(self));
                tokio::spawn(watch(alive, index, url.clone()));
            }
        }
    }
}

/// Counts a watcher task as alive until it ends or is dropped with its runtime.
struct Alive(Weak<Fence>);

impl Drop for Alive {
    fn drop(&mut self) {
        if let Some(fence) = self.0.upgrade() {
            fence.watchers.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Follows one sentinel's events until the fence (the store) is gone; reconnects after errors.
/// Losing a sentinel is said once (only the leader of a failover announces its start, so one
/// it leads goes unseen meanwhile), and so is following it again.
async fn watch(alive: Alive, index: usize, url: String) {
    let fence = &alive.0;
    // A sentinel's URL may carry its password.
    let shown = crate::redact::redis_url(&url);
    let mut lost = false;
    while fence.strong_count() > 0 {
        let ended = follow(fence, index, &url, &mut lost).await;
        if fence.strong_count() == 0 {
            break;
        }
        let why = match &ended {
            Ok(()) => "its connection closed".to_owned(),
            Err(e) => crate::redact::redis_error(e),
        };
        if std::mem::replace(&mut lost, true) {
            log::debug!("sentinel {shown}: {why}");
        } else {
            log::warn!(
                "sentinel {shown}: not followed ({why}); a failover it leads goes unseen until \
                 it is reached again"
            );
        }
        // Not reached, or no longer: nothing more to learn from it at start.
        if let Some(fence) = fence.upgrade() {
            fence.mark_checked(index);
        }
        tokio::time::sleep(WATCH_TICK).await;
    }
}

/// Follows one sentinel until its connection ends, fails, or stays silent and does not answer a
/// ping within [`WATCH_TICK`] × 4 (then [`watch`] connects again). `lost`: it was, until now.
pub(super) async fn follow(
    fence: &Weak<Fence>,
    index: usize,
    url: &str,
    lost: &mut bool,
) -> redis::RedisResult<()> {
    let client = redis::Client::open(url)?;
    let (mut sink, mut messages) = bounded(client.get_async_pubsub()).await?.split();
    bounded(sink.psubscribe("*")).await?;
    if std::mem::take(lost) {
        log::info!("sentinel {}: followed again", crate::redact::redis_url(url));
    }
    // Subscribed: from now on an event is heard. One that came before (the service started,
    // or this watcher reconnected, while the sentinel led a failover) is asked for.
    let Some(master_name) = fence.upgrade().map(|f| f.master_name.clone()) else {
        return Ok(());
    };
    let in_progress = bounded(failover_in_progress(&client, &master_name)).await;
    let Some(strong) = fence.upgrade() else {
        return Ok(());
    };
    match in_progress {
        Ok(true) => strong.failover_begun(index, "under way (found on connecting)"),
        Ok(false) => {}
        Err(e) => log::debug!(
            "sentinel {}: SENTINEL MASTER: {}",
            crate::redact::redis_url(url),
            crate::redact::redis_error(&e)
        ),
    }
    strong.mark_checked(index);
    drop(strong);
    let mut heard = Instant::now();
    loop {
        match tokio::time::timeout(WATCH_TICK, messages.next()).await {
            Ok(Some(message)) => {
                heard = Instant::now();
                let Some(fence) = fence.upgrade() else {
                    return Ok(());
                };
                let payload: String = message.get_payload().unwrap_or_default();
                fence.on_event(index, message.get_channel_name(), &payload);
            }
            Ok(None) => return Ok(()),
            Err(_) if fence.strong_count() == 0 => return Ok(()),
            Err(_) if heard.elapsed() >= PING_AFTER => {
                bounded(sink.ping::<redis::Value>()).await?;
                heard = Instant::now();
            }
            Err(_) => {}
        }
    }
}

/// Whether the sentinel leads a failover of `master_name` now: only the leader flags it.
async fn failover_in_progress(
    client: &redis::Client,
    master_name: &str,
) -> redis::RedisResult<bool> {
    let mut conn = client.get_multiplexed_async_connection().await?;
    let master = master_entry(&mut conn, master_name).await?;
    Ok(flagged(&master, "failover_in_progress"))
}

/// A call to a sentinel, cut off after [`WATCH_TICK`] × 4.
async fn bounded<T>(call: impl Future<Output = redis::RedisResult<T>>) -> redis::RedisResult<T> {
    tokio::time::timeout(WATCH_TICK * 4, call)
        .await
        .map_err(|_| timed_out())?
}

fn timed_out() -> redis::RedisError {
    redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut))
}
