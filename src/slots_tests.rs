use std::time::Duration;

use super::*;

const LONG: Duration = Duration::from_secs(30);

fn slots(count: usize) -> Slots {
    Slots::new(count, LONG, true)
}

/// The first Cluster hash slot of `shard`.
fn of(shard: usize) -> Option<u16> {
    Some(u16::try_from(shard * HASH_SLOTS / SHARDS).unwrap())
}

/// Marks `shard` failing the way an exchange does: a slot whose Redis call failed.
async fn fail(slots: &Slots, shard: usize) {
    let mut slot = slots.enter(of(shard)).await.unwrap();
    slot.redis_answered(Err(&unanswered()));
}

/// A call Redis did not answer in time.
fn unanswered() -> StoreError {
    StoreError::Timeout(Duration::from_millis(1000))
}

fn busy<T>(entered: Result<T, OAuthError>) -> bool {
    matches!(entered, Err(OAuthError::Busy))
}

#[test]
fn shards_cover_the_cluster_slots_in_order() {
    let slots = slots(1);
    let width = u16::try_from(HASH_SLOTS / SHARDS).unwrap();
    assert_eq!(slots.shard_index(Some(0)), 0);
    assert_eq!(slots.shard_index(Some(width - 1)), 0);
    assert_eq!(slots.shard_index(Some(width)), 1);
    assert_eq!(slots.shard_index(Some(16383)), SHARDS - 1);
    assert_eq!(Slots::new(1, LONG, false).shard_index(Some(16383)), 0);
}

#[tokio::test]
async fn a_failing_shard_lets_one_exchange_at_a_time_try_redis() {
    let slots = slots(8);
    fail(&slots, 3).await;

    let probe = slots.enter(of(3)).await.expect("the first one tries");
    assert!(
        busy(slots.enter(of(3)).await),
        "a second one while the first tries"
    );
    assert!(slots.enter(of(4)).await.is_ok(), "the other shards go on");
    fail(&slots, 9).await;
    let other = slots.enter(of(9)).await;
    assert!(other.is_ok(), "each failing shard has its probe");
    drop(other);

    drop(probe);
    let mut next = slots.enter(of(3)).await.expect("the probe is free again");
    next.redis_answered(Ok(()));
    drop(next);
    let (a, b) = (slots.enter(of(3)).await, slots.enter(of(3)).await);
    assert!(a.is_ok() && b.is_ok(), "a success ends the failing");
}

/// A probe that finds no free slot waits for one; an exchange that gives up its wait, probe
/// or not, gives its probe back.
#[tokio::test]
async fn a_probe_waits_for_a_slot_and_a_cancelled_one_frees_the_shard() {
    let slots = slots(1);
    fail(&slots, 3).await;
    let holder = slots.enter(of(4)).await.unwrap();

    let mut probe = Box::pin(slots.enter(of(3)));
    let waited = tokio::time::timeout(Duration::from_millis(20), probe.as_mut()).await;
    assert!(
        waited.is_err(),
        "its shard fails, and it waits all the same"
    );
    assert!(busy(slots.enter(of(3)).await), "it is the shard's probe");
    drop(probe);

    let mut next = Box::pin(slots.enter(of(3)));
    let waited = tokio::time::timeout(Duration::from_millis(20), next.as_mut()).await;
    assert!(waited.is_err(), "the next one is the probe now, and waits");
    drop(holder);
    assert!(next.await.is_ok());
}

#[tokio::test]
async fn a_slot_freed_as_its_shard_starts_failing_goes_to_no_waiter_of_that_shard() {
    let slots = slots(1);
    let mut holder = slots.enter(of(5)).await.unwrap();
    let mut waiter = Box::pin(slots.enter(of(5)));
    let waited = tokio::time::timeout(Duration::from_millis(20), waiter.as_mut()).await;
    assert!(waited.is_err());

    // Both before the waiter runs again: it sees a free slot and a failing shard at once.
    holder.redis_answered(Err(&unanswered()));
    drop(holder);
    assert!(busy(waiter.await));
    assert_eq!(slots.semaphore.available_permits(), 1, "the slot went back");
}

#[tokio::test]
async fn a_probe_gives_its_turn_back_once_redis_answered() {
    let slots = slots(8);
    fail(&slots, 0).await;
    let mut probe = slots.enter(of(0)).await.unwrap();
    probe.redis_answered(Err(&unanswered()));

    let next = slots.enter(of(0)).await;
    assert!(
        next.is_ok(),
        "the next exchange tries while the first one signs"
    );
    drop(probe);
}

#[tokio::test]
async fn outside_cluster_every_code_is_in_the_one_shard() {
    let slots = Slots::new(8, LONG, false);
    fail(&slots, 0).await;
    let _probe = slots.enter(None).await.unwrap();
    assert!(busy(slots.enter(None).await));
    assert!(busy(slots.enter(of(17)).await), "any slot is the one shard");
}

#[tokio::test]
async fn waiting_for_a_slot_ends_when_the_shard_starts_failing_and_only_then() {
    let slots = slots(1);
    let mut holder = slots.enter(of(5)).await.unwrap();
    let mut same = Box::pin(slots.enter(of(5)));
    let mut other = Box::pin(slots.enter(of(6)));
    for waiter in [&mut same, &mut other] {
        let waited = tokio::time::timeout(Duration::from_millis(20), waiter.as_mut()).await;
        assert!(waited.is_err(), "no slot is free: it waits");
    }

    holder.redis_answered(Err(&unanswered()));
    assert!(busy(same.await), "its shard fails: no use waiting");
    let still = tokio::time::timeout(Duration::from_millis(20), other.as_mut()).await;
    assert!(still.is_err(), "another shard's exchange keeps waiting");
    drop(holder);
    assert!(other.await.is_ok(), "and gets the slot");
}

