//! SIGHUP on the real `sso-token` binary: a good new configuration is picked up, a broken one
//! is refused with a log line and the running one keeps serving, and the metrics say which and
//! name the signer; a SIGHUP while the process still reads its configuration is a reload too.
//! And in-process: a SIGHUP that comes before the server runs is not lost.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use sso_token::config::{Settings, TlsSettings};
use sso_token::tokens::KeyKind;

use crate::helpers::{
    APP, Answer, build_app, http_client, json_request, new_key_file, spawn_app, test_dir,
    test_settings,
};
use crate::metrics::value;
use crate::server_process::{
    ServerProcess, WAIT, config_dir, send_signal, write_code, write_overlay,
};

/// Whether process `pid` is the server (the wrapper shell has exec'd it) and catches SIGHUP
/// (`SigCgt` in /proc: bit 0 is signal 1).
fn catches_sighup(pid: u32) -> bool {
    let is_server = std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .is_ok_and(|comm| comm.trim_end() == "sso-token");
    let caught = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            let mask = status.lines().find_map(|l| l.strip_prefix("SigCgt:"))?;
            u64::from_str_radix(mask.trim(), 16).ok()
        });
    is_server && caught.is_some_and(|mask| mask & 1 == 1)
}

/// Writes `text` into the FIFO at `path` once a reader opens it, which must be within [`WAIT`]:
/// a server that ended (SIGHUP's default action) never does, and the write would wait for ever.
fn write_fifo(path: &std::path::Path, text: &str, reader: &str) {
    let (path, text) = (path.to_owned(), text.to_owned());
    let (written, done) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = written.send(std::fs::write(path, text));
    });
    match done.recv_timeout(WAIT) {
        Ok(result) => result.unwrap_or_else(|e| panic!("the clients file for {reader}: {e}")),
        Err(_) => panic!("{reader} did not read the clients file within {WAIT:?}"),
    }
}

