use super::watch::{PING_AFTER, WATCH_TICK, follow};
use super::*;

#[test]
fn only_events_about_our_master_move_the_fence() {
    let fence = Fence::new(&[], "mymaster");
    let start = fence.generation.load(Ordering::Relaxed);
    fence.on_event(0, "+try-failover", "master other 127.0.0.1 6379");
    assert!(fence.held(start));
    assert!(!fence.is_closed());
    fence.on_event(0, "+try-failover", "master mymaster 127.0.0.1 6379");
    assert!(!fence.held(start));
    assert!(fence.closed_until.load(Ordering::Relaxed) > 0);
    assert!(fence.is_closed());
    fence.on_event(
        0,
        "+switch-master",
        "mymaster 127.0.0.1 6379 127.0.0.1 6380",
    );
    assert_eq!(fence.closed_until.load(Ordering::Relaxed), 0);
    assert!(!fence.is_closed());
    fence.on_event(0, "+try-failover", "master mymaster 127.0.0.1 6380");
    assert!(fence.is_closed());
    fence.on_event(
        0,
        "-failover-abort-no-good-slave",
        "master mymaster 127.0.0.1 6380",
    );
    assert_eq!(fence.closed_until.load(Ordering::Relaxed), 0);
    assert!(!fence.is_closed());
}

#[test]
fn another_groups_events_move_nothing_whatever_our_master_is_called() {
    // Our name is a word of their payloads: `master`, an address, a port.
    for name in ["master", "10.0.0.9", "6379"] {
        let fence = Fence::new(&[], name);
        let start = fence.generation.load(Ordering::Relaxed);
        fence.on_event(0, "+try-failover", "master other 10.0.0.9 6379");
        fence.on_event(
            0,
            "-failover-abort-no-good-slave",
            "master other 10.0.0.9 6379",
        );
        fence.on_event(0, "+switch-master", "other 10.0.0.9 6379 10.0.0.8 6379");
        assert!(fence.held(start), "{name}: moved by another group's events");
        assert!(fence.switched_master().is_none(), "{name}");
        // Its own still do.
        fence.on_event(0, "+try-failover", &format!("master {name} 10.0.0.7 6379"));
        assert!(!fence.held(start), "{name}: not closed by its own failover");
    }
}

fn address(port: u16) -> Option<Address> {
    Some(Address {
        host: "10.0.0.2".into(),
        port,
    })
}

/// A fence for `mymaster` watched by three sentinels (`s0`, `s1`, `s2`: indices 0 to 2).
fn three_sentinels() -> Arc<Fence> {
    let sentinels = ["redis://s0", "redis://s1", "redis://s2"].map(String::from);
    Fence::new(&sentinels, "mymaster")
}

const SWITCH: &str = "mymaster 10.0.0.1 6379 10.0.0.2 6380";

/// The generation an operation would run in now, or `None` while closed (what `enter`
/// says, without starting watchers: no runtime here).
fn entered(fence: &Fence) -> Option<u64> {
    let generation = fence.generation.load(Ordering::Acquire);
    (fence.closed_until.load(Ordering::Acquire) == 0).then_some(generation)
}

#[test]
fn after_a_switch_lanes_go_to_the_announced_master_until_every_sentinel_announced_it() {
    let fence = three_sentinels();
    fence.on_event(0, "+try-failover", "master mymaster 10.0.0.1 6379");
    assert_eq!(entered(&fence), None);

    fence.on_event(2, "+switch-master", SWITCH);
    let opened = entered(&fence).unwrap();
    assert_eq!(fence.switched_master(), address(6380));
    // The same switch from another sentinel (or the same one again) moves nothing.
    fence.on_event(1, "+switch-master", SWITCH);
    fence.on_event(1, "+switch-master", SWITCH);
    assert!(fence.held(opened));
    assert_eq!(fence.switched_master(), address(6380));
    // Nor does an abort (another sentinel's failed bid) on the lanes' way.
    fence.on_event(
        1,
        "-failover-abort-not-elected",
        "master mymaster 10.0.0.1 6379",
    );
    assert_eq!(fence.switched_master(), address(6380));
    // The leader, last: every sentinel now names it, a look-up finds it.
    fence.on_event(0, "+switch-master", SWITCH);
    assert_eq!(fence.switched_master(), None);
}

