//! `[clients]`: where the registry is, and how many secrets may be verified with Argon2 at once.

use std::path::PathBuf;

use serde::Deserialize;

use super::{ConfigError, whole};

/// `[clients]`: the registry's file (read again by each reload) and the Argon2 slots.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientsSettings {
    /// TOML file with the client registry.
    pub file: PathBuf,
    /// Argon2 verifications that may run at once; 0: one per two CPUs (at least one).
    #[serde(deserialize_with = "whole")]
    pub argon2_slots: usize,
}

/// The most Argon2 slots `clients.argon2_slots` may ask for: each verification may take up to
/// 256 MiB (the most a stored hash may ask for), so more would risk the process's memory.
const MAX_ARGON2_SLOTS: usize = 64;

impl ClientsSettings {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.argon2_slots > MAX_ARGON2_SLOTS {
            return Err(ConfigError::invalid(
                "clients.argon2_slots",
                format!("must be at most {MAX_ARGON2_SLOTS} (0: half the CPUs)"),
            ));
        }
        Ok(())
    }
}

impl Default for ClientsSettings {
    fn default() -> Self {
        Self {
            file: "config/clients.toml".into(),
            argon2_slots: 0,
        }
    }
}
