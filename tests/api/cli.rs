//! The `sso-token` command's own promises: `hash-secret` reads stdin, `keygen` never leaves a key
//! readable by others and overwrites only with `--force`.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output, Stdio};

use sso_token::clients::hash_secret_sha256;
use uuid::Uuid;

use crate::helpers::test_dir;

fn sso_token(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sso-token"))
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

#[test]
fn keygen_overwrites_only_with_force_and_always_leaves_mode_0600() {
    let path = test_dir().join(format!("keygen-{}.pem", Uuid::new_v4()));
    std::fs::write(&path, "not a key").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = path.to_str().unwrap();

    let refused = sso_token(&["keygen", "--kind", "ed25519", "--out", out], "");
    assert!(!refused.status.success(), "{refused:?}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "not a key");

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
