use std::num::NonZeroU64;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use deadpool_redis::redis;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::super::error::tests::refused;
use super::super::fence::Fence;
use super::super::fence::tests::command_name;
use super::*;
use crate::config::RedisSettings;

/// A data node that says it is the master (`ROLE`, after `role_delay`) and `OK` to anything
/// else, and counts the connections made to it. The calls below never send it a command of
/// their own.
async fn node(listener: TcpListener, connections: Arc<AtomicUsize>, role_delay: Duration) {
    while let Ok((mut socket, _)) = listener.accept().await {
        connections.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(async move {
            let (mut seen, mut buf) = (Vec::new(), [0u8; 4096]);
            while let Ok(n @ 1..) = socket.read(&mut buf).await {
                seen.extend_from_slice(&buf[..n]);
                while let Some((name, used)) = command_name(&seen) {
                    seen.drain(..used);
                    let reply: &[u8] = if name.eq_ignore_ascii_case("role") {
                        tokio::time::sleep(role_delay).await;
                        b"*3\r\n$6\r\nmaster\r\n:0\r\n*0\r\n"
                    } else {
                        b"+OK\r\n"
                    };
                    if socket.write_all(reply).await.is_err() {
                        return;
                    }
                }
            }
        });
    }
}

/// A Sentinel-mode store whose lanes go to [`node`]: the first of two sentinels (neither
/// reachable) announced it as the new master, the second has not yet.
async fn store_on_a_switched_master() -> (Store, Arc<Fence>, Arc<AtomicUsize>) {
    store_on_a_slow_switched_master(Duration::ZERO).await
}

/// The same, its node answering `ROLE` only after `role_delay`.
async fn store_on_a_slow_switched_master(
    role_delay: Duration,
) -> (Store, Arc<Fence>, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(AtomicUsize::new(0));
    tokio::spawn(node(listener, Arc::clone(&connections), role_delay));
    let settings: RedisSettings = toml::from_str(
        r#"
        mode = "sentinel"
        url = "redis://unused"
        sentinels = ["redis://127.0.0.1:1", "redis://127.0.0.1:2"]
        master_name = "mymaster"
        pool_size = 1
        timeout_ms = 2000
        key_prefix = "test:"
        "#,
    )
    .unwrap();
    let store = Store::new(&settings).unwrap();
    let fence = Arc::clone(store.fence.as_ref().unwrap());
    // As the watchers do once they asked their sentinel (or found it unreachable).
    fence.mark_checked(0);
    fence.mark_checked(1);
    let switch = format!("mymaster 10.0.0.1 6379 127.0.0.1 {port}");
    fence.on_event(0, "+switch-master", &switch);
    assert!(fence.switched_master().is_some());
    (store, fence, connections)
}

/// What a connection that Redis (or something on the way) reset gives.
fn dropped() -> StoreError {
    let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
    StoreError::Redis(redis::RedisError::from(reset))
}

/// Runs a call whose first attempt sees `events` (sentinel 0's) and then a dropped connection;
/// returns its result and how many times it was sent.
async fn dropped_call(
    store: &Store,
    fence: &Fence,
    events: &[&str],
) -> (Result<(), StoreError>, usize) {
    let sent = AtomicUsize::new(0);
    let result = store
        .with_conn(Lanes::Plain, |_conn| {
            let first = sent.fetch_add(1, Ordering::SeqCst) == 0;
            if first {
                for event in events {
                    fence.on_event(0, event, "master mymaster 10.0.0.2 6380");
                }
            }
            async move { if first { Err(dropped()) } else { Ok(()) } }
        })
        .await;
    (result, sent.load(Ordering::SeqCst))
}

