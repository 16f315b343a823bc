//! At most one log line a second for a message that can come with every request: while Redis
//! is down, a line per 503 would write thousands of lines a second (each a write under the
//! logger's lock, on the workers that answer) and bury everything else. The lines held back
//! are counted, and the next line says how many; the metrics count every request anyway.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug)]
pub struct EverySecond {
    /// The second (of whatever clock the caller reads) of the last line let through.
    last: AtomicU64,
    held_back: AtomicU64,
}

impl EverySecond {
    pub const fn new() -> Self {
        Self {
            last: AtomicU64::new(u64::MAX),
            held_back: AtomicU64::new(0),
        }
    }

    /// Whether a line may be logged in second `now`: `Some(n)` with the number of lines held
    /// back since the last one, or `None` (and this one is counted).
    pub fn admit(&self, now: u64) -> Option<u64> {
        let last = self.last.load(Ordering::Relaxed);
        if last != now
            && self
                .last
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.held_back.swap(0, Ordering::Relaxed));
        }
        self.held_back.fetch_add(1, Ordering::Relaxed);
        None
    }
}

/// How a line that was let through mentions the lines held back before it: nothing for none.
pub struct HeldBack(pub u64);

impl std::fmt::Display for HeldBack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            0 => Ok(()),
            more => write!(f, " (and {more} more since the last line)"),
        }
    }
}

/// A `log` line at `level` at most once a second at this call site (each site has its own
/// limit); the next line says how many were held back.
#[macro_export]
macro_rules! every_second {
    ($level:expr, $($arg:tt)+) => {{
        static LIMIT: $crate::log_limit::EverySecond = $crate::log_limit::EverySecond::new();
        if let Some(more) = LIMIT.admit($crate::clock::unix_now()) {
            log::log!($level, "{}{}", format_args!($($arg)+), $crate::log_limit::HeldBack(more));
        }
    }};
}

/// `log::warn!` at most once a second at this call site ([`every_second!`]).
#[macro_export]
macro_rules! warn_every_second {
    ($($arg:tt)+) => {
        $crate::every_second!(log::Level::Warn, $($arg)+)
    };
}

/// `log::info!` at most once a second at this call site ([`every_second!`]).
#[macro_export]
macro_rules! info_every_second {
    ($($arg:tt)+) => {
        $crate::every_second!(log::Level::Info, $($arg)+)
    };
}

impl Default for EverySecond {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_a_second_and_the_next_one_counts_those_held_back() {
        let limit = EverySecond::new();
        assert_eq!(limit.admit(100), Some(0));
        assert_eq!(limit.admit(100), None);
        assert_eq!(limit.admit(100), None);
        assert_eq!(limit.admit(101), Some(2));
        assert_eq!(limit.admit(101), None);
        // A clock that steps back is a new second too.
        assert_eq!(limit.admit(99), Some(1));
        assert_eq!(HeldBack(0).to_string(), "");
        assert_eq!(HeldBack(2).to_string(), " (and 2 more since the last line)");
    }

    #[test]
    fn of_many_threads_in_one_second_one_gets_through_and_every_other_is_counted_once() {
        let limit = EverySecond::new();
        let admitted: Vec<u64> = std::thread::scope(|scope| {
            let threads: Vec<_> = (0..8)
                .map(|_| {
                    scope.spawn(|| (0..1000).filter_map(|_| limit.admit(7)).collect::<Vec<_>>())
                })
                .collect();
            threads
                .into_iter()
                .flat_map(|t| t.join().unwrap())
                .collect()
        });
        assert_eq!(admitted.len(), 1, "{admitted:?}");
        // Lines held back while the first one was let through may be counted on it or on the
        // next one: never lost, never twice.
        let next = limit.admit(8).unwrap();
        assert_eq!(admitted[0] + next, 7999);
    }
}
