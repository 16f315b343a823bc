//! Probes for the load balancer: `/healthz` (the process answers) and `/readyz` (Redis too, and
//! not stopping).

use actix_web::{HttpResponse, web};

use crate::metrics::{Metrics, RedisOp};
use crate::shutdown::Draining;
use crate::store::Store;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(r#"{"status":"ok"}"#)
}

pub async fn readyz(
    store: web::Data<Store>,
    metrics: web::Data<Metrics>,
    draining: web::Data<Draining>,
) -> HttpResponse {
    if draining.is_on() {
        return HttpResponse::ServiceUnavailable()
            .content_type("application/json")
            .body(r#"{"status":"shutting down"}"#);
    }
    match metrics.redis(RedisOp::Ping, store.ping()).await {
        Ok(()) => HttpResponse::Ok()
            .content_type("application/json")
            .body(r#"{"status":"ready"}"#),
        Err(e) => {
            // One line a second: a load balancer probes every replica often, and more so
            // while Redis is down.
            crate::warn_every_second!("readiness: {e}");
            HttpResponse::ServiceUnavailable()
                .content_type("application/json")
                .body(r#"{"status":"redis unavailable"}"#)
        }
    }
}
