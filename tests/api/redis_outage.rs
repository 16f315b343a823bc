//! Redis trouble (down, slow, restarted, not yet there) never hangs a request past the configured
//! timeout: the answer is a 503 JSON error, and service resumes by itself when Redis is back.
//! Each test runs its own redis-server, which it stops.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use deadpool_redis::redis;
use sso_token::issue_code;
use sso_token::routes::paths::USERINFO_PATH;
use sso_token::store::{Taken, write_record_start};

use crate::cutter::{Cut, Cutter};
use crate::helpers::{APP, Answer, TestApp, TestClient, code_record, spawn_app_with};
use crate::log_capture;
use crate::metrics;
use crate::redis_server::{HeldPort, RedisServer};
use crate::slow_link::SlowLink;
use crate::topology::script_calls;

const TIMEOUT_MS: u64 = 300;
/// Well under the 2.5 s of the longest block an exchange waits out below, and five times the
/// configured timeout.
const PROMPT: Duration = Duration::from_millis(1500);

async fn app_on(redis_url: String) -> TestApp {
    spawn_app_with(|s| {
        s.redis.url = redis_url;
        s.redis.timeout_ms = TIMEOUT_MS;
    })
    .await
}

/// Redis holds every client's commands, ours included, for `ms` (`CLIENT PAUSE … ALL`).
async fn pause_redis(app: &TestApp, ms: u64) {
    let _: () = app
        .query(redis::cmd("CLIENT").arg("PAUSE").arg(ms).arg("ALL"))
        .await;
}

/// An exchange while Redis is unusable: a prompt 503 `temporarily_unavailable`.
async fn assert_unavailable(app: &TestApp, code: &str) {
    let started = Instant::now();
    let answer = Answer::of(app.exchange(&APP, code).await).await;
    let elapsed = started.elapsed();

    assert_eq!(answer.status, 503, "{}", answer.text);
    assert_eq!(answer.error(), "temporarily_unavailable");
    answer.assert_error_shape("redis unavailable");
    assert!(elapsed < PROMPT, "the answer took {elapsed:?}");
}

async fn status_of(app: &TestApp, path: &str) -> u16 {
    let response = app.http.get(format!("{}{path}", app.address)).send().await;
    let answer = Answer::of(response.expect("probe answered")).await;
    assert!(
        answer.json.is_object(),
        "{path} is not JSON: {}",
        answer.text
    );
    answer.status
}

