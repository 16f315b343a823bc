//! Stopping on SIGTERM or SIGINT. From the signal on, `/readyz` answers 503 and every answer
//! closes its connection ([`Draining`]). On SIGTERM the server then goes on serving for
//! `server.shutdown_delay_ms`, time for load balancers to see it unready and send the next
//! requests elsewhere. Then: no new connections, in-flight requests get up to
//! `server.shutdown_timeout_secs` to finish (exchanges still waiting for a slot get a 503:
//! [`Slots::stop_queueing`]), then the metrics listener stops. After SIGTERM, a second SIGTERM
//! ends the delay, or, with none left, is let pass (supervisors repeat it); any other signal
//! during the grace ends the process.
//!
//! The delay exists because closing is racy in HTTP/1.1: when a server closes an idle
//! keep-alive connection (actix does so at a graceful stop) just as a client sends a request
//! on it, that request gets no answer, and a client cannot safely resend a POST. A balancer
//! that has stopped routing to us by then sends nothing on those connections. SIGINT is a
//! person at a terminal: no delay.
//!
//! actix-server's own signal handling is off on both servers: it makes SIGINT a forced stop,
//! and after a signal-triggered stop it stops the whole actix system, so the metrics server,
//! idle and done first, cut the main server's grace short, dropping answers to spent codes.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use actix_web::dev::{ServerHandle, Service, ServiceRequest, ServiceResponse};
use actix_web::http::ConnectionType;
use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::slots::Slots;

/// Set once a stop has begun; shared by the probe, the middleware and the signal task.
#[derive(Debug, Clone, Default)]
pub struct Draining(Arc<DrainState>);

#[derive(Debug, Default)]
struct DrainState {
    on: AtomicBool,
    /// Requests between their start and their answer. When the grace runs out actix closes
    /// what is still open, silently, and the process may end before it drops their futures.
    in_flight: AtomicU64,
    /// Requests whose answer was dropped unfinished since the stop began (the grace ran out,
    /// or their client left).
    unanswered: AtomicU64,
}

impl Draining {
    pub fn begin(&self) {
        self.0.on.store(true, Ordering::Relaxed);
    }

    pub fn is_on(&self) -> bool {
        self.0.on.load(Ordering::Relaxed)
    }

    /// Once the server has stopped: a warning if requests were left unanswered.
    pub fn warn_of_the_unanswered(&self, grace_secs: u64) {
        let unanswered =
            self.0.unanswered.load(Ordering::Relaxed) + self.0.in_flight.load(Ordering::Relaxed);
        if unanswered > 0 {
            log::warn!(
                "{unanswered} request(s) under way were closed unanswered during the stop: the \
                 grace of {grace_secs} s ran out (or their clients left); an exchange among them \
                 may have spent its code (server.shutdown_timeout_secs)"
            );
        }
    }
}

/// Held across a request's answer in [`close_when_draining`], counted in flight until then:
/// dropped before its answer (the answer's future dropped unfinished) during a stop, it counts
/// the request unanswered.
struct Answering(Option<Draining>);

impl Answering {
    fn new(draining: &Draining) -> Self {
        draining.0.in_flight.fetch_add(1, Ordering::Relaxed);
        Self(Some(draining.clone()))
    }

    /// The answer is there: no longer in flight.
    fn answered(&mut self) -> Option<Draining> {
        let draining = self.0.take()?;
        draining.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        Some(draining)
    }
}

impl Drop for Answering {
    fn drop(&mut self) {
        if let Some(draining) = self.answered()
            && draining.is_on()
        {
            draining.0.unanswered.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// `wrap_fn` middleware: while draining, every answer carries `Connection: close` and ends
/// its connection once written, so no client is left holding an idle connection that the
/// stop would close under it. Its place among the others: [`crate::middleware`].
pub fn close_when_draining<S, B>(
    draining: &Draining,
    request: ServiceRequest,
    service: &S,
) -> impl Future<Output = Result<ServiceResponse<B>, actix_web::Error>> + use<S, B>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
{
    let mut answering = Answering::new(draining);
    let answer = service.call(request);
    async move {
        let answered = answer.await;
        let draining = answering.answered();
        let mut answer = answered?;
        if draining.is_some_and(|d| d.is_on()) {
            (answer.response_mut().head_mut()).set_connection_type(ConnectionType::Close);
        }
        Ok(answer)
    }
}

/// How the server stops after a signal.
pub struct StopPlan {
    pub draining: Draining,
    /// Told when the grace begins: from then on no exchange queues for a slot.
    pub slots: Arc<Slots>,
    /// SIGTERM only: how long to keep serving, unready, before closing the listener.
    pub delay: Duration,
    /// For in-flight requests once the listener is closed.
    pub grace_secs: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Stop {
    Terminate,
    Interrupt,
}

impl Stop {
    fn name(self) -> &'static str {
        match self {
            Self::Terminate => "SIGTERM",
            Self::Interrupt => "SIGINT",
        }
    }
}

/// The signals that stop the server, listened for from the moment it is built.
pub struct StopSignals {
    terminate: Signal,
    interrupt: Signal,
}

impl StopSignals {
    /// An error when either cannot be handled, and the start fails: a handler installed for one
    /// stays installed even unused, and would swallow that signal (the process, as a
    /// container's PID 1, then ignores SIGTERM).
    pub fn listen() -> std::io::Result<Self> {
        Ok(Self {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }

    async fn next(&mut self) -> Stop {
        tokio::select! {
            Some(()) = self.terminate.recv() => Stop::Terminate,
            Some(()) = self.interrupt.recv() => Stop::Interrupt,
            else => std::future::pending().await,
        }
    }
}

/// Waits for the first signal, drains (after SIGTERM, for `plan.delay`), then stops `server`
/// gracefully and `metrics` after it. Some supervisors repeat SIGTERM, and that must not drop
/// requests: after a SIGTERM, the next one ends the delay, or, with no delay left, is let pass.
/// Any other signal during the grace ends the process.
pub async fn stop_on_signal(
    mut signals: StopSignals,
    server: ServerHandle,
    metrics: Option<ServerHandle>,
    plan: StopPlan,
) {
    let stop = signals.next().await;
    let name = stop.name();
    plan.draining.begin();
    // Whether a repeated SIGTERM is still to be let pass.
    let mut spare_repeat = stop == Stop::Terminate;
    if stop == Stop::Terminate && !plan.delay.is_zero() {
        log::info!(
            "{name}: unready; serving {} ms more before closing the listener",
            plan.delay.as_millis()
        );
        tokio::select! {
            () = tokio::time::sleep(plan.delay) => {}
            again = signals.next() => {
                log::info!("{}: the delay ends now", again.name());
                spare_repeat = false;
            }
        }
    }
    let graceful = async {
        log::info!(
            "{name}: no new connections; in-flight requests have up to {} s",
            plan.grace_secs
        );
        plan.slots.stop_queueing();
        server.stop(true).await;
        if let Some(metrics) = metrics {
            metrics.stop(true).await;
        }
    };
    let mut graceful = std::pin::pin!(graceful);
    loop {
        tokio::select! {
            // The process ends when the servers have stopped (`Application::run_until_stopped`).
            () = &mut graceful => return,
            again = signals.next() => {
                if again == Stop::Terminate && std::mem::take(&mut spare_repeat) {
                    log::info!("SIGTERM again: the grace goes on (another signal ends it)");
                    continue;
                }
                log::warn!("{} during the grace: stopping at once", again.name());
                std::process::exit(1);
            }
        }
    }
}

#[cfg(test)]
#[path = "shutdown_tests.rs"]
mod tests;
