//! RFC 9112 §9.6: once a request asks to close its connection (`Connection: close`, or HTTP/1.0
//! without keep-alive), the server must serve no further request on it. actix-http serves the
//! requests a client pipelined behind that one all the same, and keeps the connection open. The
//! client reads no answer after the one it closes on, so an exchange served there would spend
//! its code for nothing. Each connection carries a mark: the request that asks to close sets
//! it, and a request that finds it set is refused unserved, and its connection closed.

use std::any::Any;
use std::cell::Cell;
use std::future::Future;

use actix_web::body::EitherBody;
use actix_web::dev::{Extensions, Service, ServiceRequest, ServiceResponse};
use actix_web::http::ConnectionType;

use crate::oauth::OAuthError;

/// Set once a request on the connection asked to close it.
struct CloseAsked(Cell<bool>);

/// `HttpServer::on_connect`: every connection starts unmarked.
pub fn mark_connection(_: &dyn Any, data: &mut Extensions) {
    data.insert(CloseAsked(Cell::new(false)));
}

/// `wrap_fn` middleware: serves a request unless one before it on its connection asked to close.
pub fn refuse_after_close<S, B>(
    request: ServiceRequest,
    service: &S,
) -> impl Future<Output = Result<ServiceResponse<EitherBody<B>>, actix_web::Error>> + use<S, B>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
{
    let mark = request.conn_data::<CloseAsked>();
    let served = if mark.is_some_and(|asked| asked.0.get()) {
        Err(request)
    } else {
        if let Some(asked) = mark
            && request.head().connection_type() == ConnectionType::Close
        {
            asked.0.set(true);
        }
        Ok(service.call(request))
    };
    async move {
        match served {
            Ok(call) => call.await.map(ServiceResponse::map_into_left_body),
            Err(request) => {
                let refused = OAuthError::invalid_request(
                    "a request sent after one that asked to close the connection is not served",
                );
                let mut answer = request.error_response(refused);
                (answer.response_mut().head_mut()).set_connection_type(ConnectionType::Close);
                Ok(answer.map_into_right_body())
            }
        }
    }
}
