//! The `sso-token` command's own promises: `hash-secret` reads stdin, `keygen` never leaves a key
//! readable by others and overwrites only with `--force`, `pubkey` prints the public half that
//! `token.verify_keys` takes, with the kid `keygen` printed, `issue-code` writes what it is
//! given, `check-config` refuses what a start would.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output, Stdio};

use rcgen::PublicKeyData;
use sso_token::config::Settings;
use sso_token::secret_hash::hash_secret_sha256;
use sso_token::tokens::{SigningKey, VerifyingKey};
use uuid::Uuid;

use deadpool_redis::redis;
use sso_token::store::Store;

use crate::helpers::{APP, test_dir, test_settings};
use crate::redis_server::RedisServer;
use crate::server_process::{ServerProcess, config_dir, without_sso_env};
use crate::topology::{SentinelSet, query};

fn sso_token(args: &[&str], stdin: &str) -> Output {
    let mut child = without_sso_env(&mut Command::new(env!("CARGO_BIN_EXE_sso-token")))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sso-token runs");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin.as_bytes()).expect("stdin written");
    drop(input);
    child.wait_with_output().expect("sso-token ends")
}

#[test]
fn hash_secret_reads_the_secret_from_stdin_without_an_argument() {
    let secret = "stdin-secret-Wq7Lm2Zx9Ra4";

    let piped = sso_token(&["hash-secret"], &format!("{secret}\n"));
    let given = sso_token(&["hash-secret", secret], "");

    for output in [&piped, &given] {
        assert!(output.status.success(), "{output:?}");
        assert_eq!(
            String::from_utf8_lossy(&output.stdout).trim_end(),
            hash_secret_sha256(secret)
        );
    }
}

/// `--generate` prints a new secret, then its stored form: 32 characters every library sends
/// unchanged, new each time, with no warning.
#[test]
fn hash_secret_generate_prints_a_new_secret_and_its_stored_form() {
    let runs: Vec<(String, String)> = (0..2)
        .map(|_| {
            let output = sso_token(&["hash-secret", "--generate"], "");
            assert!(output.status.success(), "{output:?}");
            assert!(output.stderr.is_empty(), "{output:?}");
            let stdout = String::from_utf8(output.stdout).expect("text");
            let lines: Vec<&str> = stdout.lines().collect();
            let [secret, stored] = lines[..] else {
                panic!("two lines: {stdout}");
            };
            assert_eq!(secret.len(), 32, "{secret}");
            assert!(
                secret
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b)),
                "{secret}"
            );
            assert_eq!(stored, hash_secret_sha256(secret));
            (secret.to_owned(), stored.to_owned())
        })
        .collect();
    assert_ne!(runs[0], runs[1]);

    let both = sso_token(&["hash-secret", "--generate", "given"], "");
    assert_eq!(both.status.code(), Some(2), "{both:?}");
}

/// A short secret is hashed, with a warning: unsalted SHA-256 of a few characters is found
/// by brute force once the clients file leaks.
#[test]
fn hash_secret_warns_of_a_secret_too_short_to_resist_a_brute_force() {
    for (secret, warned) in [("short", true), ("A-Z.a_z~0123456789abc", true)] {
        let output = sso_token(&["hash-secret", secret], "");
        assert!(output.status.success(), "{output:?}");
        assert_eq!(
            String::from_utf8_lossy(&output.stdout).trim_end(),
            hash_secret_sha256(secret)
        );
        let said = String::from_utf8_lossy(&output.stderr);
        assert_eq!(said.contains("--generate"), warned, "{secret}: {said}");
    }
    let long_enough = sso_token(&["hash-secret", "A-Z.a_z~0123456789abcd"], "");
    assert!(long_enough.stderr.is_empty(), "{long_enough:?}");
}

