//! A standalone Redis behind a unix socket, under both URL spellings the README gives.

use crate::helpers::{APP, Answer, ISSUER, spawn_app_with, verify_token};
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
