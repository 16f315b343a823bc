//! A client that resets its connection while Redis takes its code: the code is spent and no
//! token is made, so the token record the script wrote is deleted; the client's retry then
//! reads as an unknown code, not as a replay (the alert of a stolen code, which would revoke a
//! token nobody holds). And a client that half-closes after its request (`nc`) is answered.

use std::time::{Duration, Instant};

use deadpool_redis::redis;
use sso_token::routes::paths::TOKEN_PATH;

use crate::helpers::{APP, Answer, code_record, json_request, spawn_app_with};
use crate::metrics::{scrape, value};
use crate::raw_conn::RawConn;
use crate::redis_server::RedisServer;

/// The connection to Redis that waits on a command the pause holds (`flags=b`), if any: how
/// many bytes of later commands it has sent behind it (`qbuf`).
async fn held_connection(admin: &mut redis::aio::MultiplexedConnection) -> Option<u64> {
    let clients: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(admin)
        .await
        .unwrap();
    let field = |line: &str, name: &str| {
        (line.split(' ')).find_map(|f| f.strip_prefix(name).map(str::to_owned))
    };
    clients.lines().find_map(|line| {
        let held = field(line, "flags=")?.contains('b');
        held.then(|| field(line, "qbuf=")?.parse().ok())?
    })
}

#[tokio::test]
async fn a_client_that_leaves_while_its_code_is_taken_leaves_no_token_record() {
    // A Redis of its own: `CLIENT PAUSE` holds every client's writes, other tests' too.
    let redis = RedisServer::start();
    let app = spawn_app_with(|s| s.redis.url = redis.url()).await;
    // The worker's lane is connected, as in a running service (a connection made for this
    // exchange would be closed with it, and Redis would drop the script it holds).
    let warm = app.write_code(&code_record(&APP)).await;
    assert_eq!(app.exchange(&APP, &warm).await.status(), 200);
    let code = app.write_code(&code_record(&APP)).await;
    let record = app.store.token_key_of_code(&code);
    let client = redis::Client::open(app.settings.redis.url.as_str()).unwrap();
    let mut admin = client.get_multiplexed_async_connection().await.unwrap();
    // Writes wait (the exchange script among them); reads such as CLIENT LIST do not.
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(5000)
        .arg("WRITE")
        .query_async(&mut admin)
        .await
        .unwrap();

    let mut conn = RawConn::open(&app.address).await;
    conn.write("POST", TOKEN_PATH, &json_request(&APP, &code).to_string())
        .await;
    let deadline = Instant::now() + Duration::from_secs(4);
    while held_connection(&mut admin).await.is_none() {
        assert!(
            Instant::now() < deadline,
            "the exchange never reached Redis"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    conn.reset();
    // The server has seen the reset and sent the deletion behind the held script.
    while held_connection(&mut admin).await.unwrap_or(0) == 0 {
        assert!(
            Instant::now() < deadline,
            "no deletion came behind the script"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _: () = redis::cmd("CLIENT")
        .arg("UNPAUSE")
        .query_async(&mut admin)
        .await
        .unwrap();

    // The script runs, then the deletion queued behind it on the same connection.
    let deadline = Instant::now() + Duration::from_secs(4);
    while app.exists(&record).await || app.code_exists(&code).await {
        assert!(
            Instant::now() < deadline,
            "token record {}, code {}",
            app.exists(&record).await,
            app.code_exists(&code).await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let abandoned = |metrics: &str| value(metrics, "sso_exchanges_abandoned_total");
    while abandoned(&scrape(&app, &app.address).await) < 1.0 {
        assert!(Instant::now() < deadline, "the deletion was not counted");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let retry = Answer::of(app.exchange(&APP, &code).await).await;
    assert_eq!(retry.status, 400, "{}", retry.text);
    assert_eq!(retry.json["error"], "invalid_grant");
    assert!(
        !retry.text.contains("revoked"),
        "a retry read as a replay: {}",
        retry.text
    );
    let metrics = scrape(&app, &app.address).await;
    assert_eq!(value(&metrics, "sso_code_replays_total"), 0.0);
}

/// `nc` (and busybox's, Alpine's default) closes its sending side once its input ends, then
/// reads the answer: a readiness probe scripted so is answered, though its FIN comes while the
/// answer waits on Redis, and so is an exchange.
#[tokio::test]
async fn a_client_that_half_closes_after_its_request_is_answered() {
    let app = spawn_app_with(|_| {}).await;
    for path in ["/readyz", "/healthz", "/.well-known/jwks.json", TOKEN_PATH] {
        for _ in 0..20 {
            let mut conn = RawConn::open(&app.address).await;
            if path == TOKEN_PATH {
                let code = app.write_code(&code_record(&APP)).await;
                conn.write("POST", path, &json_request(&APP, &code).to_string())
                    .await;
            } else {
                conn.write("GET", path, "").await;
            }
            conn.half_close().await;
            let answer = conn.answer(Duration::from_secs(5)).await;
            let (status, _, body) = answer.unwrap_or_else(|e| panic!("{path}: {e}"));
            assert_eq!(status, 200, "{path}: {body}");
        }
    }
}
