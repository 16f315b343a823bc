//! The settings a reload cannot apply, which only a restart takes ([`restart_only`]), and the
//! checks that refuse a reload whose next restart would fail
//! ([`refuse_what_a_restart_would_refuse`]).

use std::net::ToSocketAddrs;

use crate::config::{
    ConfigError, MetricsSettings, RESTART_ONLY_IN_RELOADED, RedisSettings, ServerSettings,
    Settings, ThrottleSettings,
};
use crate::store::Store;

/// Pushes onto `$changed` the name of each listed field of section `$section` that differs
/// between `$a` and `$b`. The destructuring names every field of `$Type` (those compared, then
/// those `not` compared): a new field is a compile error here until it is placed.
macro_rules! differing {
    ($changed:ident, $section:literal, $Type:ident, $a:expr, $b:expr;
     [$($field:ident),* $(,)?] $(not [$($skip:ident),*])?) => {{
        let $Type { $($field: _,)* $($($skip: _,)*)? } = &$a;
        $(
            if $a.$field != $b.$field {
                $changed.push(concat!($section, ".", stringify!($field)));
            }
        )*
    }};
}
pub(super) use differing;

/// The settings that differ between the settings as started and a reload's, by name
/// (`server.keep_alive_secs`), which a reload does not apply: they shape the listener, the
/// Redis pool, the throttle, the metrics listener and the Argon2 slots built at start-up.
pub(super) fn restart_only(started: &Settings, reloaded: &Settings) -> Vec<&'static str> {
    let mut changed = Vec::new();
    let (a, b) = (started, reloaded);
    differing!(changed, "server", ServerSettings, a.server, b.server; [
        listen, workers, body_limit, body_timeout_ms, keep_alive_secs, max_connections,
        exchange_slots, slot_wait_ms, shutdown_timeout_secs, shutdown_delay_ms, tls,
    ]);
    // `lanes` follows `pool_size` and the CPUs, which may change under a running process (a
    // container resized) while the files did not.
    differing!(changed, "redis", RedisSettings, a.redis, b.redis; [
        mode, url, sentinels, master_name, node_username, node_tls, nodes, pool_size,
        timeout_ms, key_prefix, replica_acks, replica_ack_timeout_ms, tcp_keepalive_secs,
    ] not [lanes, node_password]);
    // `Sensitive` has no `==` of its own, on purpose; here no attacker picks either side, so
    // the texts need no constant-time compare.
    fn password(s: &Settings) -> Option<&str> {
        s.redis.node_password.as_ref().map(|p| p.expose())
    }
    if password(a) != password(b) {
        changed.push("redis.node_password");
    }
    // `proxies` is `trusted_proxies` parsed.
    differing!(changed, "throttle", ThrottleSettings, a.throttle, b.throttle; [
        enabled, max_failures, window_secs, trusted_proxies,
    ] not [proxies]);
    differing!(changed, "metrics", MetricsSettings, a.metrics, b.metrics; [enabled, listen]);
    if a.clients.argon2_slots != b.clients.argon2_slots {
        changed.push(RESTART_ONLY_IN_RELOADED);
    }
    changed
}

