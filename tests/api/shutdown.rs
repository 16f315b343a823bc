//! SIGTERM and SIGINT on the real binary: the server stops taking connections and lets the
//! requests in flight finish (`server.shutdown_timeout_secs`), whether or not `/metrics` has a
//! listener of its own. An exchange whose code Redis is about to spend must get its answer.
//! With `server.shutdown_delay_ms`, SIGTERM first leaves the server serving but unready.

use std::time::{Duration, Instant};

use deadpool_redis::redis;
use sso_token::config::Settings;
use sso_token::routes::paths::TOKEN_PATH;
use sso_token::store::Store;

use crate::helpers::{APP, Answer, http_client, json_request, test_settings};
use crate::raw_conn::{RawConn, pipelined_exchange};
use crate::redis_server::RedisServer;
use crate::server_process::{ServerProcess, config_dir, write_code};

/// How long Redis holds every command: the exchange is in flight when the signal comes.
const PAUSE_MS: u64 = 6000;
/// Bound of each read of an answer that comes once the pause is over.
const ANSWER_WAIT: Duration = Duration::from_secs(15);

/// Settings against `redis` whose Redis timeout outlasts the pause, and whose grace both.
fn outlasting_the_pause(redis: &RedisServer) -> Settings {
    let mut settings = test_settings();
    settings.redis.url = redis.url();
    settings.redis.timeout_ms = 8000;
    settings.server.shutdown_timeout_secs = 10;
    settings
}

/// Makes `redis` hold every command for `PAUSE_MS`; the connection that asked stays usable.
async fn pause(redis: &RedisServer) -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut admin = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(PAUSE_MS)
        .arg("ALL")
        .query_async(&mut admin)
        .await
        .unwrap();
    admin
}

/// A server with `settings` whose Redis (`redis`, paused here) holds the exchange it has read.
async fn an_exchange_held_by_redis(
    redis: &RedisServer,
    settings: &Settings,
) -> (ServerProcess, RawConn) {
    let server = ServerProcess::start(&config_dir(settings, &[]));
    let code = write_code(settings).await;
    pause(redis).await;

    let mut exchange = RawConn::open(&server.base).await;
    exchange
        .write("POST", TOKEN_PATH, &json_request(&APP, &code).to_string())
        .await;
    // In flight once the server has read it: connections still queued when the signal comes
    // are dropped, as they should be.
    exchange.read_by_server().await;
    (server, exchange)
}

async fn an_exchange_in_flight_survives(signal: &str, metrics_listen: &str) {
    let redis = RedisServer::start();
    let mut settings = outlasting_the_pause(&redis);
    settings.metrics.listen = metrics_listen.into();
    let (server, mut exchange) = an_exchange_held_by_redis(&redis, &settings).await;
    server.signal(signal);
    server.wait_for_log(&format!("SIG{signal}: no new connections"));
    assert!(
        exchange.unanswered(),
        "answered or closed before the grace began"
    );

    let (status, _, text) = exchange.answer(ANSWER_WAIT).await.unwrap_or_else(|e| {
        panic!(
            "SIG{signal} dropped the exchange in flight (metrics.listen {metrics_listen:?}): {e}"
        )
    });
    assert_eq!(status, 200, "{text}");
    let answer: serde_json::Value = serde_json::from_str(&text).expect("a JSON body");
    assert!(answer["access_token"].is_string(), "{text}");
    server
        .ends_cleanly_within(
            Duration::from_secs(10),
            "the server ends once its requests are answered",
        )
        .await;
}

#[tokio::test]
async fn sigterm_lets_the_exchange_in_flight_finish_with_a_metrics_listener() {
    an_exchange_in_flight_survives("TERM", "127.0.0.1:0").await;
}

/// A grace shorter than an exchange in flight: actix closes its connection when the grace ends,
/// silently, and the process ended as after a clean stop. The log says so now.
#[tokio::test]
async fn a_grace_that_runs_out_under_an_exchange_is_logged() {
    let redis = RedisServer::start();
    let mut settings = outlasting_the_pause(&redis);
    settings.server.shutdown_timeout_secs = 1;
    let (server, mut exchange) = an_exchange_held_by_redis(&redis, &settings).await;

    server.signal("TERM");

    server.wait_for_log("1 request(s) under way were closed unanswered during the stop");
    assert!(
        exchange.answer(ANSWER_WAIT).await.is_err(),
        "the exchange was answered"
    );
}

