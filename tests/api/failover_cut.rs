//! A lane's connection cut while a Sentinel failover begins: the call is not sent again.
//!
//! `Store::with_conn` sends a call once more on a new connection when the first turns out to be
//! dropped. Once a failover has begun since the call entered the fence, that repeat would reach
//! the outgoing master (found through a sentinel that is not leading the failover) and spend
//! the code there, where a failover may lose it; the fence promises that while it is closed no
//! operation touches Redis.

use std::time::{Duration, Instant};

use deadpool_redis::redis;

use crate::cutter::{Cut, Cutter};
use crate::failover::{blocking, exchange_once_served, pattern_subscribers};
use crate::helpers::{APP, Answer, TestApp, code_record, spawn_app_with};
use crate::topology::{MASTER_NAME, SentinelSet, query, script_calls, sentinel_master, wait_until};

/// The name of `EVALSHA` as RESP sends it: the exchange script's call.
const EVALSHA: &[u8] = b"$7\r\nEVALSHA\r\n";
/// How long the failover and the service's recovery may take.
const RECOVERY: Duration = Duration::from_secs(20);

/// How many sets the test starts, at most, before one gets its call to the proxy.
const ATTEMPTS: u32 = 3;

/// Pins that a call cut once a failover has begun is not sent again, and that readiness asks
/// the fence first (`Store::failover_under_way`): with a `PING` held behind that call, a
/// probe is a prompt 503, not one that waits out the `PING`'s timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_cut_as_a_failover_begins_is_not_sent_again() {
    for attempt in 1..=ATTEMPTS {
        match cut_during_a_failover().await {
            Ok(()) => return,
            Err(miss) if attempt < ATTEMPTS => {
                eprintln!("attempt {attempt}: {miss}\n(again, with a new set)");
            }
            Err(miss) => panic!("{ATTEMPTS} attempts: {miss}"),
        }
    }
}

/// One set, one exchange whose call the proxy cuts as a failover begins; panics on anything
/// the service does wrong. `Err`: the service refused the call before it reached the proxy,
/// a 503 with nothing touched, so the case this test is about did not arise (its fence was
/// closed: a sentinel event the set-up caused, on a busy machine; `Err` carries the Redis and
/// sentinel lines logged meanwhile, to tell which).
async fn cut_during_a_failover() -> Result<(), String> {
    let runtime = tokio::runtime::Handle::current();
    let (set, cutter) = blocking(move || {
        let mut cutter = None;
        let set = SentinelSet::start_behind(|master| {
            let proxy = runtime.block_on(Cutter::start(master, EVALSHA, Cut::Before));
            let port = proxy.port;
            cutter = Some(proxy);
            port
        });
        (set, cutter.expect("a proxy"))
    })
    .await;
    // Before the app is built: on a failure, the service's account of it is printed.
    let log = crate::log_capture::mark();
    let app = spawn_app_with(|s| {
        set.configure(&mut s.redis);
        // Long enough to outlast the proxy's hook, which holds the call while the failover
        // begins (the fence may take up to 2 s to close): the call must be cut, not time out.
        // And twice the 5 s `fence_closed` allows: the readiness `PING` held behind the call
        // times out no sooner, so a readiness that waited for it rather than asking the fence
        // (`Store::failover_under_way -> false`) says 503 too late, not just in time.
        s.redis.timeout_ms = 10_000;
    })
    .await;
    let code = app.write_code(&code_record(&APP)).await;
    let set = settled(set, &app, &code).await;
    let old_master = set.data_nodes[0].port();
    let scripts_before = blocking(move || script_calls(old_master, None)).await;
    // Ready, so its fence is open: a sentinel event of the set-up that closed it for a while
    // would refuse the exchange before it reached the proxy.
    fence_open(&app.http, &app.url("/readyz")).await;
    let sentinel_ports: Vec<u16> = set.sentinels.iter().map(|s| s.port()).collect();
    log::info!(
        "failover-cut test: sentinels {sentinel_ports:?} ready, master behind proxy {}",
        cutter.port
    );

    // The exchange script's call reaches the proxy; before cutting it, the proxy starts a
    // failover and waits until the service has closed its fence. A readiness probe first, whose
    // `PING` (one worker, so the same lane) waits behind the held call: once the fence closes,
    // the next probes must say so at once, not wait for that `PING`'s answer.
    let (sentinel, ready) = (set.sentinels[0].port(), app.url("/readyz"));
    let (http, runtime) = (app.http.clone(), tokio::runtime::Handle::current());
    cutter.arm_with(Box::new(move || {
        let probe = http.get(&ready).timeout(Duration::from_millis(100)).send();
        let held = runtime.block_on(probe);
        assert!(
            held.is_err(),
            "/readyz answered while the lane's connection was held: {held:?}"
        );
        wait_until("SENTINEL FAILOVER is accepted", || {
            query::<String>(
                sentinel,
                redis::cmd("SENTINEL").arg("FAILOVER").arg(MASTER_NAME),
            )
            .is_some()
        });
        runtime.block_on(fence_closed(&http, &ready));
    }));
    let cut = Answer::of(app.exchange(&APP, &code).await).await;
    assert_eq!(cut.status, 503, "{}", cut.text);
    if cutter.is_armed() {
        let scripts = blocking(move || script_calls(old_master, None)).await;
        assert_eq!(scripts, scripts_before, "refused, yet a script ran");
        return Err(format!(
            "the call was refused before it reached the proxy: {}; Redis and sentinel lines \
             logged meanwhile (any test's):\n{}",
            cut.text,
            redis_lines(&log)
        ));
    }
    assert!(
        cutter.has_cut(),
        "the call reached the proxy but was not cut: answered before the cut (redis.timeout_ms \
         too short for the hook?), or the hook failed (its panic is printed above): {}",
        cut.text
    );
    // The cut call never reached Redis (`Cut::Before`): any script the old master ran since is
    // the call sent again. The code's key alone would not tell: a resync may bring it back.
    let scripts_after = blocking(move || script_calls(old_master, None)).await;
    assert_eq!(
        scripts_after - scripts_before,
        0,
        "sent again mid-failover, the call reached the old master"
    );
    let key = app.store.code_key(&code);
    let left = blocking(move || query::<u32>(old_master, redis::cmd("EXISTS").arg(key))).await;
    assert_eq!(
        left,
        Some(1),
        "sent again mid-failover, the call spent the code"
    );

    // Once the new master serves, the code is exchanged there.
    let after = exchange_once_served(&app, &code, RECOVERY).await;
    assert_eq!(after.status, 200, "{}", after.text);
    Ok(())
}

