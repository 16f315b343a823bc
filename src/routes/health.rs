//! Probes for the load balancer: `/healthz` (the process answers) and `/readyz` (Redis too).

use actix_web::{HttpResponse, web};

use crate::exchange::Exchange;
use crate::metrics::RedisOp;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(r#"{"status":"ok"}"#)
}

pub async fn readyz(exchange: web::Data<Exchange>) -> HttpResponse {
    let ping = exchange.store.ping();
    match exchange.metrics.redis(RedisOp::Ping, ping).await {
        Ok(()) => HttpResponse::Ok()
            .content_type("application/json")
            .body(r#"{"status":"ready"}"#),
        Err(e) => {
            log::warn!("readiness: {e}");
            HttpResponse::ServiceUnavailable()
                .content_type("application/json")
                .body(r#"{"status":"redis unavailable"}"#)
        }
    }
}
