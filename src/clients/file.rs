//! The clients file: its format, the checks of each entry, and the errors that name the file
//! and the client at fault.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use super::jwks::ClientKeys;
use super::{Client, Registry, redirect};
use crate::config::{absolute, readable_hint};
use crate::log_limit::EverySecond;
use crate::oauth::credentials::is_client_id;
use crate::oauth::request::MAX_REDIRECT_URI;
use crate::oauth::{AUTHORIZATION_CODE, is_scope_token};
use crate::redact;
use crate::secret_hash::{Argon2Limit, SecretHash};

/// Why the clients file was refused; the message names the file and the client.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("clients.file `{path}`: {source}{}", readable_hint(source))]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// Only toml's message and the line and column: toml's own Display prints the offending
    /// line, which may be a `secret = …` line.
    #[error("clients.file `{path}`: {problem}")]
    Parse { path: String, problem: String },
    #[error("clients.file `{path}`: client `{client}`: {problem}")]
    Invalid {
        path: String,
        client: String,
        problem: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientsFile {
    #[serde(default)]
    clients: Vec<ClientEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientEntry {
    id: String,
    /// Either this or `jwks_file`: how the client authenticates.
    #[serde(default)]
    secret: Option<String>,
    /// A JWK Set of the client's public keys, for `private_key_jwt` (RFC 7523 §2.2); relative
    /// to the clients file's directory.
    #[serde(default)]
    jwks_file: Option<PathBuf>,
    /// Secrets that still pass, while a new `secret` reaches every instance of the client.
    #[serde(default)]
    previous_secrets: Vec<String>,
    /// Needed only for the code grant: a resource server that only introspects has none.
    #[serde(default)]
    redirect_uris: Vec<String>,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default = "default_grant_types")]
    grant_types: Vec<String>,
    #[serde(default = "enabled_by_default")]
    enabled: bool,
    #[serde(default)]
    audience: Option<String>,
}

/// The most `previous_secrets` a client may have: a wrong secret is checked against each (an
/// Argon2 verification for each Argon2 one), and a rotation needs one, two when a second starts
/// before the first is done.
pub(super) const MAX_PREVIOUS_SECRETS: usize = 4;

fn enabled_by_default() -> bool {
    true
}

fn default_grant_types() -> Vec<String> {
    vec![AUTHORIZATION_CODE.to_owned()]
}

impl Registry {
    pub fn load(path: &Path, argon2: &Argon2Limit) -> Result<Self, RegistryError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| RegistryError::Read {
            path: absolute(path),
            source,
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        Self::from_toml(&text, argon2, dir).map_err(|e| match e {
            FileError::Parse(error) => RegistryError::Parse {
                path: shown,
                problem: redact::toml_error(&error, Some(&text)),
            },
            FileError::Invalid { client, problem } => RegistryError::Invalid {
                path: shown,
                client,
                problem,
            },
        })
    }

    /// `dir`: the clients file's directory, which relative `jwks_file` paths start from.
    pub(super) fn from_toml(
        text: &str,
        argon2: &Argon2Limit,
        dir: &Path,
    ) -> Result<Self, FileError> {
        let file: ClientsFile = toml::from_str(text).map_err(FileError::Parse)?;
        let mut clients = HashMap::with_capacity(file.clients.len());
        for entry in file.clients {
            let id = entry.id.clone();
            let client = Client::from_entry(entry, dir).map_err(|problem| FileError::Invalid {
                client: id.clone(),
                problem,
            })?;
            if clients.insert(id.clone(), Arc::new(client)).is_some() {
                return Err(FileError::Invalid {
                    client: id,
                    problem: "is registered twice".into(),
                });
            }
        }
        Ok(Self {
            clients,
            argon2: argon2.clone(),
        })
    }
}

/// Why a clients file was refused, before `Registry::load` names the file.
pub(super) enum FileError {
    Parse(toml::de::Error),
    Invalid { client: String, problem: String },
}

