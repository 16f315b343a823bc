use super::*;

#[test]
fn a_table_forgets_what_has_expired_and_stays_bounded() {
    let table: Table<u32> = Table::new();
    let now = Instant::now();
    assert!(table.get(&1, now).is_none());
    assert!(!table.may_miss(now));
    let live = Seen {
        count: 3,
        until: now + Duration::from_secs(60),
    };
    table.put(1, live, now);
    table.put(2, Seen { until: now, ..live }, now);
    assert_eq!(table.get(&1, now).map(|s| s.count), Some(3));
    assert!(table.get(&2, now).is_none(), "its window has ended");
    for key in 3..(MAX_TRACKED as u32 + 10) {
        table.put(key, live, now);
    }
    assert!(table.entries.lock().unwrap().held.len() <= MAX_TRACKED);
    // Keys were turned away: for as long as their window lasts, one may be missing.
    assert!(table.may_miss(now));
    assert!(table.may_miss(now + Duration::from_secs(59)));
    assert!(!table.may_miss(now + Duration::from_secs(60)));
    assert!(
        table.get(&(MAX_TRACKED as u32 + 5), now).is_none(),
        "no room for it"
    );
    // A key it holds is still brought up to date.
    table.put(1, Seen { count: 9, ..live }, now);
    assert_eq!(table.get(&1, now).map(|s| s.count), Some(9));
}

#[test]
fn keys_below_the_floor_make_room_and_are_turned_away_unnoted() {
    let table: Table<u32> = Table::with_floor(2);
    let now = Instant::now();
    let low = Seen {
        count: 1,
        until: now + Duration::from_secs(60),
    };
    for key in 0..(MAX_TRACKED as u32 + 10) {
        table.put(key, low, now);
    }
    assert!(
        !table.may_miss(now),
        "only keys below the floor were turned away"
    );

    let high = Seen { count: 2, ..low };
    table.put(u32::MAX, high, now);
    assert_eq!(table.get(&u32::MAX, now).map(|s| s.count), Some(2));
    for key in 0..(MAX_TRACKED as u32 + 10) {
        table.put(key, high, now);
    }
    assert!(table.may_miss(now), "a key at the floor was turned away");
}

/// Once the table is full of keys at the floor, a new one is turned away without a pass
/// over all of them: an attack spread over many addresses would otherwise pay one per
/// request, under the lock every request takes.
#[test]
fn a_table_full_of_keys_at_the_floor_turns_a_new_one_away_without_a_pass() {
    let table: Table<u32> = Table::with_floor(2);
    let now = Instant::now();
    let until = now + Duration::from_secs(60);
    let (low, high) = (Seen { count: 1, until }, Seen { count: 2, until });
    let passes = || table.entries.lock().unwrap().floor_passes;
    let below = || table.entries.lock().unwrap().below_floor;
    // Keys below the floor, two of them raised to it, then the table filled at the floor.
    for key in 0..10 {
        table.put(key, low, now);
    }
    table.put(3, high, now);
    table.add_one(4, Duration::from_secs(60), now);
    assert_eq!(below(), 8);
    for key in 10..(MAX_TRACKED as u32) {
        table.put(key, high, now);
    }
    assert_eq!(passes(), 0, "the table was not full yet");

    // The first key at the floor that finds it full makes room once...
    table.put(u32::MAX, high, now);
    assert_eq!(passes(), 1);
    assert_eq!(table.get(&u32::MAX, now).map(|s| s.count), Some(2));
    // ...then the table holds nothing to give up, and no key pays for a pass.
    for key in 0..1_000 {
        table.put(MAX_TRACKED as u32 + key, high, now);
    }
    assert_eq!(
        passes(),
        1,
        "passes over a table with nothing below the floor"
    );
    assert!(table.may_miss(now), "keys at the floor were turned away");
    assert_eq!(below(), 0);
}

/// A held key whose new window starts below the floor can again give up its place: a key at
/// the floor that finds the table full takes it.
#[test]
fn a_key_fallen_below_the_floor_makes_room_in_a_full_table() {
    let table: Table<u32> = Table::with_floor(2);
    let now = Instant::now();
    let until = now + Duration::from_secs(60);
    let high = Seen { count: 2, until };
    for key in 0..MAX_TRACKED as u32 {
        table.put(key, high, now);
    }
    // The first key to find it full has it swept (nothing ends yet) and is turned away: no
    // sweep is due again before `SWEEP_EVERY`, to count the keys below the floor afresh.
    table.put(MAX_TRACKED as u32, high, now);
    assert!(table.get(&(MAX_TRACKED as u32), now).is_none());
    let passes = || table.entries.lock().unwrap().floor_passes;
    assert_eq!(
        passes(),
        0,
        "a pass over a table with nothing below the floor"
    );
    // Key 0's counter began a new window (it ends later), with one failure so far.
    let fallen = Seen {
        count: 1,
        until: until + Duration::from_secs(30),
    };
    table.put(0, fallen, now);
    assert_eq!(table.get(&0, now).map(|s| s.count), Some(1));

    table.put(u32::MAX, high, now);

    assert_eq!(table.get(&u32::MAX, now).map(|s| s.count), Some(2));
    assert!(table.get(&0, now).is_none(), "key 0 gave up its place");
    assert_eq!(passes(), 1);
}

