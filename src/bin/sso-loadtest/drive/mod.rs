//! Drives the endpoint: C keep-alive connections, closed loop (each sends its next request when
//! the last is answered) or open loop (request `i` is due at `start + i / rate`, whoever sends
//! it, and its latency counts from that due time, so a slow server cannot hide its queue:
//! no coordinated omission). Requests go round-robin over the targets, skipping those that
//! fail their health checks when there are checks ([`HealthCheck`]).

mod health;
mod pace;
mod schedule;
mod worker;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::ProgressBar;
use tokio::sync::Semaphore;

use crate::http::{Conn, HttpError, Target};
use crate::plan::{Template, TokenPlan};
use crate::tally::Tally;
use health::check_health;
use pace::pace;
use worker::worker;

pub use health::HealthCheck;
pub use schedule::codes_for;

/// What the requests are, and so how their answers are checked: token exchanges of seeded
/// codes, or `GET /healthz`. One loop drives both, so the two costs compare like for like.
pub enum Work {
    Token {
        plan: Arc<TokenPlan>,
        codes: Arc<Vec<String>>,
        /// Every K-th request re-sends the previous request's code (0: never).
        replay_every: u64,
        keep_tokens: bool,
        /// Every code was sent before (`--recheck`): `invalid_grant` is the expected answer.
        recheck: bool,
    },
    Healthz {
        templates: Vec<Template>,
    },
}

/// How to drive, whatever the [`Work`]: targets, connections, when to stop, open or closed
/// loop. Apart from the work, so that the measured run, its warm-up and a recheck share one
/// driver.
pub struct Config {
    pub targets: Vec<Target>,
    pub connections: usize,
    /// Stop after this many requests…
    pub requests: Option<u64>,
    /// …or once this much time has passed.
    pub duration: Option<Duration>,
    /// Open loop: requests per second.
    pub rate: Option<f64>,
    pub timeout: Duration,
    /// Keep every answered request's due time and latency ([`Outcome::trace`]).
    pub trace: bool,
    pub health_check: Option<HealthCheck>,
}

impl Config {
    /// `requests` requests closed loop, no trace, no health checks: a warm-up or a recheck, whose
    /// figures are not the run's.
    pub fn closed_loop(
        targets: &[Target],
        connections: usize,
        requests: u64,
        timeout: Duration,
    ) -> Self {
        Config {
            targets: targets.to_vec(),
            connections,
            requests: Some(requests),
            duration: None,
            rate: None,
            timeout,
            trace: false,
            health_check: None,
        }
    }
}

/// What a run saw, for the summary: the merged tally and what only the driver knows (its
/// length, the codes it used, the pacer's CPU, how the connections kept up).
pub struct Outcome {
    pub tally: Tally,
    pub elapsed: Duration,
    /// CPU time of the open loop's pacer thread, which has ended: /proc no longer lists it.
    pub pacer_cpu_ns: u64,
    /// Codes `0..codes_sent` were sent at least once; the rest are unused.
    pub codes_sent: usize,
    pub exhausted: bool,
    /// Open loop: how the connections kept up with the timetable ([`pace()`]).
    pub saturation: Saturation,
    /// With [`Config::trace`]: (due time, latency) of every answered request in microseconds,
    /// the due time counted from the run's start, in due order.
    pub trace: Vec<(u64, u64)>,
}

/// Open loop: requests that came due while every connection was busy with an earlier one.
/// They waited for a connection to come free, so the load was not open while they did (the
/// server saw at most C requests at once), and that wait is in their send lag and latency.
#[derive(Debug, Default, Clone, Copy)]
pub struct Saturation {
    pub requests: u64,
    /// The most requests that were due and waiting for a connection at once.
    pub most_waiting: u64,
}

struct Shared {
    config: Config,
    work: Work,
    start: Instant,
    /// Open loop: one permit per request that has come due (see [`pace()`]).
    due: Option<Semaphore>,
    stop: AtomicBool,
    next: AtomicU64,
    done: AtomicU64,
    codes_sent: AtomicUsize,
    exhausted: AtomicBool,
    /// Filled in by the pacer ([`Saturation`]).
    saturated: AtomicU64,
    most_waiting: AtomicU64,
    /// Per target: whether its last health check passed (always, without checks).
    healthy: Vec<AtomicBool>,
}

