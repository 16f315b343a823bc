//! sso-token: the OAuth 2.0 token endpoint of an SSO identity center.
//!
//! An authorize service writes single-use authorization codes into Redis; this service
//! authenticates the client, takes the code atomically, checks it and signs a JWT access token.
#![forbid(unsafe_code)]

pub mod client_assertion;
pub mod client_auth;
pub mod clients;
pub mod clock;
pub mod config;
pub mod conn_deadline;
pub mod discovery;
pub mod exchange;
pub mod grant;
pub mod http_server;
pub mod inspect;
pub mod issue_code;
pub mod listen;
pub mod live;
pub mod log_limit;
pub mod logging;
pub mod metrics;
pub mod middleware;
pub mod oauth;
pub mod open_files;
pub mod read_ahead;
pub mod redact;
pub mod routes;
pub mod secret_hash;
pub mod secret_prompt;
pub mod shutdown;
pub mod slots;
pub mod startup;
pub mod store;
pub mod throttle;
pub mod tls;
pub mod tokens;
pub mod userinfo;
