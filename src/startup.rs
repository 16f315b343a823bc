//! Builds the application from settings: keys, clients, Redis pool, routes, listener.
//! Tests call [`Application::build`] with port 0 and read the port back.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::{Server, ServiceResponse};
use actix_web::middleware::{Condition, Logger};
use actix_web::{App, HttpMessage, HttpServer, web};

use crate::config::Settings;
use crate::exchange::Exchange;
use crate::inspect::Inspector;
use crate::live::{self, Live, LoadError, SettingsSource};
use crate::routes::token::BodyLimit;
use crate::routes::{LoggedClient, discovery, health, introspect, token, userinfo};
use crate::store::{Store, StoreError};

pub const TOKEN_PATH: &str = "/identity/sso/oauth2/access_token";
pub const INTROSPECT_PATH: &str = "/identity/sso/oauth2/introspect";
pub const REVOKE_PATH: &str = "/identity/sso/oauth2/revoke";
pub const USERINFO_PATH: &str = "/identity/sso/oauth2/user";
pub const JWKS_PATH: &str = "/identity/sso/oauth2/jwks";
pub const JWKS_WELL_KNOWN_PATH: &str = "/.well-known/jwks.json";
pub const METADATA_PATH: &str = "/.well-known/oauth-authorization-server";
/// The authorize service's path, for the metadata when `discovery.authorization_endpoint` is
/// not set (it is not served here).
pub const AUTHORIZE_PATH: &str = "/identity/sso/oauth2/authorize";

/// Why the service could not start; each message names the setting or file at fault.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("redis.url: {0}")]
    Store(#[from] StoreError),
    #[error("server.listen `{address}`: {source}")]
    Listen {
        address: String,
        source: std::io::Error,
    },
}

/// A bound, not yet running, server.
pub struct Application {
    port: u16,
    server: Server,
    live: Arc<Live>,
}

impl Application {
    /// A reload reads the same files again (the paths in `settings`).
    pub fn build(settings: Settings) -> Result<Self, StartError> {
        let again = settings.clone();
        Self::build_reloadable(settings, Box::new(move || Ok(again.clone())))
    }

    /// A reload (SIGHUP, [`Live::reload`]) takes its settings from `source`.
    pub fn build_reloadable(
        settings: Settings,
        source: SettingsSource,
    ) -> Result<Self, StartError> {
        let live = Arc::new(Live::new(&settings, source)?);
        let store = Store::new(&settings.redis)?;
        let exchange = web::Data::new(Exchange {
            live: Arc::clone(&live),
            store: store.clone(),
        });
        let inspector = web::Data::new(Inspector {
            live: Arc::clone(&live),
            store,
        });
        let live_data = web::Data::from(Arc::clone(&live));
        let listen_error = |source| StartError::Listen {
            address: settings.server.listen.clone(),
            source,
        };
        let listener = TcpListener::bind(&settings.server.listen).map_err(listen_error)?;
        let port = listener.local_addr().map_err(listen_error)?.port();
        let limit = web::Data::new(BodyLimit(settings.server.body_limit));
        // The Logger renders part of each line up front, whatever the level: skip it when its
        // lines would be dropped anyway (RUST_LOG=warn, as in the benchmarks).
        let logging = log::log_enabled!(target: ACCESS_LOG_TARGET, log::Level::Info);
        let mut server = HttpServer::new(move || {
            App::new()
                .wrap(Condition::new(logging, access_log()))
                .app_data(exchange.clone())
                .app_data(inspector.clone())
                .app_data(live_data.clone())
                .app_data(limit.clone())
                .service(
                    web::resource(TOKEN_PATH)
                        .route(web::post().to(token::access_token))
                        .default_service(web::to(token::method_not_allowed)),
                )
                .service(
                    web::resource(INTROSPECT_PATH)
                        .route(web::post().to(introspect::introspect))
                        .default_service(web::to(introspect::post_only)),
                )
                .service(
                    web::resource(REVOKE_PATH)
                        .route(web::post().to(introspect::revoke))
                        .default_service(web::to(introspect::post_only)),
                )
                .service(
                    web::resource(USERINFO_PATH)
                        .route(web::get().to(userinfo::user))
                        .default_service(web::to(userinfo::get_only)),
                )
                .route(JWKS_PATH, web::get().to(discovery::jwks))
                .route(JWKS_WELL_KNOWN_PATH, web::get().to(discovery::jwks))
                .route(METADATA_PATH, web::get().to(discovery::metadata))
                .route("/healthz", web::get().to(health::healthz))
                .route("/readyz", web::get().to(health::readyz))
        })
        .shutdown_timeout(settings.server.shutdown_timeout_secs)
        .listen(listener)
        .map_err(listen_error)?;
        if settings.server.workers > 0 {
            server = server.workers(settings.server.workers);
        }
        Ok(Self {
            port,
            server: server.run(),
            live,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The reloadable configuration: [`Live::reload`] does what SIGHUP does.
    pub fn live(&self) -> Arc<Live> {
        Arc::clone(&self.live)
    }

    /// Runs until SIGTERM or SIGINT, then lets in-flight requests finish; reloads clients and
    /// keys on SIGHUP meanwhile.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let reloader = tokio::spawn(live::reload_on_sighup(self.live));
        let stopped = self.server.await;
        reloader.abort();
        stopped
    }
}

/// The log target of access lines: `RUST_LOG=sso_token::access=info` turns them on alone.
const ACCESS_LOG_TARGET: &str = "sso_token::access";

/// Method, path without query, status, latency and client id; never bodies, headers or queries.
fn access_log() -> Logger {
    Logger::new(r#"%a "%{method}xi %U" %s %Dms client=%{client}xo"#)
        .log_target(ACCESS_LOG_TARGET)
        .custom_request_replace("method", |req| req.method().to_string())
        .custom_response_replace("client", logged_client)
}

fn logged_client(response: &ServiceResponse) -> String {
    response
        .request()
        .extensions()
        .get::<LoggedClient>()
        .map_or_else(|| "-".to_owned(), |c| c.0.clone())
}
