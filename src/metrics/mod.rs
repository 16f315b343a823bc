//! Prometheus metrics. Every series is created once at start-up and kept as a handle, so that
//! recording on the request path is a few atomic additions: no lookup, lock or allocation.
//! The configuration's series (its signing key, when it was applied) change at start and on a
//! reload, off the request path, under a lock that a scrape takes too.
//!
//! Request outcomes are read in one place, [`Metrics::record`], from the [`OAuthError`] that an
//! answer was rendered from, so the `outcome` label is always the error code of the answer (RFC
//! 6749's, or RFC 6750's at user info: [`ErrorCode`], one series each), `ok`, or `other` for an
//! answer that is neither (a 404, …).

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use futures_util::FutureExt;
use prometheus::core::{Collector, MetricVec, MetricVecBuilder};
use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::oauth::OAuthError;
use crate::oauth::error::ErrorCode;
use crate::routes::paths::{
    HEALTHZ_PATH, INTROSPECT_PATH, JWKS_PATH, JWKS_WELL_KNOWN_PATH, METADATA_PATH, METRICS_PATH,
    READYZ_PATH, REVOKE_PATH, TOKEN_PATH, USERINFO_PATH,
};
use crate::store::StoreError;
use crate::tokens::Keyring;

/// An enum whose variants are a label's values, declared once: the variants, `ALL` (every
/// variant, each at the index `variant as usize`, the order the series are kept in) and
/// `label()` come from one list, so a new variant has its series and its label.
macro_rules! labelled {
    ($(#[$meta:meta])* pub enum $name:ident {
        $($(#[$doc:meta])* $variant:ident => $label:literal,)+
    }) => {
        $(#[$meta])*
        pub enum $name {
            $($(#[$doc])* $variant,)+
        }

        impl $name {
            const ALL: &'static [Self] = &[$(Self::$variant,)+];

            fn label(self) -> &'static str {
                match self {
                    $(Self::$variant => $label,)+
                }
            }

            /// One series of `vec` per value, in `ALL`'s order (indexed by `value as usize`).
            fn series<P: MetricVecBuilder>(vec: &MetricVec<P>) -> Vec<P::M> {
                Self::ALL.iter().map(|v| vec.with_label_values(&[v.label()])).collect()
            }
        }
    };
}

labelled! {
    /// What a request was for; anything else is `other`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Endpoint {
        Token => "token",
        Introspect => "introspect",
        Revoke => "revoke",
        UserInfo => "userinfo",
        Discovery => "discovery",
        Healthz => "healthz",
        Readyz => "readyz",
        Metrics => "metrics",
        Other => "other",
    }
}

impl Endpoint {
    pub fn of(path: &str) -> Self {
        match path {
            TOKEN_PATH => Self::Token,
            INTROSPECT_PATH => Self::Introspect,
            REVOKE_PATH => Self::Revoke,
            USERINFO_PATH => Self::UserInfo,
            JWKS_PATH | JWKS_WELL_KNOWN_PATH | METADATA_PATH => Self::Discovery,
            HEALTHZ_PATH => Self::Healthz,
            READYZ_PATH => Self::Readyz,
            METRICS_PATH => Self::Metrics,
            // An issuer's metadata under its path (RFC 8414 §3.1).
            _ if path
                .strip_prefix(METADATA_PATH)
                .is_some_and(|rest| rest.starts_with('/')) =>
            {
                Self::Discovery
            }
            _ => Self::Other,
        }
    }
}

/// The `outcome` label's values: `ok`, every error code the service answers with (each
/// [`ErrorCode`] at [`outcome_of`]`(code)`), and `other` (404, …).
const OUTCOMES: [&str; ErrorCode::ALL.len() + 2] = {
    let mut outcomes = ["ok"; ErrorCode::ALL.len() + 2];
    let mut i = 0;
    while i < ErrorCode::ALL.len() {
        outcomes[outcome_of(ErrorCode::ALL[i])] = ErrorCode::ALL[i].as_str();
        i += 1;
    }
    outcomes[OTHER] = "other";
    outcomes
};
/// The index of `ok` in [`OUTCOMES`].
const OK: usize = 0;
/// The index of `other` in [`OUTCOMES`].
const OTHER: usize = ErrorCode::ALL.len() + 1;

/// The index of `code` in [`OUTCOMES`]: no lookup, on every answer.
const fn outcome_of(code: ErrorCode) -> usize {
    code as usize + 1
}

labelled! {
    /// The Redis operations that are timed.
    #[derive(Debug, Clone, Copy)]
    pub enum RedisOp {
        /// The exchange script: take the code, write the token record.
        Exchange => "exchange",
        /// Delete a token record (revocation, clean-up).
        DeleteToken => "delete_token",
        /// Read a token record (introspection, user info).
        GetToken => "get_token",
        /// Readiness PING.
        Ping => "ping",
        /// Count a failed client authentication, or read the counters.
        Throttle => "throttle",
    }
}

labelled! {
    /// Why a token was revoked.
    #[derive(Debug, Clone, Copy)]
    pub enum Revocation {
        /// Its authorization code was presented again (RFC 6749 §4.1.2).
        Replay => "replay",
        /// A revocation request (the revocation endpoint counts here).
        Request => "request",
    }
}

labelled! {
    /// What a throttled request was throttled by.
    #[derive(Debug, Clone, Copy)]
    pub enum ThrottledBy {
        Address => "address",
        Client => "client",
    }
}

labelled! {
    /// What became of a reload (SIGHUP), as `live` decides it.
    #[derive(Debug, Clone, Copy)]
    pub enum Reload {
        /// Loaded and swapped in (sections that need a restart are warned of, not applied).
        Applied => "applied",
        /// Did not load (the log says why): the running configuration stays.
        Refused => "refused",
    }
}

/// Request latency buckets, seconds: an exchange is ~0.3 ms of CPU; the top ones show requests
/// held by Redis timeouts (1 s by default, up to 60) or waiting for an exchange slot (10 s).
const LATENCY_BUCKETS: [f64; 18] = [
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    10.0, 30.0, 60.0,
];
/// Redis round trips on loopback or a LAN take 0.1 to a few ms; the top buckets reach the
/// longest `redis.timeout_ms`, so that a p99 near any timeout shows as such.
const REDIS_BUCKETS: [f64; 19] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0, 30.0, 60.0,
];

/// The service's metrics, registered in their own registry (one per application, so that
/// servers in one test process do not share counters).
pub struct Metrics {
    registry: Registry,
    /// `[endpoint][outcome]`.
    requests: Vec<Vec<IntCounter>>,
    latency: Vec<Histogram>,
    redis_latency: Vec<Histogram>,
    redis_errors: Vec<IntCounter>,
    /// By operation; only the exchange and token deletion wait for replicas.
    ack_failures: Vec<Option<IntCounter>>,
    tokens_issued: IntCounter,
    replays: IntCounter,
    abandoned: IntCounter,
    revocations: Vec<IntCounter>,
    auth_failures: IntCounter,
    argon2_overloaded: IntCounter,
    throttled: Vec<IntCounter>,
    redis_connections: IntGauge,
    reloads: Vec<IntCounter>,
    /// The configuration in force: when it was applied, the key that signs (one series, its
    /// labels swapped on a change of signer) and how many keys verify.
    config_applied: IntGauge,
    signing_key: IntGaugeVec,
    verification_keys: IntGauge,
    /// Settings changed in the files that only a restart applies (0 at start).
    restart_pending: IntGauge,
    /// Held while those change and while a scrape gathers: a scrape sees one signing key,
    /// never none or two, and the series of one configuration.
    config_swap: Mutex<()>,
}

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
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
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
            config_swap: Mutex::new(()),
            registry,
        })
    }

    /// Counts an answer under its endpoint and outcome and observes its latency.
    pub fn record<B>(
        &self,
        endpoint: Endpoint,
        started: Instant,
        answer: &Result<ServiceResponse<B>, actix_web::Error>,
    ) {
        let (status, error) = match answer {
            Ok(response) => (response.status(), response.response().error()),
            Err(error) => (error.as_response_error().status_code(), Some(error)),
        };
        let outcome = match error.and_then(|e| e.as_error::<OAuthError>()) {
            Some(oauth) => outcome_of(oauth.error_code()),
            None if status.is_success() => OK,
            None if status.as_u16() == 503 => outcome_of(ErrorCode::TemporarilyUnavailable),
            None => OTHER,
        };
        let endpoint = endpoint as usize;
        self.requests[endpoint][outcome].inc();
        self.latency[endpoint].observe(started.elapsed().as_secs_f64());
    }

    /// Runs a Redis operation, observing its duration and counting its failure (and apart,
    /// a write that too few replicas acknowledged). The clock starts here: await it at once.
    ///
    /// A combinator, not an `async fn`: an `async fn` that awaits a future it was given holds
    /// it twice (as its argument and as what it awaits), which would double the exchange's
    /// Redis call in every request's future (6.7 KB measured).
    pub fn redis<'a, T, F>(
        &'a self,
        op: RedisOp,
        work: F,
    ) -> impl Future<Output = Result<T, StoreError>> + 'a
    where
        F: Future<Output = Result<T, StoreError>> + 'a,
    {
        let started = Instant::now();
        work.inspect(move |result| self.observe_redis(op, started, result))
    }

    fn observe_redis<T>(&self, op: RedisOp, started: Instant, result: &Result<T, StoreError>) {
        let op = op as usize;
        self.redis_latency[op].observe(started.elapsed().as_secs_f64());
        if let Err(e) = result {
            self.redis_errors[op].inc();
            if let (StoreError::Unacknowledged { .. }, Some(counter)) = (e, &self.ack_failures[op])
            {
                counter.inc();
            }
        }
    }

    pub fn token_issued(&self) {
        self.tokens_issued.inc();
    }

    pub fn replay_detected(&self) {
        self.replays.inc();
    }

    pub fn exchange_abandoned(&self) {
        self.abandoned.inc();
    }

    pub fn token_revoked(&self, reason: Revocation) {
        self.revocations[reason as usize].inc();
    }

    pub fn auth_failed(&self) {
        self.auth_failures.inc();
    }

    pub fn argon2_overloaded(&self) {
        self.argon2_overloaded.inc();
    }

    pub fn throttled(&self, by: ThrottledBy) {
        self.throttled[by as usize].inc();
    }

    /// The first configuration is in force: its keys, and the time.
    pub fn config_started(&self, keys: &Keyring) {
        let _swap = self.lock_config();
        self.config_in_force(keys);
    }

    /// A reload swapped in `keys` (and the rest of its configuration).
    pub fn reload_applied(&self, keys: &Keyring) {
        let _swap = self.lock_config();
        self.config_in_force(keys);
        self.reloads[Reload::Applied as usize].inc();
    }

    /// How many restart-only settings the last applied reload found changed.
    pub fn restart_pending(&self, changed: usize) {
        self.restart_pending
            .set(i64::try_from(changed).unwrap_or(i64::MAX));
    }

    /// A reload did not load; the running configuration stays.
    pub fn reload_refused(&self) {
        self.reloads[Reload::Refused as usize].inc();
    }

    /// Under `config_swap`: the signer's series replaces the last one.
    fn config_in_force(&self, keys: &Keyring) {
        let signer = keys.minter().key();
        self.signing_key.reset();
        self.signing_key
            .with_label_values(&[signer.kid(), signer.algorithm().name()])
            .set(1);
        self.verification_keys
            .set(i64::try_from(keys.verifier().len()).unwrap_or(i64::MAX));
        self.config_applied
            .set(i64::try_from(crate::clock::unix_now()).unwrap_or(i64::MAX));
    }

    fn lock_config(&self) -> std::sync::MutexGuard<'_, ()> {
        self.config_swap.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The Prometheus text exposition of every metric, with `connections` as the current
    /// number of open Redis connections.
    pub fn render(&self, connections: usize) -> Result<String, prometheus::Error> {
        self.redis_connections
            .set(i64::try_from(connections).unwrap_or(i64::MAX));
        let families = {
            let _swap = self.lock_config();
            self.registry.gather()
        };
        let mut text = Vec::new();
        TextEncoder::new().encode(&families, &mut text)?;
        String::from_utf8(text).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }
}

