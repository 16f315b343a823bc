//! The master is looked up through whichever sentinel answers first: one that hangs, even
//! listed first, costs nothing. (Through the redis crate's look-up, which takes the sentinels'
//! answers in list order, every new connection waited for it, past `redis.timeout_ms`: 503s.)

use std::time::{Duration, Instant};

use deadpool_redis::redis;

use crate::helpers::{APP, Answer, spawn_app_with};
use crate::topology::{SentinelSet, query};

// Room for a slow machine; a look-up that waited for the hung sentinel, which never answers,
// would still run past it.
const TIMEOUT_MS: u64 = 2000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_sentinel_listed_first_does_not_stall_the_look_up() {
    let set = tokio::task::spawn_blocking(SentinelSet::start)
        .await
        .unwrap();
    // Connections to it are made (the kernel accepts them) and then hear nothing, ever.
    let hung = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hung_url = format!("redis://{}", hung.local_addr().unwrap());
    let app = spawn_app_with(|s| {
        set.configure(&mut s.redis);
        s.redis.sentinels.insert(0, hung_url);
        s.redis.timeout_ms = TIMEOUT_MS;
    })
    .await;

    let master = set.current_master().expect("a master");
    for _ in 0..3 {
        let code = app.issue_code(&APP).await;
        // Every exchange on a new connection, so each one looks the master up.
        let killed: Option<u64> = tokio::task::spawn_blocking(move || {
            query(
                master,
                redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("normal"),
            )
        })
        .await
        .unwrap();
        assert!(killed.is_some_and(|n| n > 0), "no connection to drop");
        let started = Instant::now();
        let answer = Answer::of(app.exchange(&APP, &code).await).await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        assert!(
            started.elapsed() < Duration::from_millis(TIMEOUT_MS),
            "{:?}",
            started.elapsed()
        );
    }
}
