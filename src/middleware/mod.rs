//! The public app's middleware that serves no single concern of its own: the access log, the
//! chunked body held to the answer's end, and no request served after a close.

mod access_log;
pub mod after_close;
pub mod unread_body;

pub(crate) use self::access_log::{access_log, access_log_on, log_client};
