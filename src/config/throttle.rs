//! `[throttle]`: how many failed client authentications, and from where, before 429.

use serde::Deserialize;

use super::{ConfigError, list, whole};
use crate::throttle::Network;

/// Throttling of failed client authentication (see `throttle` for the exact semantics).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ThrottleSettings {
    pub enabled: bool,
    /// Failures in one window after which an address (for the client ids that failed from it,
    /// and unknown ones), or a client id's failures, get 429.
    #[serde(deserialize_with = "whole")]
    pub max_failures: u64,
    /// Length of the window, seconds; it starts at its first failure.
    #[serde(deserialize_with = "whole")]
    pub window_secs: u64,
    /// Peers whose `X-Forwarded-For` is believed: addresses, or networks that hold only proxies
    /// (`10.0.12.0/28`): a client inside a listed network could pick its counted address.
    #[serde(deserialize_with = "list")]
    pub trusted_proxies: Vec<String>,
    /// `trusted_proxies` parsed, filled in by `Settings::validate` (empty before it), which
    /// refuses an entry that is no address or network: what the throttle and the access log
    /// match peers against. Not read from the files.
    #[serde(skip)]
    pub proxies: Vec<Network>,
}

impl ThrottleSettings {
    /// Checks the settings; returns `trusted_proxies` parsed (for `proxies`).
    pub(super) fn validate(&self) -> Result<Vec<Network>, ConfigError> {
        if self.max_failures == 0 {
            return Err(ConfigError::invalid(
                "throttle.max_failures",
                "must be at least 1",
            ));
        }
        if !(1..=86_400).contains(&self.window_secs) {
            return Err(ConfigError::invalid(
                "throttle.window_secs",
                "must be between 1 and 86400 seconds",
            ));
        }
        (self.trusted_proxies.iter())
            .map(|proxy| {
                Network::parse(proxy).ok_or_else(|| {
                    ConfigError::invalid(
                        "throttle.trusted_proxies",
                        format!("`{proxy}` is not an IP address or network (address/length)"),
                    )
                })
            })
            .collect()
    }
}

impl Default for ThrottleSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            max_failures: 20,
            window_secs: 60,
            trusted_proxies: Vec::new(),
            proxies: Vec::new(),
        }
    }
}
