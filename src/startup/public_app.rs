//! The public listener's app: the data its handlers and middleware share, built once for all
//! workers, and the server that builds each worker's `App` around it.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::Condition;
use actix_web::{App, web};

use crate::client_assertion::Assertions;
use crate::client_auth::ClientAuth;
use crate::config::Settings;
use crate::conn_deadline;
use crate::exchange::Exchange;
use crate::inspect::Inspector;
use crate::live::Live;
use crate::metrics::{self, Metrics};
use crate::middleware::{access_log, access_log_on, after_close, unread_body};
use crate::routes::health::Readiness;
use crate::routes::http::BodyLimit;
use crate::shutdown::{self, Draining};
use crate::slots::Slots;
use crate::store::Store;
use crate::throttle::{Network, Throttle};

/// What every worker's public app is made of: the handlers' data, shared by all workers, and
/// what the middleware needs.
pub(super) struct PublicApp {
    exchange: web::Data<Exchange>,
    auth: web::Data<ClientAuth>,
    inspector: web::Data<Inspector>,
    live: web::Data<Live>,
    limit: web::Data<BodyLimit>,
    readiness: web::Data<Readiness>,
    /// For the middleware; `draining_data`, the same, for `/readyz`.
    draining: Draining,
    draining_data: web::Data<Draining>,
    /// For `/metrics` (when served here); `metrics` is the recorder's too.
    metrics: web::Data<Metrics>,
    store: web::Data<Store>,
    proxies: Arc<[Network]>,
    logging: bool,
    keep_alive_off: bool,
    metrics_here: bool,
}

impl PublicApp {
    /// `live`, `store`, `metrics`, `slots` and `draining` are the process's, shared with the
    /// reload, the stop and the metrics listener; the throttle is the app's alone.
    pub(super) fn new(
        settings: &Settings,
        live: &Arc<Live>,
        store: &Store,
        metrics: &Arc<Metrics>,
        slots: &Arc<Slots>,
        draining: &Draining,
    ) -> Self {
        let throttle = Throttle::new(&settings.throttle, store.clone(), Arc::clone(metrics));
        Self {
            proxies: throttle.trusted_proxies().into(),
            auth: web::Data::new(ClientAuth::new(
                Arc::clone(live),
                throttle,
                Arc::clone(metrics),
                Assertions {
                    store: store.clone(),
                    slots: Arc::clone(slots),
                    metrics: Arc::clone(metrics),
                },
            )),
            exchange: web::Data::new(Exchange {
                store: store.clone(),
                metrics: Arc::clone(metrics),
                slots: Arc::clone(slots),
            }),
            // For /readyz, which pings the store and times the ping.
            readiness: web::Data::new(Readiness::new(
                store.clone(),
                Arc::clone(metrics),
                settings.redis.timeout(),
            )),
            inspector: web::Data::new(Inspector {
                live: Arc::clone(live),
                store: store.clone(),
                metrics: Arc::clone(metrics),
                slots: Arc::clone(slots),
            }),
            live: web::Data::from(Arc::clone(live)),
            limit: web::Data::new(BodyLimit {
                bytes: settings.server.body_limit,
                timeout: Duration::from_millis(settings.server.body_timeout_ms),
            }),
            draining: draining.clone(),
            draining_data: web::Data::new(draining.clone()),
            metrics: web::Data::from(Arc::clone(metrics)),
            store: web::Data::new(store.clone()),
            // The Logger renders part of each line up front, whatever the level: skip it when
            // its lines would be dropped anyway (RUST_LOG=warn, as in the benchmarks).
            logging: access_log_on(),
            keep_alive_off: settings.server.keep_alive_secs == 0,
            metrics_here: settings.metrics.enabled && settings.metrics.own_listener().is_none(),
        }
    }
}

/// The public listener's server. Its middleware is wrapped last outermost, in the order
/// [`crate::middleware`] lists and explains.
pub(super) fn public_server(
    listener: TcpListener,
    tls: Option<rustls::ServerConfig>,
    options: crate::http_server::Options,
    app: PublicApp,
) -> std::io::Result<Server> {
    let factory = move || {
        let recorder = Arc::clone(&app.metrics);
        let draining = app.draining.clone();
        App::new()
            .wrap_fn(move |request, service| {
                shutdown::close_when_draining(&draining, request, service)
            })
            .wrap_fn(move |request, service| {
                after_close::refuse_after_close(app.keep_alive_off, request, service)
            })
            .wrap_fn(unread_body::hold_chunked_body)
            .wrap(Condition::new(
                app.logging,
                access_log(Arc::clone(&app.proxies)),
            ))
            .wrap_fn(move |request, service| metrics::count_answers(&recorder, request, service))
            .app_data(app.exchange.clone())
            .app_data(app.auth.clone())
            .app_data(app.inspector.clone())
            .app_data(app.live.clone())
            .app_data(app.limit.clone())
            .app_data(app.readiness.clone())
            .app_data(app.draining_data.clone())
            .app_data(app.metrics.clone())
            .app_data(app.store.clone())
            .configure(|routes| crate::routes::configure(routes, app.metrics_here))
            // Outermost: it sees every request start and every answer.
            .wrap_fn(conn_deadline::track)
    };
    crate::http_server::serve(listener, tls, options, factory)
}
