//! A standalone Redis behind a unix socket, under both URL spellings the README gives.

use deadpool_redis::redis;

use crate::helpers::{APP, Answer, ISSUER, REDIS_CALL_TIMEOUT, spawn_app_with, verify_token};
use crate::redis_server::RedisServer;

#[tokio::test]
async fn a_redis_on_a_unix_socket_serves_exchanges() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("unix-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("redis.sock");
    let socket_arg = socket.display().to_string();
    let _redis = RedisServer::start_with(
        &["--unixsocket", &socket_arg, "--unixsocketperm", "700"],
        Some(&dir),
    );
    for scheme in ["redis+unix://", "unix://"] {
        let app = spawn_app_with(|s| s.redis.url = format!("{scheme}{socket_arg}")).await;
        let code = app.issue_code(&APP).await;

        let answer = Answer::of(app.exchange(&APP, &code).await).await;

        assert_eq!(answer.status, 200, "{scheme}: {}", answer.text);
        verify_token(
            answer.json["access_token"].as_str().unwrap(),
            APP.id,
            ISSUER,
        );
        assert!(!app.code_exists(&code).await, "{scheme}");
    }
}

/// `rediss://` goes through rustls: here to a server that does not speak TLS, so the handshake
/// fails and the answer is a prompt 503 (this used to panic: rustls had no crypto provider).
#[tokio::test]
async fn a_rediss_url_uses_tls_and_a_failed_handshake_is_a_prompt_503() {
    let redis = RedisServer::start();
    let app = spawn_app_with(|s| {
        s.redis.url = format!("rediss://127.0.0.1:{}", redis.port());
        s.redis.timeout_ms = 500;
    })
    .await;
    let started = std::time::Instant::now();

    let answer = Answer::of(app.exchange(&APP, "OC-1001-GNen5J2oMC1mJncDvO2tvwYV").await).await;

    assert_eq!(answer.status, 503, "{}", answer.text);
    assert_eq!(answer.error(), "temporarily_unavailable");
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
}

/// `?protocol=resp3` in the URL (the redis crate honours it): replies come in RESP3 types, and
/// every answer must still mean what it does over RESP2 (the scripts' `false` is a null there
/// too, as long as they leave `redis.setresp` alone).
#[tokio::test]
async fn a_resp3_connection_gives_the_same_answers() {
    // Its own Redis: no other test's connections in its `CLIENT LIST`.
    let redis = RedisServer::start();
    let app = spawn_app_with(|s| s.redis.url = format!("{}?protocol=resp3", redis.url())).await;
    let code = app.issue_code(&APP).await;

    let fresh = Answer::of(app.exchange(&APP, &code).await).await;
    assert_eq!(fresh.status, 200, "{}", fresh.text);
    let token = fresh.json["access_token"].as_str().unwrap();
    assert_eq!(app.introspect(&APP, token).await.json["active"], true);

    let replay = Answer::of(app.exchange(&APP, &code).await).await;
    assert_eq!((replay.status, replay.error()), (400, "invalid_grant"));
    assert_eq!(app.introspect(&APP, token).await.json["active"], false);

    let unknown = Answer::of(app.exchange(&APP, "OC-never-issued").await).await;
    assert_eq!(
        (unknown.status, unknown.error()),
        (400, "invalid_grant"),
        "{}",
        unknown.text
    );

    let second = app.token_for(&APP).await;
    assert_eq!(app.revoke(&APP, &second, None).await.status, 200);
    assert_eq!(app.introspect(&APP, &second).await.json["active"], false);

    // The server's side: every connection but the one asking speaks RESP3, the service's lanes
    // among them (more connections than the test's own code writer holds).
    let mut conn = app.redis().await;
    let mut pipe = redis::pipe();
    pipe.cmd("CLIENT").arg("ID").cmd("CLIENT").arg("LIST");
    let listing = pipe.query_async::<(i64, String)>(&mut conn);
    let (own_id, list) = tokio::time::timeout(REDIS_CALL_TIMEOUT, listing)
        .await
        .expect("CLIENT LIST answered in time")
        .expect("CLIENT LIST");
    let field = |line: &str, name: &str| {
        line.split_whitespace()
            .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
            .map(str::to_owned)
    };
    let others: Vec<&str> = list
        .lines()
        .filter(|line| field(line, "id") != Some(own_id.to_string()))
        .collect();
    assert!(
        others.len() > app.store.connections(),
        "no connection of the service's: {list}"
    );
    for line in &others {
        assert_eq!(field(line, "resp").as_deref(), Some("3"), "{line}");
    }
}

/// Each worker keeps the Redis lane it first took: more workers than lanes make some read
/// each other's replies, which the start says when a `redis.pool_size` that is set is below
/// the workers. README ("Connections"): "the start warns when a set `pool_size` has fewer
/// lanes than workers", so as many workers as lanes is no warning. A pool size no other test
/// uses, so that the lines looked for are this test's.
#[tokio::test]
async fn more_workers_than_redis_connections_are_warned_of() {
    let log = crate::log_capture::mark();
    let warned = |lines: &[String]| {
        lines
            .iter()
            .filter(|l| l.starts_with("WARN") && l.contains("share 5 Redis connections"))
            .cloned()
            .collect::<Vec<_>>()
    };
    let _enough = spawn_app_with(|s| {
        s.server.workers = 5;
        s.redis.pool_size = 5;
    })
    .await;
    let as_many = warned(&log.lines());
    assert!(
        as_many.is_empty(),
        "5 workers on 5 lanes need no warning: {as_many:?}"
    );

    let _app = spawn_app_with(|s| {
        s.server.workers = 6;
        s.redis.pool_size = 5;
    })
    .await;

    let one_more = warned(&log.lines());
    assert!(
        one_more
            .iter()
            .any(|l| l.contains("6 workers share 5 Redis connections")),
        "no warning for 6 workers on 5 lanes: {one_more:?}"
    );
}

/// README ("Connections"): `redis.pool_size` 0, the shipped default, is one lane per worker
/// thread and one for the main thread (at least 8), so that no worker has its replies read by
/// another thread. 9 workers: a count no other test uses, so that the lines looked for are
/// this test's.
#[tokio::test]
async fn the_default_pool_size_gives_every_worker_a_lane() {
    let log = crate::log_capture::mark();
    let _app = spawn_app_with(|s| {
        s.server.workers = 9;
        s.redis.pool_size = 0;
    })
    .await;

    let lines = log.lines();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("; 10 connections, timeout")),
        "the start does not name 10 connections: {lines:?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("9 workers share")),
        "9 workers on the default lanes were warned of: {lines:?}"
    );
}

/// With `redis.replica_acks` the lanes come in two halves (`Lanes`), and the start names every
/// connection, so that a fleet's count against Redis's `maxclients` is right. 11 workers: a
/// count no other test uses.
#[tokio::test]
async fn with_replica_acks_the_start_names_both_halves_of_the_lanes() {
    let log = crate::log_capture::mark();
    let _app = spawn_app_with(|s| {
        s.server.workers = 11;
        s.redis.pool_size = 0;
        s.redis.replica_acks = 1;
    })
    .await;

    let lines = log.lines();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("; 24 connections, timeout")),
        "the start does not name 2 × 12 connections: {lines:?}"
    );
}
