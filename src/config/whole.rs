//! Whole-number settings, read strictly. The config crate's own conversion reads `true`,
//! `"on"` and `"yes"` as 1, `false`, `"off"` and `"no"` as 0, and rounds a fraction: a
//! `max_failures = true` or `SSO__SERVER__WORKERS=yes` would start a server that means
//! something else than what was written (`workers = 0.4` is 0: one worker per core).

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, Visitor};

/// `#[serde(deserialize_with = "whole")]`: a whole number written as one (`30`, `1.5e3`), or
/// as its digits in a string (every environment variable); anything else is refused, naming
/// what was found (the config crate adds the setting).
pub fn whole<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64>,
{
    deserializer.deserialize_any(Whole(PhantomData))
}

struct Whole<T>(PhantomData<T>);

/// The message names a number or boolean found. It does not quote text: a secret set in the
/// wrong variable must not reach the log.
fn refuse<E: de::Error>(found: impl fmt::Display, why: &str) -> E {
    E::custom(format_args!("{found} is not a whole number{why}"))
}

fn fit<T: TryFrom<u64>, E: de::Error>(number: u64) -> Result<T, E> {
    T::try_from(number).map_err(|_| E::custom(format_args!("{number} is too large")))
}

impl<T: TryFrom<u64>> Visitor<'_> for Whole<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a whole number")
    }

    fn visit_u64<E: de::Error>(self, number: u64) -> Result<T, E> {
        fit(number)
    }

    fn visit_i64<E: de::Error>(self, number: i64) -> Result<T, E> {
        fit(u64::try_from(number).map_err(|_| refuse::<E>(number, " (it is negative)"))?)
    }

    /// `1.5e3` is 1500; `0.4` is refused, not rounded.
    fn visit_f64<E: de::Error>(self, number: f64) -> Result<T, E> {
        if number.fract() != 0.0 || !number.is_finite() {
            return Err(refuse(number, " (a fraction is not rounded)"));
        }
        if number < 0.0 {
            return Err(refuse(number, " (it is negative)"));
        }
        // `u64::MAX as f64` is 2^64, one past the largest u64.
        if number >= u64::MAX as f64 {
            return Err(E::custom(format_args!("{number} is too large")));
        }
        fit(number as u64)
    }

    /// Digits only: `"yes"` is not 1, and `" 3"` is a mistake worth seeing.
    fn visit_str<E: de::Error>(self, text: &str) -> Result<T, E> {
        let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
        match digits.then(|| text.parse::<u64>()) {
            Some(Ok(number)) => fit(number).map_err(|_: E| E::custom("the number is too large")),
            Some(Err(_)) => Err(E::custom("the number is too large")),
            None => Err(refuse("text", " (only digits are read)")),
        }
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<T, E> {
        Err(refuse(value, ""))
    }
}
