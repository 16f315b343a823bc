//! A chunked request body left unread must end its connection. actix drains a dropped chunked
//! body to its last chunk, with no timer while it does, so a client that never sends that
//! chunk (after a 408 or 413, or on a route that reads no body) held the connection open for
//! good. If the body is still held when the answer's last byte is written, actix closes the
//! connection instead (after `Connection: close`): the answer's body holds it until then.
//!
//! Only chunked requests pay for this (a shared handle on the body); a `Content-Length` body
//! left unread already ends its connection (`after_close`).

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use actix_web::HttpMessage;
use actix_web::body::{BodySize, MessageBody};
use actix_web::dev::{Payload, Service, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::header;
use actix_web::web::Bytes;
use futures_util::Stream;

/// The body, shared between the handler (which reads it through [`Reading`]) and the answer's
/// body (which holds it until actix has written it all).
type Shared = Rc<RefCell<Payload>>;

/// `wrap_fn` middleware: for a chunked request, the answer's body holds the request's.
pub fn hold_chunked_body<S, B>(
    mut request: ServiceRequest,
    service: &S,
) -> impl Future<Output = Result<ServiceResponse<Holding<B>>, actix_web::Error>> + use<S, B>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody + Unpin,
{
    let held = request
        .headers()
        .contains_key(header::TRANSFER_ENCODING)
        .then(|| {
            let shared: Shared = Rc::new(RefCell::new(request.take_payload()));
            let reading: Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>> =
                Box::pin(Reading(Rc::clone(&shared)));
            request.set_payload(Payload::from(reading));
            shared
        });
    let answer = service.call(request);
    async move {
        let answer = answer.await?;
        Ok(answer.map_body(|_, body| Holding { body, held }))
    }
}

/// The handler's view of the shared body.
struct Reading(Shared);

impl Stream for Reading {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_next(cx)
    }
}

/// An answer's body, with the request's body when that was chunked: dropped once written.
pub struct Holding<B> {
    body: B,
    held: Option<Shared>,
}

impl<B: MessageBody + Unpin> MessageBody for Holding<B> {
    type Error = B::Error;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Pin::new(&mut self.body).poll_next(cx)
    }

    fn try_into_bytes(self) -> Result<Bytes, Self> {
        match self.held {
            None => self
                .body
                .try_into_bytes()
                .map_err(|body| Self { body, held: None }),
            // Taken as bytes, the body would let go of the request's too soon.
            Some(_) => Err(self),
        }
    }
}

#[cfg(test)]
#[path = "unread_body_tests.rs"]
mod tests;