/// `wrap_fn` middleware: counts and times each answer ([`Metrics::record`]). Outside every
/// other but `conn_deadline::track`, so that the answers they give (a request refused after a
/// close) count too, and the time is the request's whole.
pub fn count_answers<S, B>(
    metrics: &Arc<Metrics>,
    request: ServiceRequest,
    service: &S,
) -> impl Future<Output = Result<ServiceResponse<B>, actix_web::Error>> + use<S, B>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
{
    // The path as routed (percent-decoded), not as sent: `access_toke%6e` is the token
    // endpoint, and its answers count under it.
    let path = request.match_info().as_str();
    let (endpoint, started) = (Endpoint::of(path), Instant::now());
    let metrics = Arc::clone(metrics);
    let answer = service.call(request);
    async move {
        let answer = answer.await;
        metrics.record(endpoint, started, &answer);
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_endpoint_and_operation_sits_at_its_own_index() {
        for (i, endpoint) in Endpoint::ALL.iter().enumerate() {
            assert_eq!(*endpoint as usize, i, "{endpoint:?}");
        }
        for (i, op) in RedisOp::ALL.iter().enumerate() {
            assert_eq!(*op as usize, i, "{op:?}");
        }
        for (i, reason) in Revocation::ALL.iter().enumerate() {
            assert_eq!(*reason as usize, i, "{reason:?}");
        }
        for (i, by) in ThrottledBy::ALL.iter().enumerate() {
            assert_eq!(*by as usize, i, "{by:?}");
        }
        for (i, result) in Reload::ALL.iter().enumerate() {
            assert_eq!(*result as usize, i, "{result:?}");
        }
        for (i, code) in ErrorCode::ALL.iter().enumerate() {
            assert_eq!(*code as usize, i, "{code:?}");
        }
    }

    #[test]
    fn the_redis_buckets_reach_the_longest_redis_timeout() {
        let longest = crate::config::MAX_REDIS_TIMEOUT_MS as f64 / 1000.0;
        assert!(REDIS_BUCKETS.last().is_some_and(|&top| top >= longest));
        assert!(REDIS_BUCKETS.is_sorted() && LATENCY_BUCKETS.is_sorted());
    }

    /// One error of each variant, from lines `pattern => sample`: the patterns make a match
    /// with no other arm, so a new variant does not compile until it has its line, and each
    /// sample is checked to match its pattern.
    macro_rules! one_of_each {
        ($($pattern:pat => $sample:expr,)+) => {{
            let _exhaustive = |error: &OAuthError| match error {
                $($pattern => (),)+
            };
            vec![$({
                let sample = $sample;
                assert!(matches!(sample, $pattern), "{sample:?} is no {}", stringify!($pattern));
                sample
            },)+]
        }};
    }

    #[test]
    fn every_error_counts_under_its_own_code() {
        use OAuthError::*;
        let errors = one_of_each! {
            InvalidRequest(_) => OAuthError::invalid_request("x"),
            InvalidClient(_) => OAuthError::authentication_failed(),
            InvalidGrant(_) => OAuthError::invalid_grant("x"),
            UnauthorizedClient(_) => UnauthorizedClient("x".into()),
            UnsupportedGrantType => UnsupportedGrantType,
            InvalidScope(_) => InvalidScope("x".into()),
            BearerRequired => BearerRequired,
            MalformedBearer(_) => MalformedBearer("x".into()),
            InvalidToken => InvalidToken,
            InsufficientScope { .. } => InsufficientScope { scope: "x", description: "x".into() },
            Throttled { .. } => Throttled { retry_after_secs: 1 },
            PayloadTooLarge => PayloadTooLarge,
            BodyTimeout => BodyTimeout,
            MethodNotAllowed { .. } => MethodNotAllowed { allow: "GET" },
            NotFound => NotFound,
            Unavailable(_) => Unavailable(StoreError::Reply),
            Busy => Busy,
            Overloaded => Overloaded,
            Internal(_) => Internal("x".into()),
        };
        for error in &errors {
            let outcome = outcome_of(error.error_code());
            assert_eq!(OUTCOMES[outcome], error.code(), "{error:?}");
            assert!(outcome != OK && outcome != OTHER, "{error:?}");
        }
        // Each code is answered with, and has a series of its own.
        for code in ErrorCode::ALL {
            assert!(errors.iter().any(|e| e.error_code() == *code), "{code:?}");
        }
        let mut labels = OUTCOMES.to_vec();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), OUTCOMES.len(), "{OUTCOMES:?}");
    }

    #[test]
    fn an_unacknowledged_write_is_counted_under_its_operation() {
        use futures_util::FutureExt;
        let metrics = Metrics::new().unwrap();
        let unacknowledged = || async {
            Err::<(), _>(StoreError::Unacknowledged {
                wanted: 1,
                acked: 0,
                within_ms: 300,
            })
        };
        for op in [RedisOp::Exchange, RedisOp::Exchange, RedisOp::DeleteToken] {
            assert!(metrics.redis(op, unacknowledged()).now_or_never().is_some());
        }
        let _ = metrics
            .redis(RedisOp::Exchange, async { Err::<(), _>(StoreError::Reply) })
            .now_or_never();
        let text = metrics.render(0).unwrap();
        for line in [
            r#"sso_replica_ack_failures_total{operation="exchange"} 2"#,
            r#"sso_replica_ack_failures_total{operation="delete_token"} 1"#,
            r#"sso_redis_errors_total{operation="exchange"} 3"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
    }

    #[test]
    fn the_exposition_names_every_series() {
        let metrics = Metrics::new().unwrap();
        metrics.token_issued();
        metrics.throttled(ThrottledBy::Client);
        let text = metrics.render(3).unwrap();
        for line in [
            "sso_tokens_issued_total 1",
            r#"sso_throttled_requests_total{by="client"} 1"#,
            r#"sso_requests_total{endpoint="token",outcome="invalid_grant"} 0"#,
            r#"sso_tokens_revoked_total{reason="request"} 0"#,
            r#"sso_replica_ack_failures_total{operation="exchange"} 0"#,
            "sso_redis_connections 3",
            concat!(
                r#"sso_build_info{version=""#,
                env!("CARGO_PKG_VERSION"),
                r#""} 1"#
            ),
            "sso_argon2_overloaded_total 0",
            r#"sso_config_reloads_total{result="refused"} 0"#,
            r#"sso_redis_duration_seconds_bucket{operation="exchange",le="0.001"} 0"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
    }

    /// A keyring that signs with a new key of `kind` and also verifies `verify_only` more.
    fn keyring(kind: crate::tokens::KeyKind, verify_only: usize) -> Keyring {
        use crate::tokens::SigningKey;
        let key = |kind| SigningKey::from_pem(&SigningKey::generate_pem(kind).unwrap()).unwrap();
        let others = (0..verify_only)
            .map(|_| key(crate::tokens::KeyKind::Ed25519).verifying_key().clone())
            .collect();
        Keyring::new(key(kind), others, "JWT").unwrap()
    }

    /// The lines of `name`'s series in the exposition (its HELP and TYPE lines left out).
    fn series<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
        text.lines()
            .filter(|l| l.starts_with(&format!("{name} ")) || l.starts_with(&format!("{name}{{")))
            .collect()
    }

    /// The one `sso_signing_key_info` line expected for `keys`' signer, whose alg is `alg`.
    fn signer_line(alg: &str, keys: &Keyring) -> [String; 1] {
        let kid = keys.minter().key().kid();
        [format!(
            r#"sso_signing_key_info{{alg="{alg}",kid="{kid}"}} 1"#
        )]
    }

    #[test]
    fn a_reload_that_changes_the_signer_replaces_its_series() {
        use crate::tokens::KeyKind;
        let metrics = Metrics::new().unwrap();
        let text = metrics.render(0).unwrap();
        assert!(series(&text, "sso_signing_key_info").is_empty(), "{text}");

        let first = keyring(KeyKind::P256, 0);
        metrics.config_started(&first);
        let text = metrics.render(0).unwrap();
        assert_eq!(
            series(&text, "sso_signing_key_info"),
            signer_line("ES256", &first)
        );
        let started = series(&text, "sso_config_last_applied_timestamp_seconds");
        assert_eq!(started.len(), 1, "{text}");
        let stamp: u64 = started[0].rsplit(' ').next().unwrap().parse().unwrap();
        assert!(stamp.abs_diff(crate::clock::unix_now()) <= 1, "{stamp}");
        assert!(
            text.lines().any(|l| l == "sso_verification_keys 1"),
            "{text}"
        );

        let next = keyring(KeyKind::Ed25519, 1);
        metrics.reload_refused();
        metrics.reload_applied(&next);
        let text = metrics.render(0).unwrap();
        assert_eq!(
            series(&text, "sso_signing_key_info"),
            signer_line("EdDSA", &next),
            "the old signer's series stays"
        );
        for line in [
            r#"sso_config_reloads_total{result="applied"} 1"#,
            r#"sso_config_reloads_total{result="refused"} 1"#,
            "sso_verification_keys 2",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
    }

    #[test]
    fn each_path_is_counted_under_its_endpoint() {
        for (path, endpoint) in [
            (TOKEN_PATH, Endpoint::Token),
            (INTROSPECT_PATH, Endpoint::Introspect),
            (REVOKE_PATH, Endpoint::Revoke),
            (USERINFO_PATH, Endpoint::UserInfo),
            (JWKS_PATH, Endpoint::Discovery),
            (JWKS_WELL_KNOWN_PATH, Endpoint::Discovery),
            (METADATA_PATH, Endpoint::Discovery),
            (HEALTHZ_PATH, Endpoint::Healthz),
            (READYZ_PATH, Endpoint::Readyz),
            (METRICS_PATH, Endpoint::Metrics),
            // An issuer's metadata under its path, and Spring's trailing slash.
            (
                "/.well-known/oauth-authorization-server/identity",
                Endpoint::Discovery,
            ),
            (
                "/.well-known/oauth-authorization-server/",
                Endpoint::Discovery,
            ),
            // Not under the metadata path: only its name starts the same.
            (
                "/.well-known/oauth-authorization-serverless",
                Endpoint::Other,
            ),
            ("/identity/sso/oauth2/authorize", Endpoint::Other),
            ("/", Endpoint::Other),
        ] {
            assert_eq!(Endpoint::of(path), endpoint, "{path}");
        }
    }

    /// Counts `answer` under the token endpoint, and the `outcome` series that it went to.
    fn counted(answer: actix_web::HttpResponse) -> Vec<String> {
        let metrics = Metrics::new().unwrap();
        // Not `to_srv_response`, which rebuilds the answer without its error.
        let request = actix_web::test::TestRequest::default().to_http_request();
        let response = ServiceResponse::new(request, answer);
        metrics.record(Endpoint::Token, Instant::now(), &Ok(response));
        counted_in(&metrics)
    }

    /// The token endpoint's request series that are not 0, and its latency count.
    fn counted_in(metrics: &Metrics) -> Vec<String> {
        let text = metrics.render(0).unwrap();
        let mut lines: Vec<String> = series(&text, "sso_requests_total")
            .into_iter()
            .chain(series(&text, "sso_request_duration_seconds_count"))
            .filter(|l| !l.ends_with(" 0"))
            .map(str::to_owned)
            .collect();
        lines.sort();
        lines
    }

    fn token_outcome(outcome: &str) -> Vec<String> {
        vec![
            r#"sso_request_duration_seconds_count{endpoint="token"} 1"#.to_owned(),
            format!(r#"sso_requests_total{{endpoint="token",outcome="{outcome}"}} 1"#),
        ]
    }

    /// An answer rendered from an `OAuthError` counts under its code; any other under its status:
    /// a success is `ok`, a 503 (`/readyz`, a drain) `temporarily_unavailable`, the rest `other`.
    #[test]
    fn an_answer_counts_under_its_error_code_or_else_its_status() {
        use actix_web::HttpResponse;
        use actix_web::http::StatusCode;
        for (answer, outcome) in [
            (
                HttpResponse::from_error(OAuthError::invalid_grant("x")),
                "invalid_grant",
            ),
            (
                HttpResponse::from_error(OAuthError::Unavailable(StoreError::Reply)),
                "temporarily_unavailable",
            ),
            (HttpResponse::Ok().finish(), "ok"),
            (HttpResponse::NoContent().finish(), "ok"),
            (
                HttpResponse::ServiceUnavailable().finish(),
                "temporarily_unavailable",
            ),
            (HttpResponse::NotFound().finish(), "other"),
            (HttpResponse::new(StatusCode::BAD_GATEWAY), "other"),
        ] {
            let status = answer.status();
            assert_eq!(counted(answer), token_outcome(outcome), "{status}");
        }
    }

    /// A middleware's error, which actix renders after the count: its own code, or `other`.
    #[test]
    fn an_error_in_place_of_an_answer_counts_under_its_code() {
        for (error, outcome) in [
            (
                actix_web::Error::from(OAuthError::invalid_request("x")),
                "invalid_request",
            ),
            (
                actix_web::error::ErrorServiceUnavailable("x"),
                "temporarily_unavailable",
            ),
            (actix_web::error::ErrorNotFound("x"), "other"),
        ] {
            let metrics = Metrics::new().unwrap();
            let answer: Result<ServiceResponse, _> = Err(error);
            metrics.record(Endpoint::Token, Instant::now(), &answer);
            assert_eq!(counted_in(&metrics), token_outcome(outcome), "{outcome}");
        }
    }

    #[test]
    fn ok_comes_first_and_other_last() {
        assert_eq!((OUTCOMES[OK], OUTCOMES[OTHER]), ("ok", "other"));
        assert_eq!(OTHER, OUTCOMES.len() - 1);
    }
}
