use std::path::PathBuf;

use super::*;

/// Relative paths are read from the working directory: the message says which file that was.
#[test]
fn a_missing_relative_file_is_named_by_its_full_path() {
    let missing = PathBuf::from(format!("missing-{}.pem", std::process::id()));
    let full = format!(
        "`{}`",
        std::env::current_dir().unwrap().join(&missing).display()
    );
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let cert = std::env::temp_dir().join(format!("tls-test-cert-{}.pem", std::process::id()));
    std::fs::write(&cert, certified.cert.pem()).unwrap();

    for (cert, key) in [(missing.clone(), cert.clone()), (cert.clone(), missing)] {
        let Err(refused) = server_config(&TlsSettings { cert, key }) else {
            panic!("a missing file was taken");
        };
        assert!(refused.to_string().contains(&full), "{refused}");
    }
    std::fs::remove_file(cert).unwrap();
}

fn write_temp(name: &str, text: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("tls-test-{name}-{}.pem", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

/// A key that is not the certificate's (another pair's, or a chain whose leaf is not first)
/// is refused naming both files, not as rustls' `KeyMismatch`.
#[test]
fn a_key_of_another_certificate_is_refused_naming_both_files() {
    let one = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let cert = write_temp("mismatch-cert", &one.cert.pem());
    let key = write_temp("mismatch-key", &other.signing_key.serialize_pem());

    let refused = server_config(&TlsSettings {
        cert: cert.clone(),
        key: key.clone(),
    })
    .expect_err("another pair's key was taken");

    let message = refused.to_string();
    assert!(matches!(refused, TlsError::Mismatch { .. }), "{message}");
    for path in [&cert, &key] {
        assert!(message.contains(&path.display().to_string()), "{message}");
    }
    let own = write_temp("mismatch-own-key", &one.signing_key.serialize_pem());
    assert!(
        server_config(&TlsSettings {
            cert: cert.clone(),
            key: own.clone()
        })
        .is_ok()
    );
    for path in [cert, key, own] {
        std::fs::remove_file(path).unwrap();
    }
}

/// A key encrypted under a password is said to be one, not "no key in the file".
#[test]
fn an_encrypted_key_is_said_to_be_one() {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let cert = write_temp("encrypted-cert", &certified.cert.pem());
    let key = write_temp(
        "encrypted-key",
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIFHDBOBgkqhkiG9w0BBQ0wQTApBgkqhkiG9w0BBQwwHAQI\n-----END ENCRYPTED PRIVATE KEY-----\n",
    );

    let refused = server_config(&TlsSettings {
        cert: cert.clone(),
        key: key.clone(),
    })
    .expect_err("an encrypted key was taken");

    assert!(
        refused.to_string().contains("ENCRYPTED PRIVATE KEY"),
        "{refused}"
    );
    for path in [cert, key] {
        std::fs::remove_file(path).unwrap();
    }
}