impl Client {
    fn from_entry(entry: ClientEntry, dir: &Path) -> Result<Self, String> {
        // Ids a request could not present (`oauth::credentials`) would only be dead entries.
        if !is_client_id(&entry.id) {
            return Err("id must be 1 to 256 characters of printable ASCII (%x20-7E)".into());
        }
        if entry.redirect_uris.is_empty() && super::grants_codes(&entry.grant_types) {
            return Err(
                "needs at least one redirect_uris entry for authorization_code (its grant_types, \
                 or their default); a client that only introspects or revokes has \
                 grant_types = [] and may have none"
                    .into(),
            );
        }
        if let Some(problem) = entry
            .redirect_uris
            .iter()
            .find_map(|u| redirect::refusal(u))
        {
            return Err(problem);
        }
        if let Some(uri) = (entry.redirect_uris.iter()).find(|u| u.len() > MAX_REDIRECT_URI) {
            return Err(format!(
                "redirect URI `{}…` is longer than {MAX_REDIRECT_URI} bytes, the most a token \
                 request may send",
                uri.chars().take(40).collect::<String>().escape_debug()
            ));
        }
        // Scopes go into tokens, introspection and the metadata as they are written here.
        if let Some(scope) = entry.scopes.iter().find(|s| !is_scope_token(s)) {
            return Err(format!(
                "scope `{}` must be RFC 6749 §3.3's scope-token: printable ASCII without space, \
                 `\"` or `\\`",
                scope.escape_debug()
            ));
        }
        let (secret, previous_secrets, keys) = match (&entry.secret, &entry.jwks_file) {
            (Some(secret), None) => {
                let secret = SecretHash::parse(secret)?;
                let previous = previous_secrets(&entry.previous_secrets, &secret)?;
                (Some(secret), previous, None)
            }
            (None, Some(file)) => {
                if !entry.previous_secrets.is_empty() {
                    return Err(
                        "has previous_secrets but no secret: a client with jwks_file \
                         authenticates with its keys only"
                            .into(),
                    );
                }
                (None, Vec::new(), Some(ClientKeys::load(&dir.join(file))?))
            }
            (Some(_), Some(_)) => {
                return Err(
                    "has both secret and jwks_file: give one, the way it authenticates \
                     (client_secret_basic/post, or private_key_jwt)"
                        .into(),
                );
            }
            (None, None) => {
                return Err(
                    "needs secret (client_secret_basic/post) or jwks_file (private_key_jwt)".into(),
                );
            }
        };
        Ok(Self {
            secret,
            previous_secrets,
            keys,
            plaintext_secret: (entry.secret.iter())
                .chain(&entry.previous_secrets)
                .any(|s| s.starts_with("plain:")),
            id: entry.id,
            redirect_uris: entry.redirect_uris,
            scopes: entry.scopes,
            grant_types: entry.grant_types,
            enabled: entry.enabled,
            audience: entry.audience.filter(|a| !a.is_empty()),
            auth_failures: EverySecond::new(),
            token_refusals: EverySecond::new(),
            foreign_replays: EverySecond::new(),
            revoking_replays: EverySecond::new(),
            previous_secret_uses: EverySecond::new(),
        })
    }
}

/// The `previous_secrets` of a client whose secret is `secret`, refused when there are more
/// than [`MAX_PREVIOUS_SECRETS`], or one is empty, unreadable, the secret itself or another
/// entry again (the same stored hash: `plain:x` and `sha256:` of `x` too). The message names
/// the entry by its place (1 for the first), never its value.
fn previous_secrets(stored: &[String], secret: &SecretHash) -> Result<Vec<SecretHash>, String> {
    if stored.len() > MAX_PREVIOUS_SECRETS {
        return Err(format!(
            "previous_secrets has {} entries, more than {MAX_PREVIOUS_SECRETS}: each wrong \
             secret is checked against every one; remove those that no instance of the client \
             uses any more",
            stored.len()
        ));
    }
    let mut parsed: Vec<SecretHash> = Vec::with_capacity(stored.len());
    for (n, text) in (1..).zip(stored) {
        if text.is_empty() {
            return Err(format!(
                "previous_secrets entry {n} is empty; give the old secret's stored form, as \
                 `secret`'s, or remove the entry"
            ));
        }
        let hash =
            SecretHash::parse(text).map_err(|e| format!("previous_secrets entry {n}: {e}"))?;
        if hash.same_stored(secret) {
            return Err(format!(
                "previous_secrets entry {n} is the client's secret itself; it should hold the \
                 secret being replaced"
            ));
        }
        if let Some(first) = parsed.iter().position(|p| p.same_stored(&hash)) {
            return Err(format!(
                "previous_secrets entry {n} repeats entry {}",
                first + 1
            ));
        }
        parsed.push(hash);
    }
    Ok(parsed)
}
