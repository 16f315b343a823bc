//! The stream of one connection: reads, writes, flushes and shutdowns fail past its deadline,
//! and request heads past [`crate::read_ahead`]'s bound wait for a request to start.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use super::{ConnDeadline, HEAD_TIMEOUT, State};
use crate::read_ahead::HeadCount;

/// A connection's stream (TCP, or TLS over it), failing once its deadline has passed.
pub struct Guarded<T> {
    inner: T,
    pub(super) state: Rc<State>,
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
