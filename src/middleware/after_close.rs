//! RFC 9112 §9.6: once a request asks to close its connection (`Connection: close`, or HTTP/1.0
//! without keep-alive), or an answer says the server closes it (a stop's drain, 408, or
//! `server.keep_alive_secs` = 0), no further request may be served on it. actix-http serves the
//! requests a client pipelined behind that one all the same. The client reads no answer after
//! the one that closes, so an exchange served there would spend its code for nothing. Each
//! connection carries a mark: the request or answer that closes sets it, and a request that
//! finds it set is refused unserved (its code untouched, for a retry on a new connection), and
//! its connection closed.
//!
//! An answer given before the request's body was read to its end closes the connection too.
//! actix closes it or not by timing (whether the body's bytes had all arrived when the answer
//! went out), so a request pipelined behind was served or not by chance; now never. Handlers
//! say they read the whole body with [`mark_body_read`]. And a request with
//! `Upgrade: websocket` is refused unserved: actix takes everything after its head as its body,
//! whatever `Content-Length` says, and this server upgrades nothing. Any other request that asks
//! to upgrade its connection (`Connection: upgrade`, as curl `--http2` and Java's `HttpClient`
//! send for h2c on `http://`) is served over HTTP/1.1 (RFC 9110 §7.8 lets a server ignore
//! `Upgrade`) and closes its connection: actix would echo `Connection: upgrade` and then close
//! the connection or not depending on whether the next request had already arrived, so a
//! client that reused it could find it gone under a request sent.

use std::any::Any;
use std::cell::Cell;
use std::future::Future;
use std::rc::Rc;

use actix_web::body::EitherBody;
use actix_web::dev::{Extensions, RequestHead, Service, ServiceRequest, ServiceResponse};
use actix_web::http::{ConnectionType, Version, header};
use actix_web::{HttpMessage, HttpRequest};

use crate::oauth::OAuthError;

/// Set once a request or an answer on the connection closed it. Shared with the answer's
/// future, which outlives the request's borrow of the connection's data.
struct CloseAsked(Rc<Cell<bool>>);

/// Left in a request's extensions by [`mark_body_read`].
struct BodyRead;

/// Says that the handler read the request's body to its end: its answer may keep the connection.
/// A handler that reads a body any other way closes its connection with every answer.
pub fn mark_body_read(request: &HttpRequest) {
    request.extensions_mut().insert(BodyRead);
}

/// Whether the request comes with a body (which a handler may leave unread): chunked (even an
/// empty one), or a `Content-Length` that is not zero (as actix reads it: trimmed, a number).
fn has_body(head: &RequestHead) -> bool {
    let headers = &head.headers;
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers.get(header::CONTENT_LENGTH).is_some_and(|length| {
            length
                .to_str()
                .ok()
                .and_then(|length| length.trim().parse::<u64>().ok())
                != Some(0)
        })
}

/// Whether actix frames the request's body to the connection's end (`Upgrade: websocket`,
/// unless chunked).
fn framed_to_the_end(head: &RequestHead) -> bool {
    let headers = &head.headers;
    headers.get_all(header::UPGRADE).any(|upgrade| {
        upgrade
            .to_str()
            .is_ok_and(|value| value.trim().eq_ignore_ascii_case("websocket"))
    }) && !headers.contains_key(header::TRANSFER_ENCODING)
}

/// `on_connect` (see `http_server`): every connection starts unmarked.
pub fn mark_connection(_: &dyn Any, data: &mut Extensions) {
    data.insert(CloseAsked(Rc::default()));
}

/// `wrap_fn` middleware: serves a request unless one before it on its connection closed it, or
/// it asks for a websocket; closes the connection after an answer that left its body unread,
/// or to a request that asked to upgrade the connection.
/// `always_close`: keep-alive is off (`server.keep_alive_secs` = 0), so every answer closes.
/// Outside the middlewares that set `Connection: close` on an answer, to see it.
pub fn refuse_after_close<S, B>(
    always_close: bool,
    request: ServiceRequest,
    service: &S,
) -> impl Future<Output = Result<ServiceResponse<EitherBody<B>>, actix_web::Error>> + use<S, B>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
{
    let mark = request
        .conn_data::<CloseAsked>()
        .map(|mark| Rc::clone(&mark.0));
    let has_body = has_body(request.head());
    let asked = request.head().connection_type();
    let served = if mark.as_ref().is_some_and(|closed| closed.get()) {
        Err((
            request,
            "a request sent after the connection was closed (Connection: close) is not served",
        ))
    } else if framed_to_the_end(request.head()) {
        Err((request, "Upgrade: websocket is not supported here"))
    } else {
        if let Some(closed) = &mark
            && (always_close || asked != ConnectionType::KeepAlive)
        {
            closed.set(true);
        }
        Ok(service.call(request))
    };
    async move {
        match served {
            Ok(call) => {
                let mut answer = call.await?;
                let unread = has_body && !answer.request().extensions().contains::<BodyRead>();
                let head = answer.response_mut().head_mut();
                // actix-http keeps answer heads in a pool of each thread's and resets their
                // flags but not their version, which its codec writes over at sending. Left as
                // the last answer's HTTP/1.0, it made `connection_type()` read Close, and this
                // connection's next request was refused though nothing had closed it.
                head.version = Version::HTTP_11;
                if asked == ConnectionType::Upgrade || unread {
                    head.set_connection_type(ConnectionType::Close);
                }
                if let Some(closed) = mark
                    && head.connection_type() == ConnectionType::Close
                {
                    closed.set(true);
                }
                Ok(answer.map_into_left_body())
            }
            Err((request, why)) => {
                if let Some(closed) = mark {
                    closed.set(true);
                }
                let mut answer = request.error_response(OAuthError::invalid_request(why));
                (answer.response_mut().head_mut()).set_connection_type(ConnectionType::Close);
                Ok(answer.map_into_right_body())
            }
        }
    }
}
