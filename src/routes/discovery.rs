//! `GET /identity/sso/oauth2/jwks` (also `/.well-known/jwks.json`) and
//! `GET /.well-known/oauth-authorization-server`: documents rendered at load time, cacheable
//! for `discovery.max_age_secs`.

use actix_web::http::header::{self, CacheControl, CacheDirective};
use actix_web::{HttpResponse, web};

use crate::live::{Live, Snapshot};

pub async fn jwks(live: web::Data<Live>) -> HttpResponse {
    document(&live.load(), |snapshot| snapshot.keys.jwks())
}

pub async fn metadata(live: web::Data<Live>) -> HttpResponse {
    document(&live.load(), |snapshot| &snapshot.metadata)
}

fn document(snapshot: &Snapshot, body: impl Fn(&Snapshot) -> &str) -> HttpResponse {
    let max_age = u32::try_from(snapshot.discovery.max_age_secs).unwrap_or(u32::MAX);
    HttpResponse::Ok()
        .insert_header(CacheControl(vec![
            CacheDirective::Public,
            CacheDirective::MaxAge(max_age),
        ]))
        .content_type(header::ContentType::json())
        .body(body(snapshot).to_owned())
}