/// And a stop that answers everything in its grace says nothing of the kind, once.
#[tokio::test]
async fn a_stop_that_answers_everything_says_nothing_unanswered() {
    let redis = RedisServer::start();
    let settings = outlasting_the_pause(&redis);
    let (mut server, mut exchange) = an_exchange_held_by_redis(&redis, &settings).await;

    server.signal("TERM");

    let (status, _, text) = exchange.answer(ANSWER_WAIT).await.expect("an answer");
    assert_eq!(status, 200, "{text}");
    let log = tokio::task::spawn_blocking(move || server.log_to_the_end(Duration::from_secs(10)))
        .await
        .unwrap();
    assert!(
        log.iter().any(|l| l.contains("no new connections")),
        "{log:#?}"
    );
    assert!(!log.iter().any(|l| l.contains("unanswered")), "{log:#?}");
    // actix-server's own stop lines (one per worker) say again what ours say once.
    assert!(!log.iter().any(|l| l.contains("actix_server")), "{log:#?}");
}

#[tokio::test]
async fn sigint_lets_the_exchange_in_flight_finish() {
    an_exchange_in_flight_survives("INT", "").await;
}

/// Without `shutdown_delay_ms` the first SIGTERM starts the grace at once, and a supervisor
/// that sends it again must not cut the exchange in flight (its code is spent): the repeat is
/// let pass.
#[tokio::test]
async fn a_repeated_sigterm_during_the_grace_lets_the_exchange_in_flight_finish() {
    let redis = RedisServer::start();
    let settings = outlasting_the_pause(&redis);
    let (server, mut exchange) = an_exchange_held_by_redis(&redis, &settings).await;
    server.signal("TERM");
    server.wait_for_log("SIGTERM: no new connections");

    server.signal("TERM");
    server.wait_for_log("SIGTERM again: the grace goes on");

    assert!(exchange.unanswered(), "answered before Redis' pause ended");
    let (status, _, text) = exchange
        .answer(ANSWER_WAIT)
        .await
        .unwrap_or_else(|e| panic!("the repeated SIGTERM dropped the exchange in flight: {e}"));
    assert_eq!(status, 200, "{text}");
    server
        .ends_cleanly_within(
            Duration::from_secs(10),
            "the server ends once its requests are answered",
        )
        .await;
}

/// Past the repeat that is let pass, a signal ends the process without waiting for the
/// exchange Redis holds.
#[tokio::test]
async fn a_third_signal_during_the_grace_ends_the_process() {
    let redis = RedisServer::start();
    let settings = outlasting_the_pause(&redis);
    let (mut server, _exchange) = an_exchange_held_by_redis(&redis, &settings).await;
    server.signal("TERM");
    server.wait_for_log("SIGTERM: no new connections");
    server.signal("TERM");
    server.wait_for_log("SIGTERM again: the grace goes on");

    server.signal("TERM");

    let status = tokio::task::spawn_blocking(move || server.exit_within(Duration::from_secs(4)))
        .await
        .unwrap()
        .expect("still running 4 s after the third SIGTERM (Redis holds the exchange 6 s)");
    assert_eq!(status.code(), Some(1), "{status:?}");
}

