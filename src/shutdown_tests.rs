use super::*;

/// (in flight, unanswered)
fn counts(draining: &Draining) -> (u64, u64) {
    (
        draining.0.in_flight.load(Ordering::Relaxed),
        draining.0.unanswered.load(Ordering::Relaxed),
    )
}

/// What `warn_of_the_unanswered` reports: only requests the stop cut off, never those whose
/// client left before it, nor those answered.
#[test]
fn only_requests_left_unanswered_once_a_stop_began_are_counted() {
    let draining = Draining::default();
    drop(Answering::new(&draining));
    assert_eq!(counts(&draining), (0, 0), "its client left before the stop");

    let mut answered = Answering::new(&draining);
    let open = Answering::new(&draining);
    assert_eq!(counts(&draining), (2, 0));
    draining.begin();
    assert!(answered.answered().is_some_and(|d| d.is_on()));
    drop(answered);
    assert_eq!(counts(&draining), (1, 0), "answered during the stop");

    drop(open);
    assert_eq!(
        counts(&draining),
        (0, 1),
        "dropped unanswered during the stop"
    );
    let _still = Answering::new(&draining);
    assert_eq!(counts(&draining), (1, 1), "in flight when the process ends");
}
