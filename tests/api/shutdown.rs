//! SIGTERM and SIGINT on the real binary: the server stops taking connections and lets the
//! requests in flight finish (`server.shutdown_timeout_secs`), whether or not `/metrics` has a
//! listener of its own. An exchange whose code Redis is about to spend must get its answer.

use std::time::Duration;

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
