//! Which target each request goes to: round robin over those whose last health check passed,
//! as a load balancer sends them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Duration;

use super::Shared;
use crate::http::answers_200;
use crate::plan::Template;

/// A load balancer's active health check: each target is probed every `every`; one whose
/// last probe did not answer 200 gets no requests, as a balancer takes a replica out while it
/// stops (`server.shutdown_delay_ms`) or is down.
pub struct HealthCheck {
    pub every: Duration,
    pub path: &'static str,
}

/// The target of request `i`: round-robin over the healthy targets (over all when none is).
/// The flags are read once (a bit each, for the first 64 targets), so that one flipping
/// meanwhile cannot send the request elsewhere.
pub fn target_of(i: u64, healthy: &[AtomicBool]) -> usize {
    let up = (healthy.iter().take(64).enumerate())
        .filter(|(_, h)| h.load(Relaxed))
        .fold(0u64, |bits, (t, _)| bits | 1 << t);
    if up == 0 {
        return (i % healthy.len() as u64) as usize;
    }
    let mut left = up;
    for _ in 0..i % u64::from(up.count_ones()) {
        left &= left - 1;
    }
    left.trailing_zeros() as usize
}

/// Probes every target each `every`, all at once, and records whether each answered 200
/// within `every` (a balancer's timeout is below its interval), so that one slow target does
/// not hold back what is known of the others.
pub async fn check_health(shared: Arc<Shared>) {
    let Some(check) = &shared.config.health_check else {
        return;
    };
    let probes: Vec<Vec<u8>> = (shared.config.targets.iter())
        .map(|target| {
            let mut request = Vec::new();
            Template::get(target, check.path).write("", &mut request);
            request
        })
        .collect();
    let mut interval = tokio::time::interval(check.every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let checks = (shared.config.targets.iter())
            .zip(&probes)
            .zip(&shared.healthy)
            .map(|((target, probe), healthy)| async move {
                healthy.store(answers_200(target, probe, check.every).await, Relaxed);
            });
        futures_util::future::join_all(checks).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_go_round_robin_over_the_healthy_targets_or_over_all_when_none_is() {
        let health = |flags: &[bool]| -> Vec<AtomicBool> {
            flags.iter().map(|&f| AtomicBool::new(f)).collect()
        };
        let targets = |healthy: &[AtomicBool]| -> Vec<usize> {
            (0..6).map(|i| target_of(i, healthy)).collect()
        };
        assert_eq!(targets(&health(&[true, true, true])), [0, 1, 2, 0, 1, 2]);
        assert_eq!(targets(&health(&[true, false, true])), [0, 2, 0, 2, 0, 2]);
        assert_eq!(targets(&health(&[false, false])), [0, 1, 0, 1, 0, 1]);
        assert_eq!(targets(&health(&[false, true, false])), [1; 6]);
    }
}
