//! Builds the application from settings: keys, clients, Redis pool, routes, listener.
//! Tests call [`Application::build`] with port 0 and read the port back.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Instant;

use actix_web::dev::{Server, Service, ServiceResponse};
use actix_web::middleware::Logger;
use actix_web::{App, HttpMessage, HttpServer, web};

use crate::clients::{Registry, RegistryError};
use crate::config::Settings;
use crate::exchange::Exchange;
use crate::metrics::{Endpoint, Metrics};
use crate::routes::token::BodyLimit;
use crate::routes::{LoggedClient, health, metrics, token};
use crate::store::{Store, StoreError};
use crate::throttle::Throttle;
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
    #[error("redis.url: {0}")]
    Store(#[from] StoreError),
    #[error("{setting} `{address}`: {source}")]
    Listen {
        setting: &'static str,
        address: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error(transparent)]
    Throttle(#[from] crate::throttle::BadProxy),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// A bound, not yet running, server (and its metrics listener, when it has its own).
pub struct Application {
    port: u16,
    server: Server,
    metrics: Option<(u16, Server)>,
}

impl Application {
    pub fn build(settings: Settings) -> Result<Self, StartError> {
        let exchange = web::Data::new(build_exchange(&settings)?);
        let tls = settings
            .server
            .tls
            .as_ref()
            .map(crate::tls::server_config)
            .transpose()?;
        let (listener, port) = bind("server.listen", &settings.server.listen)?;
        let limit = web::Data::new(BodyLimit(settings.server.body_limit));
        let metrics_here = settings.metrics.enabled && settings.metrics.listen.is_empty();
        let app_exchange = exchange.clone();
        let mut server = HttpServer::new(move || {
            let recorder = Arc::clone(&app_exchange.metrics);
            let app = App::new()
                .wrap(access_log())
                .wrap_fn(move |request, service| {
                    let (endpoint, started) = (Endpoint::of(request.path()), Instant::now());
                    let recorder = Arc::clone(&recorder);
                    let answer = service.call(request);
                    async move {
                        let answer = answer.await;
                        recorder.record(endpoint, started, &answer);
                        answer
                    }
                })
                .app_data(app_exchange.clone())
                .app_data(limit.clone())
                .service(
                    web::resource(TOKEN_PATH)
                        .route(web::post().to(token::access_token))
                        .default_service(web::to(token::method_not_allowed)),
                )
                .route("/healthz", web::get().to(health::healthz))
                .route("/readyz", web::get().to(health::readyz));
            if metrics_here {
                app.route("/metrics", web::get().to(metrics::metrics))
            } else {
                app
            }
        })
        .shutdown_timeout(settings.server.shutdown_timeout_secs);
        server = match tls {
            Some(config) => server.listen_rustls_0_23(listener, config),
            None => server.listen(listener),
        }
        .map_err(listen_error("server.listen", &settings.server.listen))?;
        if settings.server.workers > 0 {
            server = server.workers(settings.server.workers);
        }
        let metrics = if settings.metrics.enabled && !metrics_here {
            Some(metrics_server(&settings.metrics.listen, exchange)?)
        } else {
            None
        };
        Ok(Self {
            port,
            server: server.run(),
            metrics,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port of the separate metrics listener, when `metrics.listen` is set.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics.as_ref().map(|(port, _)| *port)
    }

    /// Runs until SIGTERM or SIGINT, then lets in-flight requests finish.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        match self.metrics {
            Some((_, metrics)) => tokio::try_join!(self.server, metrics).map(|_| ()),
            None => self.server.await,
        }
    }
}

/// `/metrics` alone, on its own address and one worker: scrapes stay off the public port.
fn metrics_server(
    address: &str,
    exchange: web::Data<Exchange>,
) -> Result<(u16, Server), StartError> {
    let (listener, port) = bind("metrics.listen", address)?;
    let server = HttpServer::new(move || {
        App::new()
            .app_data(exchange.clone())
            .route("/metrics", web::get().to(metrics::metrics))
    })
    .workers(1)
    .shutdown_timeout(1)
    .listen(listener)
    .map_err(listen_error("metrics.listen", address))?;
    Ok((port, server.run()))
}

fn bind(setting: &'static str, address: &str) -> Result<(TcpListener, u16), StartError> {
    let listener = TcpListener::bind(address).map_err(listen_error(setting, address))?;
    let port = listener
        .local_addr()
        .map_err(listen_error(setting, address))?
        .port();
    Ok((listener, port))
}

fn listen_error(setting: &'static str, address: &str) -> impl Fn(std::io::Error) -> StartError {
    let address = address.to_owned();
    move |source| StartError::Listen {
        setting,
        address: address.clone(),
        source,
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
    let store = Store::new(&settings.redis)?;
    let metrics = Arc::new(Metrics::new()?);
    let throttle = Throttle::new(&settings.throttle, store.clone(), Arc::clone(&metrics))?;
    Ok(Exchange {
        registry: Arc::new(registry),
        store,
        minter: Minter::new(key, &settings.token.typ)?,
        settings: settings.token.clone(),
        metrics,
        throttle,
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
