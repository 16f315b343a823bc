//! Races for one code: of any number of concurrent requests, on any number of replicas, exactly
//! one gets a token.

use std::sync::Arc;
use std::time::Duration;

use sso_token::routes::paths::TOKEN_PATH;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Barrier;
use tokio::task::JoinSet;

use crate::each_topology;
use crate::helpers::{
    APP, Answer, ISSUER, TestApp, Topology, json_request, spawn_app_with, verify_token,
};

const RACERS: usize = 50;

/// Sends `RACERS` exchanges of `code` at once, spread over `apps` (see [`race_raw`]).
async fn race(apps: &[&TestApp], code: &str) -> Vec<Answer> {
    let body = json_request(&APP, code).to_string();
    let racers = (0..RACERS).map(|i| {
        let address = apps[i % apps.len()].address.replace("http://", "");
        (address, raw_post(TOKEN_PATH, &[], &body))
    });
    race_raw(racers.collect()).await
}

/// An HTTP/1.1 POST of the JSON `body` to `path` with `headers`, closing its connection.
pub fn raw_post(path: &str, headers: &[(&str, &str)], body: &str) -> String {
    let headers: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         {headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Sends each raw request to its address (`host:port`) at once. Each racer opens its
/// connection and sends all of its request but the last byte before the start, then that byte:
/// the barrier releases one-byte writes, not TCP handshakes and requests, which the client and
/// the accept loop spread out enough for a non-atomic step to pass now and then.
pub async fn race_raw(requests: Vec<(String, String)>) -> Vec<Answer> {
    let start = Arc::new(Barrier::new(requests.len()));
    let mut racers = JoinSet::new();
    for (address, request) in requests {
        let start = Arc::clone(&start);
        racers.spawn(async move {
            let mut stream = TcpStream::connect(address).await.expect("connected");
            // The last byte goes at once, not held back for the ACK of the rest (Nagle).
            stream.set_nodelay(true).expect("TCP_NODELAY");
            let (most, last) = request.as_bytes().split_at(request.len() - 1);
            stream
                .write_all(most)
                .await
                .expect("all but the last byte sent");
            start.wait().await;
            stream.write_all(last).await.expect("the last byte sent");
            let mut raw = Vec::new();
            let read = tokio::time::timeout(ANSWER_TIMEOUT, stream.read_to_end(&mut raw)).await;
            read.expect("an answer in time").expect("the answer read");
            Answer::of_raw(&raw)
        });
    }
    racers.join_all().await
}

/// Bound of each racer's wait for its answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// Exactly one winner whose token verifies; every other racer gets `invalid_grant`; and since the
/// code came back after it was spent, the winner's token is revoked (RFC 6749 §4.1.2).
async fn assert_exactly_one_winner(app: &TestApp, code: &str, answers: &[Answer]) {
    let winners: Vec<&Answer> = answers.iter().filter(|a| a.status == 200).collect();
    assert_eq!(winners.len(), 1, "winners: {}", winners.len());
    verify_token(
        winners[0].json["access_token"].as_str().unwrap(),
        APP.id,
        ISSUER,
    );
    for loser in answers.iter().filter(|a| a.status != 200) {
        assert_eq!(
            (loser.status, loser.error()),
            (400, "invalid_grant"),
            "{}",
            loser.text
        );
    }
    assert!(!app.code_exists(code).await);
    assert!(
        app.keys("token:*").await.is_empty(),
        "the raced token was not revoked"
    );
}

each_topology!(
    fifty_concurrent_requests_for_one_code_get_exactly_one_token,
    the_same_race_across_two_replicas_sharing_redis_gets_exactly_one_token,
);

async fn fifty_concurrent_requests_for_one_code_get_exactly_one_token(topology: Topology) {
    let app = spawn_app_with(|s| {
        s.server.workers = 2;
        topology.configure(&mut s.redis);
    })
    .await;
    let code = app.issue_code(&APP).await;

    let answers = race(&[&app], &code).await;

    assert_exactly_one_winner(&app, &code, &answers).await;
}

async fn the_same_race_across_two_replicas_sharing_redis_gets_exactly_one_token(
    topology: Topology,
) {
    let first = spawn_app_with(|s| {
        s.server.workers = 2;
        topology.configure(&mut s.redis);
    })
    .await;
    let second = first.spawn_replica().await;
    assert_ne!(first.address, second.address);
    let code = first.issue_code(&APP).await;

    let answers = race(&[&first, &second], &code).await;

    assert_exactly_one_winner(&first, &code, &answers).await;
}
