//! The one list of the series: each one's name, help text, labels and buckets, registered
//! once at start-up ([`Metrics::new`]).

use std::sync::Mutex;

use prometheus::core::Collector;
use prometheus::{HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

use super::Metrics;
use super::labels::{Endpoint, OUTCOMES, RedisOp, Reload, Revocation, ThrottledBy};
use super::process::ProcessSeries;

/// Request latency buckets, seconds: an exchange is ~0.3 ms of CPU; the top ones show requests
/// held by Redis timeouts (1 s by default, up to 60) or waiting for an exchange slot (10 s).
pub(super) const LATENCY_BUCKETS: [f64; 18] = [
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    10.0, 30.0, 60.0,
];
/// Redis round trips on loopback or a LAN take 0.1 to a few ms; the top buckets reach the
/// longest `redis.timeout_ms`, so that a p99 near any timeout shows as such.
pub(super) const REDIS_BUCKETS: [f64; 19] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0, 30.0, 60.0,
];

/// `metric`, registered in `registry` (which keeps a handle to the same series).
fn registered<M: Collector + Clone + 'static>(
    registry: &Registry,
    metric: M,
) -> Result<M, prometheus::Error> {
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        // The standard `process_*` series (resident memory, open and most file descriptors,
        // CPU seconds, threads, start time), read from /proc at each scrape: what operators
        // alert on first, as for Hydra's and Keycloak's.
        registry.register(Box::new(ProcessSeries::for_self()))?;
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            registered(
                &registry,
                IntCounterVec::new(Opts::new(name, help), labels)?,
            )
        };
        let histogram_vec = |name: &str, help: &str, label: &str, buckets: &[f64]| {
            let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
            registered(&registry, prometheus::HistogramVec::new(opts, &[label])?)
        };
        let counter = |name: &str, help: &str| registered(&registry, IntCounter::new(name, help)?);
        let gauge = |name: &str, help: &str| registered(&registry, IntGauge::new(name, help)?);

        let requests = counter_vec(
            "sso_requests_total",
            "HTTP requests by endpoint and outcome (ok, the RFC 6749 or RFC 6750 error code, or \
             other)",
            &["endpoint", "outcome"],
        )?;
        let latency = histogram_vec(
            "sso_request_duration_seconds",
            "Time from request to response, by endpoint",
            "endpoint",
            &LATENCY_BUCKETS,
        )?;
        let redis_latency = histogram_vec(
            "sso_redis_duration_seconds",
            "Redis operations (round trip, connecting included), by operation",
            "operation",
            &REDIS_BUCKETS,
        )?;
        let redis_errors = counter_vec(
            "sso_redis_errors_total",
            "Redis operations that failed or timed out, by operation",
            &["operation"],
        )?;
        let ack_failures = counter_vec(
            "sso_replica_ack_failures_total",
            "Writes that fewer replicas acknowledged than redis.replica_acks asks, by operation \
             (answered 503; an exchange hands out no token)",
            &["operation"],
        )?;
        let revocations = counter_vec(
            "sso_tokens_revoked_total",
            "Token records deleted by revocation, by reason",
            &["reason"],
        )?;
        let throttled = counter_vec(
            "sso_throttled_requests_total",
            "Requests (token, introspection, revocation) answered 429 after too many failed client \
             authentications",
            &["by"],
        )?;
        let redis_connections = gauge(
            "sso_redis_connections",
            "Redis connections this process holds open (at most redis.pool_size, or with 0 one \
             per worker and one for the main thread, at least 8; twice that with \
             redis.replica_acks)",
        )?;
        let reloads = counter_vec(
            "sso_config_reloads_total",
            "Configuration reloads (SIGHUP), by result: applied, or refused (the files did \
             not load, the log says why; the running configuration stays)",
            &["result"],
        )?;
        // Which release each replica runs, for a rolling deploy; registered once, never changes.
        registered(
            &registry,
            IntGaugeVec::new(
                Opts::new(
                    "sso_build_info",
                    "The sso-token release this process runs; always 1",
                ),
                &["version"],
            )?,
        )?
        .with_label_values(&[env!("CARGO_PKG_VERSION")])
        .set(1);
        let signing_key = registered(
            &registry,
            IntGaugeVec::new(
                Opts::new(
                    "sso_signing_key_info",
                    "The key that signs tokens now: its kid (as in the JWKS) and alg; always 1",
                ),
                &["kid", "alg"],
            )?,
        )?;
        Ok(Self {
            requests: Endpoint::ALL
                .iter()
                .map(|e| {
                    OUTCOMES
                        .iter()
                        .map(|o| requests.with_label_values(&[e.label(), o]))
                        .collect()
                })
                .collect(),
            latency: Endpoint::series(&latency),
            redis_latency: RedisOp::series(&redis_latency),
            redis_errors: RedisOp::series(&redis_errors),
            ack_failures: RedisOp::ALL
                .iter()
                .map(|op| {
                    matches!(op, RedisOp::Exchange | RedisOp::DeleteToken)
                        .then(|| ack_failures.with_label_values(&[op.label()]))
                })
                .collect(),
            tokens_issued: counter("sso_tokens_issued_total", "Access tokens issued")?,
            replays: counter(
                "sso_code_replays_total",
                "Spent authorization codes presented again",
            )?,
            abandoned: counter(
                "sso_exchanges_abandoned_total",
                "Exchanges whose client closed its connection while Redis took the code: the \
                 code is spent, no token was delivered, and the token record was deleted",
            )?,
            revocations: Revocation::series(&revocations),
            auth_failures: counter(
                "sso_client_auth_failures_total",
                "Failed client authentications (unknown client, disabled client, wrong secret); \
                 credentials too malformed to look up are in sso_requests_total \
                 {outcome=\"invalid_client\"} only",
            )?,
            previous_secrets: counter(
                "sso_client_previous_secret_authentications_total",
                "Client authentications that passed with one of the client's previous_secrets: \
                 while it rises, an instance of some client still uses an old secret (the log \
                 names the client); a rotation's old secret may go once it stops on every replica",
            )?,
            argon2_overloaded: counter(
                "sso_argon2_overloaded_total",
                "Client authentications answered 503: their client id's Argon2 verification, or every Argon2 slot, stayed busy",
            )?,
            throttled: ThrottledBy::series(&throttled),
            redis_connections,
            reloads: Reload::series(&reloads),
            config_applied: gauge(
                "sso_config_last_applied_timestamp_seconds",
                "When the configuration in force was applied (start or reload), Unix seconds",
            )?,
            signing_key,
            verification_keys: gauge(
                "sso_verification_keys",
                "Keys whose tokens verify (published in the JWKS): the signer and \
                 token.verify_keys",
            )?,
            restart_pending: gauge(
                "sso_config_restart_pending",
                "Settings that the last reload found changed in the files but that take \
                 effect on restart only; 0 after a start",
            )?,
            last_reload_successful: {
                let successful = gauge(
                    "sso_config_last_reload_successful",
                    "1 unless the last reload (SIGHUP) was refused: 0 while the files on disk \
                     are ones the running configuration did not take, and a start would likely \
                     refuse",
                )?;
                successful.set(1);
                successful
            },
            config_swap: Mutex::new(()),
            registry,
        })
    }
}
