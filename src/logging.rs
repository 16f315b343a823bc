//! How the process logs: env_logger on stderr, `RUST_LOG` for the levels (`info` without it),
//! lines of text or, with `SSO_LOG_FORMAT=json`, one JSON object a line for log pipelines
//! (Keycloak's `--log-console-output=json`, Hydra's `LOG_FORMAT=json`).

use std::io::Write;

/// The variable that picks the lines' format: read before any setting, since the settings'
/// own loading logs.
const FORMAT_VARIABLE: &str = "SSO_LOG_FORMAT";

/// Installs the logger. actix answers a request it cannot parse with a 400 before any route,
/// and logs an ERROR line for each (`stream error: request parse error`): anyone could flood
/// the log with them. That module is off unless `RUST_LOG` names it.
pub fn init() -> Result<(), String> {
    let mut builder = env_logger::Builder::new();
    builder
        // Milliseconds: lining up one exchange's lines across replicas takes more than seconds.
        .format_timestamp_millis()
        .filter_level(log::LevelFilter::Info)
        // Lines that a client (actix's, for every request that is not HTTP) or a Redis outage
        // (redis' Cluster client: one per connection attempt and slot refresh, ~900 in 3 s
        // for 1,000 requests with a node down) could repeat without bound; the service says
        // the same at most once a second. `RUST_LOG` naming the module shows them.
        .filter_module("actix_http::h1::dispatcher", log::LevelFilter::Off)
        .filter_module("redis::cluster_handling", log::LevelFilter::Off)
        // actix-server's own start and stop lines, one per worker at a stop ("shutting down
        // idle worker", 16 of them with 16 workers), say again what ours say once; its
        // warnings and errors (an accept that fails) stay.
        .filter_module("actix_server", log::LevelFilter::Warn)
        .parse_env(env_logger::Env::default());
    match std::env::var(FORMAT_VARIABLE).as_deref() {
        Err(std::env::VarError::NotPresent) | Ok("" | "text") => {}
        Ok("json") => {
            builder.format(|out, record| {
                let line = serde_json::json!({
                    "time": out.timestamp_millis().to_string(),
                    "level": record.level().as_str(),
                    "target": record.target(),
                    "message": record.args().to_string(),
                });
                writeln!(out, "{line}")
            });
        }
        _ => {
            return Err(format!(
                "{FORMAT_VARIABLE} must be `text` (the default) or `json`"
            ));
        }
    }
    builder.init();
    Ok(())
}
