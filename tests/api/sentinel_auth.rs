//! A Sentinel set-up whose data nodes require a password: `redis.node_password` reaches them,
//! and without it the service answers 503 (the password is really what lets it in).

use std::time::{Duration, Instant};

use sso_token::oauth::Sensitive;

use crate::helpers::{APP, Answer, ISSUER, spawn_app_at_once_with, spawn_app_with, verify_token};
use crate::topology::{SentinelSet, error_replies};

const PASSWORD: &str = "s3cret-for-tests";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_nodes_with_a_password_are_reached_with_redis_node_password() {
    let set = tokio::task::spawn_blocking(SentinelSet::start)
        .await
        .unwrap();
    set.protect(PASSWORD);
    let app = spawn_app_with(|s| {
        set.configure(&mut s.redis);
        s.redis.node_password = Some(Sensitive::new(PASSWORD));
    })
    .await;
    let code = app.issue_code(&APP).await;

    let answer = Answer::of(app.exchange(&APP, &code).await).await;

    assert_eq!(answer.status, 200, "{}", answer.text);
    verify_token(
        answer.json["access_token"].as_str().unwrap(),
        APP.id,
        ISSUER,
    );

    // The master refused the app without the password for want of it (NOAUTH), not for any
    // other trouble that would answer 503 as well.
    let master = set.current_master().expect("a master");
    let noauth = move || error_replies(master, Some(PASSWORD), "NOAUTH");
    let refused_before = tokio::task::spawn_blocking(noauth).await.unwrap();
    // Never ready (Redis refuses it), so not waited for: until its fence opens its exchanges
    // are 503s that ask no Redis, and another is sent until one was refused for NOAUTH.
    let without = spawn_app_at_once_with(|s| {
        set.configure(&mut s.redis);
        s.redis.timeout_ms = 500;
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let code = app.issue_code(&APP).await;
        let answer = Answer::of(without.exchange(&APP, &code).await).await;
        assert_eq!(answer.status, 503, "{}", answer.text);
        assert_eq!(answer.error(), "temporarily_unavailable");
        assert!(
            app.code_exists(&code).await,
            "the refused exchange spent the code"
        );
        let refused = tokio::task::spawn_blocking(noauth).await.unwrap() - refused_before;
        if refused > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the master never refused the app for want of a password"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