#[tokio::test]
async fn a_dropped_call_is_sent_again_on_a_new_connection() {
    let (store, fence, connections) = store_on_a_switched_master().await;
    let (result, sent) = dropped_call(&store, &fence, &[]).await;
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(sent, 2);
    assert_eq!(connections.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_dropped_call_is_not_sent_again_once_a_failover_began() {
    let (store, fence, connections) = store_on_a_switched_master().await;
    let (result, sent) = dropped_call(&store, &fence, &["+try-failover"]).await;
    assert!(matches!(result, Err(StoreError::Failover)), "{result:?}");
    assert_eq!(sent, 1, "sent again while the fence was closed");
    assert_eq!(connections.load(Ordering::SeqCst), 1, "reconnected");
}

#[tokio::test]
async fn a_dropped_call_is_not_sent_again_across_a_failover_that_ended() {
    let (store, fence, connections) = store_on_a_switched_master().await;
    let events = ["+try-failover", "-failover-abort-no-good-slave"];
    let (result, sent) = dropped_call(&store, &fence, &events).await;
    assert!(fence.enter().is_ok(), "the fence is open again");
    assert!(matches!(result, Err(StoreError::Failover)), "{result:?}");
    assert_eq!(sent, 1, "sent again in another generation");
    assert_eq!(connections.load(Ordering::SeqCst), 1, "reconnected");
}

#[tokio::test]
async fn a_call_is_not_sent_once_a_failover_began_while_it_connected() {
    let (store, fence, connections) =
        store_on_a_slow_switched_master(Duration::from_millis(300)).await;
    let sent = AtomicUsize::new(0);
    let call = store.with_conn(Lanes::Plain, |_conn| {
        sent.fetch_add(1, Ordering::SeqCst);
        async { Ok(()) }
    });
    let failover = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        fence.on_event(0, "+try-failover", "master mymaster 10.0.0.2 6380");
    };
    let (result, ()) = tokio::join!(call, failover);
    assert!(matches!(result, Err(StoreError::Failover)), "{result:?}");
    assert_eq!(
        sent.load(Ordering::SeqCst),
        0,
        "sent after the fence closed"
    );
    assert_eq!(connections.load(Ordering::SeqCst), 1);
}

/// A call that Redis answered, during which `events` (sentinel 0's: channel, payload) came:
/// its result.
async fn answered_call(
    store: &Store,
    fence: &Fence,
    events: &[(&str, &str)],
) -> Result<(), StoreError> {
    store
        .with_conn(Lanes::Plain, |_conn| {
            for (channel, payload) in events {
                fence.on_event(0, channel, payload);
            }
            async { Ok(()) }
        })
        .await
}

#[tokio::test]
async fn an_answer_is_a_503_when_a_failover_began_or_ended_during_its_call() {
    // The node may have been demoted while it answered: what it said may not survive.
    let begun = ("+try-failover", "master mymaster 10.0.0.2 6380");
    let aborted = (
        "-failover-abort-no-good-slave",
        "master mymaster 10.0.0.2 6380",
    );
    let switched = ("+switch-master", "mymaster 10.0.0.2 6380 10.0.0.3 6381");
    let failovers: [&[(&str, &str)]; 3] = [&[begun], &[begun, aborted], &[switched]];
    for events in failovers {
        let (store, fence, _) = store_on_a_switched_master().await;
        let result = answered_call(&store, &fence, events).await;
        assert!(
            matches!(result, Err(StoreError::Failover)),
            "{events:?}: {result:?}"
        );
    }
    let (store, fence, _) = store_on_a_switched_master().await;
    let calm = answered_call(&store, &fence, &[]).await;
    assert!(calm.is_ok(), "no event: {calm:?}");
}

/// A Cluster-mode store; nothing listens on its seed.
fn cluster_store() -> Store {
    store_of(
        r#"
        mode = "cluster"
        url = "redis://unused"
        nodes = ["redis://127.0.0.1:1"]
        pool_size = 1
        timeout_ms = 200
        key_prefix = "test:"
        "#,
    )
}

/// A store of the `[redis]` settings in `toml`.
fn store_of(toml: &str) -> Store {
    let settings: RedisSettings = toml::from_str(toml).unwrap();
    Store::new(&settings).unwrap()
}

fn rebuilding(store: &Store) -> bool {
    store.lanes[0].rebuilding.load(Ordering::Acquire)
}

#[test]
fn a_lane_whose_rebuild_was_dropped_with_its_runtime_can_be_rebuilt_again() {
    let store = cluster_store();
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    };
    let first = runtime();
    first.block_on(async { store.rebuild_in_background(0, 1, 0) });
    assert!(rebuilding(&store), "the task has not run yet");
    drop(first);
    assert!(
        !rebuilding(&store),
        "dropped with its runtime, the task left the flag set"
    );

    // And a rebuild that runs to its end clears it too.
    runtime().block_on(async {
        store.rebuild_in_background(0, 1, 0);
        let done = async {
            while rebuilding(&store) {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(5), done)
            .await
            .expect("the rebuild ended");
    });
}

/// A standalone store whose one lane goes to [`node`], with the count of its connections.
async fn store_on_a_node(timeout_ms: u64) -> (Store, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(AtomicUsize::new(0));
    tokio::spawn(node(listener, Arc::clone(&connections), Duration::ZERO));
    let store = store_of(&format!(
        r#"
        url = "redis://127.0.0.1:{port}"
        pool_size = 2
        timeout_ms = {timeout_ms}
        key_prefix = "test:"
        "#
    ));
    (store, connections)
}

/// The start's checks close the lane they used (`Application::run_until_stopped`): a connection
/// nothing uses again is not counted in `sso_redis_connections`, which must read 0 in an outage.
#[tokio::test]
async fn closing_this_threads_lane_leaves_no_connection_counted() {
    let (store, _) = store_on_a_node(2000).await;
    store.ping().await.unwrap();
    assert_eq!(store.connections(), 1);

    store.close_this_threads_lane();

    assert_eq!(store.connections(), 0);
}

/// The lane of every thread that calls, for each kind of operation: each thread's in its own
/// thread, as requests call.
fn lanes_of_threads(store: &Store, threads: usize) -> Vec<(usize, usize)> {
    (0..threads)
        .map(|_| {
            let store = store.clone();
            std::thread::spawn(move || {
                (
                    store.lane_index(Lanes::Plain),
                    store.lane_index(Lanes::Waiting),
                )
            })
            .join()
            .unwrap()
        })
        .collect()
}

/// A store of `pool_size = 3` (its connections unreachable) with `replica_acks`.
fn three_lanes(replica_acks: u32) -> Store {
    let mut settings: RedisSettings = toml::from_str(&format!(
        r#"
        url = "redis://127.0.0.1:1"
        pool_size = 3
        timeout_ms = 200
        replica_acks = {replica_acks}
        key_prefix = "test:"
        "#,
    ))
    .unwrap();
    // As the configuration's validation sets it from `pool_size`.
    settings.lanes = 3;
    Store::new(&settings).unwrap()
}

/// With `redis.replica_acks` the operations that `WAIT` have lanes of their own: a read never
/// queues behind a `WAIT` on its connection. Threads spread over the lanes of each half.
#[test]
fn with_replica_acks_operations_that_wait_never_share_a_lane_with_the_others() {
    let store = three_lanes(1);
    assert_eq!(store.lanes.len(), 6);

    let lanes = lanes_of_threads(&store, 12);
    let plain: std::collections::BTreeSet<usize> = lanes.iter().map(|l| l.0).collect();
    let waiting: std::collections::BTreeSet<usize> = lanes.iter().map(|l| l.1).collect();
    assert!(
        plain.iter().chain(&waiting).all(|&lane| lane < 6),
        "{lanes:?}"
    );
    assert!(plain.is_disjoint(&waiting), "{lanes:?}");
    assert!(plain.len() > 1 && waiting.len() > 1, "{lanes:?}");
}

#[test]
fn without_replica_acks_threads_spread_over_every_lane() {
    let store = three_lanes(0);
    assert_eq!(store.lanes.len(), 3);

    let lanes = lanes_of_threads(&store, 12);
    assert!(
        lanes.iter().all(|&(plain, waiting)| plain == waiting),
        "{lanes:?}"
    );
    let used: std::collections::BTreeSet<usize> = lanes.iter().map(|l| l.0).collect();
    assert!(used.iter().all(|&lane| lane < 3), "{lanes:?}");
    assert!(used.len() > 1, "{lanes:?}");
}

/// A connection belongs to the fence generation it was made in: once the fence has moved, even
/// with the master unchanged (an aborted failover), the next call connects anew, never on the
/// connection made before, which may lead to a demoted master.
#[tokio::test]
async fn after_the_fence_moved_a_call_connects_anew_and_never_reuses_the_connection_made_before() {
    let (store, fence, connections) = store_on_a_switched_master().await;
    let call = || store.with_conn(Lanes::Plain, |_conn| async { Ok(()) });
    call().await.unwrap();
    call().await.unwrap();
    assert_eq!(
        connections.load(Ordering::SeqCst),
        1,
        "the lane's connection is kept"
    );

    fence.on_event(0, "+try-failover", "master mymaster 10.0.0.2 6380");
    fence.on_event(
        0,
        "-failover-abort-no-good-slave",
        "master mymaster 10.0.0.2 6380",
    );
    assert!(fence.enter().is_ok());
    call().await.unwrap();
    assert_eq!(
        connections.load(Ordering::SeqCst),
        2,
        "ran on the connection made before the fence moved"
    );
}

/// A standalone store; nothing listens at its URL.
fn standalone_store() -> Store {
    store_of(
        r#"
        url = "redis://127.0.0.1:1"
        pool_size = 1
        timeout_ms = 200
        key_prefix = "test:"
        "#,
    )
}

/// With `redis.replica_acks`, a call that times out on a lane that sends `WAIT` says so: each
/// `WAIT` holds up the commands behind it on its connection, so a replica slow to acknowledge
/// looks like a master that does not answer. The other lanes' timeouts stay plain.
#[tokio::test]
async fn a_timeout_on_a_lane_that_waits_for_replicas_says_so() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(node(
        listener,
        Arc::new(AtomicUsize::new(0)),
        Duration::ZERO,
    ));
    let store = store_of(&format!(
        r#"
        url = "redis://127.0.0.1:{port}"
        pool_size = 1
        timeout_ms = 100
        replica_acks = 1
        replica_ack_timeout_ms = 50
        key_prefix = "test:"
        "#
    ));
    let stalled = |lanes| {
        store.with_conn(lanes, |_conn| {
            std::future::pending::<Result<(), StoreError>>()
        })
    };

    let waiting = stalled(Lanes::Waiting).await;
    let plain = stalled(Lanes::Plain).await;

    assert!(
        matches!(waiting, Err(StoreError::TimeoutBehindWait(_))),
        "{waiting:?}"
    );
    assert!(matches!(plain, Err(StoreError::Timeout(_))), "{plain:?}");
}

