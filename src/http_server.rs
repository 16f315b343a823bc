//! The public listener's server, built as actix-web's `HttpServer::listen` and
//! `listen_rustls_0_23` build theirs (actix-server, actix-http's HTTP/1 service, actix-tls'
//! rustls acceptor), with one difference: each connection's stream is wrapped in
//! [`Guarded`](crate::conn_deadline::Guarded) before actix-http reads it, which `HttpServer`
//! has no hook for (see `conn_deadline`).

use std::fmt;
use std::net::TcpListener;
use std::time::Duration;

use actix_http::body::MessageBody;
use actix_http::error::DispatchError;
use actix_http::{HttpService, KeepAlive, Protocol, Request, Response};
use actix_server::{Server, ServerBuilder};
use actix_service::{IntoServiceFactory, ServiceFactory, ServiceFactoryExt as _, fn_service};
use actix_service::{Service, map_config};
use actix_tls::accept::rustls_0_23::{Acceptor, TlsStream};
use actix_web::dev::{AppConfig, Extensions};
use rustls::ServerConfig;
use tokio::net::TcpStream;

use crate::conn_deadline::{self, Guarded};

/// actix-web's defaults, which `HttpServer` applied.
const CLIENT_REQUEST_TIMEOUT: Duration = conn_deadline::HEAD_TIMEOUT;
const CLIENT_DISCONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// What `HttpServer`'s builder methods set.
pub struct Options {
    /// 0: `KeepAlive::Disabled`.
    pub keep_alive: Duration,
    pub workers: usize,
    /// Per worker.
    pub max_connections: usize,
    pub shutdown_timeout_secs: u64,
    /// `on_connect`, for a connection's data besides the deadline's.
    pub on_connect: fn(&dyn std::any::Any, &mut Extensions),
}

/// Binds nothing: serves `listener` (with TLS when `tls` is given) with the app `factory`
/// makes on each worker. actix-server's own signals are off (see `shutdown`).
pub fn serve<F, I, S, B>(
    listener: TcpListener,
    tls: Option<ServerConfig>,
    options: Options,
    factory: F,
) -> std::io::Result<Server>
where
    F: Fn() -> I + Send + Clone + 'static,
    I: IntoServiceFactory<S, Request>,
    S: ServiceFactory<Request, Config = AppConfig> + 'static,
    S::Error: Into<actix_web::Error> + 'static,
    S::InitError: fmt::Debug,
    S::Response: Into<Response<B>> + 'static,
    <S::Service as Service<Request>>::Future: 'static,
    S::Service: 'static,
    B: MessageBody + 'static,
{
    let builder = ServerBuilder::default()
        .workers(options.workers)
        .max_concurrent_connections(options.max_connections)
        .shutdown_timeout(options.shutdown_timeout_secs)
        .disable_signals();
    let graceful = builder.graceful_shutdown_signal();
    let keep_alive = options.keep_alive;
    let on_connect = options.on_connect;
    let local = listener.local_addr()?;
    let name = format!("sso-token-{local}");
    // One worker's HTTP service and app (a macro: the stream's type differs with TLS).
    macro_rules! http {
        ($secure:expr) => {{
            let graceful = graceful.clone();
            let app = factory()
                .into_factory()
                .map_err(|e| e.into().error_response());
            let mut http = HttpService::build()
                .graceful_shutdown_signal(move || {
                    let signal = graceful.clone();
                    async move { signal.notified().await }
                })
                .keep_alive(if keep_alive.is_zero() {
                    KeepAlive::Disabled
                } else {
                    KeepAlive::Timeout(keep_alive)
                })
                .client_request_timeout(CLIENT_REQUEST_TIMEOUT)
                .client_disconnect_timeout(CLIENT_DISCONNECT_TIMEOUT)
                // A FIN may be a half-close after which the client reads its answer (`nc`):
                // answered. It may also be a client that gave up (its own timeout): the two
                // look the same until the answer is written (README, "The exchange").
                .h1_allow_half_closed(true);
            if !$secure {
                http = http.local_addr(local);
            }
            (http, app)
        }};
    }
    let builder = match tls {
        None => builder.listen(name, listener, move || {
            let (http, app) = http!(false);
            fn_service(move |io: TcpStream| async move {
                // Answers are small and complete: send them at once, never hold a tail back
                // (Nagle) until the client's delayed ACK. (The builder's `tcp_nodelay` acts
                // only in its own `tcp()` and `rustls()` pipelines, not in this one.)
                let _ = io.set_nodelay(true);
                let peer = io.peer_addr().ok();
                Ok::<_, DispatchError>((Guarded::new(io, keep_alive), Protocol::Http1, peer))
            })
            .and_then(
                http.on_connect_ext(connect_hook::<TcpStream>(on_connect))
                    .finish(map_config(app, |_| AppConfig::default())),
            )
        }),
        Some(config) => {
            // actix-tls lets a worker have 256 handshakes under way and accepts nothing more
            // meanwhile: 256 connections that never send a ClientHello (each held for the 3 s
            // handshake timeout) would make every TLS client wait, whatever `max_connections`
            // says.
            // Handshakes share their worker's one thread, so more at once cost memory, not CPU.
            actix_tls::accept::max_concurrent_tls_connect(options.max_connections);
            builder.listen(name, listener, move || {
                let (http, app) = http!(true);
                // actix-tls' default handshake timeout (3 s), as `HttpServer`'s.
                Acceptor::new(config.clone())
                    .map_err(|_| ())
                    .and_then(move |io: TlsStream<TcpStream>| async move {
                        let tcp = io.get_ref().0;
                        let _ = tcp.set_nodelay(true); // as for plain TCP
                        let peer = tcp.peer_addr().ok();
                        Ok::<_, ()>((Guarded::new(io, keep_alive), Protocol::Http1, peer))
                    })
                    .and_then(
                        http.on_connect_ext(connect_hook::<TlsStream<TcpStream>>(on_connect))
                            .finish(map_config(app, |_| AppConfig::default()))
                            .map_err(|_| ()),
                    )
            })
        }
    }?;
    Ok(builder.run())
}

/// `on_connect_ext` for a guarded stream, plain or TLS: the deadline's state, then `on_connect`.
fn connect_hook<T: 'static>(
    on_connect: fn(&dyn std::any::Any, &mut Extensions),
) -> impl Fn(&Guarded<T>, &mut Extensions) + 'static {
    move |io, data| {
        conn_deadline::share(io, data);
        on_connect(io, data);
    }
}