/// A deployment may send SIGHUP as it starts the process (a config map updated meanwhile):
/// it is a reload once the server runs, not the end of the process (SIGHUP's default action).
/// The handler comes before the configuration is read: here the clients file is a FIFO, so the
/// start waits in reading it until the test writes it, and must catch SIGHUP meanwhile.
#[tokio::test]
async fn a_sighup_while_the_process_reads_its_configuration_is_a_reload() {
    let mut settings = test_settings();
    let clients = std::fs::read_to_string(&settings.clients.file).expect("the clients file");
    let fifo = test_dir().join(format!("clients-{}.toml", uuid::Uuid::new_v4()));
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(made.success(), "mkfifo {}", fifo.display());
    settings.clients.file = fifo.clone();
    let dir = config_dir(&settings, &[]);
    let mut server = ServerProcess::spawn(&dir, "");

    let deadline = Instant::now() + WAIT;
    while !catches_sighup(server.pid()) {
        assert!(
            Instant::now() < deadline,
            "no SIGHUP handler while the configuration is read"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    server.signal("HUP");
    // Opening the FIFO to write waits for its reader: the start, then the reload.
    write_fifo(&fifo, &clients, "the start");
    server.await_listening();
    server.wait_for_log(
        "SIGHUP: reloading the configuration (keys, the clients file, [token], [discovery], \
         [clients])",
    );
    write_fifo(&fifo, &clients, "the reload");
    server.wait_for_log("configuration reloaded");
    assert!(
        server.exit_within(Duration::ZERO).is_none(),
        "the server ended"
    );
}

#[tokio::test]
async fn sighup_reloads_keys_and_refuses_a_broken_configuration() {
    let mut settings = test_settings();
    let (signer, signer_kid) = new_key_file(KeyKind::Ed25519);
    let (next, next_kid) = new_key_file(KeyKind::P256);
    settings.token.signing_key = signer;
    let dir = config_dir(&settings, &[]);
    let server = ServerProcess::start(&dir);
    // Right after start: a reload, not the default action of SIGHUP (the end of the process).
    server.signal("HUP");
    server.wait_for_log("configuration reloaded");
    assert_eq!(server.kids().await, std::slice::from_ref(&signer_kid));

    write_overlay(&dir, &settings, &[&next]);
    server.signal("HUP");
    server.wait_for_log("configuration reloaded");
    assert_eq!(server.kids().await, [signer_kid.clone(), next_kid.clone()]);

    let mut broken = settings.clone();
    broken.token.signing_key = dir.join("missing.pem");
    write_overlay(&dir, &broken, &[&next]);
    server.signal("HUP");
    let refusal = server.wait_for_log("reload refused");
    assert!(refusal.contains("token.signing_key"), "{refusal}");

    assert_eq!(server.kids().await, [signer_kid.clone(), next_kid.clone()]);
    let code = write_code(&settings).await;
    let response = http_client()
        .post(format!(
            "{}{}",
            server.base,
            sso_token::routes::paths::TOKEN_PATH
        ))
        .json(&json_request(&APP, &code))
        .send()
        .await
        .expect("token endpoint answered");
    assert_eq!(response.status().as_u16(), 200);

    // The metrics tell the refusal apart, and still name the signer of the start.
    let before = scrape(&server).await;
    assert_eq!(value(&before, &reloads("applied")), 2.0);
    assert_eq!(value(&before, &reloads("refused")), 1.0);
    assert_eq!(value(&before, LAST_RELOAD_SUCCESSFUL), 0.0);
    assert_eq!(value(&before, "sso_verification_keys"), 2.0);
    assert_eq!(
        signing_key_series(&before),
        [signing_key_info(&server, &signer_kid).await]
    );

    // Step 2 of the rotation: the next key signs. Its series replaces the old signer's. Sent
    // in a later second than the last reload, so that a stamp left as it was shows.
    let applied = "sso_config_last_applied_timestamp_seconds";
    let stamped = value(&before, applied);
    while sso_token::clock::unix_now() as f64 <= stamped {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut rotated = settings.clone();
    rotated.token.signing_key = next.clone();
    let signer = settings.token.signing_key.clone();
    write_overlay(&dir, &rotated, &[&signer]);
    server.signal("HUP");
    server.wait_for_log("configuration reloaded");
    let after = scrape(&server).await;
    assert_eq!(value(&after, &reloads("applied")), 3.0);
    assert_eq!(value(&after, &reloads("refused")), 1.0);
    assert_eq!(value(&after, LAST_RELOAD_SUCCESSFUL), 1.0);
    assert_eq!(
        signing_key_series(&after),
        [signing_key_info(&server, &next_kid).await]
    );
    assert!(value(&after, applied) > stamped);
}

/// The environment wins over the files at every reload, and a running process's environment
/// does not change: a reload names the reloadable settings it sets whose value in the files
/// changed (only those: a restart-only one is not reloaded from anywhere, and a variable set
/// for good with the files left alone is nothing to warn of at every reload).
#[tokio::test]
async fn a_reload_names_the_reloadable_settings_the_environment_sets() {
    let dir = config_dir(&test_settings(), &[]);
    let server = ServerProcess::start_after(
        &dir,
        "export SSO__DISCOVERY__MAX_AGE_SECS=120 SSO__SERVER__KEEP_ALIVE_SECS=60; ",
    );
    let named = |lines: &[String]| -> Vec<String> {
        (lines.iter())
            .filter(|l| l.contains("comes from the environment"))
            .cloned()
            .collect()
    };
    server.signal("HUP");
    server.wait_for_log("configuration reloaded");
    // The files unchanged: nothing to say (a deployment may set a variable for good).
    let overlay = dir.join("test.toml");
    let mut files = std::fs::read_to_string(&overlay).expect("the overlay");
    files.push_str("[discovery]\nmax_age_secs = 301\n");
    std::fs::write(&overlay, files).expect("the overlay edited");
    server.signal("HUP");
    // Up to the next reload: every line the one before said after `configuration reloaded`.
    let lines = server.log_until("configuration reloaded");
    assert_eq!(named(&lines), Vec::<String>::new(), "{lines:#?}");

    // The files changed it: the change does nothing, and that is said.
    server.signal("HUP");
    let lines = server.log_until("configuration reloaded");
    let said = named(&lines);
    assert_eq!(said.len(), 1, "{lines:#?}");
    assert!(
        said[0].contains(
            "discovery.max_age_secs changed in the files, but it comes from the environment \
             (SSO__DISCOVERY__MAX_AGE_SECS)"
        ),
        "{}",
        said[0]
    );
}

/// 0 from a refused reload until one applies.
const LAST_RELOAD_SUCCESSFUL: &str = "sso_config_last_reload_successful";

fn reloads(result: &str) -> String {
    format!(r#"sso_config_reloads_total{{result="{result}"}}"#)
}

async fn scrape(server: &ServerProcess) -> String {
    let response = http_client()
        .get(format!("{}/metrics", server.base))
        .send()
        .await;
    let answer = Answer::of(response.expect("metrics answered")).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    answer.text
}

/// Every `sso_signing_key_info` line of an exposition.
fn signing_key_series(exposition: &str) -> Vec<&str> {
    exposition
        .lines()
        .filter(|line| line.starts_with("sso_signing_key_info{"))
        .collect()
}

/// The `sso_signing_key_info` line of the key `kid`, its `alg` as the server's JWKS has it.
async fn signing_key_info(server: &ServerProcess, kid: &str) -> String {
    let response = http_client()
        .get(format!(
            "{}{}",
            server.base,
            sso_token::routes::paths::JWKS_PATH
        ))
        .send()
        .await;
    let jwks = Answer::of(response.expect("JWKS answered")).await.json;
    let key = jwks["keys"]
        .as_array()
        .and_then(|keys| keys.iter().find(|k| k["kid"] == kid))
        .unwrap_or_else(|| panic!("{kid} is not published: {jwks}"));
    let alg = key["alg"].as_str().expect("alg");
    format!(r#"sso_signing_key_info{{alg="{alg}",kid="{kid}"}} 1"#)
}

/// Set in the child process that [`a_sighup_before_the_server_runs_is_a_reload`] runs in.
const ALONE: &str = "SSO_TEST_SIGHUP_ALONE";

/// The SIGHUP handler is installed while the server is built, not by a task that runs later:
/// a SIGHUP between the two (here: before `run_until_stopped` is even called) is a reload. The
/// signal goes to a whole process, so the test runs in one of its own (this test binary, with
/// only this test): in the suite's process every other app would reload too, and a reload
/// builds a new client registry, which forgets the secrets the old one had verified (the
/// Argon2 tests count on that memory).
#[tokio::test]
async fn a_sighup_before_the_server_runs_is_a_reload() {
    use tokio::signal::unix::{SignalKind, signal};

    if std::env::var_os(ALONE).is_none() {
        let name = "sighup::a_sighup_before_the_server_runs_is_a_reload";
        let exe = std::env::current_exe().expect("the test binary");
        let run = tokio::process::Command::new(exe)
            .args(["--exact", name, "--test-threads=1"])
            .env(ALONE, "1")
            .output()
            .await
            .expect("the test binary runs");
        let said = String::from_utf8_lossy(&run.stdout);
        assert!(run.status.success(), "in its own process:\n{said}");
        assert!(
            said.contains("1 passed"),
            "the test did not run there:\n{said}"
        );
        return;
    }

    // Our own listener, installed first: the signal can then never end the test process, and
    // once this listener has seen it, every listener that existed when it came has seen it too.
    let mut seen = signal(SignalKind::hangup()).expect("a SIGHUP listener");
    let (app, server) = build_app();
    let (next, next_kid) = new_key_file(KeyKind::P256);
    app.source.lock().unwrap().token.verify_keys = vec![next];

    send_signal(std::process::id(), "HUP");
    tokio::time::timeout(WAIT, seen.recv())
        .await
        .expect("the SIGHUP arrives");
    tokio::spawn(server.run_until_stopped());

    let deadline = Instant::now() + WAIT;
    loop {
        let jwks = app.jwks().await;
        let kids: Vec<&str> = jwks["keys"]
            .as_array()
            .map(|keys| keys.iter().filter_map(|k| k["kid"].as_str()).collect())
            .unwrap_or_default();
        if kids.contains(&next_kid.as_str()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no reload within {WAIT:?}: the SIGHUP was lost; kids {kids:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A change to the settings, by the setting it breaks.
type Edit = fn(&mut Settings);

/// A reload applies the listener's, Redis' and TLS settings only at the next start: it refuses
/// those that start would refuse, rather than report them reloaded.
#[tokio::test]
async fn a_reload_refuses_restart_only_settings_that_a_start_would_refuse() {
    let app = spawn_app().await;
    let edits: [(&str, Edit); 4] = [
        ("redis", |s| s.redis.url = "redis://127.0.0.1:63790x".into()),
        ("server.listen", |s| {
            s.server.listen = "localhost:80800".into()
        }),
        ("metrics.listen", |s| {
            s.metrics.listen = "localhost:80800".into();
        }),
        ("server.tls", |s| {
            let missing = PathBuf::from("/nonexistent/sso-token-test.pem");
            s.server.tls = Some(TlsSettings {
                cert: missing.clone(),
                key: missing,
            });
        }),
    ];
    let started = app.source.lock().unwrap().clone();
    for (setting, edit) in edits {
        let refused = app.reload_with(edit).expect_err(setting).to_string();
        assert!(refused.contains(&format!("`{setting}`")), "{refused}");
        *app.source.lock().unwrap() = started.clone();
    }
    app.reload_with(|_| {})
        .expect("the started settings reload");
    // With metrics off, a start binds no metrics listener: its address is not looked up.
    app.reload_with(|s| {
        s.metrics.enabled = false;
        s.metrics.listen = "metrics.invalid:9100".into();
    })
    .expect("metrics off: `metrics.listen` unused");
}

/// A reload applies what it can and names the settings it changed that wait for a restart; one
/// that changes none of them says nothing of a restart. Its log line names the signer and the
/// clients now in force, as the start's does.
#[tokio::test]
async fn a_reload_names_what_it_applied_and_the_settings_that_wait_for_a_restart() {
    let mut settings = test_settings();
    let (signer, signer_kid) = new_key_file(KeyKind::Ed25519);
    settings.token.signing_key = signer;
    let clients = test_dir().join(format!("clients-{}.toml", uuid::Uuid::new_v4()));
    std::fs::copy(&settings.clients.file, &clients).expect("a copy of the clients file");
    settings.clients.file = clients.clone();
    let dir = config_dir(&settings, &[]);
    let server = ServerProcess::start(&dir);
    server.signal("HUP");
    let reloaded = server.wait_for_log("configuration reloaded");
    let signing = format!("signing with EdDSA key {signer_kid}");
    assert!(reloaded.contains(&signing), "{reloaded}");
    assert!(reloaded.contains("client(s) registered"), "{reloaded}");
    assert!(reloaded.contains("nothing changed"), "{reloaded}");
    let pending = |text: &str| {
        (text.lines())
            .find_map(|l| l.strip_prefix("sso_config_restart_pending "))
            .map(str::to_owned)
    };
    assert_eq!(pending(&scrape(&server).await).as_deref(), Some("0"));

    let mut more_slots = settings.clone();
    more_slots.server.exchange_slots += 1;
    write_overlay(&dir, &more_slots, &[]);
    let mut file = std::fs::read_to_string(&clients).expect("the clients file");
    file.push_str(
        "\n[[clients]]\nid = \"added-by-reload\"\nsecret = \"sha256:\
         cd577fe2561ebff23505db0bb006300c7cdecbd46bc0e03c449afafaca2c25bf\"\n\
         redirect_uris = [\"https://added.example/cb\"]\nscopes = [\"user:basic\"]\n",
    );
    std::fs::write(&clients, file).expect("a client added");
    server.signal("HUP");
    let reloaded = server.wait_for_log("configuration reloaded");
    assert!(
        reloaded.contains("clients added: added-by-reload"),
        "{reloaded}"
    );
    // The first such line since the start: the reload before changed nothing to say.
    let said = server.wait_for_log("take effect on restart only");
    assert!(said.contains("WARN"), "{said}");
    assert!(
        said.contains("changes to server.exchange_slots take effect on restart only"),
        "{said}"
    );
    // And the metrics say it for as long as it holds: an alert, where a log line scrolls away.
    assert_eq!(pending(&scrape(&server).await).as_deref(), Some("1"));
}

/// A reload's line names the reloadable settings it changed: in-process, the line is told
/// from other tests' by the signer's kid, which is this test's own.
#[tokio::test]
async fn a_reload_names_the_settings_it_changed() {
    let log = crate::log_capture::mark();
    let (signer, kid) = new_key_file(KeyKind::P256);
    let app = crate::helpers::spawn_app_with(|s| s.token.signing_key = signer).await;
    app.reload_with(|s| {
        s.token.expires_in += 60;
        s.discovery.max_age_secs += 1;
    })
    .expect("a reload");
    let lines = log.lines();
    let line = (lines.iter())
        .find(|l| l.contains("configuration reloaded") && l.contains(&kid))
        .unwrap_or_else(|| panic!("no reload line: {lines:#?}"));
    assert!(
        line.contains("settings changed: token.expires_in, discovery.max_age_secs"),
        "{line}"
    );
}
