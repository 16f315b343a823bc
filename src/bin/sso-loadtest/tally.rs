//! What the workers saw: latencies, outcomes by kind, violations, the `jti`s and codes that
//! were accepted; and the checks that need all of it (no `jti` or code twice).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

use hdrhistogram::Histogram;
use sso_token::clock::unix_now;

use crate::drive::Work;
use crate::http::Response;
use crate::verify::{self, Checker};

/// Latencies are recorded in microseconds with 3 significant digits; the histograms are sized
/// for a minute and grow past it (a late open-loop request is never cut down to a minute).
const SIZED_FOR_US: u64 = 60_000_000;
/// Distinct violation messages kept (with their counts); past that they are only counted.
const KEPT_VIOLATIONS: usize = 20;

/// What the workers saw, merged.
pub struct Tally {
    pub latency: Histogram<u64>,
    /// Open loop: how late each request left against its due time (the generator's own lag,
    /// and any wait for a free connection; already inside `latency`).
    pub lag: Histogram<u64>,
    pub sent: u64,
    pub successes: u64,
    /// `400 invalid_grant` to one request of a deliberate replay pair.
    pub expected_rejections: u64,
    pub errors: BTreeMap<String, u64>,
    /// Violation message → how often it happened.
    pub violations: BTreeMap<String, u64>,
    pub violation_count: u64,
    pub jtis: Vec<String>,
    pub tokens: Vec<String>,
    /// Code index of every accepted exchange.
    pub accepted_codes: Vec<u32>,
    /// Code index of every expected rejection.
    pub rejected_codes: Vec<u32>,
    /// Due time and latency (µs) of every answered request, when asked for ([`Self::traced`]).
    pub trace: Option<Vec<(Instant, u64)>>,
}

/// One answered request, as [`Tally::record_response`] checks it.
pub struct Answer<'a, 'r> {
    pub response: &'a Response<'r>,
    /// Latency counts from here: the due time in open loop, not the (later) sending.
    pub due: Instant,
    /// The code it presented (0 for `/healthz`).
    pub code_index: usize,
    /// One of a deliberate replay pair, or a recheck: `400 invalid_grant` is expected.
    pub paired: bool,
    /// Unix second it was sent: the token's `iat` is checked against it.
    pub sent: u64,
}

impl Tally {
    pub fn new() -> Self {
        Self {
            latency: histogram(),
            lag: histogram(),
            sent: 0,
            successes: 0,
            expected_rejections: 0,
            errors: BTreeMap::new(),
            violations: BTreeMap::new(),
            violation_count: 0,
            jtis: Vec::new(),
            tokens: Vec::new(),
            accepted_codes: Vec::new(),
            rejected_codes: Vec::new(),
            trace: None,
        }
    }

    /// Also keeps each answered request's due time and latency in [`Self::trace`].
    pub fn traced(mut self, on: bool) -> Self {
        self.trace = on.then(Vec::new);
        self
    }

    pub fn error(&mut self, kind: String) {
        *self.errors.entry(kind).or_default() += 1;
    }

    pub fn violation(&mut self, message: String) {
        self.violations_of(message, 1);
    }

    fn violations_of(&mut self, message: String, count: u64) {
        self.violation_count += count;
        if self.violations.len() < KEPT_VIOLATIONS || self.violations.contains_key(&message) {
            *self.violations.entry(message).or_default() += count;
        }
    }

    /// `count` violations of the whole run ([`uniqueness`], signatures), under a fixed name:
    /// always kept, past the limit of kinds too, since the scripts read these by name.
    pub fn run_violations(&mut self, message: &str, count: u64) {
        if count > 0 {
            self.violation_count += count;
            *self.violations.entry(message.to_owned()).or_default() += count;
        }
    }

    pub fn record_response(
        &mut self,
        work: &Work,
        checker: Option<&mut Checker<'_>>,
        answer: &Answer<'_, '_>,
    ) {
        let Answer {
            response,
            due,
            code_index,
            paired,
            sent,
        } = *answer;
        let latency_us = (due.elapsed().as_micros() as u64).max(1);
        if let Some(trace) = &mut self.trace {
            trace.push((due, latency_us));
        }
        if response.status != 200 {
            let kind = verify::error_kind(response);
            if paired && kind == "400 invalid_grant" {
                self.expected_rejections += 1;
                self.rejected_codes.push(code_index as u32);
            } else {
                self.error(kind);
            }
            return;
        }
        let verdict = match (work, checker) {
            (
                Work::Token {
                    keep_tokens, codes, ..
                },
                Some(checker),
            ) => checker
                .token(
                    response,
                    code_index,
                    codes.get(code_index).map_or("", String::as_str),
                    sent,
                    unix_now(),
                )
                .map(|accepted| {
                    self.jtis.push(accepted.jti);
                    if *keep_tokens {
                        self.tokens.push(accepted.token);
                    }
                    self.accepted_codes.push(code_index as u32);
                }),
            _ => verify::healthz(response),
        };
        match verdict {
            Ok(()) => {
                self.successes += 1;
                // It grows to any u64 (`histogram`): nothing to fail.
                let _ = self.latency.record(latency_us);
            }
            Err(message) => self.violation(message),
        }
    }

