//! A Redis Cluster failover while exchanges stream in: asked for (`CLUSTER FAILOVER` on the
//! replica of one master, as an operator moves a master off a host), or forced by the master's
//! crash (with `redis.replica_acks` = 1, which a deployment needs for that: see
//! `replica_acks`). The clients see only 200s and 503s, the codes of that master's slots are
//! exchanged on the new master within seconds, and no code is exchanged twice. The Sentinel
//! counterpart is in `failover`. Each test runs its own Cluster.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deadpool_redis::redis;
use tokio::task::JoinSet;

use crate::failover::{Outcome, assert_no_code_twice, blocking, exchange_and_record};
use crate::helpers::{APP, TestApp, code_record, spawn_app_with};
use crate::topology::{Cluster, query, script_calls, wait_until};

/// Streams in all; the first [`ON_SHARD`] exchange only codes of the failing-over master (all
/// of them for a crash: the other masters have no replica to acknowledge their writes).
const STREAMS: usize = 4;
const ON_SHARD: usize = 2;
const TIMEOUT_MS: u64 = 300;
/// The service must be back to 200s this soon after the failover began. A crash takes longer:
/// the replicas see the master fail after `cluster-node-timeout` (2 s), and once one has taken
/// over, the other must sync with it before it acknowledges writes (1-5 s here).
const RECOVERY: Duration = Duration::from_secs(10);
const CRASH_RECOVERY: Duration = Duration::from_secs(20);
/// Exchanges of the failed-over slots that must succeed after the new master took over and
/// after the last 503.
const HEALED: usize = 20;

