//! The open loop's timetable: a thread of its own releases each request as it comes due,
//! whatever the server's pace.

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use super::Shared;

/// Open loop: the pacer wakes at most this often. Waking for every request cost the generator's
/// CPU (shared with Redis in the benchmarks) ~13 µs a request in this VM: at 17,800/s it sat at
/// 95 % busy and the kernel's real-time throttling stopped it ~20 ms every second. Requests that
/// come due between two wake-ups leave together, up to this much late; that lateness counts in
/// their latencies like any other.
const PACE_TICK: Duration = Duration::from_micros(200);

/// Open loop: releases one permit when each request comes due (`start + i / rate`), from a
/// thread of its own, so that due times do not depend on the runtime's millisecond timer and
/// waiting costs no CPU. It sleeps at least [`PACE_TICK`], and `std::thread::sleep` overshoots
/// by tens of microseconds; whatever the requests leave late is counted in the latencies (they
/// start at the due time), never hidden.
pub fn pace(shared: &Shared) {
    let (Some(permits), Some(rate)) = (&shared.due, shared.config.rate) else {
        return;
    };
    let total = shared.config.requests.unwrap_or(u64::MAX);
    let mut released = 0u64;
    while released < total && !shared.stop.load(Relaxed) {
        let elapsed = shared.start.elapsed().as_secs_f64();
        // Requests 0..=floor(elapsed × rate) are due.
        let due_now = ((elapsed * rate) as u64 + 1).min(total);
        if due_now > released {
            let new = due_now - released;
            permits.add_permits(new as usize);
            released = due_now;
            // A permit goes at once to a worker waiting for one; those left over found every
            // connection busy (some may have been for a moment only, between two requests).
            let waiting = permits.available_permits() as u64;
            if waiting > 0 {
                shared.saturated.fetch_add(new.min(waiting), Relaxed);
                shared.most_waiting.fetch_max(waiting, Relaxed);
            }
            continue;
        }
        let next_due = shared.start + Duration::from_secs_f64(released as f64 / rate);
        std::thread::sleep(pause(next_due.saturating_duration_since(Instant::now())));
    }
    // Wake every worker: each claims an index past the end and stops.
    permits.add_permits(shared.config.connections);
}

/// How long the pacer sleeps when the next request is due in `wait`: at least [`PACE_TICK`],
/// at most 10 ms so that it notices a stop.
fn pause(wait: Duration) -> Duration {
    wait.clamp(PACE_TICK, Duration::from_millis(10))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pacer_sleeps_at_least_one_tick_and_at_most_10_ms() {
        // At 17,800/s the next request is due in ~56 µs: the pacer waits for a whole tick.
        assert_eq!(pause(Duration::from_micros(56)), PACE_TICK);
        assert_eq!(pause(Duration::ZERO), PACE_TICK);
        assert_eq!(pause(Duration::from_millis(3)), Duration::from_millis(3));
        assert_eq!(pause(Duration::from_secs(1)), Duration::from_millis(10));
    }
}
