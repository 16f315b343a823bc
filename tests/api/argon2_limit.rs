//! Argon2 under attack: at most one verification per two CPUs (at least one) runs at once; a
//! request that finds every slot busy for long gets a prompt 503 to retry, and a client whose
//! secret has been verified before passes without a slot.

use futures_util::future::join_all;
use sso_token::startup::INTROSPECT_PATH;
use uuid::Uuid;

use crate::helpers::{Answer, TestApp, spawn_app_with, test_dir};

const ID: &str = "argon2-app";
const SECRET: &str = "argon2-secret-Mv3Tq8Ks1Xe6Wz4R";

/// A registry with one client whose secret is an Argon2id hash costly enough (64 MiB, 6 passes:
/// ~0.45 s here, where the default parameters take ~80 ms) that a verification outlasts the
/// 100 ms wait for a slot several times over.
fn argon2_clients_file() -> std::path::PathBuf {
    use argon2::password_hash::{PasswordHasher, SaltString};
    use argon2::{Algorithm, Argon2, Params, Version};

    let params = Params::new(65_536, 6, 1, None).expect("Argon2 parameters");
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let salt = SaltString::encode_b64(Uuid::new_v4().as_bytes()).expect("salt");
    let phc = argon2
        .hash_password(SECRET.as_bytes(), &salt)
        .expect("Argon2 hash")
        .to_string();
    let path = test_dir().join(format!("argon2-{}.toml", Uuid::new_v4()));
    let entry = format!(
        "[[clients]]\nid = \"{ID}\"\nsecret = \"{phc}\"\nredirect_uris = [\"https://argon2.example/cb\"]\n"
    );
    std::fs::write(&path, entry).expect("clients file");
    path
}

/// An app whose only client is the Argon2 one, without throttling (the floods would trip it).
async fn argon2_app() -> TestApp {
    let file = argon2_clients_file();
    spawn_app_with(|s| {
        s.clients.file = file;
        s.throttle.enabled = false;
    })
    .await
}

async fn introspect(app: &TestApp, secret: &str) -> Answer {
    let request = app.http.post(app.url(INTROSPECT_PATH)).form(&[
        ("token", "t"),
        ("client_id", ID),
        ("client_secret", secret),
    ]);
    Answer::of(request.send().await.expect("request sent")).await
}

async fn overloaded_total(app: &TestApp) -> u64 {
    let text = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("scrape")
        .text()
        .await
        .expect("exposition");
    text.lines()
        .find_map(|l| l.strip_prefix("sso_argon2_overloaded_total ")?.parse().ok())
        .unwrap_or_else(|| panic!("no sso_argon2_overloaded_total in\n{text}"))
}

#[tokio::test]
async fn a_flood_of_wrong_secrets_gets_prompt_503s_and_a_remembered_secret_still_passes() {
    let app = argon2_app().await;
    // Pays Argon2 once; from now on this secret is remembered.
    assert_eq!(introspect(&app, SECRET).await.status, 200);

    assert_remembered_through_a_flood(&app).await;
    assert_eq!(overloaded_total(&app).await, 3);
}

/// A reload that leaves the client's hash alone keeps its remembered secret: after a SIGHUP the
/// client does not queue for a slot again behind a flood.
#[tokio::test]
async fn a_reload_keeps_the_remembered_secret_of_an_unchanged_hash() {
    let app = argon2_app().await;
    assert_eq!(introspect(&app, SECRET).await.status, 200);

    app.reload_with(|_| {}).expect("reload");

    assert_remembered_through_a_flood(&app).await;
}

/// Sends `slots + 3` wrong secrets and three right ones at once: every slot takes one wrong
/// secret, the other wrong ones get prompt 503s, and the right secret, remembered, passes
/// without a slot (were it not, it would take a slot or a 503 and the counts would be off).
async fn assert_remembered_through_a_flood(app: &TestApp) {
    // One slot per two CPUs, at least one (`Argon2Limit::half_the_cpus`).
    let slots = (std::thread::available_parallelism().map_or(1, |n| n.get()) / 2).max(1);
    let wrong = (0..slots + 3).map(|i| async move { introspect(app, &format!("wrong-{i}")).await });
    let right = (0..3).map(|_| introspect(app, SECRET));
    let (wrong, right) = tokio::join!(join_all(wrong), join_all(right));

    for answer in &right {
        assert_eq!(answer.status, 200, "a remembered secret: {}", answer.text);
    }
    let refused: Vec<&Answer> = wrong.iter().filter(|a| a.status == 503).collect();
    for answer in &refused {
        assert_eq!(answer.error(), "temporarily_unavailable", "{}", answer.text);
        assert_eq!(answer.header("retry-after"), Some("1"));
        answer.assert_error_shape("overloaded");
    }
    let failed = wrong.iter().filter(|a| a.status == 401).count();
    // Every slot took one wrong secret; the others waited for a slot in vain.
    let statuses: Vec<u16> = wrong.iter().map(|a| a.status).collect();
    assert_eq!((failed, refused.len()), (slots, 3), "{statuses:?}");
}
