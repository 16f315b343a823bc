//! `GET /metrics`: the Prometheus text exposition.

use actix_web::{HttpResponse, web};

use crate::metrics::Metrics;
use crate::store::Store;

/// `store` only for its count of open connections: the metrics listener serves this without
/// the token exchange.
pub async fn metrics(metrics: web::Data<Metrics>, store: web::Data<Store>) -> HttpResponse {
    match metrics.render(store.connections()) {
        Ok(text) => HttpResponse::Ok()
            .content_type(prometheus::TEXT_FORMAT)
            .body(text),
        Err(e) => {
            log::error!("metrics: {e}");
            HttpResponse::InternalServerError().finish()
        }
    }
}
