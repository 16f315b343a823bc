//! The 429 answer: the series it counts in, and how long it asks the client to wait.

use std::time::Instant;

use super::Throttle;
use crate::metrics::ThrottledBy;
use crate::oauth::OAuthError;

impl Throttle {
    pub(super) fn throttled(&self, by: ThrottledBy, until: Instant, now: Instant) -> OAuthError {
        self.metrics.throttled(by);
        OAuthError::Throttled {
            retry_after_secs: secs_left(until, now),
        }
    }
}

/// Whole seconds from `now` to `until`, rounded up.
pub(super) fn secs_left(until: Instant, now: Instant) -> u64 {
    let left = until.saturating_duration_since(now);
    left.as_secs() + u64::from(left.subsec_nanos() > 0)
}
