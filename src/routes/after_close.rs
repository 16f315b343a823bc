//! RFC 9112 §9.6: once a request asks to close its connection (`Connection: close`, or HTTP/1.0
//! without keep-alive), or an answer says the server closes it (a stop's drain, 408, or
//! `server.keep_alive_secs` = 0), no further request may be served on it. actix-http serves the
//! requests a client pipelined behind that one all the same. The client reads no answer after
//! the one that closes, so an exchange served there would spend its code for nothing. Each
//! connection carries a mark: the request or answer that closes sets it, and a request that
//! finds it set is refused unserved (its code untouched, for a retry on a new connection), and
//! its connection closed.

use std::any::Any;
use std::cell::Cell;
use std::future::Future;
use std::rc::Rc;

use actix_web::body::EitherBody;
use actix_web::dev::{Extensions, Service, ServiceRequest, ServiceResponse};
use actix_web::http::ConnectionType;

use crate::oauth::OAuthError;

/// Set once a request or an answer on the connection closed it. Shared with the answer's
/// future, which outlives the request's borrow of the connection's data.
struct CloseAsked(Rc<Cell<bool>>);

/// `HttpServer::on_connect`: every connection starts unmarked.
pub fn mark_connection(_: &dyn Any, data: &mut Extensions) {
    data.insert(CloseAsked(Rc::default()));
}

/// `wrap_fn` middleware: serves a request unless one before it on its connection closed it.
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
    let served = if mark.as_ref().is_some_and(|closed| closed.get()) {
        Err(request)
    } else {
        if let Some(closed) = &mark
            && (always_close || request.head().connection_type() == ConnectionType::Close)
        {
            closed.set(true);
        }
        Ok(service.call(request))
    };
    async move {
        match served {
            Ok(call) => {
                let answer = call.await?;
                if let Some(closed) = mark
                    && answer.response().head().connection_type() == ConnectionType::Close
                {
                    closed.set(true);
                }
                Ok(answer.map_into_left_body())
            }
            Err(request) => {
                let refused = OAuthError::invalid_request(
                    "a request sent after the connection was closed (Connection: close) is not served",
                );
                let mut answer = request.error_response(refused);
                (answer.response_mut().head_mut()).set_connection_type(ConnectionType::Close);
                Ok(answer.map_into_right_body())
            }
        }
    }
}
