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
#[path = "tally_tests.rs"]
mod tests;