/// One base64url secret in 64 begins with `-`: given as the argument it is hashed, not refused
/// as an unknown option (whose error quoted it). A misspelt option is not hashed as a secret.
#[test]
fn hash_secret_takes_a_secret_that_begins_with_a_hyphen_but_no_misspelt_option() {
    for secret in ["-Xq3sLp9Za2Wm7Rt4", "--Xq3sLp9Za2Wm7Rt4"] {
        let output = sso_token(&["hash-secret", secret], "");
        assert!(output.status.success(), "{secret}: {output:?}");
        assert_eq!(
            String::from_utf8_lossy(&output.stdout).trim_end(),
            hash_secret_sha256(secret)
        );
    }
    for misspelt in ["--argon", "-argon2", "-x", "-marker-secret-123"] {
        let output = sso_token(&["hash-secret", misspelt], "");
        assert_eq!(output.status.code(), Some(2), "{misspelt}: {output:?}");
        assert!(output.stdout.is_empty(), "{misspelt}: {output:?}");
        // Not quoted back: it may be a secret after all (clap's refusal of a value quoted it).
        let said = String::from_utf8_lossy(&output.stderr);
        assert!(
            said.contains("no such option") && !said.contains("marker"),
            "{misspelt}: {said}"
        );
    }
}

/// `command` run by `sh` at a terminal (`script`'s), `typed` sent once `hash-secret`'s prompt is
/// up (the terminal echoes what comes before); what the terminal showed, and whether it ended well.
fn at_a_terminal(command: &str, typed: &[u8]) -> (bool, String) {
    use std::io::Read;
    let mut child = without_sso_env(&mut Command::new("script"))
        .args(["-qec", command, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("script (util-linux) runs");
    // Without a prompt nothing comes: end the wait, and so the test, after 10 s (unless the
    // child has ended: its pid may since belong to another test's process).
    let pid = child.id().to_string();
    let ended = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watched = std::sync::Arc::clone(&ended);
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(10));
        if !watched.load(std::sync::atomic::Ordering::SeqCst) {
            // Through `sh`'s own `kill`: a minimal Debian may have no `/bin/kill`. Its result
            // is not looked at: the child may have ended meanwhile, and the read fails anyway.
            let _ = Command::new("sh")
                .args(["-c", &format!("kill {pid}")])
                .status();
        }
    });
    let mut screen = child.stdout.take().expect("stdout");
    let mut shown = Vec::new();
    while !String::from_utf8_lossy(&shown).contains("(not shown): ") {
        let mut byte = [0; 1];
        assert_eq!(
            screen.read(&mut byte).expect("read"),
            1,
            "no prompt: {shown:?}"
        );
        shown.push(byte[0]);
    }
    let mut typing = child.stdin.take().expect("stdin");
    typing.write_all(typed).expect("typed");
    screen.read_to_end(&mut shown).expect("read");
    drop(typing);
    let status = child.wait().expect("script ends");
    ended.store(true, std::sync::atomic::Ordering::SeqCst);
    (
        status.success(),
        String::from_utf8_lossy(&shown).into_owned(),
    )
}

/// Typed at a terminal (here `script`'s pseudo-terminal): a prompt, and the secret is not
/// echoed to the screen; the hash is the same as from a pipe.
#[test]
fn hash_secret_at_a_terminal_prompts_and_does_not_echo_the_secret() {
    let secret = "typed-secret-Hk3Vn8Qp";
    let command = format!("{} hash-secret", env!("CARGO_BIN_EXE_sso-token"));
    let (success, shown) = at_a_terminal(&command, format!("{secret}\n").as_bytes());
    assert!(success, "{shown}");
    assert!(shown.contains(&hash_secret_sha256(secret)), "{shown}");
    assert!(!shown.contains(secret), "the secret was echoed: {shown}");
}

/// Killed by SIGINT, the command could not turn the terminal's echo back on: a shell that does
/// not restore it (this `sh`) would go on blind.
#[test]
fn hash_secret_interrupted_at_its_prompt_gives_the_terminal_its_echo_back() {
    let command = format!(
        "{} hash-secret; echo status=$?; stty -a",
        env!("CARGO_BIN_EXE_sso-token")
    );
    for interrupt in [b"half-typed\x03", b"half-typed\x1c"] {
        let (_, shown) = at_a_terminal(&format!("sh -c '{command}'"), interrupt);
        assert!(shown.contains("sso-token: interrupted"), "{shown}");
        assert!(shown.contains("status=1"), "{shown}");
        let modes: Vec<&str> = shown.split_whitespace().collect();
        assert!(modes.contains(&"echo"), "echo left off: {shown}");
        assert!(
            !shown.contains(&hash_secret_sha256("half-typed")),
            "{shown}"
        );
    }
}