/// Once the grace begins, an exchange still waiting for a slot gets a 503 with its code
/// untouched: one that took its slot late in the grace could have its code spent and its
/// answer cut off when the grace ends. The exchange that holds the slot finishes.
#[tokio::test]
async fn an_exchange_waiting_for_a_slot_when_the_grace_begins_gets_a_503() {
    let redis = RedisServer::start();
    let mut settings = outlasting_the_pause(&redis);
    settings.server.exchange_slots = 1;
    let server = ServerProcess::start(&config_dir(&settings, &[]));
    let codes = [write_code(&settings).await, write_code(&settings).await];
    let mut admin = pause(&redis).await;
    let mut exchanges = Vec::new();
    for code in codes {
        let mut exchange = RawConn::open(&server.base).await;
        exchange
            .write("POST", TOKEN_PATH, &json_request(&APP, &code).to_string())
            .await;
        exchanges.push((code, exchange));
    }

    // Both read: one holds the slot, its call held by the paused Redis; the other waits for
    // the slot (`slot_wait_ms`, 10 s, outlasts the pause), or is on its way to it.
    for (_, exchange) in &exchanges {
        exchange.read_by_server().await;
    }
    let unanswered = exchanges.iter().all(|(_, exchange)| exchange.unanswered());
    assert!(unanswered, "an exchange was answered before the signal");
    server.signal("INT");
    server.wait_for_log("SIGINT: no new connections");

    let in_flight: Vec<bool> = exchanges.iter().map(|(_, e)| e.unanswered()).collect();
    let mut answers = Vec::new();
    for ((code, mut exchange), in_flight) in exchanges.into_iter().zip(in_flight) {
        let (status, _, text) = exchange.answer(ANSWER_WAIT).await.expect("an answer");
        answers.push((code, status, text, in_flight));
    }
    // The one that took the slot is served; either may have reached it first.
    answers.sort_by_key(|(_, status, _, _)| std::cmp::Reverse(*status == 200));
    let [
        (_, served, served_text, in_flight),
        (waiter, refused, refused_text, _),
    ] = <[_; 2]>::try_from(answers).expect("two answers");
    assert_eq!(served, 200, "{served_text}");
    assert!(
        in_flight,
        "the served exchange was answered before the grace began"
    );
    assert_eq!(refused, 503, "{refused_text}");
    let refused: serde_json::Value = serde_json::from_str(&refused_text).expect("a JSON body");
    assert_eq!(refused["error"], "temporarily_unavailable");
    let code_key = Store::new(&settings.redis).unwrap().code_key(&waiter);
    let left: bool = redis::cmd("EXISTS")
        .arg(&code_key)
        .query_async(&mut admin)
        .await
        .unwrap();
    assert!(left, "the refused exchange spent its code");
    server
        .ends_cleanly_within(
            Duration::from_secs(10),
            "the server ends once both are answered",
        )
        .await;
}

