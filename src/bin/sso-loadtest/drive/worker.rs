//! One connection's loop ([`worker`]): claim the next request, send it on its target's
//! connection ([`send_one`]) and check its answer into the connection's own tally, which
//! [`super::drive`] merges once all have ended.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use sso_token::clock::unix_now;

use super::health::target_of;
use super::schedule::{code_of, lone_first_of_pair, second_of_pair};
use super::{Shared, Work};
use crate::http::{Conn, HttpError};
use crate::tally::{Answer, Tally};
use crate::verify::Checker;

/// A connection idle this long is replaced before use (servers close idle keep-alive ones).
const MAX_IDLE: Duration = Duration::from_secs(2);

type Pool = Vec<Option<(Conn, Instant)>>;

pub async fn worker(shared: Arc<Shared>, mut conns: Pool, mut tally: Tally) -> Tally {
    let config = &shared.config;
    let mut request = Vec::with_capacity(1024);
    let mut checker = match &shared.work {
        Work::Token { plan, .. } => Some(Checker::new(&plan.expect)),
        Work::Healthz { .. } => None,
    };
    let deadline = config.duration.map(|d| shared.start + d);
    let interval = config.rate.map(|rate| 1e9 / rate);
    let replay_every = match &shared.work {
        Work::Token { replay_every, .. } => *replay_every,
        Work::Healthz { .. } => 0,
    };
    loop {
        if let Some(permits) = &shared.due {
            match permits.acquire().await {
                Ok(permit) => permit.forget(),
                Err(_) => break,
            }
        }
        let now = Instant::now();
        let due_of = |i: u64| match interval {
            Some(ns) => shared.start + Duration::from_nanos((i as f64 * ns) as u64),
            None => now,
        };
        // Past the deadline only a pair's second is taken, and only right after its first:
        // decided as the index is claimed, so that a claimed request is a sent one and a
        // pair is never cut in two, nor its second sent without its first.
        let claimed = shared.next.fetch_update(Relaxed, Relaxed, |i| {
            let past = deadline.is_some_and(|d| due_of(i) >= d);
            (!past || second_of_pair(i, replay_every)).then_some(i + 1)
        });
        let Ok(i) = claimed else { break };
        if config.requests.is_some_and(|n| i >= n) {
            break;
        }
        let due = due_of(i);
        let t = target_of(i, &shared.healthy);
        let (code_index, paired) = match &shared.work {
            Work::Token {
                plan,
                codes,
                recheck,
                ..
            } => {
                let (index, paired) = code_of(i, replay_every);
                let paired = paired && !lone_first_of_pair(i, replay_every, config.requests);
                let paired = paired || *recheck;
                let Some(code) = codes.get(index) else {
                    shared.exhausted.store(true, Relaxed);
                    break;
                };
                shared.codes_sent.fetch_max(index + 1, Relaxed);
                plan.templates[t].write(code, &mut request);
                (index, paired)
            }
            Work::Healthz { templates } => {
                templates[t].write("", &mut request);
                (0, false)
            }
        };
        tally.sent += 1;
        if interval.is_some() {
            let lag = due.elapsed().as_micros() as u64;
            let _ = tally.lag.record(lag.max(1)); // grows: nothing to fail
        }
        let close = send_one(&shared, &mut conns[t], t, &request, |response, sent| {
            let answer = Answer {
                response,
                due,
                code_index,
                paired,
                sent,
            };
            tally.record_response(&shared.work, checker.as_mut(), &answer)
        })
        .await;
        match close {
            Err(error @ HttpError::UnreadSuccess(_)) => tally.violation(error.to_string()),
            Err(error) => tally.error(error.to_string()),
            Ok(()) => {}
        }
        shared.done.fetch_add(1, Relaxed);
    }
    tally
}

/// Sends on the target's connection (reconnecting when needed) and hands the response to
/// `handle` with the Unix second it was sent. A failed connection is dropped.
async fn send_one(
    shared: &Shared,
    slot: &mut Option<(Conn, Instant)>,
    t: usize,
    request: &[u8],
    handle: impl FnOnce(&crate::http::Response<'_>, u64),
) -> Result<(), HttpError> {
    let timeout = shared.config.timeout;
    if slot
        .as_ref()
        .is_some_and(|(conn, used)| used.elapsed() > MAX_IDLE || conn.peer_closed())
    {
        *slot = None;
    }
    if slot.is_none() {
        let addr = shared.config.targets[t].addr;
        let conn = tokio::time::timeout(timeout, Conn::connect(addr))
            .await
            .map_err(|_| HttpError::Timeout)??;
        *slot = Some((conn, Instant::now()));
    }
    let Some((conn, used)) = slot.as_mut() else {
        return Err(HttpError::Closed);
    };
    let sent = unix_now();
    let close = match tokio::time::timeout(timeout, conn.send(request)).await {
        Ok(Ok(response)) => {
            handle(&response, sent);
            Ok(response.close)
        }
        Ok(Err(e)) => Err(e),
        Err(_) => Err(HttpError::Timeout),
    };
    *used = Instant::now();
    match close {
        Ok(false) => Ok(()),
        Ok(true) => {
            *slot = None;
            Ok(())
        }
        Err(e) => {
            *slot = None;
            Err(e)
        }
    }
}
