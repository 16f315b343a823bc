//! A deadline for the head of every request on a connection, not only the first. actix-http
//! times out the head of a connection's first request (5 s) and closes a connection idle past
//! `keep_alive`, but once a byte of a later request has arrived it waits for the rest for ever:
//! a client that sends the start of a second head and nothing more holds its connection (and a
//! slot of `server.max_connections`) until it closes it.
//!
//! Each accepted stream is wrapped in [`Guarded`] (see `http_server`), whose state the
//! [`track`] middleware shares through the connection's data:
//! - an answer arms the deadline: the next request must start within `keep_alive` + 5 s (a
//!   partial head pipelined behind the last request, or a client that never reads its answers);
//!   an idle connection is closed by actix at `keep_alive` before that (the deadline's timer,
//!   moved with each answer, never wakes it earlier: actix restarts its idle timer at every
//!   wake);
//! - a byte read while no request is in flight brings it to 5 s from then at the latest (a
//!   partial head after an idle spell gets what a first request gets), and the bytes after it
//!   do not move it;
//! - a request's start disarms it: its body has `server.body_timeout_ms`.
//!
//! Past the deadline, reads, writes, flushes and shutdowns fail (`TimedOut`) and actix drops
//! the connection.
//!
//! The stream also hands actix no more request heads than [`crate::read_ahead`] allows ahead of the
//! requests [`track`] has seen start: actix would decode every pipelined request it has read.
//!
//! Here: the connection's state and the middleware; the stream is in `conn_deadline/stream.rs`.

mod stream;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::Rc;
use std::task::Waker;
use std::time::Duration;

use actix_web::dev::{Extensions, Service, ServiceRequest, ServiceResponse};
use tokio::time::Instant;

pub use self::stream::Guarded;

/// What actix gives a first request's head (`client_request_timeout`, actix-web's default),
/// and here any head that starts on an idle connection.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);

/// One connection's state, shared by its stream and its requests (one worker thread).
#[derive(Debug)]
struct State {
    in_flight: Cell<bool>,
    deadline: Cell<Option<Instant>>,
    /// `keep_alive` + [`HEAD_TIMEOUT`].
    after_answer: Duration,
    /// Requests started on the connection.
    started: Cell<u64>,
    /// The last write or flush of an answer could not complete: the client is not reading.
    answers_waiting: Cell<bool>,
    /// The connection's task, while its stream holds back heads until a request starts.
    held_back: RefCell<Option<Waker>>,
}

/// The connection's state, as its requests see it (`conn_data`).
#[derive(Debug, Clone)]
pub struct ConnDeadline(Rc<State>);

impl State {
    fn started(&self) {
        self.in_flight.set(true);
        self.deadline.set(None);
        self.started.set(self.started.get() + 1);
        self.wake_held_back();
    }

    /// Whether an answer could not be written (`Pending`); once one can, heads flow again.
    fn answers_wait(&self, waiting: bool) {
        if self.answers_waiting.replace(waiting) && !waiting {
            self.wake_held_back();
        }
    }

    fn wake_held_back(&self) {
        if let Some(task) = self.held_back.take() {
            task.wake();
        }
    }

    fn answered(&self) {
        self.in_flight.set(false);
        self.deadline.set(Some(Instant::now() + self.after_answer));
        // Idle now, unless actix starts a queued head: a read held back since may be forgiven.
        self.wake_held_back();
    }

    fn bytes_read(&self) {
        if !self.in_flight.get() {
            let head = Instant::now() + HEAD_TIMEOUT;
            let deadline = self.deadline.get().map_or(head, |armed| armed.min(head));
            self.deadline.set(Some(deadline));
        }
    }
}

/// `on_connect_ext`: the requests of the connection see its state.
pub fn share<T>(io: &Guarded<T>, data: &mut Extensions) {
    data.insert(io.conn_deadline());
}

/// `wrap_fn` middleware, the outermost (the order: [`crate::middleware`]): a request in flight
/// has no head deadline; its answer arms the next one's.
pub fn track<S, B>(
    request: ServiceRequest,
    service: &S,
) -> impl Future<Output = Result<ServiceResponse<B>, actix_web::Error>> + use<S, B>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
{
    let conn = request.conn_data::<ConnDeadline>().cloned();
    if let Some(conn) = &conn {
        conn.0.started();
    }
    let answer = service.call(request);
    async move {
        let answer = answer.await;
        if let Some(conn) = conn {
            conn.0.answered();
        }
        answer
    }
}

#[cfg(test)]
#[path = "conn_deadline_tests.rs"]
mod tests;
