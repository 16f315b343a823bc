//! `GET /metrics`: the Prometheus text exposition.

use actix_web::{HttpResponse, web};

use crate::exchange::Exchange;

pub async fn metrics(exchange: web::Data<Exchange>) -> HttpResponse {
    match exchange.metrics.render(exchange.store.connections()) {
        Ok(text) => HttpResponse::Ok()
            .content_type(prometheus::TEXT_FORMAT)
            .body(text),
        Err(e) => {
            log::error!("metrics: {e}");
            HttpResponse::InternalServerError().finish()
        }
    }
}