#[test]
fn a_lost_vote_does_not_open_the_fence_while_the_leaders_failover_runs() {
    let fence = three_sentinels();
    // Two sentinels bid; s2 loses the vote and aborts, s1 goes on.
    fence.on_event(1, "+try-failover", "master mymaster 10.0.0.1 6379");
    fence.on_event(2, "+try-failover", "master mymaster 10.0.0.1 6379");
    fence.on_event(
        2,
        "-failover-abort-not-elected",
        "master mymaster 10.0.0.1 6379",
    );
    assert_eq!(entered(&fence), None, "s1's failover still runs");
    // s1's own abort (no replica to promote) ends it all.
    fence.on_event(
        1,
        "-failover-abort-no-good-slave",
        "master mymaster 10.0.0.1 6379",
    );
    assert!(entered(&fence).is_some());

    // Or the switch: it ends every bid.
    fence.on_event(1, "+try-failover", "master mymaster 10.0.0.1 6379");
    fence.on_event(2, "+try-failover", "master mymaster 10.0.0.1 6379");
    fence.on_event(0, "+switch-master", SWITCH);
    let opened = entered(&fence).unwrap();
    fence.on_event(
        2,
        "-failover-abort-not-elected",
        "master mymaster 10.0.0.1 6379",
    );
    assert!(
        fence.held(opened),
        "an abort after the switch moves nothing"
    );
    // A bid whose end was never heard stops counting after the longest failover.
    fence.on_event(1, "+try-failover", "master mymaster 10.0.0.2 6380");
    fence.attempts()[1] = fence.now_ms();
    fence.on_event(
        2,
        "-failover-abort-not-elected",
        "master mymaster 10.0.0.2 6380",
    );
    assert!(entered(&fence).is_some());
}

#[test]
fn a_late_announcement_of_the_last_switch_keeps_a_new_failovers_bids() {
    let fence = three_sentinels();
    fence.on_event(0, "+switch-master", SWITCH);
    // A failover of the new master: s0 and s1 bid, before s2 announced the first switch.
    fence.on_event(0, "+try-failover", "master mymaster 10.0.0.2 6380");
    fence.on_event(1, "+try-failover", "master mymaster 10.0.0.2 6380");
    fence.on_event(2, "+switch-master", SWITCH);
    assert_eq!(entered(&fence), None, "a late announcement opens nothing");
    // s1 loses the vote; s0's failover goes on.
    fence.on_event(
        1,
        "-failover-abort-not-elected",
        "master mymaster 10.0.0.2 6380",
    );
    assert_eq!(entered(&fence), None, "s0's failover still runs");
}

/// Why a switch away from a master other than the pinned one is not pinned: it may be the late
/// announcement of an earlier failover, whose new master is the one being replaced now.
#[test]
fn a_late_announcement_of_an_earlier_switch_does_not_pin_lanes_to_its_master() {
    let fence = three_sentinels();
    // 10.0.0.2:6379 → 10.0.0.1:6379 long ago; now 10.0.0.1:6379 → 10.0.0.2:6380.
    fence.on_event(0, "+switch-master", SWITCH);
    fence.on_event(1, "+switch-master", "mymaster 10.0.0.2 6379 10.0.0.1 6379");
    assert_ne!(
        fence.switched_master(),
        Some(Address {
            host: "10.0.0.1".into(),
            port: 6379,
        })
    );
}

