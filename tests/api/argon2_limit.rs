//! Argon2 under attack: a bounded number of verifications (`clients.argon2_slots`) runs at once,
//! one per client id at most; a request that finds no slot for long gets a prompt 503 to retry,
//! and a client whose secret has been verified before passes without a slot.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::future::join_all;
use sso_token::routes::paths::INTROSPECT_PATH;
use uuid::Uuid;

use crate::helpers::{Answer, TestApp, spawn_app_with, test_dir};

const ID: &str = "argon2-app";
const SECRET: &str = "argon2-secret-Mv3Tq8Ks1Xe6Wz4R";
const OTHER_ID: &str = "argon2-other-app";
const OTHER_SECRET: &str = "argon2-other-secret-Pw7Hn2Cz5Lr9";

/// The apps' Argon2 slots: set, so that the counts below do not depend on the machine's CPUs,
/// and two, so that one is left when a client id holds its one.
const SLOTS: usize = 2;

/// A registry of Argon2 clients whose secrets are hashed costly enough (64 MiB, 6 passes: ~0.45 s
/// here, where the default parameters take ~80 ms) that a verification outlasts the 100 ms
/// wait for a slot several times over.
fn argon2_clients_file(clients: &[(&str, &str)]) -> std::path::PathBuf {
    use argon2::{Algorithm, Argon2, Params, PasswordHasher, Version};

    let params = Params::new(65_536, 6, 1, None).expect("Argon2 parameters");
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let mut entries = String::new();
    for (id, secret) in clients {
        let salt = Uuid::new_v4();
        let phc = argon2
            .hash_password_with_salt(secret.as_bytes(), salt.as_bytes())
            .expect("Argon2 hash")
            .to_string();
        entries.push_str(&format!(
            "[[clients]]\nid = \"{id}\"\nsecret = \"{phc}\"\n\
             redirect_uris = [\"https://argon2.example/cb\"]\n"
        ));
    }
    let path = test_dir().join(format!("argon2-{}.toml", Uuid::new_v4()));
    std::fs::write(&path, entries).expect("clients file");
    path
}

/// An app whose only clients are `clients`, Argon2 ones, with [`SLOTS`] slots and without
/// throttling (the floods would trip it).
async fn argon2_app_of(clients: &[(&str, &str)]) -> TestApp {
    let file = argon2_clients_file(clients);
    spawn_app_with(|s| {
        s.clients.file = file;
        s.clients.argon2_slots = SLOTS;
        s.throttle.enabled = false;
    })
    .await
}

/// An app whose only client is the Argon2 one.
async fn argon2_app() -> TestApp {
    argon2_app_of(&[(ID, SECRET)]).await
}

async fn introspect(app: &TestApp, secret: &str) -> Answer {
    introspect_as(app, ID, secret).await
}

async fn introspect_as(app: &TestApp, id: &str, secret: &str) -> Answer {
    let request = app.http.post(app.url(INTROSPECT_PATH)).form(&[
        ("token", "t"),
        ("client_id", id),
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
    assert_eq!(overloaded_total(&app).await, SLOTS as u64 + 2);
}

/// A disabled Argon2 client is refused as an unknown one is, without Argon2: a flood of
/// secrets for it takes no slot, so none waits for one in vain (503).
#[tokio::test]
async fn a_disabled_argon2_clients_secrets_are_refused_without_a_slot() {
    let file = argon2_clients_file(&[(ID, SECRET)]);
    let mut text = std::fs::read_to_string(&file).expect("clients file");
    text.push_str("enabled = false\n");
    std::fs::write(&file, text).expect("clients file");
    let app = spawn_app_with(|s| {
        s.clients.file = file;
        s.clients.argon2_slots = SLOTS;
        s.throttle.enabled = false;
    })
    .await;
    let app = &app;

    let secrets = (0..SLOTS + 3)
        .map(|i| format!("wrong-{i}"))
        .chain([SECRET.into()]);
    let answers =
        join_all(secrets.map(|secret| async move { introspect(app, &secret).await })).await;

    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    assert!(statuses.iter().all(|s| *s == 401), "{statuses:?}");
    assert_eq!(overloaded_total(app).await, 0);
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

/// Sends `SLOTS + 3` wrong secrets and three right ones at once: one wrong secret takes the
/// client's one slot, the other wrong ones get prompt 503s, and the right secret, remembered,
/// passes without a slot (were it not, it would take a slot or a 503 and the counts would be off).
async fn assert_remembered_through_a_flood(app: &TestApp) {
    let wrong = (0..SLOTS + 3).map(|i| async move { introspect(app, &format!("wrong-{i}")).await });
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
    // One wrong secret took the client's one slot; the others waited for it in vain, though
    // the pool had another.
    let statuses: Vec<u16> = wrong.iter().map(|a| a.status).collect();
    assert_eq!((failed, refused.len()), (1, SLOTS + 2), "{statuses:?}");
}

/// A flood of wrong secrets for one Argon2 client (client ids are public) takes one slot at
/// most: another Argon2 client whose secret nothing remembers yet (as after a restart) still
/// finds a slot, instead of a 503 for as long as the flood lasts. The client id's throttle would
/// not help: a secret is checked before its client id's 429 is decided.
#[tokio::test]
async fn a_flood_for_one_argon2_client_leaves_a_slot_to_another() {
    let app = argon2_app_of(&[(ID, SECRET), (OTHER_ID, OTHER_SECRET)]).await;
    let done = AtomicBool::new(false);
    // Twice as many senders as slots, each sending the next wrong secret as soon as it has
    // its answer, until the other client has been answered.
    let flood = (0..2 * SLOTS).map(|sender| {
        let done = &done;
        let app = &app;
        async move {
            let mut statuses = Vec::new();
            for n in 0.. {
                if done.load(Ordering::Relaxed) {
                    break;
                }
                let wrong = format!("wrong-{sender}-{n}");
                statuses.push(introspect_as(app, ID, &wrong).await.status);
            }
            statuses
        }
    });
    let other = async {
        // A first 503: the flood's verifications fill all the slots they may take.
        let under_way = async {
            while overloaded_total(&app).await == 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(30), under_way)
            .await
            .expect("the flood gets 503s");
        let answer = introspect_as(&app, OTHER_ID, OTHER_SECRET).await;
        done.store(true, Ordering::Relaxed);
        answer
    };
    let (flood, other) = tokio::join!(join_all(flood), other);

    assert_eq!(other.status, 200, "the other client: {}", other.text);
    let statuses = flood.concat();
    assert!(
        statuses.contains(&401) && statuses.iter().all(|s| [401, 503].contains(s)),
        "the flood ran Argon2 and was refused slots: {statuses:?}"
    );
}