/// The lines logged since `mark` about Redis or the sentinels (by this test or another).
fn redis_lines(mark: &crate::log_capture::Mark) -> String {
    let lines = mark.lines();
    let about = |line: &&String| line.contains("redis") || line.contains("sentinel");
    lines
        .iter()
        .filter(about)
        .cloned()
        .collect::<Vec<_>>()
        .join("\n")
}

/// Waits until every sentinel has the service's watchers and both replicas have `code`.
async fn settled(set: SentinelSet, app: &TestApp, code: &str) -> SentinelSet {
    let key = app.store.code_key(code);
    blocking(move || {
        wait_until("every sentinel has both stores' watchers", || {
            (set.sentinels.iter()).all(|sentinel| pattern_subscribers(sentinel.port()) >= 2)
        });
        wait_until("both replicas have the code", || {
            set.data_nodes[1..]
                .iter()
                .all(|node| query::<u32>(node.port(), redis::cmd("EXISTS").arg(&key)) == Some(1))
        });
        wait_until("every sentinel names the master behind the proxy", || {
            let front = sentinel_master(set.sentinels[0].port());
            (set.sentinels.iter()).all(|sentinel| sentinel_master(sentinel.port()) == front)
        });
        set
    })
    .await
}

/// Returns once `/readyz` is a prompt 503: the fence is closed (while it is open, readiness'
/// PING waits behind the held call on the lane's connection, and so does every probe that
/// takes that PING's answer). Within 5 s of the failover's start: the sentinels' announcement
/// took over 2 s once on a loaded 2-core machine; the held PING times out after 10 s
/// (`redis.timeout_ms`), so only a readiness that asks the fence first answers in time.
async fn fence_closed(http: &reqwest::Client, ready: &str) {
    readiness_turns(http, ready, 503, Duration::from_secs(5)).await;
}

/// Returns once `/readyz` is 200: Redis answers and no failover is under way.
async fn fence_open(http: &reqwest::Client, ready: &str) {
    readiness_turns(http, ready, 200, RECOVERY).await;
}

/// Asks `/readyz` every few milliseconds, each time for at most 100 ms, until it answers
/// `status`; fails after `within`.
async fn readiness_turns(http: &reqwest::Client, ready: &str, status: u16, within: Duration) {
    let started = Instant::now();
    loop {
        let asked = http.get(ready).timeout(Duration::from_millis(100)).send();
        if let Ok(response) = asked.await
            && response.status() == status
        {
            return;
        }
        assert!(
            started.elapsed() < within,
            "/readyz did not answer {status} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