#[test]
fn a_lower_count_of_the_same_window_does_not_replace_a_higher_one() {
    let table: Table<u32> = Table::new();
    let now = Instant::now();
    let until = now + Duration::from_secs(60);
    table.put(1, Seen { count: 5, until }, now);
    // An answer to an earlier request, handled later: same window, lower count.
    let late = Seen {
        count: 2,
        until: until - Duration::from_millis(3),
    };
    table.put(1, late, now);
    assert_eq!(table.get(&1, now).map(|s| s.count), Some(5));
    // A new window (it ends later) starts from its own count.
    let next = Seen {
        count: 1,
        until: until + Duration::from_secs(30),
    };
    table.put(1, next, now);
    assert_eq!(table.get(&1, now).map(|s| s.count), Some(1));
}

/// Windows that end `SAME_WINDOW` apart, no more, are still one window: a lower count of it
/// does not replace a higher one; a moment later, it is a new window's.
#[test]
fn reports_ending_same_window_apart_are_of_one_window() {
    let table: Table<u32> = Table::new();
    let now = Instant::now();
    let until = now + Duration::from_secs(60);
    table.put(1, Seen { count: 5, until }, now);
    let edge = Seen {
        count: 2,
        until: until + SAME_WINDOW,
    };
    table.put(1, edge, now);
    assert_eq!(table.get(&1, now).map(|s| s.count), Some(5));
    let beyond = Seen {
        until: edge.until + Duration::from_millis(1),
        ..edge
    };
    table.put(1, beyond, now);
    assert_eq!(table.get(&1, now).map(|s| s.count), Some(2));
}

#[test]
fn counting_here_adds_one_in_the_open_window_or_starts_one() {
    let table: Table<u32> = Table::new();
    let (now, window) = (Instant::now(), Duration::from_secs(60));
    assert_eq!(table.add_one(1, window, now).count, 1);
    let second = table.add_one(1, window, now + Duration::from_secs(10));
    assert_eq!((second.count, second.until), (2, now + window));
    let after = now + window + Duration::from_secs(1);
    let fresh = table.add_one(1, window, after);
    assert_eq!((fresh.count, fresh.until), (1, after + window));
    // The window is over at its very end, as for `get`: the next failure starts a new one.
    let end = after + window;
    assert!(table.get(&1, end).is_none());
    let next = table.add_one(1, window, end);
    assert_eq!((next.count, next.until), (1, end + window));
}

/// A full table sweeps out the entries whose window has ended (at its very end, as for
/// `get`) and keeps a new key in their place, and sweeps again once `SWEEP_EVERY` has passed.
#[test]
fn a_full_table_makes_room_by_sweeping_out_ended_windows_again_and_again() {
    let table: Table<u32> = Table::new();
    let now = Instant::now();
    let held = |key: u32, at: Instant| table.get(&key, at).is_some();
    let long = Seen {
        count: 1,
        until: now + Duration::from_secs(3600),
    };
    // One key keeps the table from going idle; the others' windows end at `end`.
    table.put(u32::MAX, long, now);
    let fill = |first: u32, at: Instant, end: Instant| {
        for key in first..first + MAX_TRACKED as u32 - 1 {
            table.put(
                key,
                Seen {
                    count: 1,
                    until: end,
                },
                at,
            );
        }
    };
    let end = now + Duration::from_secs(10);
    fill(0, now, end);
    assert_eq!(table.entries.lock().unwrap().held.len(), MAX_TRACKED);

    table.put(MAX_TRACKED as u32, long, end);
    assert!(
        held(MAX_TRACKED as u32, end),
        "no room made at the windows' end"
    );

    // Full again, of windows that end later; the sweep is due again after `SWEEP_EVERY`.
    let later = end + SWEEP_EVERY;
    fill(1_000_000, end, later);
    assert_eq!(table.entries.lock().unwrap().held.len(), MAX_TRACKED);
    table.put(MAX_TRACKED as u32 + 1, long, later);
    assert!(held(MAX_TRACKED as u32 + 1, later), "no second sweep");
}

/// `idle` rounds a window's end up to its millisecond: never idle while a window is open.
#[test]
fn a_table_is_not_idle_in_the_last_millisecond_of_a_window() {
    let table: Table<u32> = Table::new();
    let until = table.epoch + Duration::from_micros(10_500);
    let seen = Seen { count: 1, until };
    table.put(1, seen, table.epoch);
    let at = until - Duration::from_micros(300);
    assert!(!table.idle(at));
    assert_eq!(table.get(&1, at).map(|s| s.count), Some(1));
    assert!(table.idle(until + Duration::from_millis(1)));
}

#[test]
fn once_every_window_has_ended_a_look_up_skips_the_lock() {
    let table: Table<u32> = Table::new();
    let now = Instant::now();
    assert!(table.idle(now), "nothing held yet");
    let seen = Seen {
        count: 1,
        until: now + Duration::from_secs(60),
    };
    table.put(1, seen, now);
    table.put(
        2,
        Seen {
            until: now + Duration::from_secs(30),
            ..seen
        },
        now,
    );
    assert!(
        !table.idle(now + Duration::from_secs(59)),
        "key 1's window is open"
    );
    // (It may take the lock up to a millisecond longer: it counts whole ones.)
    let later = now + Duration::from_millis(60_001);
    assert!(
        table.idle(later),
        "the entries are still there, but all expired"
    );
    // The next failure starts afresh: the expired entries go.
    table.put(
        3,
        Seen {
            until: later + Duration::from_secs(60),
            ..seen
        },
        later,
    );
    assert_eq!(table.entries.lock().unwrap().held.len(), 1);
    assert!(!table.idle(later));
}