#[tokio::test]
async fn a_stop_sends_every_waiting_exchange_away_a_probe_too() {
    let slots = slots(1);
    fail(&slots, 3).await;
    let _holder = slots.enter(of(1)).await.unwrap();
    let (waiter, probe) = (slots.enter(of(2)), slots.enter(of(3)));
    let stop = async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        slots.stop_queueing();
    };
    let stopped = tokio::time::timeout(Duration::from_secs(5), async {
        tokio::join!(waiter, probe, stop)
    });
    let (waited, probed, ()) = stopped
        .await
        .expect("sent away by the stop, not at the end of their wait");
    assert!(busy(waited));
    assert!(busy(probed));
}

#[tokio::test]
async fn a_slot_that_does_not_come_free_in_time_is_a_busy() {
    let slots = Slots::new(1, Duration::from_millis(50), false);
    let _holder = slots.enter(None).await.unwrap();
    assert!(busy(slots.enter(None).await));
}

/// Introspection, revocation and user info take no slot: with every slot taken, their calls
/// still go to Redis.
#[tokio::test]
async fn a_call_of_another_endpoint_takes_no_slot() {
    let slots = slots(1);
    let _holder = slots.enter(of(4)).await.unwrap();
    let call = slots.call(of(4));
    assert!(call.is_ok(), "every slot taken, the call goes on");
    assert_eq!(slots.semaphore.available_permits(), 0, "and took none");
}

/// Calls of other endpoints and exchanges share a shard's health and its probe: a failed call
/// sends the shard's exchanges waiting for a slot away and makes the next one the probe; while
/// a probe is out, exchange or call, the shard's calls are refused at once, other shards' not;
/// a call that succeeds ends the failing for all.
#[tokio::test]
async fn calls_and_exchanges_share_a_shards_failing_and_its_probe() {
    let slots = slots(1);
    let holder = slots.enter(of(7)).await.unwrap();
    let mut waiting = Box::pin(slots.enter(of(5)));
    let waited = tokio::time::timeout(Duration::from_millis(20), waiting.as_mut()).await;
    assert!(waited.is_err(), "no slot is free: it waits");

    slots
        .call(of(5))
        .unwrap()
        .redis_answered(Err(&unanswered()));
    assert!(busy(waiting.await), "a call's failure sends it away");
    let mut probe = slots.call(of(5)).expect("the next call is the probe");
    assert!(busy(slots.call(of(5))), "a second call while it tries");
    assert!(slots.call(of(6)).is_ok(), "another shard's call goes on");
    probe.redis_answered(Ok(()));
    drop(probe);
    let (a, b) = (slots.call(of(5)), slots.call(of(5)));
    assert!(a.is_ok() && b.is_ok(), "a call's success ends the failing");
    drop((a, b, holder));

    fail(&slots, 9).await;
    let exchange = slots
        .call(of(9))
        .expect("an exchange failed: a call may try");
    assert!(busy(slots.call(of(9))), "but only one");
    drop(exchange);
}

/// An error Redis answers promptly (a full Redis's `OOM`, a `WAIT` short of replicas) refuses
/// exchanges, so theirs go one at a time; reads still work, so other endpoints' calls go on.
/// Such an error of another endpoint's leaves the exchanges as they were.
#[tokio::test]
async fn an_error_redis_answers_with_holds_back_exchanges_not_other_calls() {
    let slots = slots(8);
    let mut slot = slots.enter(of(2)).await.unwrap();
    slot.redis_answered(Err(&StoreError::Reply));
    drop(slot);

    let probe = slots.enter(of(2)).await.expect("one exchange tries");
    assert!(
        busy(slots.enter(of(2)).await),
        "a second one while it tries"
    );
    let (a, b) = (slots.call(of(2)), slots.call(of(2)));
    assert!(a.is_ok() && b.is_ok(), "other endpoints' calls go on");
    drop((a, b, probe));

    let healthy = slots_with_a_refused_call();
    let (a, b) = (healthy.enter(of(2)).await, healthy.enter(of(2)).await);
    assert!(
        a.is_ok() && b.is_ok(),
        "a call's prompt refusal holds back no exchange"
    );
}

fn slots_with_a_refused_call() -> Slots {
    let slots = slots(8);
    slots
        .call(of(2))
        .unwrap()
        .redis_answered(Err(&StoreError::Reply));
    slots
}

/// An exchange that waits for a slot as the shard's probe holds back no other endpoint's
/// call: theirs is a turn of its own.
#[tokio::test]
async fn an_exchange_probe_waiting_for_a_slot_holds_back_no_other_call() {
    let slots = slots(1);
    fail(&slots, 3).await;
    let holder = slots.enter(of(4)).await.unwrap();
    let mut probe = Box::pin(slots.enter(of(3)));
    let waited = tokio::time::timeout(Duration::from_millis(20), probe.as_mut()).await;
    assert!(waited.is_err(), "the exchange probe waits for a slot");

    let call = slots.call(of(3));
    assert!(call.is_ok(), "a call tries Redis meanwhile");
    assert!(busy(slots.call(of(3))), "one at a time");
    drop((call, holder));
}
