//! A string that must never reach a log: client secrets, codes, verifiers.

use std::fmt;

/// Holds a sensitive string; `Debug` prints `[redacted]`, and reading it takes an explicit call.
/// No `PartialEq`: a derived `==` stops at the first differing byte, so comparing a presented
/// secret with it would leak timing; compare `expose()`d values on purpose (constant-time with
/// `subtle` where an attacker chooses one side).
#[derive(Clone)]
pub struct Sensitive(String);

impl Sensitive {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Read from configuration (a Redis password) like a plain string.
impl<'de> serde::Deserialize<'de> for Sensitive {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self)
    }
}

impl fmt::Debug for Sensitive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_the_value() {
        let secret = Sensitive::new("hunter2");
        assert_eq!(format!("{secret:?}"), "[redacted]");
        assert_eq!(secret.expose(), "hunter2");
    }
}
