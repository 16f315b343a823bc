//! Builds the application from settings: keys, clients, Redis pool, listeners, servers (the
//! public one's app in `public_app.rs`).
//! Tests call [`Application::build`] with port 0 and read the port back.

mod public_app;
mod redis_report;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{App, web};
use tokio::signal::unix::Signal;

use self::public_app::{PublicApp, public_server};
use self::redis_report::report_redis_at_start;
use crate::config::{RedisSettings, ServerSettings, Settings};
use crate::conn_deadline;
use crate::live::{self, Live, LoadError, SettingsSource};
use crate::metrics::Metrics;
use crate::middleware::{after_close, unread_body};
use crate::routes::http;
use crate::routes::paths::METRICS_PATH;
use crate::shutdown::{self, Draining, StopPlan, StopSignals};
use crate::slots::Slots;
use crate::store::{Store, StoreError};
use crate::tls::Certificate;

/// Why the service could not start; each message names the setting or file at fault.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("redis: {0}")]
    Store(#[from] StoreError),
    #[error("{setting} `{address}`: {source}")]
    Listen {
        setting: &'static str,
        address: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// SIGTERM, SIGINT or SIGHUP cannot be handled (see `shutdown::StopSignals::listen`).
    #[error("signals: {0}")]
    Signals(std::io::Error),
}

/// Settings that start but may not do what was meant: said once, not refused.
fn warn_of_doubts(settings: &Settings) {
    for doubt in settings.doubts() {
        log::warn!("{doubt}");
    }
}

/// The public listener's rustls configuration, and the certificate it serves (which a reload
/// reads again): both read from `server.tls`, neither without it.
fn read_tls(
    server: &ServerSettings,
) -> Result<(Option<rustls::ServerConfig>, Option<Arc<Certificate>>), StartError> {
    let read = server
        .tls
        .as_ref()
        .map(crate::tls::server_config)
        .transpose()?;
    Ok(read.unzip())
}

/// The Redis connector (Redis is asked at the first call), said in the log, and its target
/// (`RedisSettings::target`) for the warning when Redis does not answer at start.
fn open_store(redis: &RedisSettings) -> Result<(Store, String), StartError> {
    let store = Store::new(redis)?;
    let target = redis.target();
    log::info!(
        "Redis: {target}; {} connections, timeout {} ms, key prefix `{}`",
        store.lane_count(),
        redis.timeout_ms,
        redis.key_prefix
    );
    Ok((store, target))
}

/// `sso-token check-config`: what [`Application::build`] reads and refuses (the TLS pair, the
/// keys, the clients file) and warns of, without binding a port or asking Redis; returns the
/// start's summary. The settings themselves were checked as they loaded.
pub fn check(settings: &Settings) -> Result<String, StartError> {
    read_tls(&settings.server)?;
    // Builds the connector only: Redis is asked at the first call.
    Store::new(&settings.redis)?;
    warn_of_doubts(settings);
    Ok(live::check(settings)?)
}

/// A bound, not yet running, server (and its metrics listener, when it has its own).
pub struct Application {
    port: u16,
    server: Server,
    live: Arc<Live>,
    metrics: Option<(u16, Server)>,
    /// Installed by `build`, so that a SIGHUP before `run_until_stopped` is a reload too.
    hangups: Signal,
    /// Installed by `build` too: a SIGTERM that comes early is a graceful stop as well.
    stops: StopSignals,
    stop_plan: StopPlan,
    /// Its failover watchers start with the server (Sentinel mode).
    store: Store,
    /// `RedisSettings::target`, for the warning when Redis does not answer at start.
    redis_target: String,
}

impl Application {
    /// A reload reads the same files again (the paths in `settings`).
    pub fn build(settings: Settings) -> Result<Self, StartError> {
        let again = settings.clone();
        let hangups = live::listen_for_sighup().map_err(StartError::Signals)?;
        Self::build_reloadable(settings, Box::new(move || Ok(again.clone())), hangups)
    }

    /// A reload (SIGHUP, [`Live::reload`]) takes its settings from `source`; `hangups` is
    /// [`live::listen_for_sighup`], called as early as the caller can: from then on a SIGHUP is
    /// a reload, not the end of the process.
    pub fn build_reloadable(
        settings: Settings,
        source: SettingsSource,
        hangups: Signal,
    ) -> Result<Self, StartError> {
        let metrics = Arc::new(Metrics::new()?);
        let (tls, certificate) = read_tls(&settings.server)?;
        let live = Arc::new(Live::new(
            &settings,
            source,
            Arc::clone(&metrics),
            certificate,
        )?);
        let (store, redis_target) = open_store(&settings.redis)?;
        let workers = settings.server.worker_threads();
        warn_of_doubts(&settings);
        let slots = Arc::new(Slots::new(
            settings.server.exchange_slots * workers,
            Duration::from_millis(settings.server.slot_wait_ms),
            store.is_cluster(),
        ));
        let draining = Draining::default();
        let app = PublicApp::new(&settings, &live, &store, &metrics, &slots, &draining);
        let stops = StopSignals::listen().map_err(StartError::Signals)?;
        let (listener, port) = bind("server.listen", &settings.server.listen)?;
        let options = public_options(&settings.server, workers);
        let keep_alive = options.keep_alive;
        let server = public_server(listener, tls, options, app)
            .map_err(listen_error("server.listen", &settings.server.listen))?;
        let metrics = match settings.metrics.own_listener() {
            Some(address) => Some(metrics_server(address, keep_alive, metrics, store.clone())?),
            None => None,
        };
        Ok(Self {
            port,
            server,
            live,
            metrics,
            hangups,
            stops,
            stop_plan: StopPlan {
                draining,
                slots,
                delay: Duration::from_millis(settings.server.shutdown_delay_ms),
                grace_secs: settings.server.shutdown_timeout_secs,
            },
            store,
            redis_target,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port of the separate metrics listener, when `metrics.listen` is set.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics.as_ref().map(|(port, _)| *port)
    }

    /// The reloadable configuration: [`Live::reload`] does what SIGHUP does.
    pub fn live(&self) -> Arc<Live> {
        Arc::clone(&self.live)
    }

    /// Runs until SIGTERM or SIGINT, then lets in-flight requests finish; reloads clients and
    /// keys on SIGHUP meanwhile.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.store.watch_failovers();
        tokio::spawn(report_redis_at_start(self.store.clone(), self.redis_target));
        let reloader = tokio::spawn(live::reload_on_sighup(self.live, self.hangups));
        let metrics = self.metrics.as_ref().map(|(_, metrics)| metrics.handle());
        let (draining, grace_secs) = (self.stop_plan.draining.clone(), self.stop_plan.grace_secs);
        let stop =
            shutdown::stop_on_signal(self.stops, self.server.handle(), metrics, self.stop_plan);
        tokio::spawn(stop);
        let stopped = match self.metrics {
            Some((_, metrics)) => tokio::try_join!(self.server, metrics).map(|_| ()),
            None => self.server.await,
        };
        // Here, not in the stop's task: the process ends as soon as the servers have stopped.
        draining.warn_of_the_unanswered(grace_secs);
        reloader.abort();
        stopped
    }
}

/// The public listener's; the metrics listener takes its keep-alive.
fn public_options(server: &ServerSettings, workers: usize) -> crate::http_server::Options {
    crate::http_server::Options {
        // Idle connections outlive the balancer's (0: `KeepAlive::Disabled`). A graceful
        // stop does not wait for them: actix closes the idle ones at once (see `shutdown`).
        keep_alive: Duration::from_secs(server.keep_alive_secs),
        // The count the lanes (`redis.pool_size` 0) and exchange slots were sized for.
        workers,
        max_connections: server.connections_per_worker(crate::open_files::soft_limit()),
        shutdown_timeout_secs: server.shutdown_timeout_secs,
        on_connect: after_close::mark_connection,
    }
}

/// `/metrics` alone, on its own address and one worker: scrapes stay off the public port. The
/// same server as the public one, head deadline included, with room for a few scrapers only:
/// with actix's defaults (25,600 connections, no deadline after a first answer) a peer that
/// half-sent requests there held its connections for ever, and enough of them took every file
/// descriptor of the process, the public listener's too.
fn metrics_server(
    address: &str,
    keep_alive: Duration,
    metrics: Arc<Metrics>,
    store: Store,
) -> Result<(u16, Server), StartError> {
    let (listener, port) = bind("metrics.listen", address)?;
    let options = crate::http_server::Options {
        keep_alive,
        workers: 1,
        max_connections: METRICS_CONNECTIONS,
        shutdown_timeout_secs: 1,
        on_connect: |_, _| {},
    };
    let (metrics, store) = (web::Data::from(metrics), web::Data::new(store));
    let app = move || {
        App::new()
            .wrap_fn(unread_body::hold_chunked_body)
            .app_data(metrics.clone())
            .app_data(store.clone())
            .service(http::get(METRICS_PATH, crate::routes::metrics::metrics))
            .wrap_fn(conn_deadline::track)
    };
    let server = crate::http_server::serve(listener, None, options, app)
        .map_err(listen_error("metrics.listen", address))?;
    Ok((port, server))
}

/// Connections the metrics listener serves at once; more wait in the listen backlog.
const METRICS_CONNECTIONS: usize = 64;

fn bind(setting: &'static str, address: &str) -> Result<(TcpListener, u16), StartError> {
    let listener = crate::listen::bind(address).map_err(listen_error(setting, address))?;
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
