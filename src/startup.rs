//! Builds the application from settings: keys, clients, Redis pool, routes, listener.
//! Tests call [`Application::build`] with port 0 and read the port back.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::{Server, ServiceResponse};
use actix_web::middleware::Logger;
use actix_web::{App, HttpMessage, HttpServer, web};

use crate::clients::{Registry, RegistryError};
use crate::config::Settings;
use crate::exchange::Exchange;
use crate::routes::token::BodyLimit;
use crate::routes::{LoggedClient, health, token};
use crate::store::{Store, StoreError};
use crate::tokens::{KeyError, Minter, SigningKey};

pub const TOKEN_PATH: &str = "/identity/sso/oauth2/access_token";

/// Why the service could not start; each message names the setting or file at fault.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Clients(#[from] RegistryError),
    #[error("token.signing_key `{path}`: {source}")]
    KeyFile {
        path: String,
        source: std::io::Error,
    },
    #[error("token.signing_key `{path}`: {source}")]
    Key { path: String, source: KeyError },
    #[error("token.typ: {0}")]
    Header(#[from] serde_json::Error),
    #[error("redis: {0}")]
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
}

impl Application {
    pub fn build(settings: Settings) -> Result<Self, StartError> {
        let exchange = web::Data::new(build_exchange(&settings)?);
        let listen_error = |source| StartError::Listen {
            address: settings.server.listen.clone(),
            source,
        };
        let listener = TcpListener::bind(&settings.server.listen).map_err(listen_error)?;
        let port = listener.local_addr().map_err(listen_error)?.port();
        let limit = web::Data::new(BodyLimit(settings.server.body_limit));
        let mut server = HttpServer::new(move || {
            App::new()
                .wrap(access_log())
                .app_data(exchange.clone())
                .app_data(limit.clone())
                .service(
                    web::resource(TOKEN_PATH)
                        .route(web::post().to(token::access_token))
                        .default_service(web::to(token::method_not_allowed)),
                )
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
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Runs until SIGTERM or SIGINT, then lets in-flight requests finish.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

/// Loads the signing key and the client registry and prepares the Redis pool.
pub fn build_exchange(settings: &Settings) -> Result<Exchange, StartError> {
    let key_path = settings.token.signing_key.display().to_string();
    let pem = std::fs::read_to_string(&settings.token.signing_key).map_err(|source| {
        StartError::KeyFile {
            path: key_path.clone(),
            source,
        }
    })?;
    let key = SigningKey::from_pem(&pem).map_err(|source| StartError::Key {
        path: key_path,
        source,
    })?;
    log::info!("signing with {:?} key {}", key.algorithm(), key.kid());
    let registry = Registry::load(&settings.clients.file)?;
    log::info!("{} client(s) registered", registry.len());
    Ok(Exchange {
        registry: Arc::new(registry),
        store: Store::new(&settings.redis)?,
        minter: Minter::new(key, &settings.token.typ)?,
        settings: settings.token.clone(),
    })
}

/// Method, path without query, status, latency and client id; never bodies, headers or queries.
fn access_log() -> Logger {
    Logger::new(r#"%a "%{method}xi %U" %s %Dms client=%{client}xo"#)
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