/// Retries for a few seconds: write a fresh code, exchange it; returns once a token comes back.
async fn eventually_exchanges(app: &TestApp) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut last = String::from("no code could be written");
    while Instant::now() < deadline {
        let code = issue_code::new_code().unwrap();
        if let Ok(true) = issue_code::write(&app.store, &code, &code_record(&APP), 60).await {
            let answer = Answer::of(app.exchange(&APP, &code).await).await;
            if answer.status == 200 {
                return;
            }
            last = format!("{} {}", answer.status, answer.text);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("service did not resume within 5 s; last answer: {last}");
}

/// A stopped Redis is a prompt 503, a restarted one serves again, and the log says when it does
/// (the failure lines are held to one a second: the last of them says nothing of the end).
#[tokio::test]
async fn a_stopped_redis_gets_a_prompt_503_and_a_restarted_one_serves_again() {
    let log = log_capture::mark();
    let port = HeldPort::new();
    let mut redis = RedisServer::start_on(&port, &[]);
    let app = app_on(redis.url()).await;
    let code = app.issue_code(&APP).await;
    assert_eq!(app.exchange(&APP, &code).await.status().as_u16(), 200);
    let pending = app.issue_code(&APP).await;

    redis.crash();

    for _ in 0..3 {
        assert_unavailable(&app, &pending).await;
    }
    assert_eq!(status_of(&app, "/readyz").await, 503);
    assert_eq!(status_of(&app, "/healthz").await, 200);

    let _restarted = RedisServer::start_on(&port, &[]);

    eventually_exchanges(&app).await;
    assert_eq!(status_of(&app, "/readyz").await, 200);
    // Said at a success once no call has failed for a second: probes go on until it is.
    let again = format!("Redis {} answers again, after ", redis.url());
    let said = || (log.lines().iter()).any(|l| l.starts_with("INFO") && l.contains(&again));
    let deadline = Instant::now() + Duration::from_secs(5);
    while !said() {
        assert!(
            Instant::now() < deadline,
            "no line saying Redis answers again"
        );
        assert_eq!(status_of(&app, "/readyz").await, 200);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A Redis that comes back from an outage as another process (restarted here; with Sentinel,
/// another master) may have lost what it held or run with other settings: once the outage is
/// over, a warning says so and the start's report follows again (its version, and here the
/// `appendonly` it lacks). An outage the same process comes back from (paused) says nothing.
#[tokio::test]
async fn a_redis_back_as_another_process_is_reported_again() {
    let log = log_capture::mark();
    let port = HeldPort::new();
    let mut redis = RedisServer::start_on(&port, &[]);
    let app = app_on(redis.url()).await;
    let version = format!("Redis {}: version ", redis.url());
    let another = format!("Redis {} is another process", redis.url());
    let count = |lines: &[String], text: &str| lines.iter().filter(|l| l.contains(text)).count();
    log.lines_when(|lines| count(lines, &version) == 1).await;

    let pending = app.issue_code(&APP).await;
    redis.crash();
    // Calls that fail make the outage (a restart between two calls is none: the dropped
    // connection is replaced within the call).
    assert_unavailable(&app, &pending).await;
    let _restarted = RedisServer::start_on(&port, &[]);
    eventually_exchanges(&app).await;
    // Said once no call has failed for a second: probes go on until it is.
    let reported = |lines: &[String]| count(lines, &another) == 1 && count(lines, &version) == 2;
    let deadline = Instant::now() + Duration::from_secs(5);
    while !reported(&log.lines()) {
        assert!(
            Instant::now() < deadline,
            "no report of the restarted Redis"
        );
        assert_eq!(status_of(&app, "/readyz").await, 200);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        log.lines()
            .iter()
            .any(|l| l.starts_with("WARN") && l.contains(&another))
    );

    let paused = app.issue_code(&APP).await;
    pause_redis(&app, 1000).await;
    assert_unavailable(&app, &paused).await;
    let again = format!("Redis {} answers again", redis.url());
    let deadline = Instant::now() + Duration::from_secs(5);
    while count(&log.lines(), &again) < 2 {
        assert!(Instant::now() < deadline, "the pause's end was not said");
        let _ = status_of(&app, "/readyz").await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let lines = log.lines();
    assert_eq!(
        count(&lines, &another),
        1,
        "the same process taken for another"
    );
    assert_eq!(count(&lines, &version), 2);
}

/// The start names the server's own version, as `INFO server` gives it: Valkey's scripts say
/// they are Redis 7.2.4 (what it is compatible with), which the line repeated on Valkey 8 and 9.
#[tokio::test]
async fn the_start_names_the_servers_own_version() {
    let log = log_capture::mark();
    let redis = RedisServer::start();
    let info: String = crate::topology::query(redis.port(), redis::cmd("INFO").arg("server"))
        .expect("INFO server");
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_owned())
    };
    let expected = match field("valkey_version:") {
        Some(valkey) => format!("version Valkey {valkey}"),
        None => format!(
            "version {}",
            field("redis_version:").expect("redis_version")
        ),
    };
    let named = format!("Redis {}: version ", redis.url());
    let _app = app_on(redis.url()).await;
    let lines = log
        .lines_when(|lines| (lines.iter()).any(|l| l.contains(&named)))
        .await;
    let line = lines.iter().find(|l| l.contains(&named)).unwrap();
    assert!(line.ends_with(&expected), "{line} (expected {expected})");
}

/// The start says which settings the guarantees need that Redis lacks, as `INFO` gives them:
/// an evicting `maxmemory-policy` under a `maxmemory`, and `appendonly` off (the harness's).
#[tokio::test]
async fn the_start_warns_of_a_redis_that_evicts_or_does_not_append() {
    let log = log_capture::mark();
    let redis = RedisServer::start_with(
        &["--maxmemory", "64mb", "--maxmemory-policy", "volatile-lru"],
        None,
    );
    let named = format!("Redis {}: ", redis.url());
    let _app = app_on(redis.url()).await;
    let warned = |lines: &[String], what: &str| {
        (lines.iter()).any(|l| l.starts_with("WARN") && l.contains(&named) && l.contains(what))
    };
    let evicts = "maxmemory-policy is volatile-lru with maxmemory set";
    let appends = "appendonly is off";
    let lines = log
        .lines_when(|lines| warned(lines, evicts) && warned(lines, appends))
        .await;
    assert!(
        warned(&lines, "set maxmemory-policy noeviction"),
        "{lines:#?}"
    );
}

/// `sso_redis_connections` at 0 while traffic flows is the alert for a Redis out of reach: once
/// Redis is gone and requests have tried it, it reads 0. The start's checks ran on a thread that
/// serves no request, and their connection, which nothing used or checked again, kept the gauge
/// at 1 through the outage.
#[tokio::test]
async fn once_requests_have_found_redis_gone_no_connection_is_counted() {
    let log = log_capture::mark();
    let mut redis = RedisServer::start();
    let named = format!("127.0.0.1:{}", redis.port());
    let app = app_on(redis.url()).await;
    log.lines_when(|lines| (lines.iter()).any(|l| l.contains(&named) && l.contains(": version")))
        .await;
    let code = app.issue_code(&APP).await;
    assert_eq!(app.exchange(&APP, &code).await.status().as_u16(), 200);
    let held = || async {
        let exposition = metrics::scrape(&app, &app.address).await;
        metrics::value(&exposition, "sso_redis_connections")
    };
    assert!(held().await >= 1.0, "no connection while Redis serves");
    let pending = app.issue_code(&APP).await;

    redis.crash();
    for _ in 0..3 {
        assert_unavailable(&app, &pending).await;
    }

    assert_eq!(held().await, 0.0);
}

/// ... and runs the start's checks of that Redis once it answers (its version named).
#[tokio::test]
async fn the_server_starts_while_redis_is_down_and_serves_once_it_is_up() {
    let log = log_capture::mark();
    let port = HeldPort::new();
    let url = format!("redis://127.0.0.1:{}", port.port());
    let app = app_on(url.clone()).await;

    assert_eq!(status_of(&app, "/healthz").await, 200);
    assert_eq!(status_of(&app, "/readyz").await, 503);
    assert_unavailable(&app, "OC-1001-GNen5J2oMC1mJncDvO2tvwYV").await;

    let _redis = RedisServer::start_on(&port, &[]);

    eventually_exchanges(&app).await;
    assert_eq!(status_of(&app, "/readyz").await, 200);
    let named = format!("Redis {url}: version ");
    log.lines_when(|lines| (lines.iter()).any(|l| l.starts_with("INFO") && l.contains(&named)))
        .await;
}

/// Among many replicas, the one with a wrong Redis address must be found from its log: the
/// start names the Redis it uses, its password hidden, and so does the warning when that Redis
/// does not answer.
#[tokio::test]
async fn the_start_names_its_redis_and_warns_when_it_does_not_answer() {
    let log = log_capture::mark();
    let port = HeldPort::new();
    let password = format!("pw-{}", uuid::Uuid::new_v4().simple());
    let _app = app_on(format!("redis://:{password}@127.0.0.1:{}/0", port.port())).await;
    let shown = format!("redis://:***@127.0.0.1:{}/0", port.port());
    let named = |level: &str, text: &str| {
        log.lines()
            .iter()
            .any(|l| l.starts_with(level) && l.contains(text))
    };

    let deadline = Instant::now() + Duration::from_secs(10);
    while !named("WARN", &format!("Redis {shown} does not answer")) {
        assert!(
            Instant::now() < deadline,
            "no warning naming {shown} within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(named("INFO", &format!("Redis: {shown};")), "no start line");
    assert!(
        !log.lines().iter().any(|l| l.contains(&password)),
        "the password reached the log"
    );
}

/// A Redis that refuses the service's password (or wants one it was not given) is no Redis
/// that does not answer: no wait mends it, and the start says so as an error, its password
/// hidden.
#[tokio::test]
async fn the_start_says_when_its_redis_refuses_the_credentials() {
    let log = log_capture::mark();
    let redis = RedisServer::start();
    let config_set = redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg("right-password")
        .clone();
    let set: Option<String> = crate::topology::query(redis.port(), &config_set);
    assert_eq!(set.as_deref(), Some("OK"));
    let wrong = format!("pw-{}", uuid::Uuid::new_v4().simple());
    let urls = [
        format!("redis://:{wrong}@127.0.0.1:{}/0", redis.port()),
        format!("redis://127.0.0.1:{}/1", redis.port()),
    ];
    for url in urls {
        let shown = sso_token::redact::redis_url(&url);
        let _app = app_on(url).await;
        let said = log
            .lines_when(|lines| lines.iter().any(|l| l.contains(&format!("Redis {shown} "))))
            .await;
        let line = said.iter().find(|l| l.contains(&format!("Redis {shown} ")));
        let line = line.expect("a line naming the Redis");
        assert!(line.starts_with("ERROR"), "{line}");
        assert!(line.contains("refuses the service's credentials"), "{line}");
    }
    assert!(
        !log.lines().iter().any(|l| l.contains(&wrong)),
        "the password reached the log"
    );
}

/// A Redis that answers PING but cannot run the exchange (here a user without scripting, or
/// without `SET`, `DEL` or `EVAL`; a Redis older than 7.0 is the other case) passes readiness,
/// so the start says it plainly, naming what is refused: otherwise each exchange's 503 is the
/// only clue. A user that may run all it needs hears nothing.
#[tokio::test]
async fn the_start_says_when_its_redis_user_may_not_run_the_exchange_script() {
    let log = log_capture::mark();
    let redis = RedisServer::start();
    let acl = |user: &str, rules: &[&str]| {
        let mut command = redis::cmd("ACL");
        command
            .arg("SETUSER")
            .arg(user)
            .arg("on")
            .arg(">pw")
            .arg("~*");
        for rule in rules {
            command.arg(*rule);
        }
        let set: Option<String> = crate::topology::query(redis.port(), &command);
        assert_eq!(set.as_deref(), Some("OK"), "{user}");
    };
    acl("noscripts", &["+@all", "-@scripting"]);
    acl("scripts", &["+@all"]);
    // What the exchange itself needs, without EVAL_RO, which the check tries first.
    acl("evalonly", &["+@all", "-@scripting", "+eval", "+evalsha"]);
    acl("noset", &["+@all", "-set"]);
    acl("nodel", &["+@all", "-del", "-pttl"]);
    // DEL on token records only (a selector): the exchange also deletes a code key of another
    // Redis type.
    acl("nodelcode", &["+@all", "-del", "(+del ~*token:*)"]);
    // EVALSHA alone is not enough: a Redis without the script cached, and the throttle, run EVAL.
    acl("noeval", &["+@all", "-eval"]);
    let target = |user: &str| format!("Redis redis://{user}:***@127.0.0.1:{}", redis.port());
    let url = |user: &str| format!("redis://{user}:pw@127.0.0.1:{}", redis.port());
    let error_for = |lines: &[String], user: &str| {
        let named = target(user);
        lines
            .iter()
            .find(|l| l.starts_with("ERROR") && l.contains(&named))
            .cloned()
    };

    let _refused = app_on(url("noscripts")).await;
    let _allowed = app_on(url("scripts")).await;
    let _eval_only = app_on(url("evalonly")).await;
    let _no_set = app_on(url("noset")).await;
    let _no_del = app_on(url("nodel")).await;
    let _no_del_code = app_on(url("nodelcode")).await;
    let _no_eval = app_on(url("noeval")).await;

    let version_of = |lines: &[String], user: &str| {
        let named = format!("{}: version ", target(user));
        lines
            .iter()
            .any(|l| l.starts_with("INFO") && l.contains(&named))
    };
    // Both checks are done once the one that may run scripts has said its version.
    let lines = log
        .lines_when(|lines| {
            error_for(lines, "noscripts").is_some()
                && version_of(lines, "scripts")
                && version_of(lines, "evalonly")
                && error_for(lines, "noset").is_some()
                && error_for(lines, "nodel").is_some()
                && error_for(lines, "nodelcode").is_some()
                && error_for(lines, "noeval").is_some()
        })
        .await;
    let refused = |user: &str| {
        let line = error_for(&lines, user).unwrap_or_default();
        let (_, named) = line.split_once("may not run ").unwrap_or_default();
        named.split(" on ").next().unwrap_or_default().to_owned()
    };
    assert_eq!(refused("noset"), "SET");
    assert_eq!(refused("nodel"), "DEL, PTTL");
    assert_eq!(refused("nodelcode"), "DEL");
    assert_eq!(refused("noeval"), "EVAL");
    let line = error_for(&lines, "noscripts").unwrap_or_default();
    assert!(line.contains("may not run scripts"), "{line}");
    assert_eq!(error_for(&lines, "scripts"), None);
    assert_eq!(error_for(&lines, "evalonly"), None);
    assert!(
        !version_of(&lines, "noscripts"),
        "a version for the user without scripts"
    );
}

/// A Redis down at start that then comes up refusing the service's credentials (here without
/// its user) gets the start's error about them too: the warning that it did not answer was
/// said first, and the error is the one that says what to mend.
#[tokio::test]
async fn the_start_says_when_its_redis_comes_up_refusing_the_credentials() {
    let log = log_capture::mark();
    let port = HeldPort::new();
    let url = format!("redis://ghost:pw@127.0.0.1:{}/0", port.port());
    let named = format!("Redis {} ", sso_token::redact::redis_url(&url));
    let _app = app_on(url).await;
    let said = |level: &'static str, text: &'static str| {
        let named = named.clone();
        move |lines: &[String]| {
            (lines.iter()).any(|l| l.starts_with(level) && l.contains(&named) && l.contains(text))
        }
    };
    log.lines_when(said("WARN", "does not answer")).await;

    let _redis = RedisServer::start_on(&port, &[]);

    log.lines_when(said("ERROR", "refuses the service's credentials"))
        .await;
}

/// A least-privilege Redis user may lack PING, which the service needs for nothing but
/// readiness: Redis answers it (`NOPERM`) all the same, so `/readyz` is 200, the start goes on
/// to say the Redis's version, and exchanges work. Taken for Redis not answering, it kept
/// `/readyz` at 503 and the start saying that Redis did not answer.
#[tokio::test]
async fn a_redis_user_that_may_not_ping_is_ready_all_the_same() {
    let log = log_capture::mark();
    let redis = RedisServer::start();
    let mut command = redis::cmd("ACL");
    command.arg(&["SETUSER", "noping", "on", ">pw", "~*", "+@all", "-ping"]);
    let set: Option<String> = crate::topology::query(redis.port(), &command);
    assert_eq!(set.as_deref(), Some("OK"));
    let app = app_on(format!("redis://noping:pw@127.0.0.1:{}", redis.port())).await;
    let named = format!(
        "Redis redis://noping:***@127.0.0.1:{}: version ",
        redis.port()
    );

    let lines = log
        .lines_when(|lines| lines.iter().any(|l| l.contains(&named)))
        .await;

    let ready = app.http.get(app.url("/readyz")).send().await;
    assert_eq!(ready.expect("/readyz answered").status().as_u16(), 200);
    let token = app.token_for(&APP).await;
    assert!(!token.is_empty());
    let said_down = lines
        .iter()
        .find(|l| l.contains("noping") && l.contains("does not answer"));
    assert_eq!(said_down, None);
}

/// A Redis that does not know `EVAL_RO` (Redis 7.0 brought it, with the exchange script's
/// `#!lua` flags and `GETDEL`) answers the start's check "unknown command", and the start says
/// that every exchange fails there because it is older than 7.0. A Redis 7 with `EVAL_RO`
/// renamed away stands in for an older one, which answers alike.
#[tokio::test]
async fn the_start_says_when_its_redis_is_older_than_7() {
    let log = log_capture::mark();
    let redis = RedisServer::start_with(&["--rename-command", "EVAL_RO", ""], None);
    let named = format!("Redis {}", redis.url());
    let _app = app_on(redis.url()).await;

    let lines = log
        .lines_when(|lines| {
            lines
                .iter()
                .any(|l| l.starts_with("ERROR") && l.contains(&named))
        })
        .await;

    let line = lines
        .iter()
        .find(|l| l.starts_with("ERROR") && l.contains(&named))
        .cloned()
        .unwrap_or_default();
    assert!(line.contains("older than 7.0"), "{line}");
}

/// A Redis 7 with a command the exchange needs renamed away (`rename-command GETDEL ""`)
/// answers PING, and the start's check fails with an error that is neither a refused
/// permission nor an unknown `EVAL_RO`: the start says it could not tell, with Redis' reason,
/// rather than blaming the user's script rights; the exchange gets a 503.
#[tokio::test]
async fn the_start_says_when_it_cannot_check_its_redis() {
    let log = log_capture::mark();
    let redis = RedisServer::start_with(&["--rename-command", "GETDEL", ""], None);
    let named = format!("Redis {}", redis.url());
    let app = app_on(redis.url()).await;

    let checked = |l: &String| l.contains(&named) && !l.contains("appendonly is off");
    let lines = log.lines_when(|lines| lines.iter().any(checked)).await;

    let said: Vec<_> = lines.iter().filter(|l| checked(l)).collect();
    assert_eq!(said.len(), 1, "{said:?}");
    assert!(said[0].starts_with("WARN"), "{}", said[0]);
    assert!(said[0].contains("could not check"), "{}", said[0]);
    assert!(said[0].contains("acl_check_cmd"), "{}", said[0]);
    let code = app.issue_code(&APP).await;
    assert_unavailable(&app, &code).await;
}

#[tokio::test]
async fn a_redis_that_stops_answering_gets_a_503_within_the_timeout() {
    let redis = RedisServer::start();
    let app = app_on(redis.url()).await;
    let code = app.issue_code(&APP).await;
    assert_eq!(app.exchange(&APP, &code).await.status().as_u16(), 200);
    let pending = app.issue_code(&APP).await;

    // Every client, ours included, gets no answer for 4 s: room for the 503 and the /readyz
    // check below on a busy machine.
    pause_redis(&app, 4000).await;

    assert_unavailable(&app, &pending).await;
    assert_eq!(status_of(&app, "/readyz").await, 503);
    eventually_exchanges(&app).await;

    // Paused, Redis never ran the 503's script: the lane dropped its connection at the
    // timeout, and Redis drops a closed connection's postponed commands. So the same code
    // still works, the README's "retry with the same code". (A script that runs after its
    // 503 makes the retry a replay: `a_script_that_runs_after_its_503_…` below.)
    let retry = Answer::of(app.exchange(&APP, &pending).await).await;
    let again = Answer::of(app.exchange(&APP, &pending).await).await;
    assert_eq!(retry.status, 200, "the retry after the 503: {}", retry.text);
    assert_eq!(
        (again.status, again.error()),
        (400, "invalid_grant"),
        "a second token for one code: {}",
        again.text
    );
}

/// Connections that Redis closed while the service was idle (its `timeout`, a proxy, a NAT,
/// here `CLIENT KILL`) are replaced on the next call: no request sees a 503 for them.
#[tokio::test]
async fn connections_redis_closed_while_idle_cost_no_request_a_503() {
    let redis = RedisServer::start();
    let app = app_on(redis.url()).await;
    let code = app.issue_code(&APP).await;
    assert_eq!(app.exchange(&APP, &code).await.status().as_u16(), 200);
    assert_eq!(status_of(&app, "/readyz").await, 200);

    for round in 0..3 {
        // Every connection but the one that asks (the test's own).
        let _: () = app
            .query(redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("normal"))
            .await;
        tokio::time::sleep(Duration::from_millis(100)).await;

        let code = app.issue_code(&APP).await;
        let answer = Answer::of(app.exchange(&APP, &code).await).await;
        assert_eq!(answer.status, 200, "round {round}: {}", answer.text);
        let _: () = app
            .query(redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("normal"))
            .await;
        assert_eq!(status_of(&app, "/readyz").await, 200, "round {round}");
    }
}

/// Requests that lose their lane's connection together take one new connection between them,
/// not one each (in a Cluster each would be a discovery of every node, with Sentinel a look-up).
/// Redis is blocked while they reconnect, so that they all want a connection at once.
#[tokio::test]
async fn requests_that_lose_their_connection_together_make_one_new_one() {
    let redis = RedisServer::start_with(&["--enable-debug-command", "yes"], None);
    let app = spawn_app_with(|s| {
        s.redis.url = redis.url();
        s.redis.pool_size = 1;
    })
    .await;
    let warm = app.issue_code(&APP).await;
    assert_eq!(app.exchange(&APP, &warm).await.status().as_u16(), 200);
    let mut codes = Vec::new();
    for _ in 0..16 {
        codes.push(app.issue_code(&APP).await);
    }
    let received = || async {
        let info = query_info(&redis, "stats").await;
        info.lines()
            .find_map(|l| l.strip_prefix("total_connections_received:"))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .expect("total_connections_received")
    };
    let _: () = app
        .query(redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("normal"))
        .await;
    let before = received().await;
    let blocked = block(&redis, 0.5).await;

    let answers = futures_util::future::join_all(codes.iter().map(|c| app.exchange(&APP, c))).await;

    blocked.await.unwrap();
    for answer in answers {
        assert_eq!(answer.status().as_u16(), 200);
    }
    // The blocker's, its probe's and the second reading's connections are three of them.
    let made = received().await - before - 3;
    assert!(made <= 2, "{made} new connections for one lane");
}

/// A hang of several `redis.timeout_ms` under steady requests, over a link where a new
/// connection takes longer than the gap between two requests: service resumes once Redis
/// answers. (When the request that made a connection also bounded it in time, the requests
/// queued for the lane's turn each had only what was left of their own timeout, less than a
/// connection takes: none was finished while requests kept coming, and every one was a 503
/// after Redis answered again.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_resumes_after_a_hang_though_connecting_takes_longer_than_the_gap_between_requests()
{
    const GAP: Duration = Duration::from_millis(10);
    let redis = RedisServer::start_with(&["--enable-debug-command", "yes"], None);
    let link = SlowLink::start(redis.port(), GAP * 6).await;
    let app = spawn_app_with(|s| {
        s.redis.url = link.url();
        s.redis.timeout_ms = TIMEOUT_MS;
        s.redis.pool_size = 1;
    })
    .await;
    let token = app.token_for(&APP).await;
    assert_eq!(app.user_info(&token).await.status, 200);

    // A user-info request every GAP, each on its own, until told to stop: when it was sent,
    // and its status (0: no answer).
    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let (http, url, stopped) = (app.http.clone(), app.url(USERINFO_PATH), stop.clone());
    let load = tokio::spawn(async move {
        let mut sent = Vec::new();
        let mut tick = tokio::time::interval(GAP);
        while !stopped.load(Ordering::Relaxed) {
            tick.tick().await;
            let (at, request) = (started.elapsed(), http.get(&url).bearer_auth(&token).send());
            sent.push(tokio::spawn(async move {
                (at, request.await.map_or(0, |r| r.status().as_u16()))
            }));
        }
        futures_util::future::join_all(sent).await
    });
    tokio::time::sleep(GAP * 20).await;
    let hang = Duration::from_millis(TIMEOUT_MS * 5);
    block(&redis, hang.as_secs_f64()).await.await.unwrap();
    let answering = started.elapsed();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);
    let answers = load.await.unwrap();

    // A connection begun in the hang gives up within TIMEOUT_MS; the next takes GAP * 6.
    let settled = answering + Duration::from_millis(TIMEOUT_MS) + GAP * 20;
    let after: Vec<(Duration, u16)> = (answers.into_iter())
        .map(|answer| answer.unwrap())
        .filter(|(at, _)| *at > settled)
        .collect();
    assert!(after.len() >= 40, "only {} requests sent", after.len());
    let refused: Vec<u16> = (after.iter().map(|(_, status)| *status))
        .filter(|status| *status != 200)
        .collect();
    assert!(
        refused.is_empty(),
        "{} of {} requests sent {:?} after Redis answered again were refused (the first: {:?})",
        refused.len(),
        after.len(),
        settled - answering,
        &refused[..refused.len().min(5)]
    );
}

/// A Redis restarted while the service was idle: the first request after it is served.
#[tokio::test]
async fn the_first_request_after_a_redis_restart_is_served() {
    let port = HeldPort::new();
    let mut redis = RedisServer::start_on(&port, &[]);
    let app = app_on(redis.url()).await;
    let code = app.issue_code(&APP).await;
    assert_eq!(app.exchange(&APP, &code).await.status().as_u16(), 200);

    redis.crash();
    let _restarted = RedisServer::start_on(&port, &[]);
    // Written by the test's own connection: the exchange is the server's first request.
    let code = app.issue_code(&APP).await;

    let answer = Answer::of(app.exchange(&APP, &code).await).await;

    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(status_of(&app, "/readyz").await, 200);
}

/// A token record's head as the exchange writes it: the scripts match its `{"jti":"<jti>"`.
fn head(jti: &str) -> Vec<u8> {
    format!(r#"{{"jti":"{jti}","grant":"#).into_bytes()
}

/// The exchange script run twice with the same `jti` (what `Store` does when the connection
/// dropped before the answer came back) answers the second time with what it took the first
/// time; any other call for the code, whose `jti` shares the record's key but not its random
/// part, is a replay of the first `jti`.
#[tokio::test]
async fn a_repeated_exchange_call_answers_what_it_took() {
    let app = crate::helpers::spawn_app().await;
    let code = app.issue_code(&APP).await;
    let jti = app.store.new_jti(&code).expect("a jti");

    let first = app
        .store
        .take_code(&code, &jti, 60, &head(&jti))
        .await
        .unwrap();
    let again = app
        .store
        .take_code(&code, &jti, 60, &head(&jti))
        .await
        .unwrap();
    let other = app.store.new_jti(&code).expect("a jti");
    let replay = app.store.take_code(&code, &other, 60, &head(&other)).await;

    let Taken::Fresh { record } = &first else {
        panic!("the first call took nothing: {first:?}");
    };
    assert_eq!(&again, &first);
    assert_eq!(replay.unwrap(), Taken::Replayed { jti: jti.clone() });
    let stored: String = app
        .query(redis::cmd("GET").arg(app.store.token_key(&jti)))
        .await;
    assert_eq!(
        stored.as_bytes(),
        [&head(&jti)[..], record, b"}"].concat(),
        "the token record"
    );

    // Another exchange's clean-up leaves this record; this one's removes it, and then a repeat
    // takes nothing.
    assert!(!app.store.delete_token(&other).await.unwrap());
    assert!(app.store.delete_token(&jti).await.unwrap());
    let after = app.store.take_code(&code, &jti, 60, &head(&jti)).await;
    assert_eq!(after.unwrap(), Taken::Unknown);
}

/// An authorize service that writes a code value again while the token of its first exchange
/// lives gets no second token for it: the script answers a replay of the first token's `jti`
/// (which the exchange then revokes, as for any replay), spends the code, and leaves the first
/// token's record as it was.
#[tokio::test]
async fn a_code_value_written_again_while_its_token_lives_is_a_replay() {
    let app = crate::helpers::spawn_app().await;
    let code = app.issue_code(&APP).await;
    let jti = app.store.new_jti(&code).expect("a jti");
    let taken = app.store.take_code(&code, &jti, 60, &head(&jti)).await;
    assert!(matches!(taken, Ok(Taken::Fresh { .. })), "{taken:?}");
    let token_key = app.store.token_key(&jti);
    let before: String = app.query(redis::cmd("GET").arg(&token_key)).await;

    let written = issue_code::write(&app.store, &code, &code_record(&APP), 60).await;
    assert_eq!(written.ok(), Some(true), "the code written again");
    let other = app.store.new_jti(&code).expect("a jti");
    let again = app.store.take_code(&code, &other, 60, &head(&other)).await;

    assert_eq!(again.unwrap(), Taken::Replayed { jti });
    assert!(!app.code_exists(&code).await, "the code spent");
    let after: String = app.query(redis::cmd("GET").arg(&token_key)).await;
    assert_eq!(after, before, "the first token's record untouched");
}

/// `Store::take_code` takes a record head of any length: the head carries the client id, which
/// nothing bounds, and the call is sized from the head, the keys and the script's hash together.
/// A head longer than all the rest of the call (here 1 KiB: a client id of some 150 bytes makes
/// one) is written whole, and its token record is the head, the code record and `}`.
#[tokio::test]
async fn a_record_head_longer_than_the_rest_of_the_call_is_written_whole() {
    let app = crate::helpers::spawn_app().await;
    let code = app.issue_code(&APP).await;
    let jti = app.store.new_jti(&code).expect("a jti");
    let mut long = Vec::new();
    write_record_start(&mut long, &jti, Some(&"c".repeat(1024)));
    long.extend_from_slice(br#","grant":"#);

    let taken = app.store.take_code(&code, &jti, 60, &long).await;

    let Ok(Taken::Fresh { record }) = taken else {
        panic!("the code was not taken: {taken:?}");
    };
    let stored: Vec<u8> = app
        .query(redis::cmd("GET").arg(app.store.token_key(&jti)))
        .await;
    assert_eq!(
        stored,
        [&long[..], &record, b"}"].concat(),
        "the token record"
    );
}

/// README, "When Redis fails in the middle of an exchange": a connection cut after the script
/// ran is replaced and the call sent once more, which the script answers with what it took.
/// So too on a connection the lane had only just made (here after a timeout emptied it), not
/// only on one it held from an earlier call.
#[tokio::test]
async fn a_new_connection_cut_after_the_script_ran_still_completes_the_exchange() {
    let redis = RedisServer::start();
    let cutter = Cutter::start(redis.port(), b"$7\r\nEVALSHA\r\n", Cut::AfterRunning).await;
    let app = app_on(cutter.url()).await;
    // Loads the script and gives the worker's lane a connection.
    let warm = app.issue_code(&APP).await;
    assert_eq!(app.exchange(&APP, &warm).await.status().as_u16(), 200);
    // A timeout empties the lane: the next call makes a new connection.
    let lost = app.issue_code(&APP).await;
    pause_redis(&app, 2 * TIMEOUT_MS).await;
    assert_unavailable(&app, &lost).await;
    // Answered once the pause is over: by then Redis has run or dropped the timed-out call.
    let _: () = app.query(&redis::cmd("PING")).await;
    let code = app.issue_code(&APP).await;
    let scripts_before = script_calls(redis.port(), None);

    cutter.arm();
    let answer = Answer::of(app.exchange(&APP, &code).await).await;

    assert!(cutter.has_cut(), "the proxy never saw the script");
    assert!(cutter.ran(), "the cut fell before Redis answered");
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert!(!app.code_exists(&code).await, "the code is not spent");
    let scripts = script_calls(redis.port(), None) - scripts_before;
    assert_eq!(scripts, 2, "script calls: the cut one and its repeat");
    let exposition = metrics::scrape(&app, &app.address).await;
    assert_eq!(metrics::value(&exposition, "sso_code_replays_total"), 0.0);
}

/// An app of `workers` workers with one exchange slot each, a wait for a slot of 200 ms, and
/// Redis calls that may take 5 s.
async fn one_slot_per_worker(redis: &RedisServer, workers: usize) -> TestApp {
    spawn_app_with(|s| {
        s.redis.url = redis.url();
        s.redis.timeout_ms = 5000;
        s.server.workers = workers;
        s.server.exchange_slots = 1;
        s.server.slot_wait_ms = 200;
    })
    .await
}

/// `server.exchange_slots`: an exchange past the slots waits before it touches Redis, and one
/// that waits longer than `server.slot_wait_ms` gets a 503 with its code untouched, while the
/// exchange that holds the slot completes once Redis answers.
#[tokio::test]
async fn an_exchange_that_finds_no_free_slot_gets_a_503_and_keeps_its_code() {
    let redis = RedisServer::start();
    let app = one_slot_per_worker(&redis, 1).await;
    let (holder, waiter) = (app.issue_code(&APP).await, app.issue_code(&APP).await);
    // Redis holds every command for 2 s: the first exchange keeps its slot that long.
    pause_redis(&app, 2000).await;

    // The second is sent later, so it is most likely the one that waits; whichever it is,
    // the test holds (a busy machine may deliver them in either order).
    let timed = |code: String, delay: u64| {
        let app = &app;
        async move {
            tokio::time::sleep(Duration::from_millis(delay)).await;
            let started = Instant::now();
            let answer = Answer::of(app.exchange(&APP, &code).await).await;
            (code, answer, started.elapsed())
        }
    };
    let (a, b) = tokio::join!(timed(holder, 0), timed(waiter, 400));
    let (served, refused) = if a.1.status == 200 { (a, b) } else { (b, a) };
    let ((_, first, _), (waiter, second, waited)) = (served, refused);

    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(second.status, 503, "{}", second.text);
    assert_eq!(second.error(), "temporarily_unavailable");
    assert_eq!(second.header("retry-after"), Some("1"));
    assert!(waited < Duration::from_millis(1500), "waited {waited:?}");
    assert!(
        app.code_exists(&waiter).await,
        "the waiting exchange touched its code"
    );
    assert_eq!(app.exchange(&APP, &waiter).await.status().as_u16(), 200);
}

/// The slots are `server.exchange_slots` per worker, in one pool: with 2 workers and 1 slot
/// each, two exchanges held up by Redis both hold one, and a third, sent later, waits out
/// `server.slot_wait_ms` and gets a 503 with its code untouched.
#[tokio::test]
async fn each_worker_adds_its_exchange_slots_to_the_pool() {
    let redis = RedisServer::start();
    let app = one_slot_per_worker(&redis, 2).await;
    let codes = [
        app.issue_code(&APP).await,
        app.issue_code(&APP).await,
        app.issue_code(&APP).await,
    ];
    // Redis holds every command for 2 s: the first two exchanges keep their slots that long.
    pause_redis(&app, 2000).await;

    let timed = |code: &str, delay: u64| {
        let app = &app;
        let code = code.to_owned();
        async move {
            tokio::time::sleep(Duration::from_millis(delay)).await;
            let answer = Answer::of(app.exchange(&APP, &code).await).await;
            (code, answer)
        }
    };
    let (a, b, c) = tokio::join!(
        timed(&codes[0], 0),
        timed(&codes[1], 0),
        timed(&codes[2], 600)
    );

    let said: Vec<_> = [&a, &b, &c]
        .iter()
        .map(|(_, answer)| format!("{} {}", answer.status, answer.text))
        .collect();
    let (served, refused): (Vec<_>, Vec<_>) = [a, b, c]
        .into_iter()
        .partition(|(_, answer)| answer.status == 200);
    assert_eq!((served.len(), refused.len()), (2, 1), "{said:#?}");
    let (waiter, answer) = &refused[0];
    assert_eq!(answer.status, 503, "{}", answer.text);
    assert_eq!(answer.error(), "temporarily_unavailable");
    assert!(
        app.code_exists(waiter).await,
        "the waiting exchange touched its code"
    );
}

/// While Redis does not answer, the slots are held by calls waiting out `redis.timeout_ms`:
/// the exchanges queued behind them get their 503 once the first call fails, not one
/// `redis.timeout_ms` after another (2 slots and 12 exchanges here: 1.8 s), and keep their
/// codes.
#[tokio::test]
async fn exchanges_queued_for_a_slot_get_a_prompt_503_while_redis_hangs() {
    const EXCHANGES: usize = 12;
    let redis = RedisServer::start();
    let app = spawn_app_with(|s| {
        s.redis.url = redis.url();
        s.redis.timeout_ms = TIMEOUT_MS;
        s.server.exchange_slots = 2;
    })
    .await;
    let warm = app.issue_code(&APP).await;
    assert_eq!(app.exchange(&APP, &warm).await.status().as_u16(), 200);
    let mut codes = Vec::new();
    for _ in 0..EXCHANGES {
        codes.push(app.issue_code(&APP).await);
    }
    // Longer than the six rounds of timeouts the queue would otherwise take.
    pause_redis(&app, 2500).await;

    let started = Instant::now();
    let answers = futures_util::future::join_all(codes.iter().map(|code| {
        let app = &app;
        async move {
            (
                Answer::of(app.exchange(&APP, code).await).await,
                started.elapsed(),
            )
        }
    }))
    .await;

    let mut queued = Vec::new();
    for ((answer, elapsed), code) in answers.iter().zip(&codes) {
        assert_eq!(answer.status, 503, "{}", answer.text);
        assert_eq!(answer.error(), "temporarily_unavailable");
        assert!(elapsed < &PROMPT, "an answer took {elapsed:?}");
        if answer.text.contains("busy") {
            queued.push(code);
        }
    }
    assert!(
        queued.len() >= EXCHANGES - 2,
        "{} of {EXCHANGES} waited for a slot",
        queued.len()
    );
    eventually_exchanges(&app).await;
    for code in queued {
        assert_eq!(app.exchange(&APP, code).await.status().as_u16(), 200);
    }
}

/// README ("Redis topologies"): while Redis hangs, introspection, user info and revocation do
/// not wait out `redis.timeout_ms` each (a resource server asking on every request of its own
/// would pile them up). Once a call has failed, one at a time tries Redis, and those that come
/// meanwhile get a 503 at once without touching Redis: the revocation among them revokes
/// nothing, and the token is active again once Redis answers.
#[tokio::test]
async fn token_questions_while_redis_hangs_send_one_at_a_time_and_refuse_the_rest_at_once() {
    const EACH: usize = 4;
    // The refused must all arrive while the probe's call is out (the timeout less the 50 ms
    // below): 300 ms left a busy machine ~250 ms for 12 requests on new connections.
    const TIMEOUT: Duration = Duration::from_millis(1000);
    let redis = RedisServer::start();
    let app = spawn_app_with(|s| {
        s.redis.url = redis.url();
        s.redis.timeout_ms = TIMEOUT.as_millis() as u64;
    })
    .await;
    let token = app.token_for(&APP).await;
    // Longer than the two calls that wait out the timeout below, and the rest.
    pause_redis(&app, 3 * TIMEOUT.as_millis() as u64).await;

    let first = app.introspect(&APP, &token).await;
    assert_eq!(first.status, 503, "{}", first.text);
    assert!(first.text.contains(STORE_DOWN), "{}", first.text);
    let probe = app.user_info(&token);
    let others = async {
        // Sent while the probe waits on Redis (the timeout).
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = Instant::now();
        let answers = futures_util::future::join_all((0..3 * EACH).map(|i| {
            let app = &app;
            let token = &token;
            async move {
                match i % 3 {
                    0 => ("introspection", app.introspect(&APP, token).await),
                    1 => ("user info", app.user_info(token).await),
                    _ => ("revocation", app.revoke(&APP, token, None).await),
                }
            }
        }))
        .await;
        (answers, started.elapsed())
    };
    let (probed, (answers, elapsed)) = tokio::join!(probe, others);

    assert_eq!(probed.status, 503, "{}", probed.text);
    assert!(
        probed.text.contains(STORE_DOWN),
        "the probe: {}",
        probed.text
    );
    for (what, answer) in &answers {
        assert_eq!(answer.status, 503, "{what}: {}", answer.text);
        assert_eq!(answer.error(), "temporarily_unavailable", "{what}");
        assert_eq!(answer.header("retry-after"), Some("1"), "{what}");
        assert!(answer.text.contains(BUSY), "{what}: {}", answer.text);
    }
    assert!(elapsed < TIMEOUT, "the refused took {elapsed:?}");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let answer = app.introspect(&APP, &token).await;
        if answer.status == 200 {
            assert_eq!(answer.json["active"], true, "{}", answer.text);
            break;
        }
        assert!(Instant::now() < deadline, "still {}", answer.text);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The descriptions of a 503 for a Redis call that failed, and for one refused while another
/// tries Redis.
const STORE_DOWN: &str = "the token store is unavailable";
const BUSY: &str = "the server is busy";

/// While Redis is down every request is a 503, and the log gets a line a second for them, not a
/// line each (thousands a second under load, each a write under the logger's lock).
#[tokio::test]
async fn a_redis_outage_logs_a_line_a_second_not_one_per_request() {
    assert_a_line_a_second(&APP, 503, "redis unavailable (exchange)").await;
}

/// The same for wrong secrets while Redis is down: no failure can be counted in Redis (the
/// replica counts them in its own table instead, as the README says), and that is logged a line
/// a second, not a line each.
#[tokio::test]
async fn failures_the_throttle_cannot_count_log_a_line_a_second() {
    let wrong = TestClient {
        secret: "wrong-secret-Jd4Qx8Mv2Lc7Rn5Wz1Hk",
        ..APP
    };
    let needle = "throttle: counting a failed authentication";
    assert_a_line_a_second(&wrong, 401, needle).await;
}

/// Sends 100 exchanges at once and then more, spaced, until at least three clock seconds were
/// touched; each answer is `status`. The limit is one line a second for the whole process (one
/// per call site), so other tests' outages share it: whoever's request logs, the log holds at
/// least one `needle` line, and no more than one for each second touched.
async fn assert_a_line_a_second(client: &TestClient, status: u16, needle: &str) {
    const SPAN: Duration = Duration::from_millis(2_200);
    let port = HeldPort::new();
    // Before the mark: the lines counted from there fall within the seconds counted from here.
    let started = Instant::now();
    let log = log_capture::mark();
    let app = spawn_app_with(|s| {
        s.redis.url = format!("redis://127.0.0.1:{}", port.port());
        s.redis.timeout_ms = TIMEOUT_MS;
        // Above what is sent: every wrong secret is authenticated and counted, none blocked.
        s.throttle.max_failures = 1000;
    })
    .await;

    let mut sent = 0;
    while sent < 100 || started.elapsed() < SPAN {
        if sent >= 100 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let answer = Answer::of(
            app.exchange(client, "OC-1001-GNen5J2oMC1mJncDvO2tvwYV")
                .await,
        );
        assert_eq!(answer.await.status, status);
        sent += 1;
    }
    let elapsed = started.elapsed();

    let lines = log
        .lines()
        .iter()
        .filter(|line| line.contains(needle))
        .count() as u64;
    assert!(lines >= 1, "no `{needle}` line in {elapsed:?}");
    assert!(
        lines <= elapsed.as_secs() + 2,
        "{lines} lines for {sent} answers in {elapsed:?}"
    );
}

/// A master that refuses writes for want of replicas (`min-replicas-to-write`) answers every
/// exchange with an error reply, not a broken connection: the 503s come without a new
/// connection each (with Sentinel that would be a look-up each, with Cluster a discovery).
#[tokio::test]
async fn error_replies_from_a_healthy_connection_do_not_cost_a_reconnection_each() {
    let redis = RedisServer::start_with(&["--min-replicas-to-write", "1"], None);
    assert_refusals_keep_the_connection(&redis).await;
}

/// `MISCONF`: a Redis whose last save failed (a full or gone disk) refuses every write.
#[tokio::test]
async fn a_redis_that_cannot_save_costs_no_reconnection_per_refusal() {
    let dir = std::env::temp_dir().join(format!("sso-misconf-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir(&dir).expect("a folder for the dump");
    // `nosave`: on SIGTERM a Redis with save points saves first, and stays up when it cannot.
    let redis = RedisServer::start_with(
        &[
            "--dir",
            &dir.display().to_string(),
            "--shutdown-on-sigterm",
            "nosave",
        ],
        None,
    );
    let mut admin = connection(&redis).await;
    let _: () = redis::cmd("CONFIG")
        .arg(&["SET", "save", "3600 1"])
        .query_async(&mut admin)
        .await
        .expect("CONFIG SET save");
    std::fs::remove_dir_all(&dir).expect("remove the dump's folder");
    let _: String = redis::cmd("BGSAVE")
        .query_async(&mut admin)
        .await
        .expect("BGSAVE");
    for _ in 0..100 {
        if query_info(&redis, "persistence")
            .await
            .contains("rdb_last_bgsave_status:err")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let refused = redis::cmd("SET")
        .arg(&["k", "v"])
        .query_async::<()>(&mut admin)
        .await
        .expect_err("writes refused");
    assert_eq!(refused.code(), Some("MISCONF"), "{refused}");

    assert_refusals_keep_the_connection(&redis).await;
}

/// `NOPERM`: the service's Redis user may not run the exchange script, or a command in it (an
/// ACL mistake; Redis 7.0 says `ERR` for the latter).
#[tokio::test]
async fn a_redis_user_without_the_permission_costs_no_reconnection_per_refusal() {
    for rules in [&["-evalsha", "-eval"][..], &["-getdel"]] {
        let redis = RedisServer::start();
        let _: String = redis::cmd("ACL")
            .arg("SETUSER")
            .arg("default")
            .arg(rules)
            .query_async(&mut connection(&redis).await)
            .await
            .expect("ACL SETUSER");
        assert_refusals_keep_the_connection(&redis).await;
    }
}

/// An ACL that refuses a command of the exchange script (a Redis user tightened while the
/// service runs) costs a 503 with the code untouched, not the code taken for nothing: a
/// refused `SET` of the token record is checked for before the code is taken, and a refused
/// `GETDEL` is not mistaken for a code key of another type (answered `invalid_grant`, the code
/// deleted). Once the user may again, the same code is exchanged.
#[tokio::test]
async fn a_redis_user_refused_a_command_of_the_exchange_leaves_the_code_untouched() {
    let redis = RedisServer::start();
    let app = app_on(redis.url()).await;
    let mut admin = connection(&redis).await;
    for refused in ["-set", "-getdel"] {
        let code = app.issue_code(&APP).await;
        let _: String = redis::cmd("ACL")
            .arg(&["SETUSER", "default", refused])
            .query_async(&mut admin)
            .await
            .expect("ACL SETUSER");

        assert_unavailable(&app, &code).await;

        let _: String = redis::cmd("ACL")
            .arg(&["SETUSER", "default", "+@all"])
            .query_async(&mut admin)
            .await
            .expect("ACL SETUSER");
        assert!(
            app.code_exists(&code).await,
            "{refused}: the code was taken"
        );
        let answer = Answer::of(app.exchange(&APP, &code).await).await;
        assert_eq!(answer.status, 200, "{refused}: {}", answer.text);
    }
}

/// README ("The exchange, and what is guaranteed"): if revoking a replayed code's token fails,
/// the answer is 503 and the record stays, so the next attempt revokes it. Here an ACL takes
/// `DEL` (which only the revocation's script runs on this path) from the service's user.
#[tokio::test]
async fn a_replay_whose_revocation_fails_is_a_503_and_the_next_attempt_revokes() {
    let redis = RedisServer::start();
    let app = app_on(redis.url()).await;
    let code = app.issue_code(&APP).await;
    let token = app.token_from(&APP, &code).await;
    let record = app.store.token_key_of_code(&code);
    let mut admin = connection(&redis).await;
    let acl = |rule: &'static str| redis::cmd("ACL").arg(&["SETUSER", "default", rule]).clone();

    let _: String = acl("-del").query_async(&mut admin).await.expect("ACL");
    let refused = Answer::of(app.exchange(&APP, &code).await).await;
    let _: String = acl("+@all").query_async(&mut admin).await.expect("ACL");

    assert_eq!(refused.status, 503, "{}", refused.text);
    assert_eq!(refused.error(), "temporarily_unavailable");
    assert!(
        app.exists(&record).await,
        "the record went without its revocation"
    );
    assert!(app.is_active(&APP, &token).await, "the token until then");
    let again = Answer::of(app.exchange(&APP, &code).await).await;
    assert_eq!(
        (again.status, again.error()),
        (400, "invalid_grant"),
        "{}",
        again.text
    );
    assert!(!app.exists(&record).await, "the next attempt revoked it");
    assert!(!app.is_active(&APP, &token).await);
}

/// A token record that Redis refuses to read (an ACL that takes `GET` from the service's user,
/// tightened while it runs) is Redis trouble: a 503 for introspection and user info, not a
/// token called inactive (a resource server would log its user out). Only a key of another
/// type (`WRONGTYPE`: another writer's) reads as no record. Once the user may read again, the
/// same token is active.
#[tokio::test]
async fn a_token_record_redis_refuses_to_read_is_a_503_not_an_inactive_token() {
    let redis = RedisServer::start();
    let app = app_on(redis.url()).await;
    let token = app.token_for(&APP).await;
    let mut admin = connection(&redis).await;
    let acl = |rule: &'static str| redis::cmd("ACL").arg(&["SETUSER", "default", rule]).clone();

    let _: String = acl("-get")
        .query_async(&mut admin)
        .await
        .expect("ACL SETUSER");
    let introspected = app.introspect(&APP, &token).await;
    let shown = app.user_info(&token).await;
    let _: String = acl("+@all")
        .query_async(&mut admin)
        .await
        .expect("ACL SETUSER");

    for (what, answer) in [("introspection", &introspected), ("user info", &shown)] {
        assert_eq!(answer.status, 503, "{what}: {}", answer.text);
        assert_eq!(answer.error(), "temporarily_unavailable", "{what}");
    }
    assert!(
        app.is_active(&APP, &token).await,
        "the token once the user may read again"
    );
}

/// Exchanges against a Redis that refuses them with an error reply: each a prompt 503, and
/// 20 of them open no new connection.
async fn assert_refusals_keep_the_connection(redis: &RedisServer) {
    let app = app_on(redis.url()).await;
    let connections = || async {
        let info: String = query_info(redis, "stats").await;
        info.lines()
            .find_map(|l| l.strip_prefix("total_connections_received:"))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .expect("total_connections_received")
    };
    assert_unavailable(&app, "OC-1001-GNen5J2oMC1mJncDvO2tvwYV").await;
    let before = connections().await;

    for _ in 0..20 {
        assert_unavailable(&app, "OC-1001-GNen5J2oMC1mJncDvO2tvwYV").await;
    }

    // The probes above each open one connection of their own.
    let opened = connections().await - before;
    assert!(opened <= 2, "{opened} connections for 20 refused exchanges");
}

/// A Redis at `maxmemory` (with `noeviction`, as README advises) refuses writes, but still
/// lets a client revoke a token (RFC 7009): a deletion frees memory, and a compromised token
/// must not stay live until memory is found.
#[tokio::test]
async fn a_full_redis_still_revokes_tokens_and_keeps_the_codes_it_refused() {
    let redis = RedisServer::start();
    let app = app_on(redis.url()).await;
    let token = app.token_for(&APP).await;
    let code = app.issue_code(&APP).await;
    let _: () = redis::cmd("CONFIG")
        .arg(&["SET", "maxmemory", "1"])
        .query_async(&mut connection(&redis).await)
        .await
        .expect("CONFIG SET maxmemory");
    // Full indeed: the exchange's script is refused (`OOM`).
    assert_unavailable(&app, &code).await;
    // A prompt refusal: introspection reads on, every one of 20 at once (none of them held
    // back as if Redis did not answer).
    let seen = futures_util::future::join_all((0..20).map(|_| app.introspect(&APP, &token))).await;
    for answer in &seen {
        assert_eq!(answer.status, 200, "{}", answer.text);
        assert_eq!(answer.json["active"], true, "{}", answer.text);
    }

    let revoked = app.revoke(&APP, &token, None).await;

    assert_eq!(revoked.status, 200, "{}", revoked.text);
    assert!(
        !app.is_active(&APP, &token).await,
        "the token is still live"
    );
    // Refused up front, the exchange changed nothing: README's "retry with the same code".
    assert!(
        app.code_exists(&code).await,
        "the refused exchange spent the code"
    );
    let _: () = redis::cmd("CONFIG")
        .arg(&["SET", "maxmemory", "0"])
        .query_async(&mut connection(&redis).await)
        .await
        .expect("CONFIG SET maxmemory");
    let retry = Answer::of(app.exchange(&APP, &code).await).await;
    assert_eq!(retry.status, 200, "the retry: {}", retry.text);
}

/// `INFO <section>` of `redis`, through a connection of its own.
async fn query_info(redis: &RedisServer, section: &str) -> String {
    redis::cmd("INFO")
        .arg(section)
        .query_async(&mut connection(redis).await)
        .await
        .expect("INFO")
}

/// A Redis that lost its scripts (restarted, failed over, `SCRIPT FLUSH`) gets the exchange
/// script whole, with the call (`EVAL`), instead of a `SCRIPT LOAD` first, which the redis
/// crate would send to every node of a Cluster and fail with one of them down.
#[tokio::test]
async fn a_redis_without_the_script_gets_it_whole_with_the_call() {
    let redis = RedisServer::start();
    let app = app_on(redis.url()).await;
    let code = app.issue_code(&APP).await;
    assert_eq!(app.exchange(&APP, &code).await.status().as_u16(), 200);
    let flushed: String = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut connection(&redis).await)
        .await
        .expect("SCRIPT FLUSH");
    assert_eq!(flushed, "OK");

    let code = app.issue_code(&APP).await;
    let answer = Answer::of(app.exchange(&APP, &code).await).await;

    assert_eq!(answer.status, 200, "{}", answer.text);
    let stats = query_info(&redis, "commandstats").await;
    // Twice: the first exchange found a fresh Redis without it too.
    assert!(stats.contains("cmdstat_eval:calls=2,"), "{stats}");
    assert!(!stats.contains("cmdstat_script|load"), "{stats}");
}

/// Blocks `redis` for `seconds` with `DEBUG SLEEP` (it reads nothing meanwhile, unlike a paused
/// one; on a connection of its own), and returns once it is blocked: when a `PING` on another
/// connection of its own gets no answer in 100 ms (a busy machine answers one in far less, and
/// the blocks here last 500 ms or more). The returned task ends with the block.
async fn block(redis: &RedisServer, seconds: f64) -> tokio::task::JoinHandle<()> {
    // The client's own response timeout (500 ms by default) would end the task, not the block.
    let client = redis::Client::open(redis.url()).expect("url");
    let patient = redis::AsyncConnectionConfig::new().set_response_timeout(None);
    let mut blocker = client
        .get_multiplexed_async_connection_with_config(&patient)
        .await
        .expect("connection");
    let mut probe = connection(redis).await;
    let blocked = tokio::spawn(async move {
        let _: redis::RedisResult<()> = redis::cmd("DEBUG")
            .arg("SLEEP")
            .arg(seconds)
            .query_async(&mut blocker)
            .await;
    });
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let ping = redis::cmd("PING");
        let answer = ping.query_async::<String>(&mut probe);
        if tokio::time::timeout(Duration::from_millis(100), answer)
            .await
            .is_err()
        {
            return blocked;
        }
        assert!(
            Instant::now() < deadline,
            "DEBUG SLEEP did not block Redis in 2 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn connection(redis: &RedisServer) -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(redis.url()).expect("url");
    client
        .get_multiplexed_async_connection()
        .await
        .expect("connection")
}

/// The README's worst case: Redis is blocked (not paused: it still reads the request before it
/// sees the connection close), the exchange gets its 503, and the script runs afterwards. The
/// code is then spent and a token record written that no client holds; presenting the code
/// again is a replay, refused, and the record is deleted: no token ever comes of it.
#[tokio::test]
async fn a_script_that_runs_after_its_503_gives_no_token_and_its_retry_is_a_replay() {
    let redis = RedisServer::start_with(&["--enable-debug-command", "yes"], None);
    let app = app_on(redis.url()).await;
    let warm = app.issue_code(&APP).await;
    assert_eq!(app.exchange(&APP, &warm).await.status().as_u16(), 200);
    let pending = app.issue_code(&APP).await;

    let blocked = block(&redis, 2.5).await;
    assert_unavailable(&app, &pending).await;
    blocked.await.unwrap();

    assert!(!app.code_exists(&pending).await, "the script did not run");
    let record = app.store.token_key_of_code(&pending);
    assert!(app.exists(&record).await, "no token record was written");
    let retry = Answer::of(app.exchange(&APP, &pending).await).await;
    assert_eq!(
        (retry.status, retry.error()),
        (400, "invalid_grant"),
        "{}",
        retry.text
    );
    assert!(retry.text.contains("revoked"), "{}", retry.text);
    assert!(!app.exists(&record).await, "the orphan token record stays");
}

/// Redis quotes the first arguments of a command it does not know (`unknown command 'EVALSHA',
/// with args beginning with: …`), and the exchange script's third one is the code's key: a
/// `redis.url` that names a Sentinel, or a renamed command, must not put live codes in the log.
#[tokio::test]
async fn an_error_that_quotes_the_command_is_reported_without_its_arguments() {
    let redis = RedisServer::start_with(&["--rename-command", "EVALSHA", ""], None);
    let app = spawn_app_with(|s| s.redis.url = redis.url()).await;
    let code = app.issue_code(&APP).await;
    let jti = app.store.new_jti(&code).expect("a jti");

    let refused = app.store.take_code(&code, &jti, 60, &head(&jti)).await;

    let error = refused.expect_err("EVALSHA is unknown to this Redis");
    // Shown and debugged (actix's access log prints an answer's error with `{:?}`).
    for text in [error.to_string(), format!("{error:?}")] {
        assert!(text.contains("unknown command"), "{text}");
        assert!(text.contains("arguments not shown"), "{text}");
        assert!(!text.contains(&code), "the code is in the error: {text}");
    }
    let answer = Answer::of(app.exchange(&APP, &app.issue_code(&APP).await).await).await;
    assert_eq!(answer.status, 503, "{}", answer.text);
}

/// `/readyz` is public and unthrottled: probes that come together share Redis `PING`s rather
/// than each sending one on the lanes the exchanges use. Redis is blocked while they come, so
/// that they all wait on it together.
#[tokio::test]
async fn readiness_probes_that_come_together_share_their_pings() {
    const PROBES: usize = 40;
    let redis = RedisServer::start_with(&["--enable-debug-command", "yes"], None);
    let app = app_on(redis.url()).await;
    assert_eq!(status_of(&app, "/readyz").await, 200);
    let series = r#"sso_redis_duration_seconds_count{operation="ping"}"#;
    let pings = || async { metrics::value(&metrics::scrape(&app, &app.address).await, series) };
    let before = pings().await;
    // Long enough that the first PING times out (300 ms) on a busy machine too.
    let blocked = block(&redis, 1.0).await;

    let probes = (0..PROBES).map(|_| status_of(&app, "/readyz"));
    let statuses = futures_util::future::join_all(probes).await;

    blocked.await.unwrap();
    // The first PING out timed out: the probes that shared it say so.
    assert!(statuses.contains(&503), "{statuses:?}");
    // That one, and a next one for probes that came after it timed out.
    let sent = pings().await - before;
    assert!(
        (1.0..=4.0).contains(&sent),
        "{sent} PINGs for {PROBES} probes"
    );
    assert_eq!(status_of(&app, "/readyz").await, 200);
}

/// A probe that comes while a PING is out takes that PING's answer: it waits no longer than
/// `redis.timeout_ms`, not for the first PING and then for one of its own.
#[tokio::test]
async fn a_readiness_probe_behind_a_ping_out_waits_at_most_the_timeout() {
    const TIMEOUT: Duration = Duration::from_millis(2000);
    let redis = RedisServer::start_with(&["--enable-debug-command", "yes"], None);
    let app = spawn_app_with(|s| {
        s.redis.url = redis.url();
        s.redis.timeout_ms = TIMEOUT.as_millis() as u64;
    })
    .await;
    assert_eq!(status_of(&app, "/readyz").await, 200);
    let blocked = block(&redis, 4.0).await;

    // The second probe comes halfway through the first's PING: it should wait ~1 s, 1 s short
    // of the timeout, and a PING of its own would take that whole timeout.
    let first = status_of(&app, "/readyz");
    let (first, second) = tokio::join!(first, async {
        tokio::time::sleep(TIMEOUT / 2).await;
        let started = Instant::now();
        (status_of(&app, "/readyz").await, started.elapsed())
    });

    assert_eq!(first, 503);
    let (status, waited) = second;
    assert_eq!(status, 503);
    assert!(waited < TIMEOUT, "the second probe waited {waited:?}");
    blocked.await.unwrap();
    assert_eq!(status_of(&app, "/readyz").await, 200);
}

/// Each Redis operation gets its own line a second: with one limit for all, the most frequent
/// (here the exchange, every few milliseconds) took every second's line, and introspection
/// failing too (once every half second) was never said.
#[tokio::test]
async fn each_redis_operation_gets_its_own_line_a_second() {
    let mut redis = RedisServer::start();
    let log = log_capture::mark();
    let app = app_on(redis.url()).await;
    let token = app.token_for(&APP).await;
    redis.stop();

    let started = Instant::now();
    let mut introspections = 0;
    while started.elapsed() < Duration::from_millis(2500) {
        let exchange = app.exchange(&APP, "OC-1001-Hq8Zt3Lw6Np2Rx5Vm9Kc4Jd7").await;
        assert_eq!(exchange.status(), 503);
        if started.elapsed() >= Duration::from_millis(500) * introspections {
            let introspected = app.introspect(&APP, &token).await;
            assert_eq!(introspected.status, 503, "{}", introspected.text);
            introspections += 1;
        }
    }

    let lines = log.lines();
    for op in ["exchange", "get_token"] {
        let needle = format!("redis unavailable ({op})");
        assert!(
            lines.iter().any(|line| line.contains(&needle)),
            "no `{needle}` line in {:?}",
            started.elapsed()
        );
    }
}
