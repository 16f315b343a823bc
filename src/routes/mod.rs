//! HTTP handlers: extract, call the core, render; the route table (`configure`), the paths
//! and each path's methods and bodies (`http`). The middleware around them is in
//! [`crate::middleware`].

pub mod discovery;
pub mod health;
pub mod http;
pub mod introspect;
pub mod metrics;
pub mod paths;
pub mod token;
pub mod userinfo;

use actix_web::http::header;
use actix_web::web::ServiceConfig;
use actix_web::{HttpRequest, guard};

use self::paths::*;
use crate::client_auth::{Caller, ClientAuth};
use crate::middleware::log_client;
use crate::oauth::{ClientCredentials, OAuthError};
use http::header_list;

/// The route table: each path with its methods and handler. `/metrics` only when it is served
/// on the main listener (`metrics.listen` empty).
pub(crate) fn configure(routes: &mut ServiceConfig, with_metrics: bool) {
    routes
        .service(http::post(TOKEN_PATH, token::access_token))
        .service(http::post(INTROSPECT_PATH, introspect::introspect))
        .service(http::post(REVOKE_PATH, introspect::revoke))
        .service(http::get_or_post(USERINFO_PATH, userinfo::user))
        .service(http::public_get(JWKS_PATH, discovery::jwks))
        .service(http::public_get(JWKS_WELL_KNOWN_PATH, discovery::jwks))
        .service(http::public_get(METADATA_PATH, discovery::metadata))
        .service(
            http::public_get(&format!("{METADATA_PATH}/"), discovery::metadata)
                .guard(guard::fn_guard(discovery::issuer_has_no_path)),
        )
        .service(
            http::public_get(&format!("{METADATA_PATH}/{{path:.+}}"), discovery::metadata)
                .guard(guard::fn_guard(discovery::names_the_issuer_path)),
        )
        .service(http::get(HEALTHZ_PATH, health::healthz))
        .service(http::get(READYZ_PATH, health::readyz))
        .default_service(http::not_found());
    if with_metrics {
        routes.service(http::get(METRICS_PATH, metrics::metrics));
    }
}

/// [`ClientAuth::authenticate`] with the request's source address, at the endpoint whose path
/// is `endpoint`; the access log names the client once it has passed.
pub(crate) async fn authenticate_request(
    request: &HttpRequest,
    auth: &ClientAuth,
    credentials: &ClientCredentials,
    endpoint: &'static str,
) -> Result<Caller, OAuthError> {
    let source = auth.source(
        request.peer_addr().map(|a| a.ip()),
        header_list(request, header::X_FORWARDED_FOR).as_deref(),
    );
    let caller = auth.authenticate(credentials, source, endpoint).await?;
    log_client(request, &caller.client().id);
    Ok(caller)
}