/// A sentinel that missed the last switch (A to B) announces the one of a failover of B under
/// way as a switch from A: the fence stays closed, until the switch from B is announced, rather
/// than send lanes to look the master up while the leader still names B.
#[test]
fn a_switch_from_elsewhere_during_a_failover_keeps_the_fence_closed() {
    let fence = three_sentinels();
    fence.on_event(0, "+switch-master", SWITCH);
    fence.on_event(0, "+try-failover", "master mymaster 10.0.0.2 6380");
    fence.on_event(2, "+switch-master", "mymaster 10.0.0.1 6379 10.0.0.2 6381");
    assert_eq!(entered(&fence), None, "opened during the failover");
    assert_eq!(
        fence.switched_master(),
        None,
        "lanes pinned to the outgoing master"
    );
    fence.on_event(1, "+switch-master", "mymaster 10.0.0.2 6380 10.0.0.2 6381");
    assert!(entered(&fence).is_some());
    assert_eq!(fence.switched_master(), address(6381));
}

#[test]
fn a_switch_is_trusted_for_a_while_only() {
    let sentinels = ["redis://s0", "redis://s1"].map(String::from);
    let fence = Fence::new(&sentinels, "mymaster");
    fence.on_event(1, "+switch-master", SWITCH);
    assert_eq!(fence.switched_master(), address(6380));
    if let Some(switch) = fence.switch().as_mut() {
        switch.until_ms = fence.now_ms();
    }
    assert_eq!(fence.switched_master(), None);
}

#[test]
fn a_new_switch_moves_lanes_on_and_one_from_elsewhere_sends_them_to_the_sentinels() {
    let sentinels = ["redis://s0", "redis://s1"].map(String::from);
    let fence = Fence::new(&sentinels, "mymaster");
    fence.on_event(1, "+switch-master", SWITCH);
    let first = entered(&fence).unwrap();
    // A failover of the new master, before the first switch is announced everywhere.
    fence.on_event(1, "+try-failover", "master mymaster 10.0.0.2 6380");
    fence.on_event(1, "+switch-master", "mymaster 10.0.0.2 6380 10.0.0.2 6381");
    let second = entered(&fence).unwrap();
    assert_ne!(second, first);
    assert_eq!(fence.switched_master(), address(6381));
    // A switch away from some other master: nothing to trust it by.
    fence.on_event(1, "+switch-master", "mymaster 10.0.0.9 6379 10.0.0.2 6382");
    assert!(!fence.held(second), "opened all the same");
    assert_eq!(fence.switched_master(), None);
}

#[test]
fn a_switch_payload_names_the_old_master_then_the_new_one() {
    let old = Some(Address {
        host: "10.0.0.1".into(),
        port: 6379,
    });
    assert_eq!(switch_addresses(SWITCH), old.zip(address(6380)),);
    assert_eq!(switch_addresses("mymaster 10.0.0.1 6379 10.0.0.2"), None);
    assert_eq!(switch_addresses("mymaster 10.0.0.1 6379 10.0.0.2 x"), None);
    // Unreadable: the fence opens all the same, and lanes look the master up.
    let fence = Fence::new(&["redis://s0".to_owned()], "mymaster");
    fence.on_event(0, "+try-failover", "master mymaster 10.0.0.1 6379");
    fence.on_event(0, "+switch-master", "mymaster 10.0.0.1 6379 10.0.0.2 x");
    assert!(entered(&fence).is_some());
    assert_eq!(fence.switched_master(), None);
}

/// A "sentinel" that answers until the subscription is made, then goes silent with the
/// connection open: what a connection a NAT dropped, or a dead host, looks like.
async fn silent_after_subscribing(listener: tokio::net::TcpListener) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok((mut socket, _)) = listener.accept().await else {
        return;
    };
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let mut subscribed = false;
    while let Ok(n) = socket.read(&mut buf).await {
        if n == 0 {
            return;
        }
        seen.extend_from_slice(&buf[..n]);
        while let Some((name, used)) = command_name(&seen) {
            seen.drain(..used);
            if subscribed {
                continue;
            }
            let reply: &[u8] = if name.eq_ignore_ascii_case("psubscribe") {
                subscribed = true;
                b"*3\r\n$10\r\npsubscribe\r\n$1\r\n*\r\n:1\r\n"
            } else {
                b"+OK\r\n"
            };
            if socket.write_all(reply).await.is_err() {
                return;
            }
        }
    }
}

