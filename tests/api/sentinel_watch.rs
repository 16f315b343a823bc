//! Each sentinel's events are followed (the fence); one that cannot be followed is said once,
//! as it is lost, and once more when it is followed again: only the leader of a failover
//! announces its start, so a failover it leads would go unseen meanwhile, and before this the
//! log said nothing of it.

use std::time::{Duration, Instant};

use crate::helpers::{APP, Answer, spawn_app_with};
use crate::topology::SentinelSet;

/// Lines that name the sentinel on `port` and say `what`, at `level`.
fn said(lines: &[String], level: &str, port: u16, what: &str) -> usize {
    let port = format!(":{port}");
    (lines.iter())
        .filter(|l| l.starts_with(level) && l.contains(&port) && l.contains(what))
        .count()
}

/// Polls the log until `done`; a frozen sentinel is found out after 5 s of silence and a
/// ping's 2 s, so longer than `lines_when`'s 5 s.
async fn wait_for(log: &crate::log_capture::Mark, what: &str, done: impl Fn(&[String]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done(&log.lines()) {
        assert!(Instant::now() < deadline, "no log line: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_lost_and_followed_again_is_said_once_each() {
    let set = tokio::task::spawn_blocking(SentinelSet::start)
        .await
        .unwrap();
    let log = crate::log_capture::mark();
    let app = spawn_app_with(|s| set.configure(&mut s.redis)).await;
    let sentinel = &set.sentinels[1];
    let port = sentinel.port();

    sentinel.freeze();
    let lost = |lines: &[String]| said(lines, "WARN", port, "not followed");
    // Both stores' watchers (the app's and the test's): one whose ping is still out at the
    // thaw is answered, and never loses the sentinel.
    wait_for(&log, "not followed by both stores", |lines| {
        lost(lines) >= 2
    })
    .await;
    // The exchanges go on meanwhile: the other sentinels name the master.
    let code = app.issue_code(&APP).await;
    let answer = Answer::of(app.exchange(&APP, &code).await).await;
    sentinel.thaw();
    assert_eq!(answer.status, 200, "{}", answer.text);

    let found = |lines: &[String]| said(lines, "INFO", port, "followed again");
    wait_for(&log, "followed again", |lines| found(lines) == 2).await;
    // Once each per store that follows the sentinels: the server's and the test's own
    // (`TestApp::store`). Without the once, every reconnection tried while it was frozen (one
    // each half second) would have said it again.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let lines = log.lines();
    assert_eq!(lost(&lines), 2, "{lines:#?}");
    assert_eq!(found(&lines), 2, "{lines:#?}");
    for other in &set.sentinels {
        if other.port() != port {
            assert_eq!(said(&lines, "WARN", other.port(), "not followed"), 0);
        }
    }
}

/// The start's report waits for the watchers' first look at their sentinels (until then the
/// fence refuses every call): it names the master's version, and does not warn that a healthy
/// master does not answer. Before, every Sentinel start warned so, and skipped the checks of
/// version, permissions and replicas that follow the PING.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_start_names_the_sentinel_masters_version_without_a_false_warning() {
    let set = tokio::task::spawn_blocking(SentinelSet::start)
        .await
        .unwrap();
    let log = crate::log_capture::mark();
    let _app = spawn_app_with(|s| set.configure(&mut s.redis)).await;
    let port = set.sentinels[0].port();

    let named = |lines: &[String]| said(lines, "INFO", port, ": version ");
    wait_for(&log, "the master's version", |lines| named(lines) == 1).await;
    let lines = log.lines();
    assert_eq!(
        said(&lines, "WARN", port, "does not answer"),
        0,
        "{lines:#?}"
    );
}
