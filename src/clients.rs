//! The client registry, loaded from a TOML file, and client authentication against it.
//!
//! Secrets are stored hashed. Client secrets are high-entropy random strings, so a single
//! SHA-256 (`sha256:<hex>`) is enough and keeps authentication cheap; Argon2id PHC strings are
//! accepted for operators who want them, and a successful Argon2 verification is remembered (as
//! the SHA-256 of the secret) so that a busy client pays Argon2 once, not per request.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, RwLock};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use aws_lc_rs::digest::{SHA256, digest};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::oauth::{ClientCredentials, OAuthError};

type Digest = [u8; 32];

/// A registered client, as the exchange needs it.
#[derive(Debug)]
pub struct Client {
    pub id: String,
    /// Exact-match list (RFC 6749 §3.1.2.3 with no pattern matching).
    pub redirect_uris: Vec<String>,
    pub scopes: Vec<String>,
    /// Grant types the client may use; `authorization_code` unless the file says otherwise.
    pub grant_types: Vec<String>,
    pub enabled: bool,
    /// Overrides `token.audience` for this client's tokens.
    pub audience: Option<String>,
    secret: SecretHash,
}

#[derive(Debug)]
enum SecretHash {
    /// `sha256:<hex>`, or a `plain:` secret hashed at load time.
    Sha256(Digest),
    Argon2 {
        phc: String,
        /// SHA-256 of the last secret that passed Argon2.
        verified: RwLock<Option<Digest>>,
    },
}

/// Why the clients file was refused; the message names the file and the client.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("clients.file `{path}`: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("clients.file `{path}`: {source}")]
    Parse {
        path: String,
        source: toml::de::Error,
    },
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
    secret: String,
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

fn enabled_by_default() -> bool {
    true
}

fn default_grant_types() -> Vec<String> {
    vec!["authorization_code".to_owned()]
}

/// Every registered client by id.
#[derive(Debug, Default)]
pub struct Registry {
    clients: HashMap<String, Arc<Client>>,
}

impl Registry {
    pub fn load(path: &Path) -> Result<Self, RegistryError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| RegistryError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::from_toml(&text).map_err(|e| match e {
            LoadError::Parse(source) => RegistryError::Parse {
                path: shown,
                source,
            },
            LoadError::Invalid { client, problem } => RegistryError::Invalid {
                path: shown,
                client,
                problem,
            },
        })
    }

    fn from_toml(text: &str) -> Result<Self, LoadError> {
        let file: ClientsFile = toml::from_str(text).map_err(LoadError::Parse)?;
        let mut clients = HashMap::with_capacity(file.clients.len());
        for entry in file.clients {
            let id = entry.id.clone();
            let client = Client::from_entry(entry).map_err(|problem| LoadError::Invalid {
                client: id.clone(),
                problem,
            })?;
            if clients.insert(id.clone(), Arc::new(client)).is_some() {
                return Err(LoadError::Invalid {
                    client: id,
                    problem: "is registered twice".into(),
                });
            }
        }
        Ok(Self { clients })
    }

    pub fn len(&self) -> usize {
        self.clients.len()
    }

    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    /// Every scope some enabled client may be granted (for the metadata document).
    pub fn scopes(&self) -> BTreeSet<&str> {
        self.clients
            .values()
            .filter(|c| c.enabled)
            .flat_map(|c| c.scopes.iter().map(String::as_str))
            .collect()
    }

    pub fn get(&self, id: &str) -> Option<&Arc<Client>> {
        self.clients.get(id)
    }

    /// Checks the presented credentials. Unknown client, disabled client and wrong secret give
    /// the same error, and an unknown id still costs a hash comparison.
    pub async fn authenticate(
        &self,
        credentials: &ClientCredentials,
    ) -> Result<Arc<Client>, OAuthError> {
        let presented = credentials.secret.expose();
        let fail = OAuthError::authentication_failed;
        let Some(client) = self.clients.get(&credentials.id) else {
            let _ = sha256(presented).ct_eq(&[0; 32]);
            return Err(fail());
        };
        let secret_ok = client.secret.verify(presented).await?;
        if secret_ok && client.enabled {
            Ok(Arc::clone(client))
        } else {
            Err(fail())
        }
    }
}

enum LoadError {
    Parse(toml::de::Error),
    Invalid { client: String, problem: String },
}

impl Client {
    /// The `aud` of this client's tokens: its own override, else the configured default,
    /// else the client id (as the reference implementation does).
    pub fn audience_or<'a>(&'a self, default: &'a str) -> &'a str {
        self.audience
            .as_deref()
            .or(Some(default).filter(|a| !a.is_empty()))
            .unwrap_or(&self.id)
    }