    /// Folds the `--recheck` pass into the run: its tokens and codes join the uniqueness
    /// checks, its errors and violations are named as the recheck's; its latencies stay out.
    pub fn absorb_recheck(&mut self, recheck: Tally) {
        for (kind, count) in recheck.errors {
            *self.errors.entry(format!("recheck {kind}")).or_default() += count;
        }
        let kept: u64 = recheck.violations.values().sum();
        for (message, count) in recheck.violations {
            self.violations_of(format!("recheck: {message}"), count);
        }
        self.violation_count += recheck.violation_count.saturating_sub(kept);
        self.jtis.extend(recheck.jtis);
        self.tokens.extend(recheck.tokens);
        self.accepted_codes.extend(recheck.accepted_codes);
    }

    /// Folds a warm-up's failures into the measured run's, and its tokens and `jti`s into the
    /// checks over all of them (its latencies and counts stay out; its codes were its own).
    pub fn absorb_warm_up(&mut self, warm: Tally) {
        self.jtis.extend(warm.jtis);
        self.tokens.extend(warm.tokens);
        for (kind, count) in warm.errors {
            *self.errors.entry(format!("warm-up {kind}")).or_default() += count;
        }
        let kept: u64 = warm.violations.values().sum();
        for (message, count) in warm.violations {
            self.violations_of(format!("warm-up: {message}"), count);
        }
        self.violation_count += warm.violation_count.saturating_sub(kept);
    }

    pub fn merge(&mut self, other: Tally) {
        // Both grow as needed: adding cannot fail.
        let _ = self.latency.add(&other.latency);
        let _ = self.lag.add(&other.lag);
        self.sent += other.sent;
        self.successes += other.successes;
        self.expected_rejections += other.expected_rejections;
        for (kind, count) in other.errors {
            *self.errors.entry(kind).or_default() += count;
        }
        let kept: u64 = other.violations.values().sum();
        for (message, count) in other.violations {
            self.violations_of(message, count);
        }
        self.violation_count += other.violation_count.saturating_sub(kept);
        self.jtis.extend(other.jtis);
        self.tokens.extend(other.tokens);
        self.accepted_codes.extend(other.accepted_codes);
        self.rejected_codes.extend(other.rejected_codes);
        if let (Some(trace), Some(other)) = (&mut self.trace, other.trace) {
            trace.extend(other);
        }
    }
}

/// An empty latency histogram that grows to take any value.
pub fn histogram() -> Histogram<u64> {
    let mut histogram = Histogram::new_with_bounds(1, SIZED_FOR_US, 3)
        .expect("constant histogram bounds are valid");
    histogram.auto(true);
    histogram
}