/// A reload applies the [`restart_only`] settings only at the next start, so it checks them as
/// that start will, without binding or connecting: otherwise a reload would say "reloaded" to a
/// configuration that the next restart refuses. A listen address the running server already
/// bound is not resolved again: a name server's passing failure is no reason to refuse a reload
/// that does not change it. The files of an unchanged `server.tls` are the listener's, which
/// the reload reads itself (`Certificate::read_again`).
pub(super) fn refuse_what_a_restart_would_refuse(
    started: &Settings,
    reloaded: &Settings,
) -> Result<(), ConfigError> {
    let invalid = |setting, problem: String| ConfigError::invalid(setting, problem);
    Store::new(&reloaded.redis).map_err(|e| invalid("redis", e.to_string()))?;
    let listeners = [
        (
            "server.listen",
            reloaded.server.listen.as_str(),
            started.server.listen.as_str(),
        ),
        // A start with metrics off binds no metrics listener, whatever `metrics.listen` says.
        (
            "metrics.listen",
            reloaded.metrics.own_listener().unwrap_or(""),
            started.metrics.own_listener().unwrap_or(""),
        ),
    ];
    for (setting, address, bound) in listeners {
        if !address.is_empty() && address != bound {
            address
                .to_socket_addrs()
                .map_err(|e| invalid(setting, format!("`{address}`: {e}")))?;
        }
    }
    if let Some(tls) = &reloaded.server.tls
        && reloaded.server.tls != started.server.tls
    {
        crate::tls::server_config(tls).map_err(|e| invalid("server.tls", e.to_string()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> Settings {
        toml::from_str(include_str!("../../config/default.toml")).expect("config/default.toml")
    }

    #[test]
    fn a_reload_names_the_settings_it_cannot_apply() {
        let started = shipped();
        let mut reloaded = started.clone();
        reloaded.token.expires_in += 60;
        reloaded.discovery.base_url = "https://sso.example.com".into();
        assert!(restart_only(&started, &reloaded).is_empty(), "reloadable");

        reloaded.throttle.trusted_proxies.push("10.0.0.0/8".into());
        reloaded.metrics.listen = "127.0.0.1:9100".into();
        assert_eq!(
            restart_only(&started, &reloaded),
            ["throttle.trusted_proxies", "metrics.listen"]
        );
        reloaded.server.workers += 1;
        reloaded.redis.pool_size += 1;
        reloaded.redis.node_password = Some(crate::oauth::Sensitive::new("changed"));
        reloaded.clients.argon2_slots = 3;
        assert_eq!(
            restart_only(&started, &reloaded),
            [
                "server.workers",
                "redis.pool_size",
                "redis.node_password",
                "throttle.trusted_proxies",
                "metrics.listen",
                "clients.argon2_slots"
            ]
        );
    }

    /// A password is compared by its text, which its `Debug` (and so the settings') hides.
    #[test]
    fn a_reload_that_changes_only_the_redis_password_says_so() {
        let mut started = shipped();
        started.redis.node_password = Some(crate::oauth::Sensitive::new("p"));
        let mut reloaded = started.clone();
        assert!(restart_only(&started, &reloaded).is_empty());
        reloaded.redis.node_password = Some(crate::oauth::Sensitive::new("q"));
        assert_eq!(restart_only(&started, &reloaded), ["redis.node_password"]);
    }

    /// `redis.pool_size` 0 follows the CPUs, which may change under a running process (a
    /// container resized): the files did not change, so a reload has nothing to say of it.
    #[test]
    fn lanes_that_follow_the_cpus_are_no_setting_a_reload_could_not_apply() {
        let started = shipped().validate().expect("valid settings");
        let mut reloaded = started.clone();
        reloaded.redis.lanes += 4;
        assert!(restart_only(&started, &reloaded).is_empty());
        reloaded.redis.pool_size = 12;
        assert_eq!(restart_only(&started, &reloaded), ["redis.pool_size"]);
    }

    /// The listener's keep-alive is set when it is built, like every `[server]` setting.
    #[test]
    fn a_reload_that_changes_the_keep_alive_says_it_needs_a_restart() {
        let started = shipped();
        let mut reloaded = started.clone();
        reloaded.server.keep_alive_secs = 120;
        assert_eq!(
            restart_only(&started, &reloaded),
            ["server.keep_alive_secs"]
        );
    }

    /// The shipped defaults with these listen addresses.
    fn listening(server: &str, metrics: &str) -> Settings {
        let mut settings = shipped();
        settings.server.listen = server.into();
        settings.metrics.listen = metrics.into();
        settings
    }

    /// An address that does not resolve now stands for a name server's passing failure (a
    /// port out of range fails without asking one): the reload that keeps it is not refused
    /// for it, the one that changes an address to it is.
    #[test]
    fn a_reload_resolves_only_the_listen_addresses_it_changes() {
        let unresolvable = "localhost:80800";
        let running = listening(unresolvable, unresolvable);
        let refusal = |started: &Settings, reloaded: &Settings| {
            refuse_what_a_restart_would_refuse(started, reloaded)
        };

        assert!(
            refusal(&running, &running).is_ok(),
            "the running addresses were resolved again"
        );

        let started = listening("127.0.0.1:8080", "");
        let edits = [
            ("server.listen", listening(unresolvable, "")),
            ("metrics.listen", listening("127.0.0.1:8080", unresolvable)),
        ];
        for (setting, edited) in edits {
            let refused = refusal(&started, &edited).expect_err(setting).to_string();
            assert!(refused.contains(setting), "{refused}");
        }

        // A metrics listener the start did not bind (metrics off) is not one the server has.
        let mut metrics_off = listening("127.0.0.1:8080", unresolvable);
        metrics_off.metrics.enabled = false;
        let mut metrics_on = metrics_off.clone();
        metrics_on.metrics.enabled = true;
        let refused = refusal(&metrics_off, &metrics_on).expect_err("metrics turned on");
        assert!(refused.to_string().contains("metrics.listen"), "{refused}");
    }
}
