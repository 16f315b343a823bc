//! Throttling of failed client authentication: per source address (once blocked, every request
//! for a client id that failed from it or is unknown) and per client id (its failures only),
//! shared by replicas through Redis, switchable off; successful requests never touch the
//! counters.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use deadpool_redis::redis;
use futures_util::StreamExt;
use reqwest::header::HeaderValue;
use serde_json::json;
use sso_token::routes::paths::{INTROSPECT_PATH, REVOKE_PATH};
use sso_token::throttle::MAX_TRACKED;

use crate::concurrency::{race_raw, raw_post};
use crate::helpers::{APP, Answer, BASIC_CHALLENGE, OTHER, TestApp, TestClient, spawn_app_with};
use crate::redis_server::RedisServer;
use crate::{log_capture, metrics};

const MAX: u64 = 3;
const WRONG: &str = "wrong-secret-Ux9Kd2Mv7Qa4Lp1Ze6Rb";

async fn app(trust_loopback: bool) -> TestApp {
    spawn_app_with(|s| {
        s.throttle.max_failures = MAX;
        if trust_loopback {
            s.throttle.trusted_proxies = vec!["127.0.0.0/8".into()];
        }
    })
    .await
}

/// The same on a Redis of the test's own, for the tests that stop it.
async fn app_on(redis: &RedisServer) -> TestApp {
    spawn_app_with(|s| {
        s.redis.url = redis.url();
        s.throttle.max_failures = MAX;
        s.throttle.trusted_proxies = vec!["127.0.0.0/8".into()];
    })
    .await
}

/// An exchange of a fresh code for `id`/`secret`, as if from `address` (X-Forwarded-For).
async fn attempt(app: &TestApp, id: &str, secret: &str, address: &str) -> Answer {
    let forwarded = format!("192.0.2.250, {address}");
    attempt_forwarded(app, id, secret, &[&forwarded]).await
}

/// [`attempt`], with the throttle's Redis calls it made.
async fn attempt_counting_reads(
    app: &TestApp,
    id: &str,
    secret: &str,
    address: &str,
) -> (Answer, f64) {
    let before = throttle_redis_calls(app).await;
    let answer = attempt(app, id, secret, address).await;
    (answer, throttle_redis_calls(app).await - before)
}

/// The same with these `X-Forwarded-For` lines, in this order.
async fn attempt_forwarded(app: &TestApp, id: &str, secret: &str, lines: &[&str]) -> Answer {
    let code = app.issue_code(&APP).await;
    let body = json!({
        "client_id": id,
        "client_secret": secret,
        "code": code,
        "redirect_uri": APP.redirect_uri,
    });
    let mut request = app.http.post(app.token_url()).json(&body);
    for line in lines {
        // As bytes: http 1.6 refuses a string with non-ASCII characters, which one test sends.
        let value = HeaderValue::from_bytes(line.as_bytes()).expect("header bytes");
        request = request.header("X-Forwarded-For", value);
    }
    Answer::of(request.send().await.expect("request sent")).await
}

/// An introspection or revocation (`path`) of `token` for `id`/`secret`, as if from `address`.
async fn ask(
    app: &TestApp,
    path: &str,
    id: &str,
    secret: &str,
    token: &str,
    address: &str,
) -> Answer {
    let body = json!({"token": token, "client_id": id, "client_secret": secret});
    let request = app
        .http
        .post(app.url(path))
        .header("X-Forwarded-For", format!("192.0.2.250, {address}"))
        .json(&body);
    Answer::of(request.send().await.expect("request sent")).await
}

/// A 429 `invalid_client` within the default window (60 s): `Retry-After` at most that.
fn assert_throttled(answer: &Answer, context: &str) {
    assert_refused_429(answer, context);
    answer.assert_error_shape(context);
    let retry_after: u64 = answer
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{context}: no Retry-After in seconds"));
    assert!((1..=60).contains(&retry_after), "{context}: {retry_after}");
}