#[derive(Clone, Copy, PartialEq, Debug)]
enum Failover {
    /// `CLUSTER FAILOVER` on the replica: it takes over once it has all its master's writes.
    Asked,
    /// The master killed: one of its two replicas takes over after `cluster-node-timeout`.
    Crash,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_failover_mid_stream_costs_only_503s_and_heals_by_itself() {
    failover_mid_stream(Failover::Asked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_master_crash_mid_stream_costs_only_503s_and_heals_by_itself() {
    failover_mid_stream(Failover::Crash).await;
}

async fn failover_mid_stream(failover: Failover) {
    let mut cluster = blocking(move || {
        let mut cluster = Cluster::start();
        cluster.add_replica(0);
        if failover == Failover::Crash {
            cluster.add_replica(0);
        }
        cluster
    })
    .await;
    let old_master = cluster.nodes[0].port();
    let replicas: Vec<u16> = cluster.replicas.iter().map(|r| r.port()).collect();
    let shard = blocking(move || own_slots(old_master)).await;
    let app = Arc::new(
        spawn_app_with(|s| {
            cluster.configure(&mut s.redis);
            s.redis.timeout_ms = TIMEOUT_MS;
            s.server.workers = 2;
            if failover == Failover::Crash {
                s.redis.replica_acks = 1;
                // Below `timeout_ms`, as it must be, but not so short that a loaded
                // machine's WAIT times out once the new master has its replica.
                s.redis.replica_ack_timeout_ms = TIMEOUT_MS * 5 / 6;
            }
        })
        .await,
    );
    let on_shard = {
        let (app, shard) = (Arc::clone(&app), shard.clone());
        move |code: &str| {
            let slot = app.store.cluster_slot(code).expect("Cluster mode");
            shard.iter().any(|range| range.contains(&slot))
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    let outcomes = Arc::new(Mutex::new(Vec::new()));
    let mut streams = JoinSet::new();
    let (on_shard_streams, recovery) = match failover {
        Failover::Asked => (ON_SHARD, RECOVERY),
        Failover::Crash => (STREAMS, CRASH_RECOVERY),
    };
    for n in 0..STREAMS {
        let (app, stop, outcomes) = (Arc::clone(&app), Arc::clone(&stop), Arc::clone(&outcomes));
        let on_shard = on_shard.clone();
        let wanted = move |code: &str| n >= on_shard_streams || on_shard(code);
        streams.spawn(async move { stream(&app, wanted, &stop, &outcomes).await });
    }

    // Mid-stream: once codes of the shard are being exchanged.
    let serving_by = Instant::now() + RECOVERY;
    while !(outcomes.lock().unwrap().iter()).any(|o: &Outcome| o.status == 200 && on_shard(&o.code))
    {
        assert!(
            Instant::now() < serving_by,
            "nothing served in {RECOVERY:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let scripts_before: Vec<u64> = {
        let replicas = replicas.clone();
        blocking(move || replicas.iter().map(|&r| script_calls(r, None)).collect()).await
    };
    let failover_at = Instant::now();
    match failover {
        Failover::Asked => {
            let replica = replicas[0];
            let asked =
                blocking(move || query::<String>(replica, redis::cmd("CLUSTER").arg("FAILOVER")));
            assert_eq!(
                asked.await.as_deref(),
                Some("OK"),
                "CLUSTER FAILOVER refused"
            );
        }
        Failover::Crash => cluster.nodes[0].crash(),
    }
    let new_master = {
        let replicas = replicas.clone();
        blocking(move || {
            let mut new_master = None;
            wait_until("a replica took over its master's slots", || {
                new_master = (replicas.iter().copied())
                    .find(|&r| role(r).as_deref() == Some("master") && cluster_ok(r));
                new_master.is_some()
            });
            new_master.expect("the new master")
        })
        .await
    };
    let switched_at = Instant::now();
    // Until HEALED exchanges of the shard succeeded after the switch and the last 503, or
    // RECOVERY is over (the check below then fails). Counted here, not after the streams
    // stop: a 503 in their tail (a WAIT that timed out on a loaded machine, with the
    // service healed) would otherwise undo a recovery that was on time.
    let (healed, healed_at) = loop {
        let healed = healed_on_shard(&outcomes.lock().unwrap(), switched_at, &on_shard);
        if healed >= HEALED || failover_at.elapsed() > recovery {
            break (healed, Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    stop.store(true, Ordering::Relaxed);
    streams.join_all().await;
    let outcomes = std::mem::take(&mut *outcomes.lock().unwrap());

    let unexpected: Vec<String> = (outcomes.iter())
        .filter(|o| o.status != 200 && o.status != 503)
        .map(|o| format!("{} {}", o.status, o.text))
        .collect();
    assert!(unexpected.is_empty(), "not 200 or 503: {unexpected:?}");
    let failed = outcomes.iter().filter(|o| o.status == 503).count();
    // A dead master's slots cannot be served until a replica takes over.
    assert!(
        failover == Failover::Asked
            || (outcomes.iter()).any(|o| o.status == 503 && o.at > failover_at),
        "no 503 while the master was dead"
    );
    assert!(
        healed >= HEALED,
        "{healed} exchanges of the failed-over slots succeeded after the switch and the last \
         503 within {recovery:?} ({failed} 503s)"
    );
    // They ran on the new master (each exchange is one script call on its code's master).
    let at = replicas
        .iter()
        .position(|&r| r == new_master)
        .expect("a replica");
    let scripts = blocking(move || script_calls(new_master, None)).await - scripts_before[at];
    assert!(
        scripts >= HEALED as u64,
        "{scripts} script calls on the new master"
    );

    assert_no_code_twice(&app, &outcomes).await;
    // Said, not asserted: the streams' tail is a few requests, each of which may meet a WAIT
    // that times out on a loaded machine.
    let after_healing = (outcomes.iter())
        .filter(|o| o.status == 503 && o.at > healed_at)
        .count();
    eprintln!(
        "cluster failover ({failover:?}): {} exchanges, {failed} answered 503, {after_healing} \
         of them after the recovery was counted",
        outcomes.len()
    );
}

/// The slot ranges the node on `port` serves (`CLUSTER NODES`, its own line).
fn own_slots(port: u16) -> Vec<std::ops::RangeInclusive<u16>> {
    let nodes: String = query(port, redis::cmd("CLUSTER").arg("NODES")).expect("CLUSTER NODES");
    let own = (nodes.lines())
        .find(|line| line.contains("myself"))
        .expect("its own line");
    let ranges: Vec<_> = (own.split_whitespace().skip(8))
        .filter_map(|field| {
            let (first, last) = field.split_once('-').unwrap_or((field, field));
            Some(first.parse().ok()?..=last.parse().ok()?)
        })
        .collect();
    assert!(!ranges.is_empty(), "no slots: {own}");
    ranges
}

/// Whether the node on `port` says `cluster_state:ok`.
fn cluster_ok(port: u16) -> bool {
    query::<String>(port, redis::cmd("CLUSTER").arg("INFO"))
        .is_some_and(|info| info.contains("cluster_state:ok"))
}

/// `master` or `slave` (`ROLE`'s first field).
fn role(port: u16) -> Option<String> {
    let role: Vec<redis::Value> = query(port, &redis::cmd("ROLE"))?;
    redis::from_redis_value(role.first()?.clone()).ok()
}

/// How many exchanges of the shard's codes answered after `since` are 200s after the last 503.
fn healed_on_shard(outcomes: &[Outcome], since: Instant, on_shard: impl Fn(&str) -> bool) -> usize {
    let after: Vec<u16> = (outcomes.iter())
        .filter(|o| o.at > since && on_shard(&o.code))
        .map(|o| o.status)
        .collect();
    let healing = after.iter().rposition(|&s| s == 503).map_or(0, |i| i + 1);
    after[healing..].iter().filter(|&&s| s == 200).count()
}

/// Writes fresh codes that `wanted` accepts (through the service's own Cluster client, which
/// follows the slots' moves) and exchanges each, until `stop`.
async fn stream(
    app: &TestApp,
    wanted: impl Fn(&str) -> bool,
    stop: &AtomicBool,
    outcomes: &Mutex<Vec<Outcome>>,
) {
    let record = serde_json::to_string(&code_record(&APP)).expect("record");
    while !stop.load(Ordering::Relaxed) {
        let code = loop {
            let code = sso_token::issue_code::new_code().expect("code");
            if wanted(&code) {
                break code;
            }
        };
        let written = tokio::time::timeout(
            Duration::from_secs(2),
            app.store.put_code(&code, &record, 60),
        );
        if !matches!(written.await, Ok(Ok(true))) {
            // The shard is switching masters.
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        exchange_and_record(app, code, outcomes).await;
    }
}
