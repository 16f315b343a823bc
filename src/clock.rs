//! The wall clock as JWTs and code records count time: whole seconds since the Unix epoch.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch. A clock set before 1970 reads 0 rather than panicking on a
/// request path. No token then looks expired (`exp` is after 0), but Redis still ends each
/// token record at its TTL, and introspection and user info need the record. A code's
/// `issued_at`, where it has one, reads as far in the future, and its exchange is refused.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_now_is_the_system_clock_in_seconds() {
        let expected = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let now = unix_now();
        assert!(
            (expected..=expected + 1).contains(&now),
            "{now} vs {expected}"
        );
    }
}