/// The first word of the RESP command at the start of `bytes`, and its length in bytes.
pub(in crate::store) fn command_name(bytes: &[u8]) -> Option<(String, usize)> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut lines = text.split_inclusive("\r\n");
    let head = lines.next()?;
    let count: usize = head.strip_prefix('*')?.trim_end().parse().ok()?;
    let (mut used, mut name) = (head.len(), None);
    for _ in 0..count {
        let length = lines.next()?;
        let value = lines.next()?;
        if !value.ends_with("\r\n") {
            return None;
        }
        used += length.len() + value.len();
        name.get_or_insert_with(|| value.trim_end().to_owned());
    }
    Some((name?, used))
}

#[tokio::test]
async fn a_watcher_whose_sentinel_goes_silent_gives_up_its_connection() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("redis://{}", listener.local_addr().unwrap());
    tokio::spawn(silent_after_subscribing(listener));
    let fence = Fence::new(&[], "mymaster");

    let started = Instant::now();
    let outcome = tokio::time::timeout(
        PING_AFTER + WATCH_TICK * 8,
        follow(&Arc::downgrade(&fence), 0, &url, &mut false),
    )
    .await;

    let ended = outcome.expect("the watcher still waits on a silent connection");
    assert!(ended.is_err(), "{ended:?}");
    assert!(started.elapsed() >= PING_AFTER, "{:?}", started.elapsed());
}

#[test]
fn the_fence_is_closed_until_every_sentinel_was_asked_and_a_failover_found_closes_it() {
    let sentinels = [
        "redis://127.0.0.1:1".to_owned(),
        "redis://127.0.0.1:2".to_owned(),
    ];
    let fence = Fence::new(&sentinels, "mymaster");
    assert!(fence.is_closed(), "nobody asked yet");
    fence.mark_checked(0);
    fence.mark_checked(0);
    assert!(fence.is_closed(), "one sentinel of two asked");
    fence.mark_checked(1);
    assert!(!fence.is_closed());

    // Sentinel 1, asked on reconnecting, leads a failover whose start its watcher missed.
    let generation = fence.generation.load(Ordering::Acquire);
    fence.failover_begun(1, "under way (found on connecting)");
    assert!(fence.is_closed());
    assert!(!fence.held(generation));
    let switch = "mymaster 127.0.0.1 6379 127.0.0.1 6380";
    fence.on_event(0, "+switch-master", switch);
    assert!(!fence.is_closed(), "the switch ends it");
}

/// A failover whose end no watcher hears (the `+switch-master` lost with a watcher's connection)
/// stops the service for [`LONGEST_FAILOVER`], not for good.
#[test]
fn a_failover_whose_end_is_missed_opens_the_fence_once_its_longest_time_has_passed() {
    let fence = Fence::new(&[], "mymaster");
    fence.on_event(0, "+try-failover", "master mymaster 127.0.0.1 6379");
    assert!(fence.is_closed());

    // As if LONGEST_FAILOVER had passed: closed until a moment gone by, on the fence's clock.
    let closed_at = fence.now_ms();
    std::thread::sleep(Duration::from_millis(5));
    fence.closed_until.store(closed_at + 2, Ordering::Release);
    assert!(
        !fence.is_closed(),
        "closed for good by a failover never seen to end"
    );
}

/// Operations start the watchers if they do not run (see `Fence::enter`), and they must not
/// start more each time: a watcher per sentinel, not a watcher per call.
#[tokio::test]
async fn operations_start_one_watcher_per_sentinel_however_many_enter() {
    let sentinels = [
        "redis://127.0.0.1:1".to_owned(),
        "redis://127.0.0.1:2".to_owned(),
    ];
    let fence = Fence::new(&sentinels, "mymaster");
    for _ in 0..3 {
        assert!(
            fence.enter().is_err(),
            "closed until every sentinel was asked"
        );
    }
    assert_eq!(fence.watchers.load(Ordering::Acquire), 2);

    // Neither sentinel can be reached: the watchers say so, and the fence opens.
    let opened = async {
        while fence.is_closed() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), opened)
        .await
        .expect("the watchers never marked their sentinels checked");
    assert!(fence.enter().is_ok());
    assert_eq!(fence.watchers.load(Ordering::Acquire), 2);
}