/// Runs `work` as `config` says and returns what it saw. The connections are opened before the
/// clock starts, so connecting is no part of the figures.
pub async fn drive(config: Config, work: Work, progress: ProgressBar) -> anyhow::Result<Outcome> {
    let mut pools = Vec::with_capacity(config.connections);
    for _ in 0..config.connections {
        let mut conns = Vec::with_capacity(config.targets.len());
        for target in &config.targets {
            let conn = tokio::time::timeout(config.timeout, Conn::connect(target.addr))
                .await
                .map_err(|_| HttpError::Timeout)
                .and_then(|c| c);
            match conn {
                Ok(conn) => conns.push(Some((conn, Instant::now()))),
                // A balancer starts with targets down too: the health checks keep requests
                // away from them, and a request that does go connects again.
                Err(_) if config.health_check.is_some() => conns.push(None),
                Err(e) => return Err(e).with_context(|| format!("connecting to {}", target.url)),
            }
        }
        pools.push(conns);
    }
    // Each tally holds two histograms of ~200 KiB: made before the clock starts, not in the
    // first request of each connection (512 connections took 76 ms, all of it counted as lag).
    let tallies: Vec<Tally> = pools
        .iter()
        .map(|_| Tally::new().traced(config.trace))
        .collect();
    let paced = config.rate.is_some();
    let targets = config.targets.len();
    let shared = Arc::new(Shared {
        due: paced.then(|| Semaphore::new(0)),
        config,
        work,
        start: Instant::now(),
        stop: AtomicBool::new(false),
        next: AtomicU64::new(0),
        done: AtomicU64::new(0),
        codes_sent: AtomicUsize::new(0),
        exhausted: AtomicBool::new(false),
        saturated: AtomicU64::new(0),
        most_waiting: AtomicU64::new(0),
        healthy: (0..targets).map(|_| AtomicBool::new(true)).collect(),
    });
    let checker = (shared.config.health_check.as_ref())
        .map(|_| tokio::spawn(check_health(Arc::clone(&shared))));
    let workers: Vec<_> = pools
        .into_iter()
        .zip(tallies)
        .map(|(conns, tally)| tokio::spawn(worker(Arc::clone(&shared), conns, tally)))
        .collect();
    let ticker = tokio::spawn(tick(Arc::clone(&shared), progress.clone()));
    let pacer = paced.then(|| {
        let shared = Arc::clone(&shared);
        std::thread::spawn(move || {
            pace(&shared);
            crate::usage::this_thread_cpu_ns()
        })
    });
    let mut finished = Vec::with_capacity(workers.len());
    for worker in workers {
        finished.push(worker.await.context("a load worker panicked")?);
    }
    // When the last worker ended, before the merging (two histograms a connection).
    let elapsed = shared.start.elapsed();
    let mut tally = Tally::new().traced(shared.config.trace);
    for worker in finished {
        tally.merge(worker);
    }
    shared.stop.store(true, Relaxed);
    ticker.abort();
    if let Some(checker) = checker {
        checker.abort();
    }
    let pacer_cpu_ns = match pacer {
        Some(pacer) => (pacer.join()).map_err(|_| anyhow::anyhow!("the pacer thread panicked"))?,
        None => 0,
    };
    progress.set_position(shared.done.load(Relaxed));
    progress.finish_and_clear();
    let mut trace: Vec<(u64, u64)> = std::mem::take(&mut tally.trace)
        .into_iter()
        .flatten()
        .map(|(due, latency)| (micros(due.saturating_duration_since(shared.start)), latency))
        .collect();
    trace.sort_unstable();
    Ok(Outcome {
        tally,
        elapsed,
        pacer_cpu_ns,
        codes_sent: shared.codes_sent.load(Relaxed),
        exhausted: shared.exhausted.load(Relaxed),
        saturation: Saturation {
            requests: shared.saturated.load(Relaxed),
            most_waiting: shared.most_waiting.load(Relaxed),
        },
        trace,
    })
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

async fn tick(shared: Arc<Shared>, progress: ProgressBar) {
    let mut interval = tokio::time::interval(Duration::from_millis(200));
    loop {
        interval.tick().await;
        let done = shared.done.load(Relaxed);
        if shared.config.requests.is_some() {
            progress.set_position(done);
        } else {
            progress.set_position(shared.start.elapsed().as_millis() as u64);
            progress.set_message(format!("{done} requests"));
        }
    }
}