/// Only calls that failed for want of Redis make an outage whose end is logged: an error
/// reply (a full Redis, a key of another type, a read-only replica) is Redis answering, and a
/// call that succeeds after it is no recovery to announce.
#[test]
fn only_failures_that_found_no_redis_make_an_outage() {
    let store = standalone_store();
    let outage = store.outage.as_deref().expect("outside a Cluster");
    // note_outage reads the clock: a second after it, the failures are over.
    let now = outage.now_ms() + QUIET_MS;

    store.note_outage::<()>(&Err(refused(b"-OOM command not allowed\r\n")));
    store.note_outage::<()>(&Err(refused(b"-WRONGTYPE Operation against a key\r\n")));
    // End their connection (a demoted or loading node), but Redis answered all the same.
    store.note_outage::<()>(&Err(refused(
        b"-READONLY You can't write against a read only replica.\r\n",
    )));
    store.note_outage::<()>(&Err(refused(
        b"-LOADING Redis is loading the dataset in memory\r\n",
    )));
    assert_eq!(outage.recovered(now), None, "error replies counted");

    // A Redis at maxclients answers so, and is out of reach all the same.
    store.note_outage::<()>(&Err(refused(b"-ERR max number of clients reached\r\n")));
    store.note_outage::<()>(&Err(dropped()));
    store.note_outage::<()>(&Err(StoreError::Timeout(Duration::from_millis(200))));
    assert_eq!(outage.recovered(now), NonZeroU64::new(3));
    assert_eq!(outage.recovered(now + 1_000), None, "reported twice");
}

