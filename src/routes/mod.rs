//! HTTP handlers: extract, call the core, render. No protocol logic lives here.

pub mod discovery;
pub mod health;
pub mod http;
pub mod introspect;
pub mod metrics;
pub mod token;
pub mod userinfo;

/// The client id a request claimed, kept in the request extensions for the access log.
#[derive(Clone)]
pub struct LoggedClient(pub String);
