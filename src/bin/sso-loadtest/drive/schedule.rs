//! Which code each request sends. With `--replay-every` two requests share a code (one of
//! them must be refused), and neither a run's count nor its deadline may split such a pair.

/// Which code request `i` sends, and whether it is one of a deliberate replay pair.
pub fn code_of(i: u64, replay_every: u64) -> (usize, bool) {
    if replay_every < 2 {
        return (i as usize, false);
    }
    let base = (i - i / replay_every) as usize;
    match i % replay_every {
        r if r == replay_every - 1 => (base - 1, true),
        r if r == replay_every - 2 => (base, true),
        _ => (base, false),
    }
}

/// Whether request `i` is the first of a replay pair whose second is past the run's count: its
/// code is then a fresh one like any other, and a refusal of it must not pass as the pair's
/// expected one.
pub fn lone_first_of_pair(i: u64, replay_every: u64, requests: Option<u64>) -> bool {
    replay_every >= 2
        && i % replay_every == replay_every - 2
        && requests.is_some_and(|n| i + 1 >= n)
}

/// Whether request `i` closes a replay pair: it is still sent when the one before it, the
/// pair's first, was claimed before `--duration`'s deadline, so that the first never goes
/// alone with its refusal taken for the pair's expected one.
pub fn second_of_pair(i: u64, replay_every: u64) -> bool {
    replay_every >= 2 && i % replay_every == replay_every - 1
}

/// Codes needed for `requests` requests.
pub fn codes_for(requests: u64, replay_every: u64) -> u64 {
    if replay_every < 2 {
        requests
    } else {
        requests - requests / replay_every
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kth_request_replays_the_code_before_it() {
        let codes: Vec<_> = (0..8).map(|i| code_of(i, 4)).collect();
        assert_eq!(
            codes,
            [
                (0, false),
                (1, false),
                (2, true),
                (2, true),
                (3, false),
                (4, false),
                (5, true),
                (5, true)
            ]
        );
        assert_eq!(codes_for(8, 4), 6);
        // Of 7 requests, the 7th (index 6) opens a pair that is never closed.
        let lone: Vec<_> = (0..7)
            .filter(|&i| lone_first_of_pair(i, 4, Some(7)))
            .collect();
        assert_eq!(lone, [6]);
        assert!(!lone_first_of_pair(6, 4, Some(8)) && !lone_first_of_pair(6, 4, None));
        // Past a deadline, only the pairs' second requests still go.
        let closing: Vec<_> = (0..8).filter(|&i| second_of_pair(i, 4)).collect();
        assert_eq!(closing, [3, 7]);
        assert!(!(0..8).any(|i| second_of_pair(i, 0) || second_of_pair(i, 1)));
        assert_eq!(code_of(5, 0), (5, false));
    }
}
