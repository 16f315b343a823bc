//! SIGTERM and SIGINT on the real binary: the server stops taking connections and lets the
//! requests in flight finish (`server.shutdown_timeout_secs`), whether or not `/metrics` has a
//! listener of its own. An exchange whose code Redis is about to spend must get its answer.
//! With `server.shutdown_delay_ms`, SIGTERM first leaves the server serving but unready.

use std::time::{Duration, Instant};

use deadpool_redis::redis;
use sso_token::config::Settings;
use sso_token::startup::TOKEN_PATH;
use sso_token::store::Store;

use crate::helpers::{APP, Answer, http_client, json_request, test_settings};
use crate::raw_conn::RawConn;
use crate::redis_server::RedisServer;
use crate::server_process::{ServerProcess, config_dir, write_code};

/// How long Redis holds every command: the exchange is in flight when the signal comes.
const PAUSE_MS: u64 = 6000;

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

async fn an_exchange_in_flight_survives(signal: &str, metrics_listen: &str) {
    let redis = RedisServer::start();
    let mut settings = outlasting_the_pause(&redis);
    settings.metrics.listen = metrics_listen.into();
    let server = ServerProcess::start(&config_dir(&settings, &[]));
    let code = write_code(&settings).await;
    pause(&redis).await;

    let url = format!("{}{TOKEN_PATH}", server.base);
    let body = json_request(&APP, &code);
    let exchange = tokio::spawn(async move { http_client().post(url).json(&body).send().await });
    // Time for the server to take the connection and read the request: connections still
    // queued when the signal comes are dropped, as they should be.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    server.signal(signal);
    server.wait_for_log(&format!("SIG{signal}: no new connections"));

    let response = exchange.await.unwrap().unwrap_or_else(|e| {
        panic!(
            "SIG{signal} dropped the exchange in flight (metrics.listen {metrics_listen:?}): {e}"
        )
    });
    let answer = Answer::of(response).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert!(answer.json["access_token"].is_string(), "{}", answer.text);
    let status = server
        .exits_within(
            Duration::from_secs(10),
            "the server ends once its requests are answered",
        )
        .await;
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn sigterm_lets_the_exchange_in_flight_finish_with_a_metrics_listener() {
    an_exchange_in_flight_survives("TERM", "127.0.0.1:0").await;
}

#[tokio::test]
async fn sigint_lets_the_exchange_in_flight_finish() {
    an_exchange_in_flight_survives("INT", "").await;
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
    let (holder, waiter) = (write_code(&settings).await, write_code(&settings).await);
    let mut admin = pause(&redis).await;
    let exchange = |code: String| {
        let url = format!("{}{TOKEN_PATH}", server.base);
        let body = json_request(&APP, &code);
        tokio::spawn(async move { http_client().post(url).json(&body).send().await })
    };

    let holding = exchange(holder);
    // Time for each request to be read, the first to take the slot, the second to wait.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let waiting = exchange(waiter.clone());
    tokio::time::sleep(Duration::from_millis(1000)).await;
    server.signal("INT");
    server.wait_for_log("SIGINT: no new connections");

    let refused = Answer::of(waiting.await.unwrap().expect("an answer")).await;
    let served = Answer::of(holding.await.unwrap().expect("an answer")).await;
    assert_eq!(refused.status, 503, "{}", refused.text);
    assert_eq!(refused.error(), "temporarily_unavailable");
    assert_eq!(served.status, 200, "{}", served.text);
    let code_key = Store::new(&settings.redis).unwrap().code_key(&waiter);
    let left: bool = redis::cmd("EXISTS")
        .arg(&code_key)
        .query_async(&mut admin)
        .await
        .unwrap();
    assert!(left, "the refused exchange spent its code");
    let status = server
        .exits_within(
            Duration::from_secs(10),
            "the server ends once both are answered",
        )
        .await;
    assert!(status.success(), "{status:?}");
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
    let mut held = RawConn::open(&server.base).await;
    let (status, head, _) = held.send("GET", "/readyz", "").await;
    assert_eq!(status, 200);
    assert!(!head.contains("connection: close"), "{head}");

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
    let status = server
        .exits_within(Duration::from_secs(10), "the server ends after the delay")
        .await;
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn a_second_sigterm_ends_the_delay_and_the_stop_stays_graceful() {
    let redis = RedisServer::start();
    let (server, _) = server_with_delay(&redis, 60_000);
    server.signal("TERM");
    server.wait_for_log("SIGTERM: unready");

    server.signal("TERM");

    server.wait_for_log("SIGTERM: no new connections");
    let status = server
        .exits_within(
            Duration::from_secs(5),
            "the stop goes on without the rest of the delay",
        )
        .await;
    assert!(
        status.success(),
        "a graceful stop, not the forced one: {status:?}"
    );
}

#[tokio::test]
async fn sigint_does_not_wait_for_the_delay() {
    let redis = RedisServer::start();
    let (server, _) = server_with_delay(&redis, 60_000);

    server.signal("INT");

    let status = server
        .exits_within(
            Duration::from_secs(5),
            "SIGINT stops the server without the SIGTERM delay",
        )
        .await;
    assert!(status.success(), "{status:?}");
}

/// The shipped keep-alive (`server.keep_alive_secs`, 75 s) outlasts the grace, yet a stop does
/// not wait for a connection that is only idle: actix closes the idle keep-alive connections as
/// the graceful stop begins, and the stop ends as soon as no request is in flight.
#[tokio::test]
async fn a_stop_closes_idle_keep_alive_connections_without_waiting_for_them() {
    let mut settings = test_settings();
    settings.server.shutdown_timeout_secs = 30;
    let server = ServerProcess::start(&config_dir(&settings, &[]));
    let mut idle = RawConn::open(&server.base).await;
    let (status, head, _) = idle.send("GET", "/healthz", "").await;
    assert_eq!(status, 200);
    assert!(!head.contains("connection: close"), "{head}");

    server.signal("TERM");
    server.wait_for_log("SIGTERM: no new connections");

    assert!(
        idle.closed_by_server().await,
        "the idle connection is left open"
    );
    let status = server
        .exits_within(
            Duration::from_secs(5),
            "the stop waits for an idle connection (keep-alive 75 s, grace 30 s)",
        )
        .await;
    assert!(status.success(), "{status:?}");
}