/// Signals off at the prompt, Ctrl-Z does not suspend: it would land in the secret unseen, and
/// the hash printed would be of a secret no client sends.
#[test]
fn hash_secret_at_a_terminal_refuses_a_typed_control_character() {
    let command = format!("{} hash-secret", env!("CARGO_BIN_EXE_sso-token"));
    let (success, shown) = at_a_terminal(&command, b"se\x1acret\n");
    assert!(!success, "{shown}");
    assert!(shown.contains("control character"), "{shown}");
    assert!(
        !shown.contains(&hash_secret_sha256("se\u{1a}cret")),
        "{shown}"
    );
}

#[test]
fn hash_secret_warns_of_a_secret_that_basic_credentials_must_form_encode() {
    let warned = |secret: &str| {
        let output = sso_token(&["hash-secret", secret], "");
        assert!(output.status.success(), "{output:?}");
        assert_eq!(
            String::from_utf8_lossy(&output.stdout).trim_end(),
            hash_secret_sha256(secret)
        );
        // This warning's own words: a short secret has a warning of its own.
        String::from_utf8_lossy(&output.stderr).contains("without form-encoding")
    };

    assert!(!warned("Url-Safe_0.9~z"));
    for secret in ["has+plus", "per%25cent", "a:colon", "spa ce", "ünï"] {
        assert!(warned(secret), "{secret}");
    }
}

/// A secret no request could send (over `MAX_SECRET` bytes) is refused, not hashed into a
/// registry entry that never matches; one of exactly that length is hashed.
#[test]
fn hash_secret_takes_a_secret_as_long_as_a_request_may_send_and_no_longer() {
    let longest = "s".repeat(sso_token::oauth::credentials::MAX_SECRET);
    let output = sso_token(&["hash-secret", &longest], "");
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim_end(),
        hash_secret_sha256(&longest)
    );

    let output = sso_token(&["hash-secret", &format!("{longest}s")], "");
    assert!(!output.status.success(), "{output:?}");
    assert!(output.stdout.is_empty(), "{output:?}");
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("over 512 bytes"), "{said}");
}

#[test]
fn keygen_overwrites_only_with_force_and_always_leaves_mode_0600() {
    let path = test_dir().join(format!("keygen-{}.pem", Uuid::new_v4()));
    std::fs::write(&path, "not a key").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = path.to_str().unwrap();

    let refused = sso_token(&["keygen", "--kind", "ed25519", "--out", out], "");
    assert!(!refused.status.success(), "{refused:?}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "not a key");
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("--force"), "{said}");

    let forced = sso_token(
        &["keygen", "--kind", "ed25519", "--out", out, "--force"],
        "",
    );
    assert!(forced.status.success(), "{forced:?}");
    let pem = std::fs::read_to_string(&path).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{pem}");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{mode:o}");
}

