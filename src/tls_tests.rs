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

/// A key flattened onto one line (its line breaks written as `\n`, as when copied out of JSON
/// or an environment variable) is refused without a byte of it in the message: the PEM
/// parser's own message quotes the line it stopped at, which was the whole key, and the start
/// prints it and a reload logs it. Nor a certificate file that holds such a key.
#[test]
fn a_malformed_pem_file_is_refused_without_quoting_it() {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let key_pem = certified.signing_key.serialize_pem();
    // With and without the last line break flattened too, which the parser reads differently.
    let flat = key_pem.replace('\n', "\\n");
    let flat_trimmed = key_pem.trim_end().replace('\n', "\\n");
    let cert = write_temp("flat-cert-ok", &certified.cert.pem());
    let flat_key = write_temp("flat-key", &flat);
    let flat_trimmed_key = write_temp("flat-trimmed-key", &flat_trimmed);
    let flat_in_cert = write_temp("flat-in-cert", &format!("{flat}\n{}", certified.cert.pem()));
    let good_key = write_temp("flat-key-ok", &key_pem);

    for (cert, key) in [
        (&cert, &flat_key),
        (&cert, &flat_trimmed_key),
        (&flat_in_cert, &good_key),
    ] {
        let refused = server_config(&TlsSettings {
            cert: cert.clone(),
            key: key.clone(),
        })
        .expect_err("a flattened PEM file was taken")
        .to_string();
        assert!(refused.contains("one line"), "{refused}");
        // Neither the text nor the bytes (the parser printed them as numbers) of a key line.
        let body = key_pem.lines().nth(1).unwrap();
        let bytes = format!("{:?}", &body.as_bytes()[..8]);
        let bytes = bytes.trim_end_matches(']');
        assert!(
            !refused.contains(body) && !refused.contains(bytes),
            "{refused}"
        );
        assert!(!refused.contains("45, 45, 45, 45, 45"), "{refused}");
    }
    for path in [cert, flat_key, flat_trimmed_key, flat_in_cert, good_key] {
        std::fs::remove_file(path).unwrap();
    }
}