/// Watchers are tasks of the runtime that started them and end with it (the start's checks
/// run in one of their own): the next operation, in another runtime, starts them again.
#[test]
fn watchers_ended_with_their_runtime_are_started_again_by_the_next_operation() {
    let sentinels = ["redis://127.0.0.1:1".to_owned()];
    let fence = Fence::new(&sentinels, "mymaster");
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    };
    let watchers = || fence.watchers.load(Ordering::Acquire);

    let first = runtime();
    first.block_on(async { fence.enter().err() });
    assert_eq!(watchers(), 1);
    drop(first);
    assert_eq!(watchers(), 0, "counted alive after their runtime ended");

    runtime().block_on(async {
        let _ = fence.enter();
        assert_eq!(watchers(), 1, "not started again");
    });
}

/// A watcher ends with its store, silent sentinel or not: a store dropped leaves no task behind
/// pinging its sentinel for ever.
#[tokio::test]
async fn a_watcher_ends_soon_after_its_store_is_gone() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("redis://{}", listener.local_addr().unwrap());
    tokio::spawn(silent_after_subscribing(listener));
    let fence = Fence::new(&[], "mymaster");
    let weak = Arc::downgrade(&fence);

    // Gone once the watcher follows the sentinel (its `SENTINEL MASTER` times out first).
    let gone = async move {
        tokio::time::sleep(WATCH_TICK * 6).await;
        drop(fence);
    };
    let mut lost = false;
    let watching = tokio::time::timeout(WATCH_TICK * 10, follow(&weak, 0, &url, &mut lost));
    let (ended, ()) = tokio::join!(watching, gone);

    let ended = ended.expect("still following its sentinel after the store was gone");
    assert!(ended.is_ok(), "{ended:?}");
}

/// A switch back to the previous master that no watcher heard (all reconnecting), then a new
/// failover to the master of the last switch heard: its announcements name the recorded
/// master again, from sentinels that announced it already, and must open the fence rather
/// than leave every operation a 503 until `LONGEST_FAILOVER` has passed.
#[test]
fn a_switch_to_the_recorded_master_after_one_unheard_opens_the_fence() {
    let fence = three_sentinels();
    for sentinel in 0..3 {
        fence.on_event(sentinel, "+switch-master", SWITCH);
    }
    // The switch back (10.0.0.2:6380 to 10.0.0.1:6379) went unheard; now a new failover.
    fence.on_event(1, "+try-failover", "master mymaster 10.0.0.1 6379");
    assert_eq!(entered(&fence), None);
    fence.on_event(1, "+switch-master", SWITCH);
    assert!(entered(&fence).is_some(), "the switch opens the fence");
    assert_eq!(fence.switched_master(), address(6380));
}

/// The same while the recorded switch is still pending (not every sentinel announced it): the
/// repeated announcement is recorded as a new switch to that master, and lanes keep going to
/// it rather than looking it up through a sentinel that may still name the outgoing one.
#[test]
fn a_switch_to_the_pending_recorded_master_after_one_unheard_keeps_lanes_on_it() {
    let fence = three_sentinels();
    fence.on_event(0, "+switch-master", SWITCH);
    fence.on_event(1, "+switch-master", SWITCH);
    fence.on_event(1, "+try-failover", "master mymaster 10.0.0.1 6379");
    fence.on_event(1, "+switch-master", SWITCH);
    assert!(entered(&fence).is_some(), "the switch opens the fence");
    assert_eq!(fence.switched_master(), address(6380));
}
