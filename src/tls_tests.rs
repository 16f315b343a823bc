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