/// `keys/` is not in a checkout: the hint of a missing key (`keygen --out keys/signing.pem`)
/// must work as given, and the directory it makes must be as private as the key.
#[test]
fn keygen_creates_missing_directories_readable_by_the_owner_only() {
    let top = test_dir().join(format!("keygen-dir-{}", Uuid::new_v4()));
    let path = top.join("keys").join("signing.pem");

    let made = sso_token(
        &[
            "keygen",
            "--kind",
            "ed25519",
            "--out",
            path.to_str().unwrap(),
        ],
        "",
    );

    assert!(made.status.success(), "{made:?}");
    let pem = std::fs::read_to_string(&path).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{pem}");
    for dir in [&top, &top.join("keys")] {
        let mode = std::fs::metadata(dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{}: {mode:o}", dir.display());
    }
    std::fs::remove_dir_all(&top).unwrap();
}

/// `--force` replaces the file, never writes into it: whoever held the old, readable file open
/// still reads the old content, and a symlink at `--out` is replaced, not followed.
#[test]
fn keygen_force_replaces_the_file_instead_of_writing_into_it() {
    use std::io::Read;

    let path = test_dir().join(format!("keygen-{}.pem", Uuid::new_v4()));
    std::fs::write(&path, "not a key").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut opened_before = std::fs::File::open(&path).unwrap();
    let victim = test_dir().join(format!("victim-{}.txt", Uuid::new_v4()));
    std::fs::write(&victim, "not a key either").unwrap();
    let link = test_dir().join(format!("keygen-link-{}.pem", Uuid::new_v4()));
    std::os::unix::fs::symlink(&victim, &link).unwrap();

    for out in [&path, &link] {
        let out = out.to_str().unwrap();
        let forced = sso_token(
            &["keygen", "--kind", "ed25519", "--out", out, "--force"],
            "",
        );
        assert!(forced.status.success(), "{forced:?}");
        let pem = std::fs::read_to_string(out).unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{pem}");
    }

    let mut seen = String::new();
    opened_before.read_to_string(&mut seen).unwrap();
    assert_eq!(seen, "not a key", "the new key reached an old reader");
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap(),
        "not a key either"
    );
    assert!(
        !std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
}

#[test]
fn pubkey_prints_the_subject_public_key_info_with_the_kid_keygen_printed() {
    for kind in ["rsa2048", "p256", "ed25519"] {
        let path = test_dir().join(format!("pubkey-{}.pem", Uuid::new_v4()));
        let key = path.to_str().unwrap();
        let made = sso_token(&["keygen", "--kind", kind, "--out", key], "");
        assert!(made.status.success(), "{made:?}");
        let kid = String::from_utf8(made.stdout).unwrap();

        let printed = sso_token(&["pubkey", "--key", key], "");

        assert!(printed.status.success(), "{kind}: {printed:?}");
        let public = String::from_utf8(printed.stdout).unwrap();
        assert!(
            public.starts_with("-----BEGIN PUBLIC KEY-----\n"),
            "{public}"
        );
        assert!(!public.contains("PRIVATE"), "{public}");
        // The same SubjectPublicKeyInfo as rcgen, which encodes it itself, writes.
        let private = std::fs::read_to_string(&path).unwrap();
        let rcgen_spki = rcgen::KeyPair::from_pem(&private)
            .unwrap()
            .subject_public_key_info();
        assert_eq!(
            pem::parse(&public).unwrap().contents(),
            rcgen_spki,
            "{kind}"
        );
        assert_eq!(
            VerifyingKey::from_pem(&public).unwrap().kid(),
            kid.trim_end(),
            "{kind}"
        );
        // A public key file goes through unchanged.
        let public_path = test_dir().join(format!("pubkey-{}.pub.pem", Uuid::new_v4()));
        std::fs::write(&public_path, &public).unwrap();
        let again = sso_token(&["pubkey", "--key", public_path.to_str().unwrap()], "");
        assert_eq!(String::from_utf8(again.stdout).unwrap(), public, "{kind}");
    }
}

#[test]
fn pubkey_of_a_file_that_is_not_a_key_fails_naming_the_file() {
    let path = test_dir().join(format!("pubkey-{}.pem", Uuid::new_v4()));
    std::fs::write(&path, "not a key").unwrap();
    let missing = test_dir().join("no-such-key.pem");

    for file in [&path, &missing] {
        let refused = sso_token(&["pubkey", "--key", file.to_str().unwrap()], "");

        assert!(!refused.status.success(), "{refused:?}");
        assert!(refused.stdout.is_empty(), "{refused:?}");
        let stderr = String::from_utf8(refused.stderr).unwrap();
        assert!(stderr.contains(&file.display().to_string()), "{stderr}");
    }
}

/// `jwks` prints the public halves of key files as a JWK Set that a private_key_jwt client's
/// `jwks_file` takes as it is: each key under the kid keygen printed, without `alg`, so that a
/// client's RSA key verifies PS256 as well as RS256; a private key's secret members never; and
/// no set the registry would refuse.
#[test]
fn jwks_prints_a_set_that_a_clients_jwks_file_takes() {
    use jsonwebtoken::Algorithm;
    use sso_token::clients::jwks::ClientKeys;

    let mut keys = Vec::new();
    for kind in ["rsa2048", "p256", "ed25519"] {
        let path = test_dir().join(format!("jwks-{}.pem", Uuid::new_v4()));
        let made = sso_token(
            &["keygen", "--kind", kind, "--out", path.to_str().unwrap()],
            "",
        );
        assert!(made.status.success(), "{made:?}");
        keys.push((
            path,
            String::from_utf8(made.stdout).unwrap().trim().to_owned(),
        ));
    }
    let mut args = vec!["jwks"];
    for (path, _) in &keys {
        args.extend(["--key", path.to_str().unwrap()]);
    }

    let printed = sso_token(&args, "");

    assert!(printed.status.success(), "{printed:?}");
    let text = String::from_utf8(printed.stdout).unwrap();
    let set: serde_json::Value = serde_json::from_str(&text).unwrap();
    for jwk in set["keys"].as_array().unwrap() {
        assert_eq!(jwk.get("alg"), None, "{jwk}");
        assert_eq!(jwk.get("d"), None, "{jwk}");
    }
    let parsed = ClientKeys::parse(&text).expect("a jwks_file the registry takes");
    let (rsa, p256, ed25519) = (&keys[0].1, &keys[1].1, &keys[2].1);
    let allows = |kid: &str, alg| parsed.choose(Some(kid)).unwrap().allows(alg);
    assert!(allows(rsa, Algorithm::RS256) && allows(rsa, Algorithm::PS256));
    assert!(allows(p256, Algorithm::ES256));
    assert!(allows(ed25519, Algorithm::EdDSA));
    // A set the registry would refuse is not printed: the same key twice.
    let p256_key = keys[1].0.to_str().unwrap();
    let twice = sso_token(&["jwks", "--key", p256_key, "--key", p256_key], "");
    assert!(!twice.status.success(), "{twice:?}");
    assert!(twice.stdout.is_empty(), "{twice:?}");
    let said = String::from_utf8(twice.stderr).unwrap();
    assert!(said.contains("is another key's too"), "{said}");
}

/// `issue-code` refuses, before it connects, what would make a code Redis refuses (a TTL of 0,
/// or past what `EX` takes) or one that can only be refused (a scope that is no RFC 6749 §3.3
/// scope-token, which no client's `scopes` may hold).
#[test]
fn issue_code_refuses_a_ttl_or_scope_no_code_could_have() {
    let base = [
        "issue-code",
        "--client",
        "app",
        "--redirect-uri",
        "https://a/cb",
    ];
    for (flag, value) in [
        ("--ttl", "0"),
        ("--ttl", "18446744073709551615"),
        ("--scope", ""),
        ("--scope", "user:basic user:contract"),
        ("--scope", "user:\"basic\""),
        ("--scope", "usér"),
    ] {
        let output = sso_token(&[&base[..], &[flag, value]].concat(), "");

        assert!(!output.status.success(), "{flag} {value:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(flag), "{flag} {value:?}: {stderr}");
    }
}

/// `issue-code` for the test client, with the config of `config_dir`'s `test` overlay.
fn issue_code_for_app(config_dir: &str) -> [&str; 9] {
    [
        "--config-dir",
        config_dir,
        "--env",
        "test",
        "issue-code",
        "--client",
        APP.id,
        "--redirect-uri",
        APP.redirect_uri,
    ]
}

/// In Sentinel mode `issue-code` waits for the failover watchers' first look at their
/// sentinels before it writes (until then the fence refuses every call): it always failed
/// there with "a sentinel failover is under way". The code lands on the master they name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_code_writes_to_the_master_the_sentinels_name() {
    let set = tokio::task::spawn_blocking(SentinelSet::start)
        .await
        .unwrap();
    let mut settings = test_settings();
    set.configure(&mut settings.redis);
    let dir = config_dir(&settings, &[]);
    let overlay = dir.join("test.toml");
    let sentinels = serde_json::to_string(&settings.redis.sentinels).unwrap();
    let text = std::fs::read_to_string(&overlay).unwrap().replace(
        "[redis]\n",
        &format!(
            "[redis]\nmode = \"sentinel\"\nsentinels = {sentinels}\nmaster_name = {:?}\n",
            settings.redis.master_name
        ),
    );
    std::fs::write(&overlay, text).unwrap();
    let dir_arg = dir.display().to_string();

    let output = sso_token(&issue_code_for_app(&dir_arg), "");

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let code = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    let key = Store::new(&settings.redis).unwrap().code_key(&code);
    let master = set.data_nodes[0].port();
    let exists = query::<u32>(master, redis::cmd("EXISTS").arg(&key));
    assert_eq!(exists, Some(1), "the code on the master");
}

/// `SSO_LOG_FORMAT=json`: every line is one JSON object, with its time to the millisecond, its
/// level, target and message; another value stops the process, naming the variable.
#[test]
fn with_sso_log_format_json_every_line_is_a_json_object() {
    let dir = config_dir(&test_settings(), &[]);
    let server = ServerProcess::spawn(&dir, "export SSO_LOG_FORMAT=json; ");

    let lines = server.log_until("listening on");

    assert!(lines.len() >= 2, "{lines:#?}");
    for line in &lines {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let time = value["time"].as_str().unwrap_or_default();
        assert!(time.ends_with('Z') && time.contains('.'), "{line}");
        assert!(
            ["ERROR", "WARN", "INFO"].contains(&value["level"].as_str().unwrap_or_default()),
            "{line}"
        );
        assert!(
            value["target"].as_str().is_some_and(|t| !t.is_empty()),
            "{line}"
        );
        assert!(value["message"].is_string(), "{line}");
    }
    let last: serde_json::Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert!(
        last["message"]
            .as_str()
            .unwrap()
            .contains("listening on http://127.0.0.1:"),
        "{last}"
    );

    let misspelt = without_sso_env(&mut Command::new(env!("CARGO_BIN_EXE_sso-token")))
        .env("SSO_LOG_FORMAT", "jsn")
        .arg("--config-dir")
        .arg(&dir)
        .args(["--env", "test", "check-config"])
        .output()
        .expect("sso-token runs");
    let said = String::from_utf8_lossy(&misspelt.stderr);
    assert_eq!(misspelt.status.code(), Some(1), "{said}");
    assert!(said.contains("SSO_LOG_FORMAT must be"), "{said}");
}

/// A Redis that does not answer: the failure names where the code was to go (the password
/// hidden), since the pool's own words do not.
#[test]
fn issue_code_names_the_redis_it_could_not_write_to() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .unwrap()
        .port();
    let mut settings = test_settings();
    settings.redis.url = format!("redis://:hunter2@127.0.0.1:{port}");
    let dir = config_dir(&settings, &[]);
    let dir_arg = dir.display().to_string();

    let output = sso_token(&issue_code_for_app(&dir_arg), "");

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "writing the code to redis (redis://:***@127.0.0.1:{port})"
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

/// A PKCE challenge may begin with `-` (an S256 one does once in 64): `issue-code` takes it as
/// a value, not as an option, and writes it as given.
#[tokio::test]
async fn issue_code_takes_a_challenge_that_begins_with_a_hyphen() {
    let redis = RedisServer::start();
    let mut settings = test_settings();
    settings.redis.url = redis.url();
    let dir = config_dir(&settings, &[]);
    let challenge = "-SmIcveQnfvOrH8WiXiQrrFc9uCg4Vcq83hElmYvM3k";
    let dir_arg = dir.display().to_string();
    let mut args = issue_code_for_app(&dir_arg).to_vec();
    args.extend(["--code-challenge", challenge]);

    let output = sso_token(&args, "");

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let code = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    let store = Store::new(&settings.redis).unwrap();
    let mut conn = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let record: String = redis::cmd("GET")
        .arg(store.code_key(&code))
        .query_async(&mut conn)
        .await
        .unwrap();
    let record: serde_json::Value = serde_json::from_str(&record).unwrap();
    assert_eq!(record["code_challenge"], challenge);
    assert_eq!(record["code_challenge_method"], "S256");

    // A forgotten value is not taken for one: the next option is no challenge.
    let mut forgotten = args[..args.len() - 1].to_vec();
    forgotten.extend(["--code-challenge-method", "plain"]);
    let output = sso_token(&forgotten, "");
    assert!(
        !output.status.success(),
        "a challenge of `--code-challenge-method`"
    );
}

/// README ("Configuration"): a misspelt setting stops the start. A misspelt prefix
/// (`SSO_SERVER__…`, one underscore) is never read as a setting at all: it stops the start
/// too, naming the variable, instead of a server without the TLS it was given.
#[test]
fn a_setting_with_a_misspelt_prefix_stops_the_start() {
    let mut child = without_sso_env(&mut Command::new(env!("CARGO_BIN_EXE_sso-token")))
        .args(["serve", "--config-dir", "config"])
        // Were it read, a free port: a server that starts must not meet another's.
        .env("SSO__SERVER__LISTEN", "127.0.0.1:0")
        .env("SSO_SERVER__TLS__CERT", "/etc/ssl/sso.pem")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sso-token runs");
    // A server that starts anyway runs until stopped: give it 10 s, then fail.
    let started = std::time::Instant::now();
    while child.try_wait().expect("waited").is_none() {
        if started.elapsed() > std::time::Duration::from_secs(10) {
            let _ = child.kill();
            panic!("the server started with a misspelt setting in its environment");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let output = child.wait_with_output().expect("sso-token ended");
    assert!(!output.status.success(), "{output:?}");
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        said.contains("`SSO_SERVER__TLS__CERT` is not read"),
        "{said}"
    );
}

/// A soft limit of open files below the hard one (1024 under systemd and in many containers)
/// is raised at start: every connection takes a descriptor.
#[test]
fn serve_raises_the_open_files_soft_limit_to_the_hard_one() {
    let hard = std::process::Command::new("sh")
        .args(["-c", "ulimit -Hn"])
        .output()
        .expect("sh runs");
    let hard = String::from_utf8_lossy(&hard.stdout).trim().to_owned();
    assert!(
        hard.parse::<u64>().is_ok_and(|n| n > 256),
        "hard limit {hard}"
    );

    let server = ServerProcess::start_after(&config_dir(&test_settings(), &[]), "ulimit -Sn 256; ");

    let said = server
        .start_log
        .iter()
        .find(|l| l.contains("open files"))
        .unwrap_or_else(|| panic!("no open-files line in {:#?}", server.start_log));
    assert!(
        said.contains(&format!("at most {hard} (raised from 256)")),
        "{said}"
    );
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", server.pid())).unwrap();
    let files = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("the open-files line");
    let soft = files.split_whitespace().nth(3);
    assert_eq!(soft, Some(hard.as_str()), "{files}");
}

/// The open-files line at start: a hard limit under 4,096 is warned of; so is
/// `server.max_connections` set past what the limit leaves after the 512 descriptors kept for
/// Redis and the rest (or, with 0, more workers than 64 connections each leave room for), at
/// any limit; otherwise the line is information.
#[test]
fn serve_warns_of_an_open_files_limit_too_low_for_its_connections() {
    let open_files_line = |limit: u64, max_connections: usize, workers: usize| {
        // The test overlay does not write these settings; the environment sets them.
        let prelude = format!(
            "ulimit -n {limit}; export SSO__SERVER__MAX_CONNECTIONS={max_connections} \
             SSO__SERVER__WORKERS={workers}; "
        );
        let server = ServerProcess::start_after(&config_dir(&test_settings(), &[]), &prelude);
        (server.start_log.iter())
            .find(|l| l.contains("open files"))
            .cloned()
            .unwrap_or_else(|| panic!("no open-files line in {:#?}", server.start_log))
    };
    let low = "each connection takes one";
    let too_many = "but server.max_connections is 3585";

    let said = open_files_line(4095, 0, 1);
    assert!(said.contains(" WARN ") && said.contains(low), "{said}");
    let said = open_files_line(4096, 0, 1);
    assert!(
        said.contains(" INFO ") && said.contains("at most 4096;"),
        "{said}"
    );
    // One worker (the test settings'): 4,096 less 512 is 3,584 connections.
    let said = open_files_line(4096, 3584, 1);
    assert!(said.contains(" INFO "), "{said}");
    let said = open_files_line(4096, 3585, 1);
    assert!(said.contains(" WARN ") && said.contains(too_many), "{said}");
    assert!(
        said.contains("1 worker(s) may hold 3585 connections"),
        "{said}"
    );
    assert!(said.contains("lower it, or set 0 to fit"), "{said}");
    // 0 fits 56 workers at 64 connections each in 4,096 less 512; 57 do not.
    let said = open_files_line(4096, 0, 56);
    assert!(said.contains(" INFO "), "{said}");
    let said = open_files_line(4096, 0, 57);
    assert!(
        said.contains(" WARN ") && said.contains("0 gives each worker 64 at the least"),
        "{said}"
    );
    assert!(
        said.contains("57 worker(s) may hold 3648 connections"),
        "{said}"
    );
    assert!(said.contains("lower server.workers"), "{said}");

    // A low limit that the connections set overrun too: both are said.
    let prelude = "ulimit -n 1024; export SSO__SERVER__MAX_CONNECTIONS=1000 \
                   SSO__SERVER__WORKERS=1; ";
    let server = ServerProcess::start_after(&config_dir(&test_settings(), &[]), prelude);
    let said: Vec<&String> = (server.start_log.iter())
        .filter(|l| l.contains("open files"))
        .collect();
    assert!(said.iter().any(|l| l.contains(low)), "{said:#?}");
    assert!(
        (said.iter()).any(|l| l.contains("but server.max_connections is 1000")),
        "{said:#?}"
    );
}

/// `check-config` with the `test` overlay of `dir`.
fn check_config(dir: &std::path::Path) -> Output {
    let dir = dir.display().to_string();
    sso_token(&["--config-dir", &dir, "--env", "test", "check-config"], "")
}

/// `check-config` reads what a start reads, keys and clients file included, and prints the
/// start's summary (the signer's kid), without a port or Redis: this one points at a port
/// where nothing listens, and a start would not get past its first exchange.
#[test]
fn check_config_accepts_what_a_start_takes_without_contacting_redis() {
    let mut settings = test_settings();
    settings.redis.url = "redis://127.0.0.1:1".into();
    let dir = config_dir(&settings, &[]);
    let pem = std::fs::read_to_string(&settings.token.signing_key).expect("the test key");
    let kid = SigningKey::from_pem(&pem).expect("a key").kid().to_owned();

    let output = check_config(&dir);

    assert!(output.status.success(), "{output:?}");
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(said.starts_with("configuration valid: "), "{said}");
    assert!(said.contains(&kid), "{said}");
}

/// And it refuses, exit status 1 and the setting or file named, what a start refuses: a
/// signing key that is not there, a clients file that does not parse or a client's jwks_file
/// with a private key, a TLS pair that is not.
#[test]
fn check_config_refuses_what_a_start_refuses_naming_it() {
    let broken_clients = test_dir().join(format!("clients-{}.toml", Uuid::new_v4()));
    std::fs::write(&broken_clients, "[[client]]\nid = \n").unwrap();
    let missing = test_dir().join(format!("missing-{}.pem", Uuid::new_v4()));
    // A private_key_jwt client whose jwks_file holds a private key.
    let pem = SigningKey::generate_pem(sso_token::tokens::KeyKind::Ed25519).expect("a key");
    let mut jwk = serde_json::to_value(SigningKey::from_pem(&pem).expect("a key").public_jwk())
        .expect("a JWK");
    jwk["d"] = "nNWx4fFYj1Xb2hS9JFoC6Ad3zYrL0Zv5Q3BqkPZ5sN0".into();
    let jwks = test_dir().join(format!("jwks-{}.json", Uuid::new_v4()));
    std::fs::write(&jwks, serde_json::json!({ "keys": [jwk] }).to_string()).unwrap();
    let private_jwks = test_dir().join(format!("clients-{}.toml", Uuid::new_v4()));
    let entry = format!(
        "[[clients]]\nid = \"signing-app\"\njwks_file = {:?}\ngrant_types = []\n",
        jwks.display().to_string()
    );
    std::fs::write(&private_jwks, entry).unwrap();
    type Edit<'a> = Box<dyn Fn(&mut Settings) + 'a>;
    let cases: [(&str, Edit, &str); 4] = [
        (
            "no signing key",
            Box::new(|s| s.token.signing_key = missing.clone()),
            "token.signing_key",
        ),
        (
            "a broken clients file",
            Box::new(|s| s.clients.file = broken_clients.clone()),
            "clients",
        ),
        ("no TLS files", Box::new(|_| {}), "server.tls"),
        (
            "a private key in a jwks_file",
            Box::new(|s| s.clients.file = private_jwks.clone()),
            "client `signing-app`: jwks_file",
        ),
    ];
    for (case, edit, named) in cases {
        let mut settings = test_settings();
        edit(&mut settings);
        let dir = config_dir(&settings, &[]);
        if case == "no TLS files" {
            let overlay = dir.join("test.toml");
            let mut text = std::fs::read_to_string(&overlay).unwrap();
            text.push_str(&format!(
                "[server.tls]\ncert = {0:?}\nkey = {0:?}\n",
                missing.display().to_string()
            ));
            std::fs::write(&overlay, text).unwrap();
        }

        let output = check_config(&dir);

        assert_eq!(output.status.code(), Some(1), "{case}: {output:?}");
        assert!(output.stdout.is_empty(), "{case}: {output:?}");
        let said = String::from_utf8_lossy(&output.stderr);
        assert!(said.contains(named), "{case}: {said}");
    }
}
