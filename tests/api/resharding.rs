//! Resharding a Cluster: the slot of a code moves to another master while exchanges go on. Redis
//! refuses the exchange script while the slot migrates, since its token record does not exist
//! yet and a script with some keys missing cannot run on a migrating slot
//! (`TRYAGAIN` from the source while the code is there; `ASK`, then `TRYAGAIN` from the target,
//! once it has moved). The cluster client asks again until the slot has moved, within
//! `redis.timeout_ms`. Each test runs its own Cluster.

use std::time::{Duration, Instant};

use deadpool_redis::redis;

use crate::helpers::{APP, Answer, TestApp, spawn_app_with};
use crate::redis_server::RedisServer;
use crate::topology::{Cluster, error_replies, query};

const TIMEOUT_MS: u64 = 1000;

/// One slot moving from the master on `from` to the master on `to`, by hand, as `redis-cli
/// --cluster reshard` does it: `IMPORTING` on the target, `MIGRATING` on the source, `MIGRATE`
/// of its keys, then `NODE` on every master.
pub struct Migration {
    slot: u16,
    from: u16,
    to: u16,
    to_id: String,
}

impl Migration {
    /// Starts moving the slot of `key`.
    pub fn start(key: &str, from: u16, to: u16) -> Self {
        let slot = query(from, redis::cmd("CLUSTER").arg("KEYSLOT").arg(key)).expect("KEYSLOT");
        let id = |port: u16| -> String {
            query(port, redis::cmd("CLUSTER").arg("MYID")).expect("CLUSTER MYID")
        };
        let migration = Self {
            slot,
            from,
            to,
            to_id: id(to),
        };
        migration.set(to, "IMPORTING", &id(from));
        migration.set(from, "MIGRATING", &migration.to_id);
        migration
    }

    /// Moves `keys` (all of the slot that exist) to the target, and the slot with them: the
    /// target is told first, then the source, as `CLUSTER SETSLOT`'s documentation asks (in the
    /// other order each would redirect the slot to the other for a moment).
    pub fn finish(&self, cluster: &Cluster, keys: &[&str]) {
        let mut migrate = redis::cmd("MIGRATE");
        migrate
            .arg("127.0.0.1")
            .arg(self.to)
            .arg("")
            .arg(0)
            .arg(5000)
            .arg("KEYS");
        for key in keys {
            migrate.arg(*key);
        }
        let moved: Option<String> = query(self.from, &migrate);
        assert_eq!(moved.as_deref(), Some("OK"), "MIGRATE {keys:?}");
        let others = cluster.nodes.iter().map(RedisServer::port);
        let others = others.filter(|port| ![self.to, self.from].contains(port));
        for port in [self.to, self.from].into_iter().chain(others) {
            self.set(port, "NODE", &self.to_id);
        }
    }

    pub fn slot(&self) -> u16 {
        self.slot
    }

    fn set(&self, port: u16, state: &str, node: &str) {
        let setslot = redis::cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(self.slot)
            .arg(state)
            .arg(node)
            .clone();
        let done: Option<String> = query(port, &setslot);
        assert_eq!(done.as_deref(), Some("OK"), "SETSLOT {state} on {port}");
    }
}

/// A fresh code whose key lives on the master at `port`.
pub async fn code_on(app: &TestApp, port: u16) -> String {
    loop {
        let code = app.issue_code(&APP).await;
        let here = query::<u32>(port, redis::cmd("EXISTS").arg(app.store.code_key(&code)));
        if here == Some(1) {
            return code;
        }
    }
}

/// A Cluster and a service in front of it that has served one exchange (connected, the client's
/// secret checked once), so that the next one reaches Redis at once.
async fn cluster_app() -> (Cluster, TestApp) {
    let cluster = tokio::task::spawn_blocking(Cluster::start).await.unwrap();
    let app = spawn_app_with(|s| {
        cluster.configure(&mut s.redis);
        s.redis.timeout_ms = TIMEOUT_MS;
    })
    .await;
    let warm = app.issue_code(&APP).await;
    let answer = Answer::of(app.exchange(&APP, &warm).await).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    (cluster, app)
}

/// An exchange that arrives while its code's slot migrates is held until the slot has moved (the
/// cluster client retries `TRYAGAIN` every few milliseconds), then served by the new master, once.
/// The crate's own first retry came after 1.28 s, past `redis.timeout_ms`: a 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exchange_during_its_slots_migration_is_served_once_the_slot_has_moved() {
    let (cluster, app) = cluster_app().await;
    let (from, to) = (cluster.nodes[0].port(), cluster.nodes[1].port());
    let code = code_on(&app, from).await;
    let code_key = app.store.code_key(&code);
    let migration = Migration::start(&code_key, from, to);

    let refusals = || error_replies(from, None, "TRYAGAIN") + error_replies(to, None, "TRYAGAIN");
    let refused_before = refusals();
    let started = Instant::now();
    let exchange = app.exchange(&APP, &code);
    let finish = async {
        // The slot moves on once Redis has refused the script (or after 600 ms, which the
        // assertion on refusals below then reports), not after a guessed delay.
        let deadline = Instant::now() + Duration::from_millis(600);
        while Instant::now() < deadline && tokio::task::block_in_place(refusals) == refused_before {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let (cluster, migration, key) = (&cluster, &migration, code_key.as_str());
        tokio::task::block_in_place(|| migration.finish(cluster, &[key]));
    };
    let (response, ()) = tokio::join!(exchange, finish);
    let answer = Answer::of(response).await;
    let took = started.elapsed();

    assert_eq!(answer.status, 200, "after {took:?}: {}", answer.text);
    assert!(took < Duration::from_millis(TIMEOUT_MS), "{took:?}");
    assert!(
        refusals() > refused_before,
        "the script was refused while the slot migrated"
    );
    let token_key = app.store.token_key_of_code(&code);
    let record: Option<u32> = query(to, redis::cmd("EXISTS").arg(token_key));
    assert_eq!(record, Some(1), "spent on the new master");
    let replay = Answer::of(app.exchange(&APP, &code).await).await;
    assert_eq!(replay.status, 400, "{}", replay.text);
    assert_eq!(replay.error(), "invalid_grant");
}

/// A slot that stays migrating: the exchange is a 503 within `redis.timeout_ms`, the code is left
/// where it was, and once the slot has moved the same code is exchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exchange_while_its_slot_stays_migrating_is_a_503_that_leaves_the_code() {
    let (cluster, app) = cluster_app().await;
    let (from, to) = (cluster.nodes[0].port(), cluster.nodes[1].port());
    let code = code_on(&app, from).await;
    let code_key = app.store.code_key(&code);
    let migration = Migration::start(&code_key, from, to);

    let started = Instant::now();
    let refused = Answer::of(app.exchange(&APP, &code).await).await;
    let took = started.elapsed();

    assert_eq!(refused.status, 503, "{}", refused.text);
    assert_eq!(refused.error(), "temporarily_unavailable");
    assert!(
        took < Duration::from_millis(TIMEOUT_MS + 500),
        "503 after {took:?}"
    );
    let untouched: Option<u32> = query(from, redis::cmd("EXISTS").arg(&code_key));
    assert_eq!(untouched, Some(1), "the code stays on the old master");

    tokio::task::block_in_place(|| migration.finish(&cluster, &[&code_key]));
    let answer = Answer::of(app.exchange(&APP, &code).await).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
}
