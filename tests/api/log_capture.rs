//! What reaches the log, for the tests that check it: a logger for the whole test process that
//! keeps the last lines in memory. The first test that asks installs it. Install it before the
//! app is built: the server wires its access log in only when that target is enabled then.
//!
//! Tests run in parallel and share the logger, so a test looks for lines that only it can have
//! caused (a unique value, a client only it uses), never at "the last line".

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use log::{LevelFilter, Log, Metadata, Record};

/// Lines kept; older ones are dropped (the suite logs far fewer while one test looks).
const KEPT: usize = 50_000;

struct Capture {
    /// How many lines were ever logged, and the last [`KEPT`] of them.
    lines: Mutex<(usize, VecDeque<String>)>,
}

static CAPTURE: Capture = Capture {
    lines: Mutex::new((0, VecDeque::new())),
};

impl Log for Capture {
    /// Every level of our own crate (its debug lines carry Redis errors, which must not carry
    /// secrets either), info and above of the others.
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Info || metadata.target().starts_with("sso_token")
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = format!("{} {}: {}", record.level(), record.target(), record.args());
        let mut lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
        lines.0 += 1;
        if lines.1.len() == KEPT {
            lines.1.pop_front();
        }
        lines.1.push_back(line);
    }

    fn flush(&self) {}
}

/// A point in the log: what was logged after it can be read back.
pub struct Mark(usize);

/// Installs the capturing logger (once per process) and marks the present.
pub fn mark() -> Mark {
    // Fails only if a logger is set already, which only this module does.
    let _ = log::set_logger(&CAPTURE);
    log::set_max_level(LevelFilter::Trace);
    Mark(
        CAPTURE
            .lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .0,
    )
}

impl Mark {
    /// Every line logged since the mark, by any thread.
    pub fn lines(&self) -> Vec<String> {
        let lines = CAPTURE.lines.lock().unwrap_or_else(PoisonError::into_inner);
        let (total, kept) = (&lines.0, &lines.1);
        let first_kept = total - kept.len();
        assert!(
            self.0 >= first_kept,
            "log lines since the mark were dropped: raise KEPT"
        );
        kept.iter().skip(self.0 - first_kept).cloned().collect()
    }

    /// The lines since the mark, once `done` says they are complete; panics after 5 s.
    pub async fn lines_when(&self, done: impl Fn(&[String]) -> bool) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let lines = self.lines();
            if done(&lines) {
                return lines;
            }
            assert!(
                Instant::now() < deadline,
                "the expected log lines did not come within 5 s; {} lines, the last ones:\n{}",
                lines.len(),
                lines[lines.len().saturating_sub(20)..].join("\n")
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
