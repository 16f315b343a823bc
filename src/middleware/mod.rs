//! The public app's middleware, all six in their order; this list is the one place that gives
//! it. Three live here; three live with the concern they serve ([`crate::conn_deadline`],
//! [`crate::metrics`], [`crate::shutdown`]). `public_server` (in `startup/public_app.rs`) wraps
//! them, the last wrapped outermost: a request passes them in this order on its way in, and its
//! answer in the reverse order on its way out.
//!
//! 1. [`crate::conn_deadline::track`]: a request's start disarms its connection's head deadline,
//!    its answer arms the next request's. Outermost, to see every request start and every
//!    answer, those the middleware below give on their own included.
//! 2. [`crate::metrics::count_answers`]: counts and times each answer. Outside every other but
//!    `track`, so that the answers they give (a request refused after a close) count too, and
//!    the time is the request's whole.
//! 3. the access log (`access_log`, an actix `Logger`): one line per request but the health
//!    probes, naming the client once it has authenticated; not wrapped at all when its lines
//!    would be dropped (`RUST_LOG`). Outside `refuse_after_close`, so that a request refused
//!    unserved has its line too.
//! 4. [`unread_body::hold_chunked_body`]: the answer's body holds a chunked request's body
//!    until written, so that a body left unread ends its connection instead of holding it.
//!    Outside `refuse_after_close`, so that its answers (a request refused unserved) hold the
//!    body too.
//! 5. [`after_close::refuse_after_close`]: refuses unserved a request behind one that closed its
//!    connection (RFC 9112 §9.6), and a websocket; closes the connection after an answer that
//!    left its body unread. Each connection's mark is set up by [`after_close::mark_connection`],
//!    the server's `on_connect`. Outside `close_when_draining` and the handlers, to see the
//!    `Connection: close` they set on an answer.
//! 6. [`crate::shutdown::close_when_draining`]: during a stop, every answer closes its
//!    connection; counts the requests in flight, for the warning of those a stop left
//!    unanswered. Innermost: `refuse_after_close` must see the close it sets, and the requests
//!    it counts are those served.
//!
//! The metrics listener (`metrics.listen`) has two of them: `track` outermost, then
//! `hold_chunked_body`.

mod access_log;
pub mod after_close;
pub mod unread_body;

pub(crate) use self::access_log::{access_log, access_log_on, log_client};