/// A 429 `invalid_client`, in any window, with the 401's Basic challenge (RFC 6749 §5.2).
fn assert_refused_429(answer: &Answer, context: &str) {
    assert_eq!(
        (answer.status, answer.error()),
        (429, "invalid_client"),
        "{context}: {}",
        answer.text
    );
    assert_eq!(
        answer.header("www-authenticate"),
        Some(r#"Basic realm="sso-token", charset="UTF-8""#),
        "{context}"
    );
}

#[tokio::test]
async fn after_n_failures_from_an_address_the_client_that_failed_gets_429_there() {
    let app = app(true).await;
    for i in 0..MAX {
        let answer = attempt(&app, APP.id, WRONG, "203.0.113.7").await;
        assert_eq!(answer.status, 401, "failure {i}: {}", answer.text);
    }

    let next_failure = attempt(&app, APP.id, WRONG, "203.0.113.7").await;
    let right_secret = attempt(&app, APP.id, APP.secret, "203.0.113.7").await;
    let elsewhere = attempt(&app, APP.id, APP.secret, "203.0.113.8").await;

    assert_throttled(&next_failure, "the failure past the limit");
    assert_throttled(&right_secret, "the right secret from the blocked address");
    assert_eq!(elsewhere.status, 200, "{}", elsewhere.text);
    // The seconds left of the 60 s window that the first failure began moments ago.
    let retry_after: u64 = next_failure.header("retry-after").unwrap().parse().unwrap();
    assert!(retry_after >= 50, "Retry-After {retry_after}");
}

/// The start of a block is a security event, logged once (the failure that completes it),
/// naming the address, not once per refused request.
#[tokio::test]
async fn an_address_block_is_logged_once_when_it_begins() {
    let log = log_capture::mark();
    let app = app(true).await;
    // An address no other test uses: the log is shared.
    let bytes = uuid::Uuid::new_v4().into_bytes();
    let address = format!("10.{}.{}.{}", bytes[0], bytes[1], bytes[2]);
    let lines = || {
        let about = |l: &&String| l.contains(&format!("address {address} failed"));
        log.lines()
            .iter()
            .filter(about)
            .cloned()
            .collect::<Vec<_>>()
    };
    for _ in 1..MAX {
        attempt(&app, APP.id, WRONG, &address).await;
    }
    assert_eq!(lines(), Vec::<String>::new(), "logged before the block");
    // The limit's own failure completes the block.
    let last = attempt(&app, APP.id, WRONG, &address).await;
    assert_eq!(last.status, 401, "{}", last.text);

    for _ in 0..3 {
        let refused = attempt(&app, APP.id, WRONG, &address).await;
        assert_throttled(&refused, "past the limit");
    }

    let said = lines();
    assert_eq!(said.len(), 1, "{said:#?}");
    assert!(said[0].starts_with("WARN"), "{}", said[0]);
    assert!(said[0].contains("blocked for the next"), "{}", said[0]);
}

/// A host routinely holds a whole IPv6 /64: its addresses share one counter.
#[tokio::test]
async fn ipv6_addresses_are_counted_by_their_64() {
    let app = app(true).await;
    // A fresh address of the /64 for each.
    for i in 0..MAX {
        let address = format!("2001:db8:7:7::{}", i + 1);
        let answer = attempt(&app, APP.id, WRONG, &address).await;
        assert_eq!(answer.status, 401, "failure {i}: {}", answer.text);
    }

    let same_64 = attempt(&app, APP.id, APP.secret, "2001:db8:7:7:abcd::9").await;
    let unknown_id = attempt(&app, "guess", WRONG, "2001:db8:7:7:abcd::10").await;
    let next_64 = attempt(&app, APP.id, APP.secret, "2001:db8:7:8::1").await;

    assert_throttled(&same_64, "another address of the same /64");
    assert_throttled(&unknown_id, "an unknown client id from the same /64");
    assert_eq!(next_64.status, 200, "{}", next_64.text);
}

/// Clients behind one NAT or egress gateway share its address: one with a stale secret blocks
/// itself and unknown ids there, not the others, until one of those fails there too.
#[tokio::test]
async fn a_blocked_address_still_lets_in_a_registered_client_that_has_not_failed_from_it() {
    let app = app(true).await;
    let address = "203.0.113.9";
    for i in 0..MAX {
        // The last failure with an id nobody registered: it leaves no pair counter.
        let id = if i + 1 < MAX { OTHER.id } else { "ghost" };
        let answer = attempt(&app, id, WRONG, address).await;
        assert_eq!(answer.status, 401, "failure {i}: {}", answer.text);
    }
    assert_eq!(app.keys("throttle:pair:*").await.len(), 1, "OTHER's only");

    let stale_client = attempt(&app, OTHER.id, OTHER.secret, address).await;
    let unknown_id = attempt(&app, "ghost", WRONG, address).await;
    let neighbour = attempt(&app, APP.id, APP.secret, address).await;
    let token = neighbour.json["access_token"].as_str().unwrap_or_default();
    let introspected = ask(&app, INTROSPECT_PATH, APP.id, APP.secret, token, address).await;
    let neighbours_failure = attempt(&app, APP.id, WRONG, address).await;
    let neighbour_after_it = attempt(&app, APP.id, APP.secret, address).await;

    assert_throttled(&stale_client, "the client that failed, right secret");
    assert_throttled(&unknown_id, "an unknown client id");
    assert_eq!(neighbour.status, 200, "{}", neighbour.text);
    assert_eq!(
        (introspected.status, &introspected.json["active"]),
        (200, &json!(true)),
        "{}",
        introspected.text
    );
    assert_throttled(
        &neighbours_failure,
        "the other client's first failure there",
    );
    assert_throttled(
        &neighbour_after_it,
        "the other client, once it failed there",
    );
}

#[tokio::test]
async fn a_client_ids_failures_are_throttled_but_its_right_secret_still_passes() {
    let app = app(true).await;
    for i in 0..MAX {
        let answer = attempt(&app, APP.id, WRONG, &format!("198.51.100.{i}")).await;
        assert_eq!(answer.status, 401, "failure {i}: {}", answer.text);
    }

    let next_failure = attempt(&app, APP.id, WRONG, "198.51.100.50").await;
    let right_secret = attempt(&app, APP.id, APP.secret, "198.51.100.51").await;

    assert_throttled(&next_failure, "a failure for the client past the limit");
    assert_eq!(right_secret.status, 200, "{}", right_secret.text);
}

#[tokio::test]
async fn an_address_guessing_at_a_throttled_client_id_is_still_counted_and_blocked() {
    let app = app(true).await;
    for i in 0..MAX {
        let answer = attempt(&app, APP.id, WRONG, &format!("198.51.100.{i}")).await;
        assert_eq!(answer.status, 401, "failure {i}: {}", answer.text);
    }
    // The client id is past its limit: a fresh address's guesses get 429, and still count.
    for i in 0..MAX {
        let guess = attempt(&app, APP.id, WRONG, "203.0.113.66").await;
        assert_throttled(&guess, &format!("guess {i} at the throttled client id"));
    }

    let right_secret = attempt(&app, APP.id, APP.secret, "203.0.113.66").await;
    let elsewhere = attempt(&app, APP.id, APP.secret, "203.0.113.67").await;

    assert_throttled(
        &right_secret,
        "the right secret from the address that kept guessing",
    );
    assert_eq!(elsewhere.status, 200, "{}", elsewhere.text);
}

#[tokio::test]
async fn failures_at_introspection_and_revocation_block_an_address_everywhere() {
    let app = app(true).await;
    let token = app.token_for(&APP).await;
    let address = "203.0.113.40";
    for (i, path) in [INTROSPECT_PATH, REVOKE_PATH, INTROSPECT_PATH]
        .into_iter()
        .enumerate()
    {
        let answer = ask(&app, path, APP.id, WRONG, &token, address).await;
        assert_eq!(answer.status, 401, "failure {i} at {path}: {}", answer.text);
    }

    for path in [INTROSPECT_PATH, REVOKE_PATH] {
        let right_secret = ask(&app, path, APP.id, APP.secret, &token, address).await;
        assert_throttled(&right_secret, &format!("the right secret at {path}"));
    }
    let exchange = attempt(&app, APP.id, APP.secret, address).await;
    assert_throttled(&exchange, "an exchange from the address blocked by them");
    let elsewhere = ask(
        &app,
        INTROSPECT_PATH,
        APP.id,
        APP.secret,
        &token,
        "203.0.113.41",
    )
    .await;
    assert_eq!(
        (elsewhere.status, &elsewhere.json["active"]),
        (200, &json!(true)),
        "{}",
        elsewhere.text
    );
}

#[tokio::test]
async fn a_client_ids_failures_anywhere_throttle_its_failures_at_revocation() {
    let app = app(true).await;
    let token = app.token_for(&APP).await;
    let first = attempt(&app, APP.id, WRONG, "198.51.100.60").await;
    let second = ask(
        &app,
        INTROSPECT_PATH,
        APP.id,
        WRONG,
        &token,
        "198.51.100.61",
    )
    .await;
    let third = ask(&app, REVOKE_PATH, APP.id, WRONG, &token, "198.51.100.62").await;
    for (i, answer) in [first, second, third].iter().enumerate() {
        assert_eq!(answer.status, 401, "failure {i}: {}", answer.text);
    }

    let next_failure = ask(&app, REVOKE_PATH, APP.id, WRONG, &token, "198.51.100.63").await;
    let right_secret = ask(
        &app,
        REVOKE_PATH,
        APP.id,
        APP.secret,
        &token,
        "198.51.100.64",
    )
    .await;

    assert_throttled(
        &next_failure,
        "a failure for the client past the limit, at revocation",
    );
    assert_eq!(right_secret.status, 200, "{}", right_secret.text);
    assert!(
        !app.is_active(&APP, &token).await,
        "the revocation did not revoke"
    );
}

/// README ("Throttling"): counters count in a fixed window that the first failure starts, and
/// the 429 lasts until the window ends, its `Retry-After` the seconds left. So the counter's
/// key expires with the window, the right secret then passes again, and the next wrong one is
/// the first failure of a new window (401, not 429). A window of 3 s, not 1 or 2: the four
/// failures must all land in it however slowly a busy machine sends them.
#[tokio::test]
async fn an_address_block_ends_with_its_window_and_the_next_failure_starts_a_new_one() {
    const WINDOW_SECS: u64 = 3;
    let app = spawn_app_with(|s| {
        s.throttle.max_failures = MAX;
        s.throttle.window_secs = WINDOW_SECS;
        s.throttle.trusted_proxies = vec!["127.0.0.0/8".into()];
    })
    .await;
    let address = "203.0.113.101";
    // README: `<prefix>throttle:addr:<ip>`.
    let counter = format!("{}throttle:addr:{address}", app.settings.redis.key_prefix);
    let wrong = TestClient {
        secret: WRONG,
        ..APP
    };
    // Refused before any code is read: no fresh code needed, and nothing slows the failures.
    let unknown_code = "OC-1-never-issued";
    // The window starts after this: it ends no sooner than `first_sent + WINDOW_SECS`.
    let first_sent = Instant::now();
    for i in 0..MAX {
        let answer = app.exchange_from(&wrong, unknown_code, address).await;
        assert_eq!(answer.status, 401, "failure {i}: {}", answer.text);
    }

    let blocked = app.exchange_from(&wrong, unknown_code, address).await;
    let blocked_answered = Instant::now();
    let pttl: i64 = app.query(redis::cmd("PTTL").arg(&counter)).await;

    assert_refused_429(&blocked, "the failure past the limit");
    let retry_after: u64 = blocked
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no Retry-After in seconds: {:?}", blocked.headers));
    assert!(
        (1..=WINDOW_SECS).contains(&retry_after),
        "Retry-After {retry_after} in a {WINDOW_SECS} s window"
    );
    // Rounded up, never down: a client that waits as told must not find the window still open.
    // At least what was left when the 429 was answered (Redis' clock against the test's, and
    // PTTL's whole milliseconds, are the slack); a slow machine loosens the bound.
    let least_left = Duration::from_secs(WINDOW_SECS)
        .saturating_sub(blocked_answered - first_sent)
        .saturating_sub(Duration::from_millis(200));
    assert!(
        Duration::from_secs(retry_after) >= least_left,
        "Retry-After {retry_after} s with at least {least_left:?} of the window left"
    );
    let window_ms = i64::try_from(WINDOW_SECS * 1000).unwrap();
    assert!(
        pttl > 0 && pttl <= window_ms,
        "the address counter's PTTL is {pttl} ms in a {window_ms} ms window"
    );

    // Once the window is over, the right secret passes (one code: a 429 leaves it untouched).
    let code = app.issue_code(&APP).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let passed = loop {
        let answer = app.exchange_from(&APP, &code, address).await;
        if answer.status != 429 {
            break answer;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still 429 10 s into a {WINDOW_SECS} s window: {}",
            answer.text
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(passed.status, 200, "after the window: {}", passed.text);

    let next_failure = app.exchange_from(&wrong, unknown_code, address).await;
    assert_eq!(
        next_failure.status, 401,
        "the first failure of a new window: {}",
        next_failure.text
    );
}

/// README ("Throttling"): the window is fixed, started by the first failure: later failures
/// in it do not push its end back (a sliding window would let a slow guesser keep a block up, or
/// a counter alive, for ever). Failures at 0 s, 0 s and 3 s of a 6 s window: the third (the
/// N-th, 401) leaves each counter with the time left since the first failure, not a fresh
/// window; the 429 after it says as much in `Retry-After`; the block is over 6 s after the
/// first failure, before a window started by the third could end; and the failure after that
/// is the first of a new window, not the fifth of an old one. Each bound is measured on the
/// test's clock from the first failure's answer: a slow machine loosens it, and a sliding
/// window misses it by the 3 s between the first and the third failure (the reads after the
/// third failure have ~3 s before the window ends, room for a stalled machine).
#[tokio::test]
async fn a_failure_late_in_the_window_does_not_extend_it() {
    const WINDOW: Duration = Duration::from_secs(6);
    const LATER: Duration = Duration::from_secs(3);
    // Redis' clock against the test's, and PTTL's whole milliseconds.
    const SLACK: Duration = Duration::from_millis(200);
    let app = spawn_app_with(|s| {
        s.throttle.max_failures = MAX;
        s.throttle.window_secs = WINDOW.as_secs();
        s.throttle.trusted_proxies = vec!["127.0.0.0/8".into()];
    })
    .await;
    let address = "203.0.113.103";
    let counter = format!("{}throttle:addr:{address}", app.settings.redis.key_prefix);
    let wrong = TestClient {
        secret: WRONG,
        ..APP
    };
    let unknown_code = "OC-1-never-issued";

    let first = app.exchange_from(&wrong, unknown_code, address).await;
    // The window started before this: it ends by `first_answered + WINDOW`.
    let first_answered = Instant::now();
    let second = app.exchange_from(&wrong, unknown_code, address).await;
    tokio::time::sleep(LATER).await;
    // A window that the third failure started would end after `third_sent + WINDOW`.
    let third_sent = Instant::now();
    let third = app.exchange_from(&wrong, unknown_code, address).await;
    for (i, answer) in [first, second, third].iter().enumerate() {
        assert_eq!(answer.status, 401, "failure {i}: {}", answer.text);
    }

    let read_from = Instant::now();
    let counters = app.keys("throttle:*").await;
    assert_eq!(counters.len(), 3, "address, client id, pair: {counters:?}");
    let most_left = WINDOW.saturating_sub(read_from - first_answered) + SLACK;
    for key in &counters {
        let count: u64 = app.query(redis::cmd("GET").arg(key)).await;
        let pttl: i64 = app.query(redis::cmd("PTTL").arg(key)).await;
        assert_eq!(
            count, MAX,
            "{key}: the three failures were not counted in one window (a machine too slow \
             for this test?)"
        );
        let left = u64::try_from(pttl).map(Duration::from_millis);
        assert!(
            left.is_ok_and(|left| left <= most_left),
            "{key}: PTTL {pttl} ms after the third failure, {:?} after the first: the window \
             runs from the last failure, not the first ({most_left:?} at most)",
            read_from - first_answered
        );
    }

    let fourth_sent = Instant::now();
    let blocked = app.exchange_from(&wrong, unknown_code, address).await;
    assert_refused_429(&blocked, "the failure past the limit");
    let retry_after: u64 = blocked
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no Retry-After in seconds: {:?}", blocked.headers));
    let most_left = WINDOW.saturating_sub(fourth_sent - first_answered);
    let most_secs = most_left.as_secs() + u64::from(most_left.subsec_nanos() > 0);
    assert!(
        (1..=most_secs).contains(&retry_after),
        "Retry-After {retry_after} s, {:?} after the first failure of a {WINDOW:?} window",
        fourth_sent - first_answered
    );

    // The right secret passes once the window that the first failure started is over, well
    // before one that the third started could be: halfway between the two ends (one code: a
    // 429 leaves it untouched).
    let code = app.issue_code(&APP).await;
    let too_late = first_answered + WINDOW + (third_sent - first_answered) / 2;
    loop {
        let sent = Instant::now();
        let answer = app.exchange_from(&APP, &code, address).await;
        if answer.status != 429 {
            assert_eq!(answer.status, 200, "after the window: {}", answer.text);
            break;
        }
        assert!(
            sent < too_late,
            "still 429 {:?} after the first failure of a {WINDOW:?} window, {:?} after the \
             third: the window runs from the last failure",
            sent - first_answered,
            sent - third_sent
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Past the first failure's window in Redis too (by more than its clock could differ).
    tokio::time::sleep_until((first_answered + WINDOW + SLACK).into()).await;
    assert!(
        !app.exists(&counter).await,
        "the address counter outlives the window its first failure started"
    );
    let next_failure = app.exchange_from(&wrong, unknown_code, address).await;
    assert_eq!(
        next_failure.status, 401,
        "the first failure of a new window: {}",
        next_failure.text
    );
}

/// README ("Throttling"): the 429's `Retry-After` is the seconds left of the window, rounded
/// up, and not a second more. A counter Redis holds without a TTL (an operator's `SET`, a
/// restored dump: the script never leaves one) is given a whole window by the failure that
/// finds it, and that failure's 429 says exactly the window: 60, not 61 (rounding up a whole
/// number of seconds) nor 0. The next request from the blocked address, moments later, has a
/// fraction of a second less left: still 60, rounded up, not 59 (rounded down) nor 58.
#[tokio::test]
async fn retry_after_is_the_window_left_rounded_up_and_not_a_second_more() {
    const WINDOW_SECS: u64 = 60;
    let app = app(true).await;
    let address = "203.0.113.102";
    let counter = app.store.throttle_address_key(address.parse().unwrap());
    let _: () = app.query(redis::cmd("SET").arg(&counter).arg(MAX)).await;

    let sent = Instant::now();
    let failure = attempt(&app, APP.id, WRONG, address).await;
    let right_secret = attempt(&app, APP.id, APP.secret, address).await;
    let answered = Instant::now();

    assert_refused_429(&failure, "the failure past the limit");
    assert_eq!(
        failure.header("retry-after"),
        Some("60"),
        "the failure that gave the counter its window"
    );
    assert_refused_429(&right_secret, "the right secret from the blocked address");
    let retry_after: u64 = right_secret
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no Retry-After in seconds: {:?}", right_secret.headers));
    // At least the window left when it was answered, rounded up: 60 within a second of the
    // first request (a slow machine loosens the bound).
    let least = Duration::from_secs(WINDOW_SECS).saturating_sub(answered - sent);
    let least_secs = least.as_secs() + u64::from(least.subsec_nanos() > 0);
    assert!(
        (least_secs..=WINDOW_SECS).contains(&retry_after),
        "Retry-After {retry_after} s, {:?} after the counter's window began",
        answered - sent
    );
}

/// A registered client that failed from a blocked address is let in again when either window
/// ends, its own failure's there or the address's: its `Retry-After` is the earlier. Its
/// failure may have begun before the address's window (the address then blocked afresh): the
/// address's alone said 60 s where 5 were left.
#[tokio::test]
async fn retry_after_for_a_client_that_failed_at_a_blocked_address_is_the_earlier_window() {
    let app = app(true).await;
    let address = "203.0.113.104";
    let ip = address.parse().unwrap();
    let counters = [
        (app.store.throttle_address_key(ip), MAX, 60_000),
        (app.store.throttle_client_at_key(APP.id, ip), 1, 5_000),
    ];
    for (key, count, ms) in counters {
        let _: () = app
            .query(redis::cmd("SET").arg(key).arg(count).arg("PX").arg(ms))
            .await;
    }
    // The replica learns of the block from a failure there.
    let learned = attempt(&app, "ghost-window", WRONG, address).await;
    assert_refused_429(&learned, "an unknown id at the blocked address");

    let right_secret = attempt(&app, APP.id, APP.secret, address).await;

    assert_refused_429(&right_secret, "the client that failed there");
    assert_eq!(right_secret.header("retry-after"), Some("5"));
}

/// A counter and the window it has left are read together (`Store::failures`, one MULTI): read
/// apart, a counter that expired between the two reads came back as its count with no TTL,
/// which the throttle takes for a whole new window (a block a window longer than Redis kept
/// it), or as no count with a window left. Counters set to expire within milliseconds are
/// read over and over until they are gone; every read is a count with its window or nothing.
/// Without the MULTI a half read (`(3, -2)`) came within 7–114 expiries in three runs of 400.
#[tokio::test]
async fn a_counter_read_as_it_expires_is_read_whole_or_not_at_all() {
    let app = app(true).await;
    let counter = app
        .store
        .throttle_address_key("203.0.113.103".parse().unwrap());
    let (mut live, mut rounds) = (0_u32, 0_u32);
    let started = Instant::now();
    while rounds < 400 && started.elapsed() < Duration::from_secs(20) {
        let _: () = app
            .query(redis::cmd("SET").arg(&counter).arg(MAX).arg("PX").arg(5))
            .await;
        loop {
            match app.store.failures(&counter).await.expect("counter read") {
                (0, -2) => break,
                (MAX, left) if (0..=5).contains(&left) => live += 1,
                half => panic!("round {rounds}, {live} live reads: {half:?}"),
            }
        }
        rounds += 1;
    }
    assert!(rounds >= 100, "only {rounds} expiries in 20 s");
    // Reads that found it alive, so that they straddle its expiry (a slow machine may find it
    // gone at a round's first read now and then).
    assert!(live >= rounds / 2, "{live} live reads in {rounds} rounds");
}

/// README ("Throttling"): credentials that no secret could make right (no secret, a Basic
/// header that does not decode, a secret over 512 bytes) are answered 401 as the request is
/// read, before the throttle: neither counted nor blocked. Far more of them than the limit from
/// one address are each a 401 with the Basic challenge, and leave no counter in Redis. Control:
/// one wrong secret from there is counted.
#[tokio::test]
async fn credentials_that_cannot_succeed_are_neither_counted_nor_throttled() {
    let app = app(true).await;
    let address = "203.0.113.102";
    let code = "OC-1-never-issued";
    let too_long = "s".repeat(513);
    let no_secret = json!({
        "client_id": APP.id,
        "code": code,
        "redirect_uri": APP.redirect_uri,
    });
    let long_secret = json!({
        "client_id": APP.id,
        "client_secret": too_long,
        "code": code,
        "redirect_uri": APP.redirect_uri,
    });
    let form = [("code", code), ("redirect_uri", APP.redirect_uri)];
    let forwarded = format!("192.0.2.250, {address}");
    for i in 0..(MAX + 2) {
        let post = || {
            app.http
                .post(app.token_url())
                .header("X-Forwarded-For", &forwarded)
        };
        for (what, request) in [
            ("no client_secret", post().json(&no_secret)),
            ("a secret over 512 bytes", post().json(&long_secret)),
            (
                "Basic that does not decode",
                post().header("Authorization", "Basic %%%").form(&form),
            ),
        ] {
            let answer = Answer::of(request.send().await.expect("request sent")).await;

            assert_eq!(
                (answer.status, answer.error()),
                (401, "invalid_client"),
                "{what}, request {i}: {}",
                answer.text
            );
            assert_eq!(
                answer.header("www-authenticate"),
                Some(BASIC_CHALLENGE),
                "{what}, request {i}"
            );
        }
    }
    let counters = app.keys("throttle:*").await;
    assert!(counters.is_empty(), "counted: {counters:?}");

    let wrong = attempt(&app, APP.id, WRONG, address).await;
    assert_eq!(wrong.status, 401, "{}", wrong.text);
    assert!(
        !app.keys("throttle:*").await.is_empty(),
        "a wrong secret left no counter: the check above sees nothing"
    );
}

/// A load balancer left out of `trusted_proxies` makes every client count as it: said once,
/// naming the peer; nothing is said of a trusted one.
#[tokio::test]
async fn a_peer_that_forwards_but_is_not_trusted_is_warned_about_once() {
    let log = log_capture::mark();
    // Peers of their own (the loopback network is all ours), so that the lines are this test's.
    let (untrusted, trusted) = ("127.0.0.2", "127.0.0.3");
    for (peer, trust) in [(untrusted, false), (trusted, true)] {
        let app = app(trust).await;
        for _ in 0..2 {
            authenticate_forwarding_from(&app, peer).await;
        }
    }

    assert_eq!(
        warnings_of_forwarding(&log, untrusted),
        1,
        "the untrusted peer, once"
    );
    assert_eq!(
        warnings_of_forwarding(&log, trusted),
        0,
        "the trusted proxy"
    );
}

/// With throttling off nothing is counted: nothing is said of a peer that forwards but is not a
/// trusted proxy (the line would warn of counts against it that are not kept).
#[tokio::test]
async fn with_throttling_off_a_peer_that_forwards_is_not_warned_about() {
    let log = log_capture::mark();
    // A peer of its own (the loopback network is all ours), so that the lines are this test's.
    let peer = "127.0.0.4";
    let app = spawn_app_with(|s| s.throttle.enabled = false).await;
    authenticate_forwarding_from(&app, peer).await;

    assert_eq!(
        warnings_of_forwarding(&log, peer),
        0,
        "warned with throttling off"
    );
}

/// An exchange of an unknown code by a registered client, sent from the loopback address
/// `peer` with an `X-Forwarded-For`; it must authenticate (`invalid_grant`).
async fn authenticate_forwarding_from(app: &TestApp, peer: &str) {
    let http = reqwest::Client::builder()
        .local_address(peer.parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap();
    let body = json!({
        "client_id": APP.id,
        "client_secret": APP.secret,
        "code": "OC-1-unknown",
        "redirect_uri": APP.redirect_uri,
    });
    let request = http.post(app.token_url()).json(&body);
    let answer = request
        .header("X-Forwarded-For", "198.51.100.7")
        .send()
        .await;
    let answer = Answer::of(answer.unwrap()).await;
    assert_eq!(
        answer.error(),
        "invalid_grant",
        "authenticated: {}",
        answer.text
    );
}

/// The log's warnings that `peer` sends `X-Forwarded-For` without being trusted.
fn warnings_of_forwarding(log: &log_capture::Mark, peer: &str) -> usize {
    let needle = format!("{peer} sends X-Forwarded-For");
    log.lines().iter().filter(|l| l.contains(&needle)).count()
}

#[tokio::test]
async fn forwarded_for_from_a_peer_that_is_not_a_trusted_proxy_is_ignored() {
    let app = app(false).await;
    for i in 0..MAX {
        let answer = attempt(&app, APP.id, WRONG, &format!("198.51.100.{i}")).await;
        assert_eq!(answer.status, 401, "failure {i}: {}", answer.text);
    }

    let answer = attempt(&app, APP.id, APP.secret, "198.51.100.99").await;

    assert_throttled(&answer, "a new X-Forwarded-For from the same peer");
}

#[tokio::test]
async fn a_forwarded_for_line_the_proxy_adds_after_the_clients_own_is_read_too() {
    let app = app(true).await;
    // A proxy that appends its own line keeps the client's line first: whatever the client
    // claims there, the right-most hop of all the lines is the address.
    for i in 0..MAX {
        let claimed = format!("198.51.100.{i}");
        let lines = [claimed.as_str(), "203.0.113.90"];
        let answer = attempt_forwarded(&app, APP.id, WRONG, &lines).await;
        assert_eq!(answer.status, 401, "failure {i}: {}", answer.text);
    }

    let lines = ["198.51.100.200", "203.0.113.90"];
    let right_secret = attempt_forwarded(&app, APP.id, APP.secret, &lines).await;

    assert_throttled(
        &right_secret,
        "a new claimed first line from the same address",
    );
}

/// A client's own `X-Forwarded-For` with bytes that are not ASCII does not hide the hop a proxy
/// appends to the same line (nginx's `$proxy_add_x_forwarded_for`): the failures count against
/// the client's address, not the proxy's, which would block everyone behind it.
#[tokio::test]
async fn a_forwarded_for_line_with_bytes_that_are_not_ascii_still_names_the_client() {
    let app = app(true).await;
    for i in 0..MAX {
        let lines = ["h\u{e9}llo, 198.51.100.9"];
        let answer = attempt_forwarded(&app, APP.id, WRONG, &lines).await;
        assert_eq!(answer.status, 401, "failure {i}: {}", answer.text);
    }

    let same_address = attempt_forwarded(&app, APP.id, APP.secret, &["198.51.100.9"]).await;
    let the_proxy = attempt_forwarded(&app, APP.id, APP.secret, &[]).await;

    assert_throttled(&same_address, "the client's address");
    assert_eq!(the_proxy.status, 200, "{}", the_proxy.text);
}

/// Some proxies write hops with a port (Azure Application Gateway: `203.0.113.7:51234`); such
/// a hop is its address, whatever the port.
#[tokio::test]
async fn forwarded_for_hops_with_a_port_count_as_their_address() {
    let app = app(true).await;
    for i in 0..MAX {
        let lines = ["198.51.100.21:51234"];
        let answer = attempt_forwarded(&app, APP.id, WRONG, &lines).await;
        assert_eq!(answer.status, 401, "failure {i}: {}", answer.text);
    }

    let another_port = attempt_forwarded(&app, APP.id, APP.secret, &["198.51.100.21:40000"]).await;
    let v6 = attempt_forwarded(&app, APP.id, APP.secret, &["[2001:db8::21]:443"]).await;
    let the_proxy = attempt_forwarded(&app, APP.id, APP.secret, &[]).await;

    assert_throttled(&another_port, "the same address, another port");
    assert_eq!(v6.status, 200, "{}", v6.text);
    assert_eq!(the_proxy.status, 200, "{}", the_proxy.text);
}

/// A hop that is no address at all, where a trusted proxy names the client: its failures count
/// against the client id only, not against the proxy's address.
#[tokio::test]
async fn an_unreadable_forwarded_for_hop_is_not_counted_against_the_proxy() {
    let app = app(true).await;
    for i in 0..=MAX {
        let client = format!("ghost-{i}");
        let answer = attempt_forwarded(&app, &client, WRONG, &["unknown"]).await;
        assert_eq!(answer.status, 401, "failure {i}: {}", answer.text);
    }

    let the_proxy = attempt_forwarded(&app, APP.id, APP.secret, &[]).await;

    assert_eq!(the_proxy.status, 200, "{}", the_proxy.text);
}

/// A trusted proxy's request without `X-Forwarded-For` (one that sets none, or its own) names
/// no client: its failures count against the client id only, never against the proxy's address,
/// whose block would cover every caller behind it (and the client id there).
#[tokio::test]
async fn a_trusted_proxys_request_without_forwarded_for_is_not_counted_against_it() {
    let app = app(true).await;
    for i in 0..MAX {
        let answer = attempt_forwarded(&app, APP.id, WRONG, &[]).await;
        assert_eq!(answer.status, 401, "failure {i}: {}", answer.text);
    }
    let past_the_limit = attempt_forwarded(&app, APP.id, WRONG, &[]).await;

    let right_secret = attempt_forwarded(&app, APP.id, APP.secret, &[]).await;
    let unknown = attempt_forwarded(&app, "ghost", WRONG, &[]).await;

    assert_throttled(&past_the_limit, "the client id's failure past the limit");
    assert_eq!(right_secret.status, 200, "{}", right_secret.text);
    assert_eq!(unknown.status, 401, "an unknown id: {}", unknown.text);
}

/// A trusted proxy's request that names no client (no `X-Forwarded-For`, or a hop that is no
/// address) is said in the log, naming the proxy, as only the client id then throttles it.
/// The requests come from a loopback address of this test's own, so that the lines it waits
/// for are its app's, not another test's; at most once a second at each call site, shared with
/// the other tests: asked again until each line shows.
#[tokio::test]
async fn a_trusted_proxys_request_naming_no_client_is_warned_about() {
    let log = log_capture::mark();
    let mut app = app(true).await;
    let proxy = "127.77.0.9";
    app.http = reqwest::Client::builder()
        .local_address(proxy.parse::<std::net::IpAddr>().unwrap())
        .timeout(Duration::from_secs(10))
        .build()
        .expect("reqwest client");
    let said = |line: &str| log.lines().iter().any(|l| l.contains(line));
    let (no_header, no_address) = (
        format!("a request from a trusted proxy ({proxy}) without X-Forwarded-For"),
        format!("an X-Forwarded-For hop behind a trusted proxy ({proxy}) is not an address"),
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while !(said(&no_header) && said(&no_address)) {
        assert!(
            Instant::now() < deadline,
            "not said in 5 s: {:?}",
            [&no_header, &no_address].map(|line| (line, said(line)))
        );
        for lines in [&[][..], &["unknown"]] {
            let answer = attempt_forwarded(&app, APP.id, APP.secret, lines).await;
            assert_eq!(answer.status, 200, "{lines:?}: {}", answer.text);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// An unknown client id has no secret to guess: its failures count against their address
/// only, and made-up ids leave no counter each in Redis.
#[tokio::test]
async fn made_up_client_ids_leave_no_counter_of_their_own() {
    let app = app(true).await;
    for i in 0..MAX {
        let answer = attempt(&app, &format!("ghost-{i}"), WRONG, "203.0.113.61").await;
        assert_eq!(answer.status, 401, "{}", answer.text);
    }
    let wrong_secret = attempt(&app, APP.id, WRONG, "203.0.113.62").await;
    assert_eq!(wrong_secret.status, 401, "{}", wrong_secret.text);

    let blocked = attempt(&app, "ghost-next", WRONG, "203.0.113.61").await;
    assert_throttled(&blocked, "the address of the made-up ids");
    assert_eq!(
        app.keys("throttle:client:*").await,
        [app.store.throttle_client_key(APP.id)],
        "counters by client id"
    );
    assert_eq!(app.keys("throttle:addr:*").await.len(), 2);
}

/// From a blocked address an unknown id is refused before authentication: nothing checked,
/// nothing counted (README, "Throttling").
#[tokio::test]
async fn a_blocked_address_refuses_an_unknown_id_without_checking_it() {
    let app = app(true).await;
    for _ in 0..MAX {
        attempt(&app, APP.id, WRONG, "203.0.113.95").await;
    }
    let address_key = app
        .store
        .throttle_address_key("203.0.113.95".parse().unwrap());
    let counted = || async {
        let count: Option<u64> = app.query(redis::cmd("GET").arg(&address_key)).await;
        let exposition = metrics::scrape(&app, &app.address).await;
        let failures = metrics::value(&exposition, "sso_client_auth_failures_total");
        (count, failures)
    };
    let before = counted().await;
    assert_eq!(before.0, Some(MAX), "the address's failures");

    let unknown = attempt(&app, "ghost-blocked", WRONG, "203.0.113.95").await;
    assert_throttled(&unknown, "an unknown id from the blocked address");
    assert_eq!(counted().await, before, "counted or checked");
}

/// A failed answer costs an unknown id the same Redis calls as a registered one (its two on a
/// decoy counter that nothing reads), so the time it takes tells no one which ids are
/// registered.
#[tokio::test]
async fn an_unknown_ids_failure_makes_as_many_redis_calls_as_a_registered_ids() {
    let app = app(true).await;
    let (registered, registered_calls) =
        attempt_counting_reads(&app, APP.id, WRONG, "203.0.113.91").await;
    let (unknown, unknown_calls) =
        attempt_counting_reads(&app, "ghost-timed", WRONG, "203.0.113.92").await;
    assert_eq!(registered.status, 401, "{}", registered.text);
    assert_eq!(unknown.status, 401, "{}", unknown.text);
    assert_eq!(
        registered_calls, 3.0,
        "by id, by address, by id at the address"
    );
    assert_eq!(unknown_calls, registered_calls, "an unknown id's failure");
    let decoy: Option<u64> = app
        .query(redis::cmd("GET").arg(app.store.throttle_decoy_key()))
        .await;
    assert_eq!(decoy, Some(2), "the decoy counted both calls");
}

/// An app whose address table a test fills: with a window that outlasts the fill however slow
/// the machine (expired entries would make room).
async fn app_to_fill(max_failures: u64) -> TestApp {
    spawn_app_with(|s| {
        s.throttle.max_failures = max_failures;
        s.throttle.window_secs = 3600;
        s.throttle.trusted_proxies = vec!["127.0.0.0/8".into()];
    })
    .await
}

/// One failure (of an unknown client id) from each of `count` addresses of 198.18.0.0/15
/// (RFC 2544).
async fn fail_once_from_each_of(app: &TestApp, count: usize) {
    let count = u32::try_from(count).expect("count fits in u32");
    assert!(count <= 1 << 17, "more than 198.18.0.0/15 holds");
    let body = json!({
        "grant_type": "authorization_code",
        "client_id": "ghost",
        "client_secret": WRONG,
        "code": "no-such-code",
        "redirect_uri": APP.redirect_uri,
    });
    let first = u32::from(Ipv4Addr::new(198, 18, 0, 0));
    let fill = futures_util::stream::iter(0..count).map(|i| {
        let request = app
            .http
            .post(app.token_url())
            .header("X-Forwarded-For", Ipv4Addr::from(first + i).to_string())
            .json(&body);
        async move { request.send().await.map(|r| r.status().as_u16()) }
    });
    let statuses: Vec<_> = fill.buffer_unordered(64).collect().await;
    assert!(
        statuses.iter().all(|s| matches!(s, Ok(401 | 429))),
        "{:?}",
        statuses.iter().find(|s| !matches!(s, Ok(401 | 429)))
    );
}

/// Failures from more addresses than a replica keeps track of ([`MAX_TRACKED`] in a window: an
/// attack spread over many), each at the limit so that none makes room for another, do not
/// switch the address block off: an address the replica could not keep is looked up in Redis
/// before authentication.
#[tokio::test]
async fn failures_from_more_addresses_than_a_replica_tracks_still_block_an_address() {
    // A limit of one: every address of the fill is blocked, none below half the limit.
    let app = app_to_fill(1).await;
    fail_once_from_each_of(&app, MAX_TRACKED).await;

    let answer = attempt(&app, APP.id, WRONG, "203.0.113.77").await;
    assert_eq!(answer.status, 401, "{}", answer.text);
    let (right_secret, reads) =
        attempt_counting_reads(&app, APP.id, APP.secret, "203.0.113.77").await;

    assert_refused_429(&right_secret, "the right secret from the blocked address");
    // The block came from Redis, not from the table: one read, the address's counter (the
    // client id's failure there is one the replica holds). A table with room for the address
    // would have answered alone.
    assert_eq!(
        reads, 1.0,
        "throttle reads in Redis for the blocked request"
    );
}

/// Failures spread thin over more addresses than a replica keeps track of, below half the limit
/// each, cost nobody a Redis read: a replica reads no counter for such an address even when it
/// holds it. And an address that reaches half the limit still finds room in the full table (in
/// place of those), so its block is answered without a read too.
#[tokio::test]
async fn addresses_far_below_the_limit_crowding_the_table_cost_other_addresses_no_read() {
    let app = app_to_fill(MAX).await;
    fail_once_from_each_of(&app, MAX_TRACKED + 1).await;

    let (fresh, reads) = attempt_counting_reads(&app, APP.id, APP.secret, "203.0.113.78").await;
    assert_eq!(fresh.status, 200, "{}", fresh.text);
    assert_eq!(reads, 0.0, "throttle reads for a fresh address's success");

    for i in 0..MAX {
        let answer = attempt(&app, APP.id, WRONG, "203.0.113.77").await;
        assert_eq!(answer.status, 401, "failure {i}: {}", answer.text);
    }
    let (right_secret, reads) =
        attempt_counting_reads(&app, APP.id, APP.secret, "203.0.113.77").await;
    assert_refused_429(&right_secret, "the right secret from the blocked address");
    assert_eq!(reads, 0.0, "throttle reads for the blocked address: held");
}

/// How many throttle operations `app` made in Redis (its `/metrics`).
async fn throttle_redis_calls(app: &TestApp) -> f64 {
    let exposition = metrics::scrape(app, &app.address).await;
    metrics::value(
        &exposition,
        r#"sso_redis_duration_seconds_count{operation="throttle"}"#,
    )
}

#[tokio::test]
async fn replicas_share_the_counters() {
    let first = app(true).await;
    let second = first.spawn_replica().await;
    for (i, replica) in [&first, &second, &first].into_iter().enumerate() {
        let answer = attempt(replica, APP.id, WRONG, "203.0.113.20").await;
        assert_eq!(answer.status, 401, "failure {i}: {}", answer.text);
    }

    // The second replica saw one failure; the other two make the address blocked.
    let answer = attempt(&second, APP.id, APP.secret, "203.0.113.20").await;

    assert_throttled(&answer, "the right secret on the other replica");
}

/// README ("Throttling"): a replica reads the shared counter before authenticating for an
/// address it has seen at half the limit or more, so that a block other replicas' failures
/// completed holds there too; below half, it reads nothing. A limit of 6, where half the limit
/// (3) and one short of it (5) differ: the first replica sees 2 failures (a success then costs
/// no read), then a third; the second replica adds the 3 that complete the block; the right
/// secret of the client that failed there, sent to the first, gets 429 after one read.
#[tokio::test]
async fn a_replica_that_saw_half_the_limit_from_an_address_enforces_the_block_others_complete() {
    const LIMIT: u64 = 6;
    let first = spawn_app_with(|s| {
        s.throttle.max_failures = LIMIT;
        s.throttle.trusted_proxies = vec!["127.0.0.0/8".into()];
    })
    .await;
    let second = first.spawn_replica().await;
    let address = "203.0.113.26";
    let fail = |replica, i| async move {
        let answer = attempt(replica, APP.id, WRONG, address).await;
        assert_eq!(answer.status, 401, "failure {i}: {}", answer.text);
    };
    for i in 0..LIMIT / 2 - 1 {
        fail(&first, i).await;
    }
    let (below_half, reads) = attempt_counting_reads(&first, APP.id, APP.secret, address).await;
    assert_eq!(below_half.status, 200, "{}", below_half.text);
    assert_eq!(reads, 0.0, "throttle reads below half the limit");
    fail(&first, LIMIT / 2 - 1).await;
    for i in LIMIT / 2..LIMIT {
        fail(&second, i).await;
    }

    let (right_secret, reads) = attempt_counting_reads(&first, APP.id, APP.secret, address).await;

    assert_throttled(
        &right_secret,
        "the right secret on the replica that saw half the failures",
    );
    // The address's counter; that the client failed there, the replica knows itself.
    assert_eq!(reads, 1.0, "throttle reads at half the limit");
}

/// Wrong secrets racing on two replicas: Redis counts atomically, so however they interleave
/// exactly N of them get a 401 (an answer to the guess), the rest get 429 (README: the N-th
/// failure gets 401, the next one 429, across replicas), and the block then holds on both
/// replicas. Not fewer than N: a replica refuses a request before counting it only once Redis
/// has told it of N failures, and a failure's counters (address, client id) go to Redis
/// together on the replica's connection, so the client id's count never runs ahead of the
/// address's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_failures_on_two_replicas_get_exactly_n_answers() {
    const RACERS: usize = 4 * MAX as usize;
    let first = app(true).await;
    let second = first.spawn_replica().await;
    let address = "203.0.113.30";
    let body = json!({"token": "t", "client_id": APP.id, "client_secret": WRONG}).to_string();
    let forwarded = format!("192.0.2.250, {address}");
    let request = raw_post(INTROSPECT_PATH, &[("X-Forwarded-For", &forwarded)], &body);
    let racers = (0..RACERS).map(|i| {
        let app = if i % 2 == 0 { &first } else { &second };
        (app.address.replace("http://", ""), request.clone())
    });
    let answers = race_raw(racers.collect()).await;

    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    let answered = statuses.iter().filter(|&&s| s == 401).count();
    assert_eq!(answered, MAX as usize, "guesses answered 401: {statuses:?}");
    for answer in answers.iter().filter(|a| a.status != 401) {
        assert_throttled(answer, "a failure past the limit");
    }
    for replica in [&first, &second] {
        let right = ask(replica, INTROSPECT_PATH, APP.id, APP.secret, "t", address).await;
        assert_throttled(&right, "the right secret from the blocked address");
    }
}

/// With Redis unable to say whether a client failed from a blocked address, that client gets
/// 503 before authentication, whatever its secret: let in, a guess would show right or wrong
/// by its answer (503 or 401); refused with 429, it would wait out the window. The client this
/// replica saw fail there is still refused with 429.
#[tokio::test]
async fn while_redis_is_down_a_blocked_address_answers_its_other_clients_503() {
    let mut redis = RedisServer::start();
    let app = app_on(&redis).await;
    let address = "203.0.113.22";
    for i in 0..MAX {
        let answer = attempt(&app, OTHER.id, WRONG, address).await;
        assert_eq!(answer.status, 401, "failure {i}: {}", answer.text);
    }

    redis.stop();
    let code = "OC-1-unknown";
    let wrong = TestClient {
        secret: WRONG,
        ..APP
    };
    let guess = app.exchange_from(&wrong, code, address).await;
    let right_secret = app.exchange_from(&APP, code, address).await;
    let stale_client = app.exchange_from(&OTHER, code, address).await;

    for (answer, context) in [(&guess, "a guess"), (&right_secret, "the right secret")] {
        assert_eq!(
            (answer.status, answer.error()),
            (503, "temporarily_unavailable"),
            "{context}: {}",
            answer.text
        );
        assert_eq!(answer.header("retry-after"), Some("1"), "{context}");
    }
    assert_throttled(&stale_client, "the client that failed there");
}

/// While Redis is down each replica counts failures itself: an address still gets 429 after N
/// failures, and so does the client id that failed, instead of an answer to every guess.
#[tokio::test]
async fn while_redis_is_down_a_replica_counts_failures_itself_and_still_blocks() {
    let mut redis = RedisServer::start();
    let app = app_on(&redis).await;
    redis.stop();
    let (address, code) = ("203.0.113.23", "OC-1-unknown");
    let wrong = TestClient {
        secret: WRONG,
        ..APP
    };
    let other_wrong = TestClient {
        secret: WRONG,
        ..OTHER
    };
    for i in 0..MAX {
        let answer = app.exchange_from(&wrong, code, address).await;
        assert_eq!(answer.status, 401, "failure {i}: {}", answer.text);
    }

    let next_guess = app.exchange_from(&wrong, code, address).await;
    let right_secret = app.exchange_from(&APP, code, address).await;
    let elsewhere = app.exchange_from(&wrong, code, "203.0.113.24").await;
    let other_client = app.exchange_from(&other_wrong, code, "203.0.113.24").await;

    assert_throttled(&next_guess, "the guess past the limit");
    assert_throttled(&right_secret, "the right secret from the blocked address");
    assert_throttled(
        &elsewhere,
        "the blocked client id's guess from another address",
    );
    // Control: the blocks are the address's and that client id's, not everyone's.
    assert_eq!(other_client.status, 401, "{}", other_client.text);
}

/// Which clients failed from a blocked address is shared too: a failure on one replica blocks
/// that client there on the other, which had let it in before.
#[tokio::test]
async fn replicas_share_which_clients_failed_from_a_blocked_address() {
    let first = app(true).await;
    let second = first.spawn_replica().await;
    let address = "203.0.113.21";
    for i in 0..MAX {
        let answer = attempt(&first, OTHER.id, WRONG, address).await;
        assert_eq!(answer.status, 401, "failure {i}: {}", answer.text);
    }
    let before = attempt(&first, APP.id, APP.secret, address).await;
    assert_eq!(before.status, 200, "{}", before.text);

    let failure = attempt(&second, APP.id, WRONG, address).await;
    let after = attempt(&first, APP.id, APP.secret, address).await;

    assert_throttled(
        &failure,
        "the other client's failure, on the second replica",
    );
    assert_throttled(&after, "the other client on the first replica, since");
}

#[tokio::test]
async fn with_throttling_off_failures_stay_401() {
    let app = spawn_app_with(|s| {
        s.throttle.enabled = false;
        s.throttle.max_failures = MAX;
    })
    .await;
    for i in 0..2 * MAX {
        let answer = attempt(&app, APP.id, WRONG, "203.0.113.30").await;
        assert_eq!(answer.status, 401, "failure {i}: {}", answer.text);
    }
    assert!(app.keys("throttle:*").await.is_empty());
}

/// Calls per command since the server started, without INFO itself.
async fn calls(app: &TestApp) -> BTreeMap<String, u64> {
    let info: String = app.query(redis::cmd("INFO").arg("commandstats")).await;
    info.lines()
        .filter_map(|line| {
            let (name, fields) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = fields.split(',').find_map(|f| f.strip_prefix("calls="))?;
            let calls = calls.parse().ok()?;
            (name != "info").then(|| (name.to_owned(), calls))
        })
        .collect()
}

#[tokio::test]
async fn successful_exchanges_make_no_throttle_round_trip() {
    let redis = RedisServer::start();
    let app = spawn_app_with(|s| {
        s.redis.url = redis.url();
        s.throttle.max_failures = MAX;
    })
    .await;
    let wrong = TestClient {
        secret: WRONG,
        ..APP
    };
    // One failure elsewhere: the counters exist and this replica has learned of them.
    assert_eq!(
        app.exchange(&wrong, &app.issue_code(&APP).await)
            .await
            .status(),
        401
    );
    let warm = app.issue_code(&APP).await;
    assert_eq!(app.exchange(&APP, &warm).await.status(), 200);
    let mut codes = Vec::new();
    for _ in 0..5 {
        codes.push(app.issue_code(&APP).await);
    }

    let before = calls(&app).await;
    for code in &codes {
        assert_eq!(app.exchange(&APP, code).await.status(), 200);
    }
    let after = calls(&app).await;

    let mut delta: BTreeMap<&str, u64> = BTreeMap::new();
    for (name, count) in &after {
        let was = before.get(name).copied().unwrap_or(0);
        if *count > was {
            delta.insert(name, count - was);
        }
    }
    // One exchange-script call each (commandstats also counts the commands inside scripts),
    // and none of the throttle's commands.
    assert_eq!(delta.get("evalsha"), Some(&5), "{delta:?}");
    for throttle_command in ["eval", "incr", "pttl", "pexpire"] {
        assert!(!delta.contains_key(throttle_command), "{delta:?}");
    }
}
