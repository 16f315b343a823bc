//! Prometheus metrics. Every series is created once at start-up and kept as a handle, so that
//! recording on the request path is a few atomic additions: no lookup, lock or allocation.
//! The configuration's series (its signing key, when it was applied) change at start and on a
//! reload, off the request path, under a lock that a scrape takes too.
//!
//! Request outcomes are read in one place, [`Metrics::record`], from the [`OAuthError`] that an
//! answer was rendered from, so the `outcome` label is always the error code of the answer (RFC
//! 6749's, or RFC 6750's at user info: [`ErrorCode`], one series each), `ok`, or `other` for an
//! answer that is neither (a 404, …).

mod labels;
mod process;
mod series;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use futures_util::FutureExt;
use prometheus::{Encoder, Histogram, IntCounter, IntGauge, IntGaugeVec, Registry, TextEncoder};

use crate::oauth::OAuthError;
use crate::oauth::error::ErrorCode;
use crate::store::StoreError;
use crate::tokens::Keyring;

pub use self::labels::{Endpoint, RedisOp, Reload, Revocation, ThrottledBy};
use self::labels::{OK, OTHER, outcome_of};

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
    previous_secrets: IntCounter,
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
    /// 1 unless the last reload was refused: an alert on it lasts as long as the files that a
    /// start would refuse, where one on the refusals' count clears after its window.
    last_reload_successful: IntGauge,
    /// Held while those change and while a scrape gathers: a scrape sees one signing key,
    /// never none or two, and the series of one configuration.
    config_swap: Mutex<()>,
}

impl Metrics {
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
    pub fn time_redis<'a, T, F>(
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

    /// A client authenticated with one of its `previous_secrets`.
    pub fn previous_secret_used(&self) {
        self.previous_secrets.inc();
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
        self.last_reload_successful.set(1);
    }

    /// How many restart-only settings the last applied reload found changed.
    pub fn restart_pending(&self, changed: usize) {
        self.restart_pending
            .set(i64::try_from(changed).unwrap_or(i64::MAX));
    }

    /// A reload did not load; the running configuration stays.
    pub fn reload_refused(&self) {
        self.reloads[Reload::Refused as usize].inc();
        self.last_reload_successful.set(0);
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
/// close) count too, and the time is the request's whole (the order: [`crate::middleware`]).
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
#[path = "metrics_tests.rs"]
mod tests;
