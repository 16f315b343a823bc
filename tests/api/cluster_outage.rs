//! A Cluster with one master down: the codes of its slots get a prompt 503, the codes of the
//! other masters' slots are still exchanged. Runs its own Cluster, whose node it stops.

use std::time::{Duration, Instant};

use deadpool_redis::redis;
use futures_util::future::join_all;
use sso_token::slots::SHARDS;

use crate::helpers::{APP, Answer, TestApp, TestClient, code_record, spawn_app_with};
use crate::topology::{Cluster, query};

const TIMEOUT_MS: u64 = 300;

fn record() -> String {
    serde_json::to_string(&code_record(&APP)).unwrap()
}

/// A fresh code whose key lives on the node at `port` (which answers it instead of `MOVED`).
async fn code_on(app: &TestApp, port: u16) -> String {
    loop {
        let code = sso_token::issue_code::new_code().unwrap();
        let key = app.store.code_key(&code);
        if query::<u32>(port, redis::cmd("EXISTS").arg(&key)).is_some() {
            return code;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_master_costs_only_its_own_slots_and_those_promptly() {
    let mut cluster = tokio::task::spawn_blocking(Cluster::start).await.unwrap();
    let app = spawn_app_with(|s| {
        cluster.configure(&mut s.redis);
        s.redis.timeout_ms = TIMEOUT_MS;
    })
    .await;
    let (dead, alive) = (cluster.nodes[0].port(), cluster.nodes[1].port());
    let doomed = code_on(&app, dead).await;
    assert!(app.store.put_code(&doomed, &record(), 60).await.unwrap());

    cluster.nodes[0].crash();

    for _ in 0..3 {
        let started = Instant::now();
        let answer = Answer::of(app.exchange(&APP, &doomed).await).await;
        assert_eq!(answer.status, 503, "{}", answer.text);
        assert_eq!(answer.error(), "temporarily_unavailable");
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
    }
    let code = code_on(&app, alive).await;
    let written = app.store.put_code(&code, &record(), 60).await;
    assert!(written.unwrap(), "a live master still takes codes");
    let answer = Answer::of(app.exchange(&APP, &code).await).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    // Still ready: taking every replica out of the load balancer would cost the other
    // masters' codes too.
    assert_eq!(readiness(&app).await, 200);

    for node in &mut cluster.nodes[1..] {
        node.crash();
    }
    assert_eq!(readiness(&app).await, 503, "no master answers");
}

async fn readiness(app: &TestApp) -> u16 {
    let answer = app.http.get(app.url("/readyz")).send().await;
    answer.expect("/readyz answered").status().as_u16()
}

/// A master that hangs (frozen: its connections stay open and unanswered, as with a host whose
/// packets are dropped) is worse than a dead one: a call to it times out, and must not cost the
/// other masters' codes their exchange on the lanes it timed out on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_master_costs_only_its_own_slots() {
    a_hung_master_costs_only_its_own_slots_on(Warm::Yes).await;
}

/// The same for a lane that makes its first connection while the master hangs: greeting the
/// seeds and then the masters, each wait for the hung one fits the call's timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lane_connecting_while_a_master_hangs_serves_the_other_slots() {
    a_hung_master_costs_only_its_own_slots_on(Warm::No).await;
}

#[derive(PartialEq)]
enum Warm {
    Yes,
    No,
}

async fn a_hung_master_costs_only_its_own_slots_on(warm: Warm) {
    let cluster = tokio::task::spawn_blocking(Cluster::start).await.unwrap();
    let app = spawn_app_with(|s| {
        cluster.configure(&mut s.redis);
        s.redis.timeout_ms = 600;
        s.redis.pool_size = 1;
    })
    .await;
    let (hung, alive) = (cluster.nodes[0].port(), cluster.nodes[1].port());
    let doomed = code_on(&app, hung).await;
    assert!(app.store.put_code(&doomed, &record(), 60).await.unwrap());
    let mut codes = Vec::new();
    for _ in 0..4 {
        let code = code_on(&app, alive).await;
        assert!(app.store.put_code(&code, &record(), 60).await.unwrap());
        codes.push(code);
    }

    if warm == Warm::Yes {
        // The server's one lane has its cluster connection before the master hangs.
        let first = codes.pop().unwrap();
        assert_eq!(app.exchange(&APP, &first).await.status(), 200);
    }

    cluster.nodes[0].freeze();
    let answer = Answer::of(app.exchange(&APP, &doomed).await).await;
    assert_eq!(answer.status, 503, "{}", answer.text);

    // Ready while one master hangs, once the lane's connection has been renewed: the one that
    // saw the timeout sends readiness' PING to every master it knows, the hung one too, and
    // waits for all; its replacement knows the masters that answered.
    let deadline = Instant::now() + Duration::from_millis(4000);
    while readiness(&app).await != 200 {
        assert!(Instant::now() < deadline, "unready while one master hangs");
    }
    for code in &codes {
        let started = Instant::now();
        let answer = Answer::of(app.exchange(&APP, code).await).await;
        assert_eq!(
            answer.status,
            200,
            "after {:?}: {}",
            started.elapsed(),
            answer.text
        );
    }
    cluster.nodes[0].thaw();
}

/// A hung master's calls hold their exchange slots for `redis.timeout_ms` each. Left alone they
/// took every slot, and the codes of the masters that answer were refused (or waited) behind
/// them. Once a call fails, the codes of its part of the key space send one exchange at a time
/// to Redis and are otherwise refused at once, untouched; the others' get the slots. (On a
/// lane whose cluster connection was made while the master hangs, the others' codes also wait
/// for the redis crate's slot refreshes: README, "Redis topologies".)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_master_leaves_the_exchange_slots_to_the_others() {
    const SLOTS: usize = 4;
    const EACH: usize = 12;
    let cluster = tokio::task::spawn_blocking(Cluster::start).await.unwrap();
    let app = spawn_app_with(|s| {
        cluster.configure(&mut s.redis);
        s.redis.timeout_ms = HUNG_TIMEOUT_MS;
        s.server.workers = 1;
        s.server.exchange_slots = SLOTS;
        s.server.slot_wait_ms = 5000;
    })
    .await;
    let (hung, alive) = (cluster.nodes[0].port(), cluster.nodes[1].port());
    // Codes of one shard of the hung master's, so that its first failed call marks them all.
    let first = code_on(&app, hung).await;
    let shard_of = |code: &str| usize::from(app.store.cluster_slot(code).unwrap()) * SHARDS / 16384;
    let mut doomed = vec![first.clone()];
    while doomed.len() < SLOTS + EACH {
        let code = sso_token::issue_code::new_code().unwrap();
        if shard_of(&code) == shard_of(&first) && serves(hung, &app.store.code_key(&code)) {
            doomed.push(code);
        }
    }
    let mut live = Vec::new();
    while live.len() < EACH + 1 {
        // Not in a shard the hung master shares (where its range ends).
        let code = code_on(&app, alive).await;
        if shard_of(&code) != shard_of(&first) {
            live.push(code);
        }
    }
    for code in doomed.iter().chain(&live) {
        assert!(app.store.put_code(code, &record(), 60).await.unwrap());
    }
    // The server's lane has its cluster connection, to every master, before one hangs (one
    // made while it hangs has none to it: see `a_lane_connecting_while_a_master_hangs_...`).
    let warm = live.pop().unwrap();
    assert_eq!(app.exchange(&APP, &warm).await.status(), 200);
    cluster.nodes[0].freeze();

    // The hung master's calls fill the slots, and fail after the timeout.
    let (filling, later) = doomed.split_at(SLOTS);
    let filled = join_all(filling.iter().map(|code| timed(&app, code))).await;
    assert!(
        filled.iter().all(|(status, _)| *status == 503),
        "{filled:?}"
    );

    let (refused, served) = tokio::join!(
        join_all(later.iter().map(|code| timed(&app, code))),
        join_all(live.iter().map(|code| timed(&app, code))),
    );
    assert!(
        served
            .iter()
            .all(|&(status, took)| status == 200 && took < PROMPT),
        "the live master's codes: {served:?}"
    );
    assert!(
        refused.iter().all(|&(status, _)| status == 503),
        "the hung master's codes: {refused:?}"
    );
    let waited = refused.iter().filter(|(_, took)| *took >= PROMPT).count();
    assert!(
        waited <= 1,
        "one exchange at a time waits on the hung master: {refused:?}"
    );
    // Those refused at once never reached Redis. (The one that waited may be run by the
    // master once it thaws.)
    let at_once = refused.iter().map(|(_, took)| *took < PROMPT);
    let untouched: Vec<_> = later
        .iter()
        .zip(at_once)
        .filter_map(|(code, once)| once.then_some(code))
        .collect();

    cluster.nodes[0].thaw();
    let deadline = Instant::now() + Duration::from_secs(5);
    for code in untouched {
        loop {
            let status = app.exchange(&APP, code).await.status().as_u16();
            if status == 200 {
                break;
            }
            assert_eq!(status, 503, "before the shard is known to answer again");
            assert!(
                Instant::now() < deadline,
                "the thawed master's codes stay refused"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Introspection and user info go by the same shards: while a master hangs, the tokens whose
/// records it holds are asked about one at a time, the others refused at once, and the tokens
/// of the other masters are answered as before. (A token's record sits in its code's slot.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_master_leaves_introspection_to_the_others() {
    const EACH: usize = 6;
    let cluster = tokio::task::spawn_blocking(Cluster::start).await.unwrap();
    let app = spawn_app_with(|s| {
        cluster.configure(&mut s.redis);
        s.redis.timeout_ms = HUNG_TIMEOUT_MS;
    })
    .await;
    let (hung, alive) = (cluster.nodes[0].port(), cluster.nodes[1].port());
    let first = code_on(&app, hung).await;
    let shard_of = |code: &str| usize::from(app.store.cluster_slot(code).unwrap()) * SHARDS / 16384;
    let (mut doomed, mut live) = (vec![first.clone()], Vec::new());
    while doomed.len() < EACH + 1 {
        let code = sso_token::issue_code::new_code().unwrap();
        if shard_of(&code) == shard_of(&first) && serves(hung, &app.store.code_key(&code)) {
            doomed.push(code);
        }
    }
    while live.len() < EACH {
        let code = code_on(&app, alive).await;
        if shard_of(&code) != shard_of(&first) {
            live.push(code);
        }
    }
    let mut tokens = Vec::new();
    for code in doomed.iter().chain(&live) {
        assert!(app.store.put_code(code, &record(), 60).await.unwrap());
        tokens.push(app.token_from(&APP, code).await);
    }
    let (doomed, live) = tokens.split_at(EACH + 1);
    cluster.nodes[0].freeze();

    let first = timed_introspection(&app, &doomed[0]).await;
    assert_eq!(first.0, 503, "the hung master's first token: {first:?}");
    let (refused, served) = tokio::join!(
        join_all(
            doomed[1..]
                .iter()
                .map(|token| timed_introspection(&app, token))
        ),
        join_all(live.iter().map(|token| timed_introspection(&app, token))),
    );
    assert!(
        served
            .iter()
            .all(|&(status, active, took)| status == 200 && active && took < PROMPT),
        "the live master's tokens: {served:?}"
    );
    assert!(
        refused.iter().all(|&(status, ..)| status == 503),
        "the hung master's tokens: {refused:?}"
    );
    let waited = refused.iter().filter(|(.., took)| *took >= PROMPT).count();
    assert!(
        waited <= 1,
        "one call at a time waits on the hung master: {refused:?}"
    );
    cluster.nodes[0].thaw();
}

/// Introspection's status, whether it said active, and how long its answer took.
async fn timed_introspection(app: &TestApp, token: &str) -> (u16, bool, Duration) {
    let started = Instant::now();
    let answer = app.introspect(&APP, token).await;
    let active = answer.json["active"] == true;
    (answer.status, active, started.elapsed())
}

const HUNG_TIMEOUT_MS: u64 = 1800;
/// Well under `HUNG_TIMEOUT_MS`, well over an answer on a busy machine.
const PROMPT: Duration = Duration::from_millis(900);

/// An exchange's status and how long its answer took.
async fn timed(app: &TestApp, code: &str) -> (u16, Duration) {
    let started = Instant::now();
    let status = app.exchange(&APP, code).await.status().as_u16();
    (status, started.elapsed())
}

/// Whether the node at `port` serves `key`'s slot (answers instead of `MOVED`).
fn serves(port: u16, key: &str) -> bool {
    query::<u32>(port, redis::cmd("EXISTS").arg(key)).is_some()
}

/// With the master of a client id's throttle counter dead, its failures still count against
/// their address, whose counter lives elsewhere, and block it: a dead node does not switch the
/// throttle off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_master_leaves_the_other_throttle_counters_counting() {
    const MAX: u64 = 3;
    let mut cluster = tokio::task::spawn_blocking(Cluster::start).await.unwrap();
    let app = spawn_app_with(|s| {
        cluster.configure(&mut s.redis);
        s.redis.timeout_ms = TIMEOUT_MS;
        s.throttle.max_failures = MAX;
        s.throttle.trusted_proxies = vec!["127.0.0.0/8".into()];
    })
    .await;
    let ports: Vec<u16> = cluster.nodes.iter().map(|n| n.port()).collect();
    let client_key = app.store.throttle_client_key(APP.id);
    let dead = ports.iter().position(|p| serves(*p, &client_key)).unwrap();
    // An address whose own counter and pair counter live on other masters.
    let address = (1..=254)
        .map(|i| format!("198.51.100.{i}"))
        .find(|a| {
            let ip = a.parse().unwrap();
            let keys = [
                app.store.throttle_address_key(ip),
                app.store.throttle_client_at_key(APP.id, ip),
            ];
            keys.iter().all(|k| !serves(ports[dead], k))
        })
        .unwrap();

    cluster.nodes[dead].crash();

    let wrong = TestClient {
        secret: "wrong-secret-Ux9Kd2Mv7Qa4Lp1Ze6Rb",
        ..APP
    };
    for i in 0..MAX {
        let answer = app.exchange_from(&wrong, "OC-1-unknown", &address).await;
        assert_eq!(answer.status, 401, "failure {i}: {}", answer.text);
    }
    let right_secret = app.exchange_from(&APP, "OC-1-unknown", &address).await;

    assert_eq!(
        (right_secret.status, right_secret.error()),
        (429, "invalid_client"),
        "the client that failed, from the blocked address: {}",
        right_secret.text
    );
    // Counted in Redis, on a master still up, not only in the replica's own table (which
    // counts what Redis cannot).
    let address_key = app.store.throttle_address_key(address.parse().unwrap());
    let holder = ports.iter().find(|p| serves(**p, &address_key)).copied();
    let holder = holder.expect("a live master serves the address's counter");
    let counted: Option<u64> = query(holder, redis::cmd("GET").arg(&address_key));
    assert_eq!(counted, Some(MAX));
}
