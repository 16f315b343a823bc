//! The `SSO__<SECTION>__<KEY>` variables: which are read, how their values are cleaned, and
//! the misspelt ones refused rather than silently skipped.

use std::collections::HashMap;
use std::ffi::OsString;

use super::{ConfigError, RELOADED_SECTIONS, RESTART_ONLY_IN_RELOADED};

/// Every setting by section, for the variables written with single underscores that
/// [`misspelt_prefix`] refuses (a test checks the list against the settings' own fields).
pub(super) const SETTINGS: [(&str, &[&str]); 7] = [
    (
        "server",
        &[
            "listen",
            "workers",
            "body_limit",
            "body_timeout_ms",
            "keep_alive_secs",
            "max_connections",
            "exchange_slots",
            "slot_wait_ms",
            "shutdown_timeout_secs",
            "shutdown_delay_ms",
            "tls",
        ],
    ),
    (
        "redis",
        &[
            "mode",
            "url",
            "sentinels",
            "master_name",
            "node_username",
            "node_password",
            "node_tls",
            "nodes",
            "pool_size",
            "timeout_ms",
            "key_prefix",
            "replica_acks",
            "replica_ack_timeout_ms",
            "tcp_keepalive_secs",
        ],
    ),
    (
        "token",
        &[
            "issuer",
            "audience",
            "typ",
            "expires_in",
            "scope_separator",
            "record_scope_separator",
            "base_scopes",
            "signing_key",
            "verify_keys",
            "leeway_secs",
            "code_max_age_secs",
            "assertion_audience",
        ],
    ),
    ("clients", &["file", "argon2_slots"]),
    (
        "throttle",
        &["enabled", "max_failures", "window_secs", "trusted_proxies"],
    ),
    ("metrics", &["enabled", "listen"]),
    (
        "discovery",
        &["base_url", "authorization_endpoint", "max_age_secs"],
    ),
];

/// A variable meant as a setting whose prefix is misspelt (`SSO_SERVER__TLS__CERT`), or
/// written with single underscores throughout (`SSO_REDIS_URL`): the environment source skips
/// it unread, so `deny_unknown_fields` never sees it, and a server would start without the TLS
/// or the Redis it was given. Any case, as the source reads the names. Other `SSO_` names are
/// left alone: `SSO_ENV`, another program's, and those Kubernetes and Docker derive from a
/// service named `sso-redis` or `sso-token` (`SSO_REDIS_SERVICE_HOST`, `SSO_TOKEN_PORT`):
/// single underscores count only before one of the section's own settings.
pub(super) fn misspelt_prefix(mut names: impl Iterator<Item = String>) -> Option<String> {
    names.find(|name| {
        let lower = name.to_ascii_lowercase();
        let Some(rest) = lower
            .strip_prefix("sso")
            .filter(|_| !lower.starts_with("sso__"))
        else {
            return false;
        };
        // `_<section>_<key>`, the key perhaps followed by more (`_tls_cert`).
        let a_setting = |(section, keys): &(&str, &[&str])| {
            let key = rest.strip_prefix('_').and_then(|r| r.strip_prefix(section));
            key.and_then(|r| r.strip_prefix('_')).is_some_and(|key| {
                keys.iter().any(|k| {
                    key.strip_prefix(k)
                        .is_some_and(|after| after.is_empty() || after.starts_with('_'))
                })
            })
        };
        rest.contains("__") || SETTINGS.iter().any(a_setting)
    })
}

/// The setting an `SSO__` variable sets, as the config source reads its name: in lower case,
/// each `__` a dot, and a `.` in the name (Kubernetes allows one) a dot too: `redis.url`.
fn setting_of(name: &str) -> Option<String> {
    Some(
        name.to_ascii_lowercase()
            .strip_prefix("sso__")?
            .replace("__", "."),
    )
}

/// The settings a reload applies among the variables `names`, as `(variable, setting)`.
pub(super) fn reloadable_in(names: impl Iterator<Item = String>) -> Vec<(String, String)> {
    names
        .filter_map(|name| {
            let setting = setting_of(&name)?;
            let (section, _) = setting.split_once('.')?;
            (RELOADED_SECTIONS.contains(&section) && setting != RESTART_ONLY_IN_RELOADED)
                .then(|| (name.clone(), setting))
        })
        .collect()
}

/// The `SSO__` variables of `vars` (the process's), each without the line break its value may
/// end with, and the names of those it was cut from. A value written with `echo`, not
/// `echo -n`, into a Kubernetes secret or an env file ends with one, which no setting means: a
/// Redis URL read with it was shown as `redis://***` (a control character), a path with it
/// split its error message over lines. A value that is only line breaks is kept (a separator).
/// A value that is not UTF-8 is refused, naming the variable, as the config crate refuses it.
/// So are two variables that differ only in case (`SSO__REDIS__URL`, `sso__redis__url`) with
/// different values: the source reads names in any case, and which one won would be chance.
pub(super) fn sso_variables(
    vars: impl Iterator<Item = (OsString, OsString)>,
) -> Result<(config::Map<String, String>, Vec<String>), ConfigError> {
    let (mut variables, mut cut) = (config::Map::new(), Vec::new());
    // Each setting set so far, and the variable that set it.
    let mut setters: HashMap<String, String> = HashMap::new();
    for (name, value) in vars {
        let Ok(name) = name.into_string() else {
            continue;
        };
        if !name.to_ascii_lowercase().starts_with("sso__") {
            continue;
        }
        let value = value.into_string().map_err(|_| {
            ConfigError::Load(format!("environment variable `{name}` is not UTF-8"))
        })?;
        // A value that is only a line break is meant (`token.record_scope_separator`).
        let kept = match value.trim_end_matches(['\r', '\n']) {
            "" => value.as_str(),
            kept => kept,
        };
        if kept.len() != value.len() {
            cut.push(name.clone());
        }
        let setting = setting_of(&name).unwrap_or_default();
        let twin = (setters.get(&setting))
            .filter(|twin| variables.get(*twin).map(String::as_str) != Some(kept));
        if let Some(twin) = twin {
            let (first, second) = (twin.min(&name), twin.max(&name));
            return Err(ConfigError::Load(format!(
                "environment variables `{first}` and `{second}` set the same setting with \
                 different values: unset one"
            )));
        }
        setters.insert(setting, name.clone());
        variables.insert(name, kept.to_owned());
    }
    cut.sort_unstable();
    Ok((variables, cut))
}

/// `SSO__<SECTION>__<KEY>` variables; lists comma-separated. Values stay strings until the
/// setting's type reads them (no `try_parsing`): a password `0123` must not become the number 123.
pub(super) fn environment() -> config::Environment {
    config::Environment::with_prefix("SSO")
        .prefix_separator("__")
        .separator("__")
}
