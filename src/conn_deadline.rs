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

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use actix_web::dev::{Extensions, Service, ServiceRequest, ServiceResponse};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::read_ahead::HeadCount;

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

/// A connection's stream (TCP, or TLS over it), failing once its deadline has passed.
pub struct Guarded<T> {
    inner: T,
    state: Rc<State>,
    heads: HeadCount,
    /// Bytes read from `inner` and not yet handed on ([`crate::read_ahead`]): at most one
    /// read's.
    held: Vec<u8>,
    /// The last read answered `Pending`: actix has since decoded all it was handed.
    drained: bool,
    /// Wakes the connection's task by the deadline when it waits on the stream (see
    /// `pending`).
    sleep: Pin<Box<Sleep>>,
    sleep_at: Option<Instant>,
    expired: bool,
}

impl<T> Guarded<T> {
    /// Must be called within the worker's runtime (the timer).
    pub fn new(inner: T, keep_alive: Duration) -> Self {
        let state = Rc::new(State {
            in_flight: Cell::new(false),
            deadline: Cell::new(None),
            after_answer: keep_alive + HEAD_TIMEOUT,
            started: Cell::new(0),
            answers_waiting: Cell::new(false),
            held_back: RefCell::new(None),
        });
        // Never polled before a deadline is armed, and reset to it then.
        let sleep = Box::pin(tokio::time::sleep(HEAD_TIMEOUT));
        Self {
            inner,
            state,
            heads: HeadCount::default(),
            held: Vec::new(),
            drained: false,
            sleep,
            sleep_at: None,
            expired: false,
        }
    }

    /// For the connection's data (`on_connect_ext`).
    pub fn conn_deadline(&self) -> ConnDeadline {
        ConnDeadline(Rc::clone(&self.state))
    }

    /// The stream would block: wait for the deadline too, when one is armed.
    fn pending<R>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<R>> {
        if self.state.deadline.get().is_none() {
            return Poll::Pending;
        }
        self.follow_deadline();
        if self.sleep.as_mut().poll(cx).is_ready() {
            self.expired = true;
            log::debug!(
                "closing a connection past its deadline: its next request's head did not \
                 arrive, or it did not read its answers"
            );
            return Poll::Ready(Err(timed_out()));
        }
        Poll::Pending
    }

    /// Sets the timer to the deadline wherever a head or an answer moved it (called while
    /// waiting on the stream, and before writing an answer). A timer left at an earlier
    /// deadline (the last head's 5 s) would wake the idle connection before its end, and actix
    /// restarts its idle timer at every wake: such a connection closed up to 5 s past
    /// `keep_alive`. Moving a pending timer later, as each answer does, is an atomic
    /// compare-and-swap in tokio (its wheel files the entry again when the old time comes,
    /// without waking the task): ~20 ns. Moving it earlier, as a head's first bytes do, files
    /// it again under the timer driver's lock (uncontended: one worker thread).
    fn follow_deadline(&mut self) {
        if let Some(deadline) = self.state.deadline.get()
            && self.sleep_at != Some(deadline)
        {
            self.sleep.as_mut().reset(deadline);
            self.sleep_at = Some(deadline);
        }
    }
}

fn timed_out() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "past the connection's deadline: no request head, or answers not read",
    )
}

impl<T: AsyncRead + Unpin> AsyncRead for Guarded<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.expired {
            return Poll::Ready(Err(timed_out()));
        }
        let state = &this.state;
        let (started, waiting) = (state.started.get(), state.answers_waiting.get());
        if this.drained && !state.in_flight.get() && !waiting {
            // Idle: actix decoded what it was handed before this read, and has started every
            // head of it (it starts the next queued one as soon as an answer is written).
            this.heads.forgive(started);
        }
        let limit = this.heads.limit(started, waiting);
        if !this.held.is_empty() {
            let offered = this.held.len().min(buf.remaining());
            let allowed = this.heads.allow(&this.held[..offered], limit);
            if allowed == 0 {
                return this.hold_back(cx);
            }
            buf.put_slice(&this.held[..allowed]);
            this.held.drain(..allowed);
            this.state.bytes_read();
            this.drained = false;
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Pending => {
                this.drained = true;
                this.pending(cx)
            }
            Poll::Ready(Ok(())) => {
                let read = &buf.filled()[before..];
                if read.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                let allowed = this.heads.allow(read, limit);
                if allowed < read.len() {
                    this.held.extend_from_slice(&read[allowed..]);
                    buf.set_filled(before + allowed);
                }
                if allowed == 0 {
                    return this.hold_back(cx);
                }
                this.state.bytes_read();
                this.drained = false;
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
        }
    }
}

impl<T> Guarded<T> {
    /// Nothing may be handed on before another request starts, which wakes the task.
    fn hold_back(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.state.held_back.replace(Some(cx.waker().clone()));
        self.drained = true;
        self.pending(cx)
    }
}

impl<T: AsyncWrite + Unpin> Guarded<T> {
    /// `poll` on the inner stream, failing past the deadline and waiting on it while blocked.
    /// A write or flush that blocks means answers wait to be written ([`crate::read_ahead`]).
    fn poll_guarded<R>(
        &mut self,
        cx: &mut Context<'_>,
        poll: impl FnOnce(Pin<&mut T>, &mut Context<'_>) -> Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        if self.expired {
            return Poll::Ready(Err(timed_out()));
        }
        match poll(Pin::new(&mut self.inner), cx) {
            Poll::Pending => {
                self.state.answers_wait(true);
                self.pending(cx)
            }
            ready => {
                self.state.answers_wait(false);
                ready
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Guarded<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.follow_deadline();
        this.poll_guarded(cx, |inner, cx| inner.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.follow_deadline();
        this.poll_guarded(cx, |inner, cx| inner.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    /// Flushing waits on the deadline too: over TLS, answers a client does not read can sit in
    /// rustls's buffer (up to 64 KiB) after every `poll_write` succeeded, and actix then waits
    /// only here (its own timers go on being pushed back), so without it the connection was
    /// held for ever.
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut()
            .poll_guarded(cx, |inner, cx| inner.poll_flush(cx))
    }

    /// The same for a shutdown (TLS writes its close_notify, then flushes).
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut()
            .poll_guarded(cx, |inner, cx| inner.poll_shutdown(cx))
    }
}

/// `on_connect_ext`: the requests of the connection see its state.
pub fn share<T>(io: &Guarded<T>, data: &mut Extensions) {
    data.insert(io.conn_deadline());
}

/// `wrap_fn` middleware, the outermost: a request in flight has no head deadline; its answer
/// arms the next one's.
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