/// The end of an outage is said once calls have stopped failing for a second: not at each
/// success of a partial outage (some connections refused, others working), nor more than once
/// a second for a flapping Redis, whose failures in between count into the next line.
#[test]
fn an_outage_is_said_over_once_calls_stopped_failing_for_a_second() {
    let store = standalone_store();
    let outage = store.outage.as_deref().expect("outside a Cluster");

    assert_eq!(outage.recovered(7_000), None, "nothing failed");
    outage.call_failed(7_000);
    assert_eq!(
        outage.recovered(7_500),
        None,
        "a call failed half a second ago"
    );
    assert_eq!(
        outage.recovered(8_000),
        NonZeroU64::new(1),
        "a second without failures"
    );
    assert_eq!(outage.recovered(8_001), None, "nothing failed since");
    // Half the calls fail: successes in between are no recovery.
    for at in [8_100, 8_400, 8_700, 9_000] {
        outage.call_failed(at);
        assert_eq!(outage.recovered(at + 150), None, "partial outage, at {at}");
    }
    assert_eq!(outage.recovered(10_000), NonZeroU64::new(4));
}

/// After a failed call the lane keeps its connection only if the failure says nothing against
/// it (an error reply such as `OOM`); an unknown reply, or no answer in time (outside a
/// Cluster), empties it and the next call connects anew. None of these is sent again: only a
/// dropped connection is.
#[tokio::test]
async fn a_failed_call_is_not_sent_again_and_empties_the_lane_unless_its_connection_is_good() {
    let (store, connections) = store_on_a_node(200).await;
    // The error the call fails with; none: it never answers.
    type Failure = Option<fn() -> StoreError>;
    let failures: [(&str, Failure, usize); 3] = [
        (
            "an error reply",
            Some(|| refused(b"-OOM command not allowed\r\n")),
            1,
        ),
        ("an unknown reply", Some(|| StoreError::Reply), 2),
        ("no answer in time", None, 3),
    ];
    for (failure, error, made) in failures {
        let sent = AtomicUsize::new(0);
        let result: Result<(), _> = store
            .with_conn(Lanes::Plain, |_conn| {
                sent.fetch_add(1, Ordering::SeqCst);
                async move {
                    match error {
                        Some(error) => Err(error()),
                        // `with_conn` gives up at `redis.timeout_ms`.
                        None => std::future::pending().await,
                    }
                }
            })
            .await;
        assert!(result.is_err(), "{failure}: {result:?}");
        assert_eq!(sent.load(Ordering::SeqCst), 1, "{failure}: sent again");
        store.ping().await.unwrap();
        assert_eq!(
            connections.load(Ordering::SeqCst),
            made,
            "{failure}: connections made so far"
        );
    }
}