/// Cross-checks over the whole run: every `jti` once, every code accepted at most once, and
/// of each deliberate replay pair exactly one accepted.
pub fn uniqueness(tally: &mut Tally, replay_every: u64) {
    let mut seen = HashSet::with_capacity(tally.jtis.len());
    let duplicate_jtis = tally.jtis.iter().filter(|j| !seen.insert(*j)).count();
    tally.run_violations("jti value(s) issued more than once", duplicate_jtis as u64);
    let mut accepted: HashMap<u32, u32> = HashMap::with_capacity(tally.accepted_codes.len());
    for code in &tally.accepted_codes {
        *accepted.entry(*code).or_default() += 1;
    }
    let twice = accepted.values().filter(|n| **n > 1).count();
    tally.run_violations("code(s) exchanged for a token more than once", twice as u64);
    if replay_every >= 2 {
        let mut rejected: HashMap<u32, u32> = HashMap::new();
        for code in &tally.rejected_codes {
            *rejected.entry(*code).or_default() += 1;
        }
        let burned = rejected
            .iter()
            .filter(|(code, n)| **n >= 2 && !accepted.contains_key(code))
            .count();
        tally.run_violations(
            "replayed code(s) refused to both requests: neither got a token",
            burned as u64,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runs_own_violations_are_kept_past_the_limit_of_kinds() {
        let mut tally = Tally::new();
        for i in 0..KEPT_VIOLATIONS + 5 {
            tally.violation(format!("kind {i}"));
        }
        tally.jtis = vec!["a".into(), "a".into()];

        uniqueness(&mut tally, 0);

        assert!(tally.violations.keys().any(|k| k.contains("jti value")));
        assert_eq!(tally.violation_count, KEPT_VIOLATIONS as u64 + 6);
    }

    #[test]
    fn a_repeated_jti_a_code_accepted_twice_and_a_burned_replay_are_violations() {
        let mut tally = Tally::new();
        tally.jtis = vec!["a".into(), "b".into(), "a".into()];
        tally.accepted_codes = vec![1, 2, 2];
        tally.rejected_codes = vec![7, 7];
        uniqueness(&mut tally, 10);
        assert_eq!(tally.violation_count, 3, "{:?}", tally.violations);
    }

    /// The scripts print these counts by name (chaos.sh, failover-load.sh): each kind holds
    /// how many there were, not 1.
    #[test]
    fn each_run_violation_counts_every_case() {
        let mut tally = Tally::new();
        tally.jtis = ["a", "b", "a", "c", "b", "d", "d"]
            .map(String::from)
            .to_vec();
        tally.accepted_codes = vec![1, 1, 2, 3, 3, 4, 4, 5];
        uniqueness(&mut tally, 0);
        assert_eq!(tally.violations["jti value(s) issued more than once"], 3);
        assert_eq!(
            tally.violations["code(s) exchanged for a token more than once"],
            3
        );
        assert_eq!(tally.violation_count, 6);
    }

    #[test]
    fn latencies_past_a_minute_are_kept_as_they_are_when_tallies_merge() {
        let (mut run, mut worker) = (Tally::new(), Tally::new());
        worker.latency.record(5 * 60_000_000).unwrap();
        worker.latency.record(1_000).unwrap();
        run.merge(worker);
        let max = run.latency.max();
        assert!(
            (299_000_000..=301_000_000).contains(&max),
            "{max} µs, not 5 minutes"
        );
        assert_eq!(run.latency.len(), 2);
    }

    /// A worker's tally, with two errors of one kind, one violation, a success, a rejection,
    /// a `jti` and its code.
    fn worker_tally() -> Tally {
        let mut tally = Tally::new();
        tally.sent = 5;
        tally.successes = 1;
        tally.expected_rejections = 1;
        tally.error("503 temporarily_unavailable".into());
        tally.error("503 temporarily_unavailable".into());
        tally.violation("claim `sub` is not the one of the code sent".into());
        tally.jtis = vec!["j1".into()];
        tally.accepted_codes = vec![1];
        tally.rejected_codes = vec![2];
        tally
    }

    /// Workers' tallies add up; a warm-up's and a recheck's failures join the run's under
    /// their own names, and their `jti`s join the uniqueness checks.
    #[test]
    fn tallies_fold_by_adding_and_naming_where_each_failure_came_from() {
        let mut run = worker_tally();
        run.merge(worker_tally());
        assert_eq!(
            (run.sent, run.successes, run.expected_rejections),
            (10, 2, 2)
        );
        assert_eq!(run.errors["503 temporarily_unavailable"], 4);
        assert_eq!(run.violation_count, 2);
        assert_eq!(run.violations.values().sum::<u64>(), 2);
        assert_eq!(run.jtis.len(), 2);
        assert_eq!((run.accepted_codes.len(), run.rejected_codes.len()), (2, 2));

        run.absorb_warm_up(worker_tally());
        run.absorb_recheck(worker_tally());
        assert_eq!(run.errors["warm-up 503 temporarily_unavailable"], 2);
        assert_eq!(run.errors["recheck 503 temporarily_unavailable"], 2);
        assert_eq!(run.violation_count, 4);
        assert_eq!(
            run.violations["warm-up: claim `sub` is not the one of the code sent"],
            1
        );
        assert_eq!(run.jtis.len(), 4);
        // The same jti four times (three repeats), code 1 accepted three times (the warm-up's
        // codes are its own): both are violations of the run.
        uniqueness(&mut run, 0);
        assert_eq!(run.violations["jti value(s) issued more than once"], 3);
        assert_eq!(
            run.violations["code(s) exchanged for a token more than once"],
            1
        );
        assert_eq!(run.violation_count, 8);
    }

    #[test]
    fn a_clean_run_has_no_violation() {
        let mut tally = Tally::new();
        tally.jtis = vec!["a".into(), "b".into()];
        tally.accepted_codes = vec![1, 2];
        // Code 3's pair: one refused, the other answered with an error (counted as such).
        tally.rejected_codes = vec![2, 3];
        uniqueness(&mut tally, 10);
        assert_eq!(tally.violation_count, 0);
        assert!(tally.violations.is_empty(), "{:?}", tally.violations);
    }
}
