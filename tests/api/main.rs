//! The integration tests: the real HTTP server, in-process on port 0, against a real
//! redis-server started by the harness (see `helpers` and `redis_server`).

mod answer;
mod argon2_limit;
mod cli;
mod client_auth;
mod cluster_outage;
mod code_records;
mod concurrency;
mod discovery;
mod exchange;
mod failover;
mod fixtures;
mod fuzz;
mod grant_errors;
mod helpers;
mod introspection;
mod log_capture;
mod log_hygiene;
mod methods;
mod metrics;
mod oauth2_client;
mod record;
mod redis_outage;
mod redis_server;
mod replica_acks;
mod request_errors;
mod resource;
mod rotation;
mod sentinel_auth;
mod sighup;
mod standalone_urls;
mod throttle;
mod tls;
mod token;
mod topology;
mod user_info;
