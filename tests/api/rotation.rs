//! Key rotation and reload: the procedure of the README keeps every token valid, a broken
//! configuration is refused while the running one stays, and a reload under load drops nothing.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use jsonwebtoken::decode_header;
use serde_json::json;
use sso_token::startup::Application;
use sso_token::tokens::KeyKind;
use tokio::task::JoinSet;

use crate::helpers::{
    APP, Answer, FOR_RESOURCE, OTHER, RESOURCE_API, TestApp, json_request, new_key_file,
    public_key_file, spawn_app, spawn_app_with, test_dir, test_settings,
};

/// An edit that makes a configuration unloadable.
type Breakage<'a> = Box<dyn Fn(&mut sso_token::config::Settings) + 'a>;

fn kid_of(token: &str) -> String {
    decode_header(token).unwrap().kid.unwrap()
}

async fn published_kids(app: &TestApp) -> Vec<String> {
    let jwks = app.jwks().await;
    let keys = jwks["keys"].as_array().expect("keys").iter();
    keys.map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

/// Two replicas go through the three steps; the old key's token stays valid throughout, and a
/// token of the new signer is accepted by a replica that has only done step 1.
#[tokio::test]
async fn rotation_keeps_old_tokens_valid_and_signs_new_ones_with_the_new_key() {
    let (old, old_kid) = new_key_file(KeyKind::Rsa2048);
    let (new, new_kid) = new_key_file(KeyKind::Ed25519);
    let a = spawn_app_with(|s| s.token.signing_key = old.clone()).await;
    let b = a.spawn_replica().await;
    let old_token = a.token_for(&APP).await;
    assert_eq!(kid_of(&old_token), old_kid);

    // 1. Every replica publishes the new key, verify-only; tokens are still signed by the old.
    for replica in [&a, &b] {
        replica
            .reload_with(|s| s.token.verify_keys = vec![new.clone()])
            .expect("step 1");
        assert_eq!(
            published_kids(replica).await,
            [old_kid.clone(), new_kid.clone()]
        );
    }
    assert_eq!(kid_of(&b.token_for(&APP).await), old_kid);

    // 2. The new key signs (replica b first); the old one stays published.
    b.reload_with(|s| {
        s.token.signing_key = new.clone();
        s.token.verify_keys = vec![old.clone()];
    })
    .expect("step 2");
    let new_token = b.token_for(&APP).await;
    assert_eq!(kid_of(&new_token), new_kid);
    assert!(
        a.is_active(&APP, &new_token).await,
        "a replica at step 1 refused the new key"
    );
    for replica in [&a, &b] {
        assert!(
            replica.is_active(&APP, &old_token).await,
            "the old token stopped verifying"
        );
        assert_eq!(replica.user_info(&old_token).await.status, 200);
    }

    // 3. After expires_in the old key is retired: only tokens it signed are affected.
    b.reload_with(|s| s.token.verify_keys.clear())
        .expect("step 3");
    assert_eq!(published_kids(&b).await, std::slice::from_ref(&new_kid));
    assert!(b.is_active(&APP, &new_token).await);
    assert!(
        !b.is_active(&APP, &old_token).await,
        "a retired key still verifies"
    );
}

/// Step 2 with only the old key's public half in `verify_keys`, its private key file deleted:
/// the old key's tokens stay valid at introspection and user info until step 3 retires it.
#[tokio::test]
async fn after_rotation_the_old_keys_public_half_alone_keeps_its_tokens_valid() {
    for kind in [KeyKind::Rsa2048, KeyKind::P256, KeyKind::Ed25519] {
        let (old, old_kid) = new_key_file(kind);
        let (new, new_kid) = new_key_file(KeyKind::Ed25519);
        let old_public = public_key_file(&old);
        let app = spawn_app_with(|s| s.token.signing_key = old.clone()).await;
        let old_token = app.token_for(&APP).await;
        assert_eq!(kid_of(&old_token), old_kid, "{kind:?}");
        std::fs::remove_file(&old).expect("the old private key is deleted");

        app.reload_with(|s| {
            s.token.signing_key = new.clone();
            s.token.verify_keys = vec![old_public.clone()];
        })
        .expect("step 2 with the public half");

        assert_eq!(
            published_kids(&app).await,
            [new_kid.clone(), old_kid.clone()],
            "{kind:?}"
        );
        assert_eq!(kid_of(&app.token_for(&APP).await), new_kid, "{kind:?}");
        assert!(app.is_active(&APP, &old_token).await, "{kind:?}");
        assert_eq!(app.user_info(&old_token).await.status, 200, "{kind:?}");

        app.reload_with(|s| s.token.verify_keys.clear())
            .expect("step 3");
        assert!(!app.is_active(&APP, &old_token).await, "{kind:?}");
        assert_eq!(app.user_info(&old_token).await.status, 401, "{kind:?}");
    }
}

/// The start stops on a public signing key and says which setting and file; a reload is
/// refused the same way (below).
#[tokio::test]
async fn a_public_key_as_signing_key_stops_the_start_naming_the_setting_and_the_file() {
    let (private, _) = new_key_file(KeyKind::P256);
    let public = public_key_file(&private);
    let mut settings = test_settings();
    settings.token.signing_key = public.clone();

    let error = Application::build(settings).err().expect("start refused");

    let message = error.to_string();
    assert!(message.starts_with("token.signing_key"), "{message}");
    assert!(message.contains(&public.display().to_string()), "{message}");
    assert!(message.contains("needs the private key"), "{message}");
}

#[tokio::test]
async fn a_broken_configuration_is_refused_and_the_running_one_stays() {
    let (verify_only, _) = new_key_file(KeyKind::P256);
    let public_only = public_key_file(&verify_only);
    let app = spawn_app_with(|s| s.token.verify_keys = vec![verify_only]).await;
    let token = app.token_for(&APP).await;
    let kids = published_kids(&app).await;
    let broken_clients = test_dir().join(format!("broken-{}.toml", uuid::Uuid::new_v4()));
    std::fs::write(&broken_clients, "[[clients]]\nid = \"x\"\n").unwrap();
    let missing = test_dir().join("no-such-file.pem");
    let running = app.source.lock().unwrap().clone();
    let breakages: [(&str, Breakage<'_>); 7] = [
        (
            "missing signing key",
            Box::new(|s| s.token.signing_key = missing.clone()),
        ),
        (
            "signing key that is only a public key",
            Box::new(|s| s.token.signing_key = public_only.clone()),
        ),
        (
            "verify key that is not a key",
            Box::new(|s| s.token.verify_keys = vec![s.clients.file.clone()]),
        ),
        (
            "missing clients file",
            Box::new(|s| s.clients.file = missing.clone()),
        ),
        (
            "invalid clients file",
            Box::new(|s| s.clients.file = broken_clients.clone()),
        ),
        ("invalid setting", Box::new(|s| s.token.expires_in = 0)),
        // Every exchange would be refused with its code spent.
        (
            "an issuer no token fits beside",
            Box::new(|s| s.token.issuer = format!("https://sso.example/{}", "i".repeat(4_000))),
        ),
    ];

    for (what, breakage) in &breakages {
        let refused = app.reload_with(|s| {
            *s = running.clone();
            breakage(s);
        });

        assert!(refused.is_err(), "{what}: the reload was accepted");
        assert_eq!(published_kids(&app).await, kids, "{what}");
        assert!(app.is_active(&APP, &token).await, "{what}");
        assert_eq!(kid_of(&app.token_for(&APP).await), kid_of(&token), "{what}");
    }
    app.reload_with(|s| *s = running.clone())
        .expect("the fixed configuration loads");
}

#[tokio::test]
async fn clients_file_changes_take_effect_on_reload() {
    let full = std::fs::read_to_string(&crate::helpers::test_settings().clients.file).unwrap();
    let without_other: String = full
        .split_inclusive("[[clients]]")
        .filter(|block| !block.contains(&format!("\"{}\"", OTHER.id)))
        .collect();
    let without_other = without_other.trim_end_matches("[[clients]]");
    let reduced = test_dir().join(format!("clients-{}.toml", uuid::Uuid::new_v4()));
    std::fs::write(&reduced, without_other).unwrap();
    let full_path = crate::helpers::test_settings().clients.file;
    let app = spawn_app_with(|s| s.clients.file = reduced.clone()).await;
    let code = app.issue_code(&OTHER).await;
    let refused = Answer::of(app.exchange(&OTHER, &code).await).await;
    assert_eq!((refused.status, refused.error()), (401, "invalid_client"));

    app.reload_with(|s| s.clients.file = full_path)
        .expect("reload");

    let code = app.issue_code(&OTHER).await;
    assert_eq!(app.exchange(&OTHER, &code).await.status(), 200);
}

/// Disabling a client (`enabled = false`, then a reload) makes its live tokens inactive at once,
/// for introspection by the resource they are meant for and for user info; enabling it again
/// brings them back, since nothing was deleted.
#[tokio::test]
async fn disabling_a_client_makes_its_live_tokens_inactive_until_it_is_enabled_again() {
    let full = crate::fixtures::clients_toml();
    let marker = format!("id = \"{}\"", FOR_RESOURCE.id);
    let disabled: String = full
        .split_inclusive("[[clients]]")
        .map(|block| {
            if block.contains(&marker) {
                block.replacen(&marker, &format!("{marker}\nenabled = false"), 1)
            } else {
                block.to_owned()
            }
        })
        .collect();
    assert_ne!(disabled, full, "the FOR_RESOURCE entry was not found");
    let disabled_file = test_dir().join(format!("clients-{}.toml", uuid::Uuid::new_v4()));
    std::fs::write(&disabled_file, disabled).unwrap();
    let app = spawn_app().await;
    let enabled_file = test_settings().clients.file;
    let token = app.token_for(&FOR_RESOURCE).await;
    let active = |answer: &Answer| answer.json["active"] == true;
    assert!(active(&app.introspect(&RESOURCE_API, &token).await));
    assert_eq!(app.user_info(&token).await.status, 200);

    app.reload_with(|s| s.clients.file = disabled_file.clone())
        .expect("reload with the client disabled");
    let seen = app.introspect(&RESOURCE_API, &token).await;
    assert_eq!((seen.status, &seen.json), (200, &json!({"active": false})));
    let refused = app.user_info(&token).await;
    assert_eq!(refused.status, 401, "{}", refused.text);

    app.reload_with(|s| s.clients.file = enabled_file)
        .expect("reload with the client enabled again");
    assert!(active(&app.introspect(&RESOURCE_API, &token).await));
    assert_eq!(app.user_info(&token).await.status, 200);
}

/// A reload takes effect for the very next request, in either direction, and the tokens of
/// every signer stay live.
#[tokio::test]
async fn each_reload_switches_the_signer_of_the_next_exchange() {
    let (first, first_kid) = new_key_file(KeyKind::Ed25519);
    let (second, second_kid) = new_key_file(KeyKind::P256);
    let both = vec![first.clone(), second.clone()];
    let app = spawn_app_with(|s| {
        s.token.signing_key = first.clone();
        s.token.verify_keys = both.clone();
    })
    .await;

    let mut tokens = vec![app.token_for(&APP).await];
    assert_eq!(kid_of(&tokens[0]), first_kid);
    for (signer, kid) in [
        (&second, &second_kid),
        (&first, &first_kid),
        (&second, &second_kid),
    ] {
        app.reload_with(|s| s.token.signing_key = signer.clone())
            .expect("reload");
        let token = app.token_for(&APP).await;
        assert_eq!(&kid_of(&token), kid, "the reload did not switch the signer");
        tokens.push(token);
    }

    for token in &tokens {
        assert!(
            app.is_active(&APP, token).await,
            "a token stopped verifying"
        );
    }
}

/// Exchanges race with reloads that swap the signer back and forth: every request succeeds and
/// every token verifies with the published keys. (Which signer each request meets depends on
/// the timing; that a reload switches the signer is the test above.)
#[tokio::test]
async fn reloading_under_load_drops_no_request() {
    const EXCHANGES: usize = 60;
    const RELOADS: usize = 30;
    let (first, _) = new_key_file(KeyKind::Ed25519);
    let (second, _) = new_key_file(KeyKind::P256);
    let both = vec![first.clone(), second.clone()];
    let app = Arc::new(
        spawn_app_with(|s| {
            s.token.signing_key = first.clone();
            s.token.verify_keys = both.clone();
        })
        .await,
    );
    let mut codes = Vec::new();
    for _ in 0..EXCHANGES {
        codes.push(app.issue_code(&APP).await);
    }

    // Reloads every 2 ms, at least RELOADS of them, and on until every exchange has answered.
    let (reloads, answered) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let (started, reloading) = tokio::sync::oneshot::channel();
    let reloader = {
        let (app, reloads, answered) = (Arc::clone(&app), reloads.clone(), answered.clone());
        tokio::task::spawn_blocking(move || {
            let mut started = Some(started);
            // Bounded too, so that an exchange task that panics ends the test instead of
            // leaving this loop to reload for ever.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            for i in 0.. {
                let done = i >= RELOADS && answered.load(Ordering::SeqCst);
                if done || std::time::Instant::now() > deadline {
                    break;
                }
                let signer = if i % 2 == 0 { &second } else { &first };
                app.reload_with(|s| s.token.signing_key = signer.clone())
                    .expect("reload");
                reloads.fetch_add(1, Ordering::SeqCst);
                started.take().map(|tx| tx.send(()));
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        })
    };
    reloading.await.expect("the first reload");
    let reloads_before = reloads.load(Ordering::SeqCst);
    let mut exchanges = JoinSet::new();
    for code in codes {
        let (http, url) = (app.http.clone(), app.token_url());
        exchanges.spawn(async move {
            let body = json_request(&APP, &code);
            Answer::of(http.post(url).json(&body).send().await.expect("sent")).await
        });
    }
    let answers = exchanges.join_all().await;
    let reloads_during = reloads.load(Ordering::SeqCst) - reloads_before;
    answered.store(true, Ordering::SeqCst);
    reloader.await.expect("reloads");
    assert!(reloads_during > 0, "no reload while the exchanges ran");

    for answer in &answers {
        assert_eq!(answer.status, 200, "{}", answer.text);
        let token = answer.json["access_token"].as_str().unwrap();
        // Introspection verifies the signature with the key the `kid` names: a token whose
        // header a reload tore from its key (one key's `kid`, the other's signature) fails.
        assert!(app.is_active(&APP, token).await);
    }
    assert_eq!(answers.len(), EXCHANGES);
}

/// Dropping the key that signed until now is said in the log (its tokens stop verifying), and
/// so is dropping one that stopped signing less than a token's lifetime ago; the README's step
/// 2, which keeps it verify-only, is not.
#[tokio::test]
async fn a_reload_that_drops_the_running_signer_warns() {
    let log = crate::log_capture::mark();
    let (old, old_kid) = new_key_file(KeyKind::Ed25519);
    let (new, new_kid) = new_key_file(KeyKind::Ed25519);
    let (other, _) = new_key_file(KeyKind::Ed25519);
    let app = spawn_app_with(|s| s.token.signing_key = old.clone()).await;

    app.reload_with(|s| {
        s.token.signing_key = new.clone();
        s.token.verify_keys = vec![old.clone()];
    })
    .expect("step 2 of the rotation");
    let warned = |kid: &str| warned_of_dropping(&log, kid);
    assert!(!warned(&old_kid), "step 2 kept the old key verify-only");
    app.reload_with(|s| {
        s.token.signing_key = other.clone();
        s.token.verify_keys.clear();
    })
    .expect("a reload that drops the signer");

    assert!(warned(&new_kid), "no warning for the dropped signer");
    assert!(
        warned(&old_kid),
        "no warning for the key that signed until the reload before, its tokens still live"
    );
    let alg_warned = log
        .lines()
        .iter()
        .any(|l| l.contains("changes the tokens' alg") && l.contains(&new_kid));
    assert!(
        !alg_warned,
        "every key here is Ed25519: the alg stays EdDSA"
    );
}

/// A signer that the running JWKS did not list is warned of (resource servers with a cached
/// JWKS reject its tokens); one published as verify-only first, as the README's rotation has
/// it, is not.
#[tokio::test]
async fn a_reload_to_a_signer_never_published_warns() {
    let log = crate::log_capture::mark();
    let (old, _) = new_key_file(KeyKind::Ed25519);
    let (published, published_kid) = new_key_file(KeyKind::Ed25519);
    let (sudden, sudden_kid) = new_key_file(KeyKind::Ed25519);
    let app = spawn_app_with(|s| s.token.signing_key = old.clone()).await;
    let warned = |kid: &str| {
        let never = format!("makes key {kid} the signer, which this replica did not publish");
        warned(&log, &never)
    };

    app.reload_with(|s| s.token.verify_keys = vec![published.clone()])
        .expect("step 1");
    // Without the wait, which the test below is about.
    app.reload_with(|s| {
        s.token.signing_key = published.clone();
        s.token.verify_keys = vec![old.clone()];
    })
    .expect("step 2");
    assert!(!warned(&published_kid), "published first");
    app.reload_with(|s| {
        s.token.signing_key = sudden.clone();
        s.token.verify_keys = vec![old.clone(), published.clone()];
    })
    .expect("a signer never published");

    assert!(
        warned(&sudden_kid),
        "no warning for a signer never published"
    );
}

/// A signer that a reload published less than `discovery.max_age_secs` ago is warned of, as
/// one never published is: resource servers that fetched the JWKS just before lack it until
/// theirs expires. The warning says how long ago, and for how long more. A key the process
/// started with has been published for a time it cannot know: not warned of.
#[tokio::test]
async fn a_reload_to_a_signer_published_moments_ago_warns() {
    let log = crate::log_capture::mark();
    let (old, old_kid) = new_key_file(KeyKind::Ed25519);
    let (started, started_kid) = new_key_file(KeyKind::Ed25519);
    let (next, next_kid) = new_key_file(KeyKind::Ed25519);
    let app = spawn_app_with(|s| {
        s.token.signing_key = old.clone();
        s.token.verify_keys = vec![started.clone()];
    })
    .await;
    let max_age = app.settings.discovery.max_age_secs;

    app.reload_with(|s| {
        s.token.signing_key = started.clone();
        s.token.verify_keys = vec![old.clone()];
    })
    .expect("a signer published since the start");
    assert!(
        !warned_of_a_recent_signer(&log, &started_kid),
        "published since the start, for all this process knows long enough"
    );
    app.reload_with(|s| s.token.verify_keys = vec![old.clone(), next.clone()])
        .expect("step 1");
    app.reload_with(|s| {
        s.token.signing_key = next.clone();
        s.token.verify_keys = vec![old.clone(), started.clone()];
    })
    .expect("step 2 at once");

    let warning = log
        .lines()
        .into_iter()
        .find(|l| l.contains(&recent_signer(&next_kid)))
        .expect("no warning of a signer published moments ago");
    assert!(warning.starts_with("WARN"), "{warning}");
    let more: u64 = (warning.split(" s more").next())
        .and_then(|before| before.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("how long more: {warning}"));
    assert!((max_age - 5..=max_age).contains(&more), "{warning}");
    let put_back = format!("make key {started_kid} the signer again");
    assert!(warning.contains(&put_back), "{warning}");
    assert!(!warning.contains(&old_kid), "{warning}");
}

/// Once `discovery.max_age_secs` has passed since a reload published a key, every JWKS cached
/// before holds it: making it the signer is the README's step 2, not warned of. The copies
/// that count are those served before it was published: a reload that shortens the setting
/// while it publishes leaves them cached for the longer one, which is still warned of.
#[tokio::test]
async fn a_signer_published_longer_than_the_jwks_max_age_ago_is_not_warned_of() {
    let log = crate::log_capture::mark();
    let one_second = |s: &mut sso_token::config::Settings| s.discovery.max_age_secs = 1;
    let (old, _) = new_key_file(KeyKind::Ed25519);
    let (waited, waited_kid) = new_key_file(KeyKind::Ed25519);
    let (shortened, shortened_kid) = new_key_file(KeyKind::Ed25519);
    let app = spawn_app_with(|s| {
        one_second(s);
        s.token.signing_key = old.clone();
    })
    .await;
    let longer = spawn_app_with(|s| s.token.signing_key = old.clone()).await;
    app.reload_with(|s| s.token.verify_keys = vec![waited.clone()])
        .expect("step 1");
    longer
        .reload_with(|s| {
            one_second(s);
            s.token.verify_keys = vec![shortened.clone()];
        })
        .expect("step 1, shortening the JWKS's max-age");

    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    app.reload_with(|s| {
        s.token.signing_key = waited.clone();
        s.token.verify_keys = vec![old.clone()];
    })
    .expect("step 2 after the wait");
    longer
        .reload_with(|s| {
            s.token.signing_key = shortened.clone();
            s.token.verify_keys = vec![old.clone()];
        })
        .expect("step 2 after a wait for the shortened max-age");

    assert!(
        !warned_of_a_recent_signer(&log, &waited_kid),
        "published longer than discovery.max_age_secs ago"
    );
    assert!(
        warned_of_a_recent_signer(&log, &shortened_kid),
        "the JWKS served before, with a max-age of 300 s, may still be cached"
    );
}

/// A rotation to a key of another type changes the tokens' `alg`, which a resource server
/// pinned to the old one rejects: the reload says so, naming both.
#[tokio::test]
async fn a_reload_that_changes_the_tokens_algorithm_warns() {
    let log = crate::log_capture::mark();
    let (old, old_kid) = new_key_file(KeyKind::Rsa2048);
    let (new, new_kid) = new_key_file(KeyKind::Ed25519);
    let app = spawn_app_with(|s| s.token.signing_key = old.clone()).await;
    assert_eq!(
        decode_header(&app.token_for(&APP).await).unwrap().alg,
        jsonwebtoken::Algorithm::RS256
    );

    app.reload_with(|s| {
        s.token.signing_key = new.clone();
        s.token.verify_keys = vec![old.clone()];
    })
    .expect("step 2 of the rotation, to an Ed25519 key");

    let warning = log
        .lines()
        .into_iter()
        .find(|l| l.contains("changes the tokens' alg") && l.contains(&new_kid))
        .expect("no warning of the new alg");
    assert!(warning.starts_with("WARN"), "{warning}");
    let named = format!("from RS256 (key {old_kid}) to EdDSA (key {new_kid})");
    assert!(warning.contains(&named), "{warning}");
    assert_eq!(
        decode_header(&app.token_for(&APP).await).unwrap().alg,
        jsonwebtoken::Algorithm::EdDSA
    );
}

/// A token lifetime of a second, so that a test can outwait it.
fn short(s: &mut sso_token::config::Settings) {
    s.token.expires_in = 1;
    s.token.leeway_secs = 0;
}

/// Steps 2 and 3 of the README's rotation from `old` to `new` under [`short`] lifetimes, step 3
/// just after the tokens of step 2's lifetime expired.
async fn rotate_in_short_steps(app: &TestApp, old: &Path, new: &Path) {
    app.reload_with(|s| {
        short(s);
        s.token.signing_key = new.to_owned();
        s.token.verify_keys = vec![old.to_owned()];
    })
    .expect("step 2 of the rotation");
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    app.reload_with(|s| {
        short(s);
        s.token.signing_key = new.to_owned();
        s.token.verify_keys.clear();
    })
    .expect("step 3 of the rotation");
}

/// Whether a reload since `log` warned that it drops key `kid`.
fn warned_of_dropping(log: &crate::log_capture::Mark, kid: &str) -> bool {
    warned(log, &format!("drops key {kid}"))
}

/// What the warning of a signer published less than `discovery.max_age_secs` ago says of `kid`.
fn recent_signer(kid: &str) -> String {
    format!("makes key {kid} the signer, which this replica published only")
}

/// Whether a reload since `log` warned that it makes key `kid` the signer, published less than
/// `discovery.max_age_secs` ago.
fn warned_of_a_recent_signer(log: &crate::log_capture::Mark, kid: &str) -> bool {
    warned(log, &recent_signer(kid))
}

/// Whether a warning since `log` says `what`.
fn warned(log: &crate::log_capture::Mark, what: &str) -> bool {
    (log.lines().iter()).any(|l| l.starts_with("WARN") && l.contains(what))
}

/// A key's tokens live as long as the longest lifetime in force while it signed: shortening
/// `expires_in` leaves the tokens issued before with theirs, so dropping the key once the
/// short lifetime has passed is still warned of.
#[tokio::test]
async fn dropping_a_key_whose_tokens_outlive_a_shortened_lifetime_is_warned_of() {
    let log = crate::log_capture::mark();
    let (old, old_kid) = new_key_file(KeyKind::Ed25519);
    let (new, _) = new_key_file(KeyKind::Ed25519);
    let app = spawn_app_with(|s| s.token.signing_key = old.clone()).await;
    // Issued for 1800 s, the default lifetime.
    app.token_for(&APP).await;
    app.reload_with(|s| {
        short(s);
        s.token.signing_key = old.clone();
    })
    .expect("a shorter lifetime");

    rotate_in_short_steps(&app, &old, &new).await;

    assert!(
        warned_of_dropping(&log, &old_kid),
        "its 1800 s tokens still live"
    );
}

/// The README's step 3 once the old key's tokens have expired is no mistake: no warning.
#[tokio::test]
async fn dropping_a_retired_key_after_its_tokens_expired_is_not_warned_of() {
    let log = crate::log_capture::mark();
    let (old, old_kid) = new_key_file(KeyKind::Ed25519);
    let (new, _) = new_key_file(KeyKind::Ed25519);
    let app = spawn_app_with(|s| {
        short(s);
        s.token.signing_key = old.clone();
    })
    .await;

    rotate_in_short_steps(&app, &old, &new).await;

    assert!(
        !warned_of_dropping(&log, &old_kid),
        "step 3 in time is no mistake"
    );
}

/// The warning of a dropped signer says how long its tokens live on: `expires_in` plus the
/// leeway.
#[tokio::test]
async fn the_warning_of_a_dropped_signer_says_how_long_its_tokens_live() {
    let log = crate::log_capture::mark();
    let (old, old_kid) = new_key_file(KeyKind::Ed25519);
    let (new, _) = new_key_file(KeyKind::Ed25519);
    let app = spawn_app_with(|s| s.token.signing_key = old.clone()).await;
    let token = &app.settings.token;
    assert!(token.leeway_secs > 1, "a leeway that the lifetime shows");
    let lifetime = token.expires_in + token.leeway_secs;

    app.reload_with(|s| s.token.signing_key = new.clone())
        .expect("a reload that drops the signer");

    let said = format!(
        "drops key {old_kid}, which signed tokens until now: those of the last {lifetime} s no \
         longer verify"
    );
    assert!(warned(&log, &said), "{said}: {:#?}", log.lines());
}

/// A reload checks that a token fits with the `jti` of the Redis mode the process runs in, not
/// of a `redis.mode` the reloaded files name (a restart-only setting): Cluster `jti`s are three
/// characters longer. With the longest issuer a standalone token fits beside, a reload whose
/// files say Cluster is still applied.
#[tokio::test]
async fn a_reload_sizes_tokens_by_the_redis_mode_it_runs_in() {
    let app = spawn_app().await;
    let issuer = |len: usize| format!("https://sso.example/{}", "i".repeat(len));
    let fits = |len: usize, cluster: bool| {
        app.reload_with(|s| {
            s.token.issuer = issuer(len);
            if cluster {
                s.redis.mode = sso_token::config::RedisMode::Cluster;
                s.redis.nodes = vec![s.redis.url.clone()];
            }
        })
        .is_ok()
    };
    // The longest issuer whose standalone token fits.
    let (mut fitting, mut too_long) = (0, 20_000);
    assert!(fits(fitting, false) && !fits(too_long, false));
    while too_long - fitting > 1 {
        let middle = (fitting + too_long) / 2;
        if fits(middle, false) {
            fitting = middle;
        } else {
            too_long = middle;
        }
    }
    assert!(
        fits(fitting, true),
        "refused for a Cluster jti the process does not use"
    );
}

/// Of the enabled clients, the one whose id, audience and shortest scope are the longest has
/// the longest shortest token: a start or reload under which it passes `MAX_TOKEN` is refused
/// naming it, even when the others' ids or audiences alone are longer.
#[tokio::test]
async fn an_issuer_no_token_fits_beside_is_refused_naming_the_client_of_the_longest() {
    let app = spawn_app().await;
    let quote = |s: &str| serde_json::to_string(s).unwrap();
    let client = |id: &str, audience: &str, scope: &str| {
        format!(
            "[[clients]]\nid = {}\nsecret = {}\nredirect_uris = [\"https://{id}.example/cb\"]\n\
             scopes = [{}, {}]\naudience = {}\n",
            quote(id),
            quote(&sso_token::secret_hash::hash_secret_sha256(
                "a-long-enough-secret-Xq7Lp2"
            )),
            quote(scope),
            quote(&format!("{scope}-and-more")),
            quote(audience),
        )
    };
    // Id, audience and shortest scope: 1 + 100 + 1 (the longest token), 20 + 20 + 1 (the
    // longest id, and id times audience), 1 + 10 + 20 (the longest scope, and audience times
    // scope).
    let registry = [
        client("w", &"x".repeat(100), "s"),
        client(&"p".repeat(20), &"p".repeat(20), "s"),
        client("q", &"y".repeat(10), &"z".repeat(20)),
    ]
    .concat();
    let file = test_dir().join(format!("longest-{}.toml", uuid::Uuid::new_v4()));
    std::fs::write(&file, registry).unwrap();

    let refused = app
        .reload_with(|s| {
            s.clients.file = file.clone();
            s.token.issuer = format!("https://sso.example/{}", "i".repeat(4_000));
        })
        .expect_err("an issuer no token fits beside")
        .to_string();

    assert!(
        refused.starts_with("client w: its shortest token would be "),
        "{refused}"
    );
}

/// A grant carries the base scopes its client may have (`token.base_scopes`), so the shortest
/// token is sized with them: with the longest issuer a token of the client's shortest scope
/// fits beside, a long base scope of the client's is refused at reload, naming it.
#[tokio::test]
async fn the_shortest_token_is_sized_with_the_base_scopes() {
    let app = spawn_app().await;
    let long_scope = format!("base:{}", "b".repeat(600));
    let registry = format!(
        "[[clients]]\nid = \"based\"\nsecret = {}\nredirect_uris = [\"https://based.example/cb\"]\n\
         scopes = [\"s\", \"{long_scope}\"]\n",
        serde_json::to_string(&sso_token::secret_hash::hash_secret_sha256(
            "a-long-enough-secret-Xq7Lp2"
        ))
        .unwrap(),
    );
    let file = test_dir().join(format!("based-{}.toml", uuid::Uuid::new_v4()));
    std::fs::write(&file, registry).unwrap();
    let fits = |len: usize, base_scopes: Vec<String>| {
        app.reload_with(|s| {
            s.clients.file = file.clone();
            s.token.issuer = format!("https://sso.example/{}", "i".repeat(len));
            s.token.base_scopes = base_scopes;
        })
    };
    let (mut fitting, mut too_long) = (0, 20_000);
    assert!(fits(fitting, vec![]).is_ok() && fits(too_long, vec![]).is_err());
    while too_long - fitting > 1 {
        let middle = (fitting + too_long) / 2;
        if fits(middle, vec![]).is_ok() {
            fitting = middle;
        } else {
            too_long = middle;
        }
    }

    let refused = fits(fitting, vec![long_scope.clone()])
        .expect_err("a base scope no token fits beside")
        .to_string();

    assert!(
        refused.starts_with("client based: its shortest token would be "),
        "{refused}"
    );
    assert!(refused.contains("token.base_scopes"), "{refused}");
}
