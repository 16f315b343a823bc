//! Probes for the load balancer: `/healthz` (the process answers) and `/readyz` (Redis too, and
//! not stopping).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use actix_web::{HttpResponse, web};
use tokio::sync::watch;

use crate::metrics::{Metrics, RedisOp};
use crate::shutdown::Draining;
use crate::store::Store;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(r#"{"status":"ok"}"#)
}

/// Whether Redis answers, asked by one `PING` at a time: `/readyz` is public and unthrottled,
/// and a flood of it would otherwise be a flood of `PING`s on the lanes that exchanges use.
/// A probe that comes while a `PING` is out takes that one's answer (or its timeout); one
/// that finds none out sends one. Either way it waits at most `redis.timeout_ms`. The `PING`
/// runs in a task of its own, so that a probe whose caller hangs up does not cancel it for the
/// others.
pub struct Readiness {
    store: Store,
    metrics: Arc<Metrics>,
    timeout: Duration,
    /// The last `PING`'s answer: `None` while it is out.
    last: Mutex<Option<watch::Receiver<Option<bool>>>>,
}

impl Readiness {
    pub fn new(store: Store, metrics: Arc<Metrics>, timeout: Duration) -> Self {
        Self {
            store,
            metrics,
            timeout,
            last: Mutex::new(None),
        }
    }

    async fn redis_answers(&self) -> bool {
        // Every operation is refused during a Sentinel failover: say so at once, rather than
        // take the answer of a `PING` sent before it began, which may wait behind a call the
        // outgoing master holds for up to the whole timeout.
        if self.store.failover_under_way() {
            return false;
        }
        let mut answer = self.ping_out_or_sent();
        match tokio::time::timeout(self.timeout, answer.wait_for(Option::is_some)).await {
            Ok(Ok(answered)) => *answered == Some(true),
            // Timed out, or the task ended without an answer.
            _ => false,
        }
    }

    /// The answer of the `PING` that is out, or of a new one.
    fn ping_out_or_sent(&self) -> watch::Receiver<Option<bool>> {
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        // Out: not answered, and its task still there to answer.
        if let Some(out) = last.as_ref()
            && out.borrow().is_none()
            && out.has_changed().is_ok()
        {
            return out.clone();
        }
        let (answer, answered) = watch::channel(None);
        let (store, metrics) = (self.store.clone(), Arc::clone(&self.metrics));
        tokio::spawn(async move {
            let ok = match metrics.time_redis(RedisOp::Ping, store.ping()).await {
                Ok(()) => true,
                Err(e) => {
                    // One line a second: a load balancer probes every replica often, and more
                    // so while Redis is down.
                    crate::warn_every_second!("readiness: {e}");
                    false
                }
            };
            answer.send_replace(Some(ok));
        });
        *last = Some(answered.clone());
        answered
    }
}

pub async fn readyz(
    readiness: web::Data<Readiness>,
    draining: web::Data<Draining>,
) -> HttpResponse {
    // Asked again after the wait: a stop that began meanwhile decides, not the PING.
    let ready = !draining.is_on() && readiness.redis_answers().await;
    if draining.is_on() {
        HttpResponse::ServiceUnavailable()
            .content_type("application/json")
            .body(r#"{"status":"shutting down"}"#)
    } else if ready {
        HttpResponse::Ok()
            .content_type("application/json")
            .body(r#"{"status":"ready"}"#)
    } else {
        HttpResponse::ServiceUnavailable()
            .content_type("application/json")
            .body(r#"{"status":"redis unavailable"}"#)
    }
}
