//! `ConfigError`: why the settings could not be loaded, with `config`'s messages made safe to show.

use crate::redact;

/// Why the settings could not be loaded; the message always names the setting.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The files or the environment did not read into settings. Kept as text made by
    /// [`describe`], not as the `config` error: that one quotes values (a password) and, for a
    /// TOML syntax error, the whole offending line of the file.
    #[error("configuration: {0}")]
    Load(String),
    #[error("configuration: `{setting}` {problem}")]
    Invalid {
        setting: &'static str,
        problem: String,
    },
}

impl ConfigError {
    /// `setting` holds a value the service cannot use; `problem` says why, and never quotes a
    /// secret.
    pub(crate) fn invalid(setting: &'static str, problem: impl Into<String>) -> Self {
        Self::Invalid {
            setting,
            problem: problem.into(),
        }
    }
}

impl From<config::ConfigError> for ConfigError {
    fn from(error: config::ConfigError) -> Self {
        Self::Load(describe(&error))
    }
}

/// `config`'s message without the values it quotes, and a TOML syntax error as its line and
/// column and toml's message, never the line itself.
fn describe(error: &config::ConfigError) -> String {
    use config::ConfigError as E;

    let located = |message: String, key: &Option<String>, origin: &Option<String>| {
        let key = key.as_ref().map(|k| format!(" for key `{k}`"));
        let origin = origin.as_ref().map(|o| format!(" in {o}"));
        format!(
            "{message}{}{}",
            key.unwrap_or_default(),
            origin.unwrap_or_default()
        )
    };
    match error {
        E::FileParse { uri, cause } => {
            let problem = match cause.downcast_ref::<toml::de::Error>() {
                Some(toml) => {
                    // Only for the position; the text itself is never shown.
                    let text = uri.as_ref().and_then(|u| std::fs::read_to_string(u).ok());
                    redact::toml_error(toml, text.as_deref())
                }
                None => redact::serde_message(&cause.to_string()),
            };
            format!(
                "{}: {problem}",
                uri.as_deref().unwrap_or("a configuration file")
            )
        }
        E::Type {
            origin,
            unexpected,
            expected,
            key,
        } => {
            let message =
                redact::serde_message(&format!("invalid type: {unexpected}, expected {expected}"));
            located(message, key, origin)
        }
        E::At { error, origin, key } => match (origin, unknown_field(error), error.as_ref()) {
            (None, Some(field), E::Message(message)) => format!(
                "{}{}",
                located(config_message(message), key, origin),
                spelt_as(key.as_deref(), field)
            ),
            _ => located(describe(error), key, origin),
        },
        // The path of one of our own fields, no value: shown in full (the generic arm below
        // would take it for a quoted value).
        E::NotFound(key) => format!("missing configuration field `{key}`"),
        E::Message(message) => match unknown_field(error) {
            // A section of its own: the top level's unknown field.
            Some(field) => format!("{}{}", config_message(message), spelt_as(None, field)),
            None => config_message(message),
        },
        other => {
            let message = other.to_string();
            // A missing config file: its path is no secret, and the one clue to a mistyped
            // SSO_ENV or a wrong working directory.
            if message.starts_with("configuration file \"") && message.ends_with("\" not found") {
                let here = std::env::current_dir().map(|d| d.display().to_string());
                format!(
                    "{message} (relative to the working directory, {})",
                    here.unwrap_or_else(|_| "unknown".into())
                )
            } else {
                redact::serde_message(&message)
            }
        }
    }
}

/// The name in serde's "unknown field `name`, expected …", our own field names' alphabet only.
fn unknown_field(error: &config::ConfigError) -> Option<&str> {
    let config::ConfigError::Message(message) = error else {
        return None;
    };
    let name = message.strip_prefix("unknown field `")?.split('`').next()?;
    redact::is_field_name(name).then_some(name)
}

/// Where an unknown key may have come from, which serde does not say: a file's table and key,
/// or the environment variable that would set it.
fn spelt_as(table: Option<&str>, field: &str) -> String {
    let variable = |path: &str| path.replace('.', "__").to_ascii_uppercase();
    match table {
        Some(table) => format!(
            " (`{field}` under `[{table}]` in a file, or SSO__{}__{})",
            variable(table),
            variable(field)
        ),
        None => format!(
            " (`[{field}]` in a file, or an SSO__{}__… variable)",
            variable(field)
        ),
    }
}

/// What each enum of the settings accepts, for the message about a value it does not: the
/// value itself is dropped from `config`'s message, so this is the one clue to the typo.
const ENUM_VALUES: [(&str, &str); 1] =
    [("enum RedisMode", "`standalone`, `sentinel` or `cluster`")];

/// `config`'s own messages that quote a value, without it; serde's otherwise.
fn config_message(message: &str) -> String {
    if let Some((enum_name, _)) = message.split_once(" does not have variant constructor ") {
        // The values, not the type's name, which is the code's and tells an operator nothing.
        return match ENUM_VALUES.iter().find(|(name, _)| *name == enum_name) {
            Some((_, values)) => format!("not a value it takes (use {values})"),
            None => format!("{enum_name} has no such variant"),
        };
    }
    if let Some((variable, _)) = message.split_once(" contains non-Unicode data") {
        return format!("{variable} contains non-Unicode data");
    }
    redact::serde_message(message)
}
