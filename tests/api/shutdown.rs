//! SIGTERM and SIGINT on the real binary: the server stops taking connections and lets the
//! requests in flight finish (`server.shutdown_timeout_secs`), whether or not `/metrics` has a
//! listener of its own. An exchange whose code Redis is about to spend must get its answer.
//! With `server.shutdown_delay_ms`, SIGTERM first leaves the server serving but unready.

use std::time::{Duration, Instant};

use deadpool_redis::redis;
use sso_token::startup::TOKEN_PATH;

use crate::helpers::{APP, Answer, http_client, json_request, test_settings};
use crate::redis_server::RedisServer;
use crate::server_process::{ServerProcess, config_dir, write_code};

/// How long Redis holds every command: the exchange is in flight when the signal comes.
const PAUSE_MS: u64 = 4000;

async fn an_exchange_in_flight_survives(signal: &str, metrics_listen: &str) {
    let redis = RedisServer::start();
    let mut settings = test_settings();
    settings.redis.url = redis.url();
    settings.redis.timeout_ms = 8000;
    settings.server.shutdown_timeout_secs = 10;
    settings.metrics.listen = metrics_listen.into();
    let mut server = ServerProcess::start(&config_dir(&settings, &[]));
    let code = write_code(&settings).await;
    let client = redis::Client::open(redis.url()).unwrap();
    let mut pauser = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(PAUSE_MS)
        .arg("ALL")
        .query_async(&mut pauser)
        .await
        .unwrap();

    let url = format!("{}{TOKEN_PATH}", server.base);
    let body = json_request(&APP, &code);
    let exchange = tokio::spawn(async move { http_client().post(url).json(&body).send().await });
    // Time for the server to take the connection and read the request: connections still
    // queued when the signal comes are dropped, as they should be.
    tokio::time::sleep(Duration::from_millis(1000)).await;
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
    assert_eq!(answer.header("connection"), Some("close"));
    let status = tokio::task::spawn_blocking(move || server.exit_within(Duration::from_secs(10)))
        .await
        .unwrap()
        .expect("the server ends once its requests are answered");
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

/// Status and `Connection` header of a GET of `path`.
async fn probe(client: &reqwest::Client, base: &str, path: &str) -> (u16, Option<String>) {
    let answer = Answer::of(client.get(format!("{base}{path}")).send().await.unwrap()).await;
    (
        answer.status,
        answer.header("connection").map(str::to_owned),
    )
}

async fn exchange(client: &reqwest::Client, server: &ServerProcess, code: &str) -> Answer {
    let url = format!("{}{TOKEN_PATH}", server.base);
    let response = client
        .post(url)
        .json(&json_request(&APP, code))
        .send()
        .await;
    Answer::of(response.expect("an answer during the delay")).await
}

#[tokio::test]
async fn after_sigterm_the_server_serves_unready_for_the_delay_closing_each_connection() {
    const DELAY_MS: u64 = 3000;
    let redis = RedisServer::start();
    let mut settings = test_settings();
    settings.redis.url = redis.url();
    settings.server.shutdown_delay_ms = DELAY_MS;
    let mut server = ServerProcess::start(&config_dir(&settings, &[]));
    // A client that holds a keep-alive connection from before the signal.
    let holder = http_client();
    assert_eq!(probe(&holder, &server.base, "/readyz").await, (200, None));

    server.signal("TERM");
    server.wait_for_log("SIGTERM: unready");
    let unready_at = Instant::now();

    // A balancer's probe sees it unready; requests still get answers, on old connections and
    // new ones, each answer closing its connection.
    let (status, connection) = probe(&http_client(), &server.base, "/readyz").await;
    assert_eq!((status, connection.as_deref()), (503, Some("close")));
    for client in [&holder, &http_client()] {
        let answer = exchange(client, &server, &write_code(&settings).await).await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        assert_eq!(answer.header("connection"), Some("close"));
    }
    assert!(
        unready_at.elapsed() < Duration::from_millis(DELAY_MS / 2),
        "checks took too long"
    );

    server.wait_for_log("SIGTERM: no new connections");
    let delay = unready_at.elapsed();
    assert!(
        delay >= Duration::from_millis(DELAY_MS - 300),
        "listener closed after {delay:?}"
    );
    let status = tokio::task::spawn_blocking(move || server.exit_within(Duration::from_secs(10)))
        .await
        .unwrap()
        .expect("the server ends after the delay");
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn sigint_does_not_wait_for_the_delay() {
    let redis = RedisServer::start();
    let mut settings = test_settings();
    settings.redis.url = redis.url();
    settings.server.shutdown_delay_ms = 60_000;
    let mut server = ServerProcess::start(&config_dir(&settings, &[]));

    server.signal("INT");

    let status = tokio::task::spawn_blocking(move || server.exit_within(Duration::from_secs(5)))
        .await
        .unwrap()
        .expect("SIGINT stops the server without the SIGTERM delay");
    assert!(status.success(), "{status:?}");
}
