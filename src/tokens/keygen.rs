//! `sso-token keygen`: a new signing key, written to a file that no one else could have held
//! open or pointed elsewhere. Apart from the keys' parsing (`keys`), which runs at every start.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair,
};

use super::keys::{KeyError, SigningKey, lf_pem};

/// What `keygen` can create.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KeyKind {
    Rsa2048,
    Rsa3072,
    Rsa4096,
    P256,
    Ed25519,
}

/// Why no key file was written.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(
        "{}: a file is already there; keygen never overwrites one unless given --force",
        .0.display()
    )]
    Exists(PathBuf),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no randomness available")]
    Random,
}

impl SigningKey {
    /// Creates a new key and returns it as a PKCS#8 PEM document.
    pub fn generate_pem(kind: KeyKind) -> Result<String, KeyError> {
        let der = match kind {
            KeyKind::Rsa2048 | KeyKind::Rsa3072 | KeyKind::Rsa4096 => {
                let size = match kind {
                    KeyKind::Rsa2048 => KeySize::Rsa2048,
                    KeyKind::Rsa3072 => KeySize::Rsa3072,
                    _ => KeySize::Rsa4096,
                };
                let pair = RsaKeyPair::generate(size).map_err(|_| KeyError::Generate)?;
                pair.as_der()
                    .map_err(|_| KeyError::Generate)?
                    .as_ref()
                    .to_vec()
            }
            KeyKind::P256 => EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                .and_then(|p| p.to_pkcs8v1())
                .map_err(|_| KeyError::Generate)?
                .as_ref()
                .to_vec(),
            KeyKind::Ed25519 => Ed25519KeyPair::generate()
                .and_then(|p| p.to_pkcs8v1())
                .map_err(|_| KeyError::Generate)?
                .as_ref()
                .to_vec(),
        };
        Ok(lf_pem(&pem::Pem::new("PRIVATE KEY", der)))
    }
}

/// Writes a new key of `kind` to `out` and returns its kid. The key is always written to a file
/// this creates, mode 0600 from the start. With `force` that file is then renamed over `out`:
/// writing into the existing file would hand the new key to whoever holds it open (permissions
/// are checked only when a file is opened), to its owner if that is someone else, and through
/// a symlink to whatever it points at. Missing directories on the way are created, mode 0700:
/// `keys/` is not in a checkout.
pub fn write_key_file(out: &Path, kind: KeyKind, force: bool) -> Result<String, KeyFileError> {
    let pem = SigningKey::generate_pem(kind)?;
    let key = SigningKey::from_pem(&pem)?;
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| KeyFileError::Io { path, source }
    };
    if let Some(dir) = out.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        (std::fs::DirBuilder::new().recursive(true).mode(0o700))
            .create(dir)
            .map_err(io(dir))?;
    }
    if force {
        let name = out
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        // Random: a file left by a run killed before its rename (in a container the pid is
        // always the same) must not stand in the way.
        let tag = crate::issue_code::new_code().map_err(|_| KeyFileError::Random)?;
        let fresh = out.with_file_name(format!(".{name}.{}.new", &tag[tag.len() - 12..]));
        write_new_file(&fresh, &pem).map_err(io(&fresh))?;
        if let Err(e) = std::fs::rename(&fresh, out) {
            let _ = std::fs::remove_file(&fresh);
            return Err(io(out)(e));
        }
    } else {
        write_new_file(out, &pem).map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => KeyFileError::Exists(out.to_owned()),
            _ => io(out)(e),
        })?;
    }
    Ok(key.kid().to_owned())
}

/// Creates `path` (never opens an existing file or follows a symlink there), mode 0600, and
/// removes it again if the key cannot be written whole.
fn write_new_file(path: &Path, pem: &str) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    let written = file
        .write_all(pem.as_bytes())
        .and_then(|()| file.sync_all());
    if written.is_err() {
        let _ = std::fs::remove_file(path);
    }
    written
}