/// Status and `Connection` header of a GET of `path`.
async fn probe(base: &str, path: &str) -> (u16, Option<String>) {
    let answer = Answer::of(
        http_client()
            .get(format!("{base}{path}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    (
        answer.status,
        answer.header("connection").map(str::to_owned),
    )
}

/// A server with `shutdown_delay_ms` = `delay_ms` on a Redis of its own, and its settings.
fn server_with_delay(redis: &RedisServer, delay_ms: u64) -> (ServerProcess, Settings) {
    let mut settings = test_settings();
    settings.redis.url = redis.url();
    settings.server.shutdown_delay_ms = delay_ms;
    (ServerProcess::start(&config_dir(&settings, &[])), settings)
}

#[tokio::test]
async fn after_sigterm_the_server_serves_unready_for_the_delay_closing_each_connection() {
    const DELAY_MS: u64 = 3000;
    let redis = RedisServer::start();
    let (server, settings) = server_with_delay(&redis, DELAY_MS);
    // A client holding a keep-alive connection from before the signal.
    let mut held = RawConn::kept_open(&server.base, "/readyz").await;

    server.signal("TERM");
    server.wait_for_log("SIGTERM: unready");
    let unready_at = Instant::now();

    // A balancer's probe sees it unready; requests still get answers, on the old connection
    // and on new ones, and each answer ends its connection.
    let (status, connection) = probe(&server.base, "/readyz").await;
    assert_eq!((status, connection.as_deref()), (503, Some("close")));
    let body = json_request(&APP, &write_code(&settings).await).to_string();
    let (status, head, text) = held.send("POST", TOKEN_PATH, &body).await;
    assert_eq!(status, 200, "{text}");
    assert!(head.contains("connection: close"), "{head}");
    assert!(
        held.closed_by_server().await,
        "the old connection is closed after its answer"
    );
    let mut fresh = RawConn::open(&server.base).await;
    let body = json_request(&APP, &write_code(&settings).await).to_string();
    let (status, head, text) = fresh.send("POST", TOKEN_PATH, &body).await;
    assert_eq!(status, 200, "{text}");
    assert!(head.contains("connection: close"), "{head}");
    assert!(
        unready_at.elapsed() < Duration::from_millis(DELAY_MS - 300),
        "the checks outlasted the delay: they prove nothing"
    );

    server.wait_for_log("SIGTERM: no new connections");
    let delay = unready_at.elapsed();
    assert!(
        delay >= Duration::from_millis(DELAY_MS - 300),
        "listener closed after {delay:?}"
    );
    server
        .ends_cleanly_within(Duration::from_secs(10), "the server ends after the delay")
        .await;
}

/// During the delay every answer closes its connection, and a request the client pipelined
/// behind one is not served (RFC 9112 §9.6): its code stays for a retry on a new connection,
/// instead of being spent on an answer the client never reads.
#[tokio::test]
async fn during_the_delay_a_request_pipelined_behind_a_closing_answer_is_not_served() {
    let redis = RedisServer::start();
    let (server, settings) = server_with_delay(&redis, 3000);
    server.signal("TERM");
    server.wait_for_log("SIGTERM: unready");
    let code = write_code(&settings).await;
    let body = json_request(&APP, &code).to_string();

    let first = "GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n";
    let read = pipelined_exchange(&server.base, first, &body, Duration::from_secs(2))
        .await
        .unwrap_or_else(|read| panic!("still open: {read}"));

    let head = read.to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{read}");
    assert!(head.contains("connection: close"), "{read}");
    assert!(!read.contains("access_token"), "served: {read}");
    let code_key = Store::new(&settings.redis).unwrap().code_key(&code);
    let mut admin = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let left: bool = redis::cmd("EXISTS")
        .arg(&code_key)
        .query_async(&mut admin)
        .await
        .unwrap();
    assert!(left, "the pipelined exchange spent its code");
}

/// A probe that was waiting for Redis' answer when SIGTERM came answers 503: the stop decides,
/// not the PING that Redis answered afterwards.
#[tokio::test]
async fn a_readiness_probe_waiting_on_redis_when_sigterm_comes_answers_unready() {
    let redis = RedisServer::start();
    let mut settings = outlasting_the_pause(&redis);
    settings.server.shutdown_delay_ms = 1000;
    let server = ServerProcess::start(&config_dir(&settings, &[]));
    pause(&redis).await;
    let mut probe = RawConn::open(&server.base).await;
    probe.write("GET", "/readyz", "").await;
    probe.read_by_server().await;

    server.signal("TERM");
    server.wait_for_log("SIGTERM: unready");

    let (status, _, text) = probe.answer(ANSWER_WAIT).await.expect("the probe's answer");
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("shutting down"), "{text}");
}

#[tokio::test]
async fn a_second_sigterm_ends_the_delay_and_the_stop_stays_graceful() {
    let redis = RedisServer::start();
    let (server, _) = server_with_delay(&redis, 60_000);
    server.signal("TERM");
    server.wait_for_log("SIGTERM: unready");

    server.signal("TERM");

    server.wait_for_log("SIGTERM: no new connections");
    server
        .ends_cleanly_within(
            Duration::from_secs(5),
            "the stop goes on without the rest of the delay",
        )
        .await;
}

#[tokio::test]
async fn sigint_does_not_wait_for_the_delay() {
    let redis = RedisServer::start();
    let (server, _) = server_with_delay(&redis, 60_000);

    server.signal("INT");

    server
        .ends_cleanly_within(
            Duration::from_secs(5),
            "SIGINT stops the server without the SIGTERM delay",
        )
        .await;
}

/// The shipped keep-alive (`server.keep_alive_secs`, 75 s) outlasts the grace, yet a stop does
/// not wait for a connection that is only idle: actix closes the idle keep-alive connections as
/// the graceful stop begins, and the stop ends as soon as no request is in flight.
#[tokio::test]
async fn a_stop_closes_idle_keep_alive_connections_without_waiting_for_them() {
    let mut settings = test_settings();
    settings.server.shutdown_timeout_secs = 30;
    let server = ServerProcess::start(&config_dir(&settings, &[]));
    let mut idle = RawConn::kept_open(&server.base, "/healthz").await;

    server.signal("TERM");
    server.wait_for_log("SIGTERM: no new connections");

    assert!(
        idle.closed_by_server().await,
        "the idle connection is left open"
    );
    server
        .ends_cleanly_within(
            Duration::from_secs(5),
            "the stop waits for an idle connection (keep-alive 75 s, grace 30 s)",
        )
        .await;
}
