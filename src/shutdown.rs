//! Stopping on SIGTERM or SIGINT: no new connections, in-flight requests get up to
//! `server.shutdown_timeout_secs` to finish, then the metrics listener stops; a second signal
//! ends the process at once.
//!
//! actix-server's own signal handling is off on both servers: it makes SIGINT a forced stop,
//! and after a signal-triggered stop it stops the whole actix system, so the metrics server,
//! idle and done first, cut the main server's grace short, dropping answers to spent codes.

use actix_web::dev::ServerHandle;
use tokio::signal::unix::{Signal, SignalKind, signal};

/// The signals that stop the server, listened for from the moment it is built.
pub struct StopSignals {
    terminate: Signal,
    interrupt: Signal,
}

impl StopSignals {
    /// `None` (logged) when they cannot be handled: each then keeps its default action, the
    /// end of the process.
    pub fn listen() -> Option<Self> {
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(terminate), Ok(interrupt)) => Some(Self {
                terminate,
                interrupt,
            }),
            (Err(e), _) | (_, Err(e)) => {
                log::warn!("SIGTERM and SIGINT cannot be handled; either ends the process: {e}");
                None
            }
        }
    }

    async fn next(&mut self) -> &'static str {
        tokio::select! {
            Some(()) = self.terminate.recv() => "SIGTERM",
            Some(()) = self.interrupt.recv() => "SIGINT",
            else => std::future::pending().await,
        }
    }
}

/// Waits for the first signal, then stops `server` gracefully and `metrics` after it. A second
/// signal during the grace ends the process.
pub async fn stop_on_signal(
    mut signals: StopSignals,
    server: ServerHandle,
    metrics: Option<ServerHandle>,
    grace_secs: u64,
) {
    let name = signals.next().await;
    log::info!("{name}: no new connections; in-flight requests have up to {grace_secs} s");
    let graceful = async {
        server.stop(true).await;
        if let Some(metrics) = metrics {
            metrics.stop(true).await;
        }
    };
    tokio::select! {
        // The process ends when the servers have stopped (`Application::run_until_stopped`).
        () = graceful => {}
        again = signals.next() => {
            log::warn!("{again} during the grace: stopping at once");
            std::process::exit(1);
        }
    }
}