    fn from_entry(entry: ClientEntry) -> Result<Self, String> {
        if entry.id.is_empty() || entry.id.len() > 256 {
            return Err("id must be 1 to 256 characters".into());
        }
        if entry.redirect_uris.is_empty() {
            return Err("needs at least one redirect_uris entry".into());
        }
        if let Some(uri) = entry
            .redirect_uris
            .iter()
            .find(|u| !u.contains(':') || u.contains('#'))
        {
            return Err(format!(
                "redirect URI `{uri}` must be absolute and without a fragment"
            ));
        }
        if entry
            .scopes
            .iter()
            .any(|s| s.is_empty() || s.contains(char::is_whitespace))
        {
            return Err("scopes must be non-empty and without white space".into());
        }
        Ok(Self {
            secret: SecretHash::parse(&entry.id, &entry.secret)?,
            id: entry.id,
            redirect_uris: entry.redirect_uris,
            scopes: entry.scopes,
            grant_types: entry.grant_types,
            enabled: entry.enabled,
            audience: entry.audience.filter(|a| !a.is_empty()),
        })
    }

    pub fn has_redirect_uri(&self, uri: &str) -> bool {
        self.redirect_uris.iter().any(|u| u == uri)
    }

    pub fn allows_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    pub fn allows_grant(&self, grant_type: &str) -> bool {
        self.grant_types.iter().any(|g| g == grant_type)
    }
}

impl SecretHash {
    fn parse(client: &str, stored: &str) -> Result<Self, String> {
        if let Some(hex) = stored.strip_prefix("sha256:") {
            return decode_hex(hex)
                .map(Self::Sha256)
                .ok_or_else(|| "sha256: secret must be 64 hex digits".into());
        }
        if let Some(plain) = stored.strip_prefix("plain:") {
            log::warn!(
                "client `{client}` has a plaintext secret; store a hash (sso-token hash-secret)"
            );
            return Ok(Self::Sha256(sha256(plain)));
        }
        if stored.starts_with("$argon2id$") {
            PasswordHash::new(stored).map_err(|e| format!("Argon2id PHC string: {e}"))?;
            return Ok(Self::Argon2 {
                phc: stored.to_owned(),
                verified: RwLock::new(None),
            });
        }
        Err("secret must be `sha256:<hex>`, an `$argon2id$` PHC string or `plain:<secret>`".into())
    }

    async fn verify(&self, presented: &str) -> Result<bool, OAuthError> {
        let presented_digest = sha256(presented);
        match self {
            Self::Sha256(expected) => Ok(presented_digest.ct_eq(expected).into()),
            Self::Argon2 { phc, verified } => {
                let cached = *verified.read().unwrap_or_else(|poison| poison.into_inner());
                if cached.is_some_and(|c| bool::from(c.ct_eq(&presented_digest))) {
                    return Ok(true);
                }
                // Argon2 takes tens of milliseconds: keep it off the async workers.
                let (phc, secret) = (phc.clone(), presented.to_owned());
                let ok = tokio::task::spawn_blocking(move || {
                    PasswordHash::new(&phc).is_ok_and(|hash| {
                        Argon2::default()
                            .verify_password(secret.as_bytes(), &hash)
                            .is_ok()
                    })
                })
                .await
                .map_err(|e| OAuthError::Internal(Box::new(e)))?;
                if ok {
                    *verified
                        .write()
                        .unwrap_or_else(|poison| poison.into_inner()) = Some(presented_digest);
                }
                Ok(ok)
            }
        }
    }
}

fn sha256(text: &str) -> Digest {
    let mut out = [0; 32];
    out.copy_from_slice(digest(&SHA256, text.as_bytes()).as_ref());
    out
}

fn decode_hex(hex: &str) -> Option<Digest> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0; 32];
    for (byte, pair) in out.iter_mut().zip(hex.as_bytes().chunks(2)) {
        *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(out)
}

/// `sha256:<hex>`: the default stored form of a client secret.
pub fn hash_secret_sha256(secret: &str) -> String {
    let hex: String = sha256(secret).iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// An Argon2id PHC string with a random salt.
pub fn hash_secret_argon2(secret: &str) -> Result<String, argon2::password_hash::Error> {
    let mut salt = [0u8; 16];
    aws_lc_rs::rand::fill(&mut salt).map_err(|_| argon2::password_hash::Error::Crypto)?;
    let salt = SaltString::encode_b64(&salt)?;
    Ok(Argon2::default()
        .hash_password(secret.as_bytes(), &salt)?
        .to_string())
}

#[cfg(test)]
#[path = "clients_tests.rs"]
mod tests;
