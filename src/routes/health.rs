//! Probes for the load balancer: `/healthz` (the process answers) and `/readyz` (Redis too, and
//! not stopping).

use std::time::Instant;

use actix_web::{HttpResponse, web};

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
/// Probes that arrive while a `PING` is out wait for it and take the answer of the next one
/// (every answer comes from a `PING` sent after the probe arrived).
pub struct Readiness {
    store: Store,
    /// When the last `PING` was sent, and whether it was answered.
    last: tokio::sync::Mutex<Option<(Instant, bool)>>,
}

impl Readiness {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            last: tokio::sync::Mutex::new(None),
        }
    }

    async fn redis_answers(&self, metrics: &Metrics) -> bool {
        let arrived = Instant::now();
        let mut last = self.last.lock().await;
        if let Some((sent, answered)) = *last
            && sent >= arrived
        {
            return answered;
        }
        let sent = Instant::now();
        let answered = match metrics.redis(RedisOp::Ping, self.store.ping()).await {
            Ok(()) => true,
            Err(e) => {
                // One line a second: a load balancer probes every replica often, and more so
                // while Redis is down.
                crate::warn_every_second!("readiness: {e}");
                false
            }
        };
        *last = Some((sent, answered));
        answered
    }
}

pub async fn readyz(
    readiness: web::Data<Readiness>,
    metrics: web::Data<Metrics>,
    draining: web::Data<Draining>,
) -> HttpResponse {
    if draining.is_on() {
        return HttpResponse::ServiceUnavailable()
            .content_type("application/json")
            .body(r#"{"status":"shutting down"}"#);
    }
    if readiness.redis_answers(&metrics).await {
        HttpResponse::Ok()
            .content_type("application/json")
            .body(r#"{"status":"ready"}"#)
    } else {
        HttpResponse::ServiceUnavailable()
            .content_type("application/json")
            .body(r#"{"status":"redis unavailable"}"#)
    }
}
