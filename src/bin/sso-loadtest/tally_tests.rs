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
