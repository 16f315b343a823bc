use super::env::SETTINGS;
use super::*;
use crate::oauth::Sensitive;

fn shipped() -> Settings {
    toml::from_str(include_str!("../config/default.toml")).expect("config/default.toml parses")
}

/// The shipped settings with `redis` changed by `change`; `Err(setting)` names the refusal.
fn check(change: impl FnOnce(&mut RedisSettings)) -> Result<Settings, &'static str> {
    let mut settings = shipped();
    change(&mut settings.redis);
    settings.validate().map_err(|e| match e {
        ConfigError::Invalid { setting, .. } => setting,
        ConfigError::Load(e) => panic!("{e}"),
    })
}

#[test]
fn pool_size_zero_is_a_lane_per_worker_and_the_main_thread_and_at_least_eight() {
    let lanes = |workers: usize, pool_size: usize| {
        let mut settings = shipped();
        settings.server.workers = workers;
        settings.redis.pool_size = pool_size;
        let redis = settings.validate().expect("valid settings").redis;
        assert_eq!(
            redis.pool_size, pool_size,
            "the setting stays as the files say"
        );
        redis.lanes
    };
    assert_eq!(
        shipped().redis.pool_size,
        0,
        "the shipped default follows the workers"
    );
    assert_eq!(lanes(3, 0), 8);
    assert_eq!(lanes(7, 0), 8);
    assert_eq!(lanes(12, 0), 13);
    assert_eq!(lanes(12, 4), 4, "a pool_size that is set is kept");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(lanes(0, 0), (cores + 1).max(8));
}

#[test]
fn a_setting_in_the_environment_with_a_misspelt_prefix_is_named() {
    let names = |list: &[&str]| list.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
    let read = names(&[
        "SSO__SERVER__LISTEN",
        "sso__redis__url",
        "SSO_ENV",
        "SSO_CONFIG_DIR",
        "SSO_LOGIN_URL",
        "SSO_SERVERLESS",
        // Kubernetes service links and Docker links of services named sso-redis, sso-token.
        "SSO_REDIS_SERVICE_HOST",
        "SSO_REDIS_SERVICE_PORT",
        "SSO_REDIS_PORT",
        "SSO_REDIS_PORT_6379_TCP_ADDR",
        "SSO_TOKEN_SERVICE_HOST",
        "SSO_TOKEN_PORT_8080_TCP",
        "SSO_REDIS_NAME",
        "SSO_REDIS_ENV_REDIS_VERSION",
    ]);
    assert_eq!(
        misspelt_prefix(read.into_iter().chain(names(&["PATH"]))),
        None
    );
    for misspelt in [
        "SSO_SERVER__TLS__CERT",
        "sso_redis__url",
        "SSOREDIS__URL",
        "SSO_REDIS_URL",
        "sso_token_signing_key",
        "SSO_METRICS_ENABLED",
        "SSO_SERVER_TLS_CERT",
    ] {
        let found = misspelt_prefix(names(&["SSO__SERVER__LISTEN", misspelt]).into_iter());
        assert_eq!(found.as_deref(), Some(misspelt));
    }
}

fn urls(list: &[&str]) -> Vec<String> {
    list.iter().map(|u| (*u).to_owned()).collect()
}

#[test]
fn the_shipped_settings_are_standalone_and_valid() {
    let settings = check(|_| {}).unwrap();
    assert_eq!(settings.redis.mode, RedisMode::Standalone);
}

#[test]
fn standalone_accepts_tcp_tls_and_unix_socket_urls() {
    for url in [
        "redis://127.0.0.1:6379/0",
        "rediss://redis.internal:6380",
        "redis+unix:///run/redis.sock",
        "unix:///run/redis.sock",
    ] {
        assert!(check(|r| r.url = url.into()).is_ok(), "{url}");
    }
    assert_eq!(
        check(|r| r.url = "http://x".into()).err(),
        Some("redis.url")
    );
}

#[test]
fn sentinel_needs_sentinels_and_a_master_name() {
    let sentinel = |r: &mut RedisSettings| {
        r.mode = RedisMode::Sentinel;
        r.sentinels = urls(&["redis://10.0.0.1:26379", "redis://10.0.0.2:26379"]);
        r.master_name = "sso".into();
    };
    assert!(check(sentinel).is_ok());
    assert!(
        check(|r| {
            sentinel(r);
            r.node_username = "sso".into();
            r.node_password = Some(Sensitive::new("secret"));
            r.node_tls = true;
        })
        .is_ok()
    );
    let refused = [
        (check(|r| {
            sentinel(r);
            r.sentinels.clear();
        })),
        check(|r| {
            sentinel(r);
            r.master_name.clear();
        }),
        check(|r| {
            sentinel(r);
            r.sentinels.push("10.0.0.3:26379".into());
        }),
        check(|r| {
            sentinel(r);
            r.nodes = urls(&["redis://10.0.0.1:7000"]);
        }),
    ];
    let settings: Vec<_> = refused.iter().map(|r| r.as_ref().err().copied()).collect();
    assert_eq!(
        settings,
        [
            Some("redis.sentinels"),
            Some("redis.master_name"),
            Some("redis.sentinels"),
            Some("redis.nodes")
        ]
    );
}

#[test]
fn cluster_needs_nodes_and_refuses_other_modes_settings_and_braces() {
    let cluster = |r: &mut RedisSettings| {
        r.mode = RedisMode::Cluster;
        r.nodes = urls(&["redis://10.0.0.1:7000", "rediss://10.0.0.2:7000"]);
    };
    assert!(check(cluster).is_ok());
    let refusal = |extra: fn(&mut RedisSettings)| {
        check(|r| {
            cluster(r);
            extra(r);
        })
        .err()
    };
    assert_eq!(refusal(|r| r.nodes.clear()), Some("redis.nodes"));
    assert_eq!(
        refusal(|r| r.nodes.push("redis+unix:///x".into())),
        Some("redis.nodes")
    );
    assert_eq!(
        refusal(|r| r.sentinels = urls(&["redis://s:26379"])),
        Some("redis.sentinels")
    );
    assert_eq!(
        refusal(|r| r.master_name = "m".into()),
        Some("redis.master_name")
    );
    assert_eq!(
        refusal(|r| r.key_prefix = "sso:{x}:".into()),
        Some("redis.key_prefix")
    );
}

#[test]
fn only_sentinel_takes_data_node_credentials() {
    for mode in [RedisMode::Standalone, RedisMode::Cluster] {
        let with = |change: fn(&mut RedisSettings)| {
            check(|r| {
                r.mode = mode;
                if mode == RedisMode::Cluster {
                    r.nodes = urls(&["redis://a:7000"]);
                }
                change(r);
            })
            .err()
        };
        assert_eq!(
            with(|r| r.node_username = "u".into()),
            Some("redis.node_username")
        );
        assert_eq!(
            with(|r| r.node_password = Some(Sensitive::new("p"))),
            Some("redis.node_password")
        );
        assert_eq!(with(|r| r.node_tls = true), Some("redis.node_tls"));
        // An empty password is none, as an empty user is (a template's empty variable).
        assert_eq!(with(|r| r.node_password = Some(Sensitive::new(""))), None);
    }
    let sentinel = check(|r| {
        r.mode = RedisMode::Sentinel;
        r.sentinels = urls(&["redis://s:26379"]);
        r.master_name = "m".into();
        r.node_password = Some(Sensitive::new(""));
    });
    assert!(
        sentinel.unwrap().redis.node_password.is_none(),
        "no AUTH sent"
    );
}

/// An empty path (`SSO__TOKEN__SIGNING_KEY=`) is refused naming the setting, not reported as
/// a file not found at ``.
#[test]
fn an_empty_path_is_refused_naming_its_setting() {
    let refused = |change: &dyn Fn(&mut Settings)| {
        let mut settings = shipped();
        change(&mut settings);
        match settings.validate() {
            Err(ConfigError::Invalid { setting, .. }) => Some(setting),
            _ => None,
        }
    };
    let tls = |cert: &str, key: &str| {
        Some(TlsSettings {
            cert: cert.into(),
            key: key.into(),
        })
    };
    assert_eq!(
        refused(&|s| s.token.signing_key = PathBuf::new()),
        Some("token.signing_key")
    );
    assert_eq!(
        refused(&|s| s.clients.file = PathBuf::new()),
        Some("clients.file")
    );
    assert_eq!(
        refused(&|s| s.token.verify_keys = vec!["a.pem".into(), PathBuf::new()]),
        Some("token.verify_keys")
    );
    assert_eq!(
        refused(&|s| s.server.tls = tls("", "k.pem")),
        Some("server.tls.cert")
    );
    assert_eq!(
        refused(&|s| s.server.tls = tls("c.pem", "")),
        Some("server.tls.key")
    );
    assert_eq!(refused(&|s| s.server.tls = tls("c.pem", "k.pem")), None);
}

#[test]
fn standalone_refuses_the_settings_of_the_other_modes() {
    assert_eq!(
        check(|r| r.nodes = urls(&["redis://a:7000"])).err(),
        Some("redis.nodes")
    );
    assert_eq!(
        check(|r| r.sentinels = urls(&["redis://a:26379"])).err(),
        Some("redis.sentinels")
    );
    assert_eq!(
        check(|r| r.master_name = "m".into()).err(),
        Some("redis.master_name")
    );
}

#[test]
fn the_mode_and_lists_can_come_from_the_environment() {
    let variables = [
        ("SSO__REDIS__MODE", "cluster"),
        (
            "SSO__REDIS__NODES",
            "redis://10.0.0.1:7000,redis://10.0.0.2:7000",
        ),
        // Looks like a number, is a string (a password would be the same): arrives as written.
        ("SSO__REDIS__KEY_PREFIX", "0123"),
        ("SSO__SERVER__WORKERS", "3"),
        ("SSO__THROTTLE__ENABLED", "false"),
        ("SSO__THROTTLE__TRUSTED_PROXIES", "10.0.0.0/8,192.168.1.1"),
    ];
    let settings = load_from("", &variables).expect("valid settings");
    assert_eq!(settings.redis.mode, RedisMode::Cluster);
    assert_eq!(
        settings.redis.nodes,
        urls(&["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"])
    );
    assert_eq!(settings.redis.key_prefix, "0123");
    assert_eq!(settings.server.workers, 3);
    assert!(!settings.throttle.enabled);
    assert_eq!(settings.throttle.trusted_proxies.len(), 2);
}

/// A new folder holding `config/default.toml`, for overlays next to it; the test removes it.
fn folder_with_the_shipped_defaults() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("sso-config-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("default.toml"),
        include_str!("../config/default.toml"),
    )
    .unwrap();
    dir
}

/// Every default is the value `config/default.toml` ships, so that an operator's own
/// `default.toml` (a ConfigMap mounted over the folder) needs only what it changes: an empty
/// one, and one with a single setting, load the shipped settings.
#[test]
fn the_defaults_are_what_config_default_toml_ships() {
    let dir = std::env::temp_dir().join(format!("sso-config-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let loaded = |text: &str| {
        std::fs::write(dir.join("default.toml"), text).unwrap();
        format!("{:?}", Settings::load(&dir, None).expect("loads"))
    };

    let from_nothing = loaded("");
    let one_setting = loaded("[token]\nexpires_in = 1800\n");
    let from_the_file = loaded(include_str!("../config/default.toml"));

    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(from_nothing, from_the_file);
    assert_eq!(one_setting, from_the_file);
    // The file as parsed, not as loaded: a load takes in any SSO__ variable the test runs under.
    assert_eq!(
        format!("{:?}", Settings::default().validate().unwrap()),
        format!("{:?}", shipped().validate().unwrap())
    );
}

#[test]
fn a_broken_file_or_value_is_reported_without_quoting_it() {
    let dir = folder_with_the_shipped_defaults();
    let cases = [
        // A syntax error: toml's own message prints this very line.
        ("[redis]\nnode_password = \"hunter2\n", "line 2, column"),
        ("[redis]\ntimeout_ms = \"hunter2\"\n", "redis.timeout_ms"),
        ("[redis]\nmode = \"hunter2\"\n", "redis.mode"),
    ];
    for (overlay, expected) in cases {
        std::fs::write(dir.join("broken.toml"), overlay).unwrap();
        let shown = match Settings::load(&dir, Some("broken")) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("{overlay} loaded"),
        };
        assert!(shown.contains(expected), "{overlay}: {shown}");
        assert!(!shown.contains("hunter2"), "{overlay}: {shown}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_missing_overlay_file_is_named() {
    let dir = folder_with_the_shipped_defaults();

    let shown = Settings::load(&dir, Some("prdo"))
        .map(|_| ())
        .unwrap_err()
        .to_string();

    assert!(shown.contains("prdo.toml"), "{shown}");
    assert!(shown.contains("not found"), "{shown}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_mistyped_redis_mode_is_answered_with_the_modes_there_are() {
    let dir = folder_with_the_shipped_defaults();
    std::fs::write(dir.join("typo.toml"), "[redis]\nmode = \"sentinal\"\n").unwrap();

    let shown = Settings::load(&dir, Some("typo"))
        .map(|_| ())
        .unwrap_err()
        .to_string();

    assert!(shown.contains("redis.mode"), "{shown}");
    assert!(
        shown.contains("`standalone`, `sentinel` or `cluster`"),
        "{shown}"
    );
    assert!(!shown.contains("RedisMode"), "the code's name: {shown}");
    // Each value named there is one the setting reads.
    for mode in ["standalone", "sentinel", "cluster"] {
        std::fs::write(
            dir.join("typo.toml"),
            format!("[redis]\nmode = \"{mode}\"\n"),
        )
        .unwrap();
        // (Sentinel and Cluster then want settings of their own: read, not yet complete.)
        let shown = Settings::load(&dir, Some("typo"))
            .err()
            .map(|e| e.to_string());
        let shown = shown.unwrap_or_default();
        assert!(!shown.contains("not a value it takes"), "{mode}: {shown}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_refused_redis_url_is_shown_without_its_password() {
    let mut settings = shipped();
    settings.redis.mode = RedisMode::Cluster;
    settings.redis.url = String::new();
    settings.redis.nodes = urls(&["http://admin:hunter2@10.0.0.1:7000"]);
    let shown = settings
        .validate()
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(shown.contains("redis.nodes"), "{shown}");
    assert!(shown.contains("http://admin:***@10.0.0.1:7000"), "{shown}");
    assert!(!shown.contains("hunter2"), "{shown}");
}

#[test]
fn a_redis_url_that_does_not_parse_is_refused_at_load_naming_its_setting() {
    // A password with a character a URL reserves, a port out of range, a database that is no
    // number (the message names all three).
    let bad = [
        "redis://:hunter/2@10.0.0.1:6379",
        "redis://:hunter#2@10.0.0.1:6379",
        "redis://10.0.0.1:99999",
        "redis://:hunter2@10.0.0.1:6379/notanumber",
    ];
    for url in bad {
        let mut settings = shipped();
        settings.redis.url = url.into();
        let shown = settings.validate().err().map(|e| e.to_string());
        let shown = shown.unwrap_or_default();
        assert!(shown.contains("redis.url"), "{url}: {shown}");
        assert!(shown.contains("percent-encode"), "{url}: {shown}");
        assert!(shown.contains("database number"), "{url}: {shown}");
        assert!(!shown.contains("hunter"), "{url}: {shown}");
        let cluster = check(|r| {
            r.mode = RedisMode::Cluster;
            r.url = String::new();
            r.nodes = urls(&["redis://10.0.0.2:7000", url]);
        });
        assert_eq!(cluster.err(), Some("redis.nodes"), "{url}");
    }
    // Percent-encoded, the same password is fine.
    assert!(check(|r| r.url = "redis://:hunter%2F2@10.0.0.1:6379".into()).is_ok());
}

#[test]
fn the_redis_target_names_each_address_without_its_password() {
    let mut redis = shipped().redis;
    redis.url = "rediss://sso:hunter2@redis.internal:6380/1".into();
    assert_eq!(redis.target(), "rediss://sso:***@redis.internal:6380/1");
    redis.mode = RedisMode::Sentinel;
    redis.master_name = "sso-master".into();
    redis.sentinels = urls(&["redis://:hunter2@10.0.0.1:26379", "redis://10.0.0.2:26379"]);
    assert_eq!(
        redis.target(),
        "master `sso-master` of sentinels redis://:***@10.0.0.1:26379, redis://10.0.0.2:26379"
    );
    redis.mode = RedisMode::Cluster;
    redis.nodes = urls(&["redis://:hunter2@10.0.1.1:7000"]);
    assert_eq!(
        redis.target(),
        "cluster of seed nodes redis://:***@10.0.1.1:7000"
    );
}

#[test]
fn tcp_keepalive_is_on_by_default_and_within_what_linux_accepts() {
    assert_eq!(shipped().redis.tcp_keepalive_secs, 60);
    assert!(check(|r| r.tcp_keepalive_secs = 0).is_ok());
    assert!(check(|r| r.tcp_keepalive_secs = 32_767).is_ok());
    assert_eq!(
        check(|r| r.tcp_keepalive_secs = 32_768).err(),
        Some("redis.tcp_keepalive_secs")
    );
}

#[test]
fn replica_acks_need_a_wait_shorter_than_the_redis_timeout() {
    let off = check(|r| r.replica_ack_timeout_ms = 0).unwrap();
    assert_eq!(off.redis.replica_ack(), None);
    let on = check(|r| r.replica_acks = 1).unwrap();
    assert_eq!(on.redis.replica_ack(), Some((1, 300)));
    for timeout in [0, 1000, 5000] {
        assert_eq!(
            check(|r| {
                r.replica_acks = 2;
                r.replica_ack_timeout_ms = timeout;
            })
            .err(),
            Some("redis.replica_ack_timeout_ms"),
            "{timeout}"
        );
    }
}

#[test]
fn a_wait_needs_only_to_end_before_the_redis_timeout_on_every_topology() {
    let waiting = |mode: RedisMode, ms: u64| {
        check(move |r| {
            r.mode = mode;
            match mode {
                RedisMode::Standalone => {}
                RedisMode::Sentinel => {
                    r.sentinels = urls(&["redis://10.0.0.1:26379"]);
                    r.master_name = "sso".into();
                }
                RedisMode::Cluster => r.nodes = urls(&["redis://10.0.0.1:7000"]),
            }
            if mode != RedisMode::Standalone {
                r.url = String::new();
            }
            r.timeout_ms = 2000;
            r.replica_acks = 1;
            r.replica_ack_timeout_ms = ms;
        })
    };
    for mode in [
        RedisMode::Standalone,
        RedisMode::Sentinel,
        RedisMode::Cluster,
    ] {
        assert!(waiting(mode, 1999).is_ok(), "{mode:?}");
        assert_eq!(
            waiting(mode, 2000).err(),
            Some("redis.replica_ack_timeout_ms"),
            "{mode:?}"
        );
    }
}

/// The shipped settings with `change` made: `None` when they are valid, else the refused setting.
fn refusal(change: impl FnOnce(&mut Settings)) -> Option<&'static str> {
    let mut settings = shipped();
    change(&mut settings);
    match settings.validate() {
        Ok(_) => None,
        Err(ConfigError::Invalid { setting, .. }) => Some(setting),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn workers_and_lanes_stop_at_1024() {
    assert_eq!(refusal(|s| s.server.workers = 1024), None);
    assert_eq!(refusal(|s| s.server.workers = 1025), Some("server.workers"));
    assert_eq!(refusal(|s| s.redis.pool_size = 1024), None);
    assert_eq!(
        refusal(|s| s.redis.pool_size = 100_000_000),
        Some("redis.pool_size")
    );
}

#[test]
fn discovery_urls_need_a_host() {
    let refused = Some("discovery.base_url");
    for (url, expected) in [
        ("https://sso.example", None),
        ("http://127.0.0.1:8080/", None),
        ("https://", refused),
        ("https:///identity", refused),
        ("sso.example", refused),
    ] {
        assert_eq!(
            refusal(|s| s.discovery.base_url = url.into()),
            expected,
            "{url}"
        );
    }
    assert_eq!(
        refusal(|s| s.discovery.authorization_endpoint = "http://".into()),
        Some("discovery.authorization_endpoint")
    );
}

#[test]
fn the_leeway_is_five_minutes_at_most_and_the_documents_max_age_a_day() {
    let leeway = Some("token.leeway_secs");
    for (secs, expected) in [(0, None), (300, None), (301, leeway)] {
        let got = refusal(|s| s.token.leeway_secs = secs);
        assert_eq!(got, expected, "leeway_secs = {secs}");
    }
    let max_age = Some("discovery.max_age_secs");
    for (secs, expected) in [(0, None), (86_400, None), (86_401, max_age)] {
        let got = refusal(|s| s.discovery.max_age_secs = secs);
        assert_eq!(got, expected, "max_age_secs = {secs}");
    }
}

/// A host name is resolved when the listener binds; an address without a port is refused.
#[test]
fn the_listen_address_is_host_and_port() {
    let refused = Some("server.listen");
    for (listen, expected) in [
        ("0.0.0.0:8080", None),
        ("[::1]:8080", None),
        ("localhost:8080", None),
        ("8080", refused),
        ("localhost", refused),
    ] {
        let got = refusal(|s| s.server.listen = listen.into());
        assert_eq!(got, expected, "{listen}");
    }
}

#[test]
fn codes_live_ten_minutes_at_most_by_default_and_an_hour_at_most_by_choice() {
    assert_eq!(shipped().token.code_max_age_secs, 600);
    let refused = Some("token.code_max_age_secs");
    for (max_age, expected) in [(0, None), (3600, None), (3601, refused)] {
        let got = refusal(|s| s.token.code_max_age_secs = max_age);
        assert_eq!(got, expected, "code_max_age_secs = {max_age}");
    }
}

#[test]
fn scopes_are_answered_space_separated_and_read_from_records_comma_separated_by_default() {
    let token = shipped().token;
    assert_eq!(
        (
            token.scope_separator.as_str(),
            token.record_scope_separator.as_str()
        ),
        (" ", ",")
    );
    assert_eq!(
        refusal(|s| s.token.scope_separator.clear()),
        Some("token.scope_separator")
    );
    assert_eq!(
        refusal(|s| s.token.record_scope_separator.clear()),
        Some("token.record_scope_separator")
    );
}

#[test]
fn base_scopes_are_user_basic_by_default_a_list_from_the_environment_and_scope_tokens() {
    assert_eq!(shipped().token.base_scopes, ["user:basic"]);
    let from = |value: &str| {
        load_from("", &[("SSO__TOKEN__BASE_SCOPES", value)])
            .map(|s| s.token.base_scopes)
            .map_err(|e| e.to_string())
    };
    assert_eq!(
        from("user:basic, openid").unwrap(),
        ["user:basic", "openid"]
    );
    assert_eq!(from("").unwrap(), Vec::<String>::new());
    let none = load_from("[token]\nbase_scopes = []\n", &[]).unwrap();
    assert!(none.token.base_scopes.is_empty());
    for bad in ["user basic", "say\"hi\"", "back\\slash", "caf\u{e9}"] {
        assert_eq!(
            refusal(|s| s.token.base_scopes = vec![bad.into()]),
            Some("token.base_scopes"),
            "{bad:?}"
        );
    }
}

#[test]
fn argon2_slots_default_to_half_the_cpus_and_are_64_at_most() {
    assert_eq!(shipped().clients.argon2_slots, 0);
    let refused = Some("clients.argon2_slots");
    for (slots, expected) in [(1, None), (64, None), (65, refused)] {
        let got = refusal(|s| s.clients.argon2_slots = slots);
        assert_eq!(got, expected, "argon2_slots = {slots}");
    }
}

#[test]
fn the_shutdown_delay_is_off_by_default_and_ten_minutes_at_most() {
    assert_eq!(shipped().server.shutdown_delay_ms, 0);
    let refused = Some("server.shutdown_delay_ms");
    for (delay, expected) in [(15_000, None), (600_000, None), (600_001, refused)] {
        let got = refusal(|s| s.server.shutdown_delay_ms = delay);
        assert_eq!(got, expected, "shutdown_delay_ms = {delay}");
    }
}

#[test]
fn the_grace_is_a_second_at_least_and_an_hour_at_most() {
    assert_eq!(shipped().server.shutdown_timeout_secs, 30);
    let refused = Some("server.shutdown_timeout_secs");
    for (grace, expected) in [(0, refused), (1, None), (3600, None), (3601, refused)] {
        let got = refusal(|s| s.server.shutdown_timeout_secs = grace);
        assert_eq!(got, expected, "shutdown_timeout_secs = {grace}");
    }
}

#[test]
fn connections_per_worker_default_to_actix_own_and_are_bounded() {
    assert_eq!(shipped().server.max_connections, 0);
    let refused = Some("server.max_connections");
    for (count, expected) in [
        (0, None),
        (1, None),
        (1_000_000, None),
        (1_000_001, refused),
    ] {
        let got = refusal(|s| s.server.max_connections = count);
        assert_eq!(got, expected, "max_connections = {count}");
    }
}

#[test]
fn connections_per_worker_by_default_fit_the_open_files_limit() {
    let mut server = shipped().server;
    server.workers = 2;
    // (open-files limit, connections a worker serves)
    for (limit, per_worker) in [
        (None, 25_600),
        (Some(1_048_576), 25_600),
        (Some(20_000), (20_000 - 512) / 2),
        (Some(1_024), 256),
        (Some(100), 64),
    ] {
        assert_eq!(
            server.connections_per_worker(limit),
            per_worker,
            "{limit:?}"
        );
    }
    server.max_connections = 40_000;
    assert_eq!(
        server.connections_per_worker(Some(20_000)),
        40_000,
        "as set"
    );
}

#[test]
fn keep_alive_outlasts_the_common_balancers_by_default_and_is_an_hour_at_most() {
    assert_eq!(shipped().server.keep_alive_secs, 75);
    let without: Settings = toml::from_str(
        &include_str!("../config/default.toml").replace("keep_alive_secs = 75\n", ""),
    )
    .expect("parses without the key");
    assert_eq!(
        without.server.keep_alive_secs, 75,
        "a file without it gets the same"
    );
    let refused = Some("server.keep_alive_secs");
    for (secs, expected) in [(0, None), (1, None), (3600, None), (3601, refused)] {
        let got = refusal(|s| s.server.keep_alive_secs = secs);
        assert_eq!(got, expected, "keep_alive_secs = {secs}");
    }
}

#[test]
fn a_trusted_proxy_that_is_no_address_or_network_is_refused_up_front() {
    let mut settings = shipped();
    settings.throttle.trusted_proxies = urls(&["10.0.0.0/8", "fd00::/8", "192.168.1.7"]);
    let valid = settings.clone().validate().expect("valid proxies");
    let parsed = ["10.0.0.0/8", "fd00::/8", "192.168.1.7"].map(|n| Network::parse(n).unwrap());
    assert_eq!(valid.throttle.proxies, parsed, "parsed once, by `validate`");
    settings.throttle.trusted_proxies.push("lb.internal".into());
    match settings.validate() {
        Err(ConfigError::Invalid { setting, problem }) => {
            assert_eq!(setting, "throttle.trusted_proxies");
            assert!(problem.contains("lb.internal"), "{problem}");
        }
        other => panic!("{other:?}"),
    }
}

/// The bounds the messages state are the ones checked.
#[test]
fn a_bound_is_stated_as_checked() {
    let problem = |change: fn(&mut Settings)| {
        let mut settings = shipped();
        change(&mut settings);
        match settings.validate() {
            Err(ConfigError::Invalid { problem, .. }) => problem,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(
        problem(|s| s.clients.argon2_slots = 65),
        "must be at most 64 (0: half the CPUs)"
    );
    assert_eq!(
        problem(|s| s.server.workers = 1025),
        "must be at most 1024 (0: one per core)"
    );
    assert_eq!(
        problem(|s| s.redis.pool_size = 1025),
        "must be at most 1024 (0: one per worker and the main thread)"
    );
    assert_eq!(
        problem(|s| s.redis.timeout_ms = 60_001),
        "must be between 10 and 60000"
    );
}

#[test]
fn debug_output_of_the_settings_shows_no_redis_password() {
    let mut settings = shipped();
    settings.redis.url = "redis://:pw-url@127.0.0.1:6379/0".into();
    settings.redis.sentinels = urls(&["redis://sentinel:pw-sentinel@10.0.0.1:26379"]);
    settings.redis.nodes = urls(&["rediss://:pw-node@10.0.0.2:6379"]);
    settings.redis.node_password = Some(Sensitive::new("pw-data".to_owned()));
    let shown = format!("{settings:?}");
    assert!(!shown.contains("pw-"), "{shown}");
    assert!(
        shown.contains("127.0.0.1:6379") && shown.contains("10.0.0.1:26379"),
        "{shown}"
    );
}

/// The shipped defaults, then `overlay` (TOML), then `variables` as the environment: what
/// [`Settings::load`] reads, from strings.
fn load_from(overlay: &str, variables: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    let variables = variables.iter().map(|&(k, v)| (k.into(), v.into()));
    let (variables, _) = sso_variables(variables)?;
    settings_of(
        config::Config::builder()
            .add_source(config::File::from_str(
                include_str!("../config/default.toml"),
                config::FileFormat::Toml,
            ))
            .add_source(config::File::from_str(overlay, config::FileFormat::Toml))
            .add_source(environment().source(Some(variables))),
    )
}

/// Why [`load_from`] refused, or "" when it did not.
fn load_error(overlay: &str, variables: &[(&str, &str)]) -> String {
    load_from(overlay, variables)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default()
}

#[test]
fn a_misspelt_setting_stops_the_start_and_is_named() {
    let in_the_environment = [
        ("SSO__SERVER__TLS_CERT", "tls_cert"),
        ("SSO__REDIS__REPLICA_ACK", "replica_ack"),
    ];
    let in_a_file = [
        ("[redis]\ntimeout = 200\n", "timeout"),
        (
            "[server.tls]\ncert = \"c\"\nkey = \"k\"\nkey_file = \"k\"\n",
            "key_file",
        ),
        ("[tokens]\nexpires_in = 60\n", "tokens"),
    ];
    let shown = (in_the_environment.iter())
        .map(|&(variable, name)| (load_error("", &[(variable, "1")]), name))
        .chain((in_a_file.iter()).map(|&(overlay, name)| (load_error(overlay, &[]), name)));
    for (shown, name) in shown {
        assert!(shown.contains("unknown field"), "{name}: {shown:?}");
        assert!(shown.contains(&format!("`{name}`")), "{name}: {shown}");
    }
    // serde says nothing of where the key came from: both spellings are named.
    let shown = load_error("", &[("SSO__SERVER__TLS_CERT", "1")]);
    assert!(
        shown.contains("under `[server]` in a file, or SSO__SERVER__TLS_CERT"),
        "{shown}"
    );
    assert_eq!(shown.matches(" in a file").count(), 1, "{shown}");
    let shown = load_error(
        "[server.tls]\ncert = \"c\"\nkey = \"k\"\nkey_file = \"k\"\n",
        &[],
    );
    assert!(shown.contains("or SSO__SERVER__TLS__KEY_FILE"), "{shown}");
    let shown = load_error("[tokens]\nexpires_in = 60\n", &[]);
    assert!(
        shown.contains("`[tokens]` in a file, or an SSO__TOKENS__"),
        "{shown}"
    );
}

#[test]
fn a_missing_setting_is_named() {
    let shown = load_error("[server.tls]\ncert = \"c\"\n", &[]);
    assert!(shown.contains("missing"), "{shown}");
    assert!(shown.contains("`server.tls.key`"), "{shown}");
}

#[test]
fn likely_mistakes_load_with_a_doubt_naming_the_setting() {
    let shipped_doubts = shipped().validate().unwrap().doubts();
    assert!(shipped_doubts.is_empty(), "{shipped_doubts:?}");
    let doubted = |change: fn(&mut Settings), named: &str| {
        let mut settings = shipped();
        change(&mut settings);
        let doubts = settings.validate().unwrap().doubts();
        assert!(
            doubts.len() == 1 && doubts[0].contains(named),
            "{named}: {doubts:?}"
        );
    };
    doubted(
        |s| {
            s.metrics.enabled = false;
            s.metrics.listen = "127.0.0.1:9100".into();
        },
        "metrics.listen",
    );
    doubted(
        |s| s.server.shutdown_timeout_secs = 3,
        "server.shutdown_timeout_secs",
    );
    doubted(
        |s| s.throttle.trusted_proxies = vec!["10.0.0.0/8".into(), "::/0".into()],
        "throttle.trusted_proxies",
    );
    doubted(
        |s| s.throttle.trusted_proxies = vec!["0.0.0.0/0".into()],
        "throttle.trusted_proxies",
    );
    doubted(
        |s| {
            s.server.workers = 3;
            s.redis.pool_size = 2;
        },
        "set redis.pool_size to at least 3",
    );
    // The edges that are fine: four timeouts exactly, and a wide network that is not all.
    let mut fine = shipped();
    fine.server.shutdown_timeout_secs = 4;
    fine.throttle.trusted_proxies = vec!["0.0.0.0/1".into(), "10.0.0.0/8".into()];
    // A metrics listener of its own is what `metrics.listen` is for.
    fine.metrics.listen = "127.0.0.1:9100".into();
    // As many lanes as workers.
    (fine.server.workers, fine.redis.pool_size) = (3, 3);
    assert!(fine.validate().unwrap().doubts().is_empty());
}

#[test]
fn the_reloadable_settings_the_environment_sets_are_named() {
    let names = [
        "SSO__TOKEN__SIGNING_KEY",
        "sso__clients__file",
        "SSO__CLIENTS__ARGON2_SLOTS",
        "SSO__DISCOVERY__BASE_URL",
        "SSO__REDIS__URL",
        "SSO__SERVER__TLS__CERT",
        "SSO_ENV",
        "PATH",
    ];
    let found = reloadable_in(names.iter().map(|n| (*n).to_owned()));
    let found: Vec<(&str, &str)> = found
        .iter()
        .map(|(n, s)| (n.as_str(), s.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            ("SSO__TOKEN__SIGNING_KEY", "token.signing_key"),
            ("sso__clients__file", "clients.file"),
            ("SSO__DISCOVERY__BASE_URL", "discovery.base_url"),
        ]
    );
}

/// The list [`misspelt_prefix`] reads, against what each section's fields are.
#[test]
fn the_settings_by_section_are_every_field_of_each_section() {
    for (section, keys) in SETTINGS {
        let shown = load_error(&format!("[{section}]\nzz_probe = 1\n"), &[]);
        let expected = shown
            .split_once("expected ")
            .and_then(|(_, rest)| rest.split_once(" for key"))
            .map(|(list, _)| list)
            .unwrap_or_else(|| panic!("{section}: {shown}"));
        let fields: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        assert_eq!(fields, keys, "{section}");
    }
}

/// Every setting `config/default.toml` ships has a default in the code that is the shipped
/// value: the file is where an operator reads what a setting left out means.
#[test]
fn a_setting_left_out_of_the_files_takes_the_shipped_value() {
    let text = include_str!("../config/default.toml");
    let shipped = format!("{:?}", shipped());
    let (mut section, mut defaulted, mut required) = (String::new(), 0, 0);
    for (at, line) in text.lines().enumerate() {
        if let Some(name) = line.strip_prefix('[') {
            section = name.trim_end_matches(']').to_owned();
            continue;
        }
        let Some((key, _)) = line.split_once(" = ").filter(|_| !line.starts_with('#')) else {
            continue;
        };
        let without: String = (text.lines().enumerate())
            .filter(|&(i, _)| i != at)
            .map(|(_, l)| format!("{l}\n"))
            .collect();
        match toml::from_str::<Settings>(&without) {
            Ok(settings) => {
                assert_eq!(format!("{settings:?}"), shipped, "{section}.{key} left out");
                defaulted += 1;
            }
            Err(e) => {
                let shown = e.to_string();
                assert!(
                    shown.contains(&format!("missing field `{key}`")),
                    "{section}.{key}: {shown}"
                );
                required += 1;
            }
        }
    }
    // None is required, and the loop read the file's settings.
    assert!(required == 0 && defaulted >= 30, "{defaulted} {required}");
}

/// A metrics listener on the server's own port fails its bind at start (and a reload that
/// asked for it said "on restart only"): refused up front, naming the setting.
#[test]
fn metrics_on_the_servers_own_port_is_refused() {
    let refused = |server: &str, metrics: &str, enabled: bool| {
        let mut settings = shipped();
        settings.server.listen = server.into();
        settings.metrics.listen = metrics.into();
        settings.metrics.enabled = enabled;
        match settings.validate() {
            Err(ConfigError::Invalid { setting, .. }) => Some(setting),
            Err(ConfigError::Load(e)) => panic!("{e}"),
            Ok(_) => None,
        }
    };
    for (server, metrics) in [
        ("127.0.0.1:8080", "127.0.0.1:8080"),
        ("0.0.0.0:8080", "127.0.0.1:8080"),
        ("127.0.0.1:8080", "[::]:8080"),
        ("app.internal:8080", "app.internal:8080"),
    ] {
        assert_eq!(
            refused(server, metrics, true),
            Some("metrics.listen"),
            "{server} {metrics}"
        );
        assert_eq!(refused(server, metrics, false), None, "metrics off");
    }
    for (server, metrics) in [
        ("127.0.0.1:8080", "127.0.0.1:9100"),
        ("127.0.0.1:8080", "127.0.0.2:8080"),
        ("127.0.0.1:8080", "[::1]:8080"),
        ("127.0.0.1:0", "127.0.0.1:0"),
        ("127.0.0.1:8080", ""),
    ] {
        assert_eq!(refused(server, metrics, true), None, "{server} {metrics}");
    }
}

/// A value written with `echo` into a secret ends with a line break: dropped, and said.
#[test]
fn the_line_break_ending_a_variable_is_dropped_and_named() {
    let variables = [
        ("SSO__REDIS__URL", "redis://10.0.0.5:6379\n"),
        ("SSO__TOKEN__SIGNING_KEY", "keys/signing.pem\r\n"),
        ("SSO__TOKEN__ISSUER", "https://sso.example"),
    ];
    let settings = load_from("", &variables).expect("valid settings");
    assert_eq!(settings.redis.url, "redis://10.0.0.5:6379");
    assert_eq!(
        settings.token.signing_key,
        PathBuf::from("keys/signing.pem")
    );

    let os = variables.iter().map(|&(k, v)| (k.into(), v.into()));
    let (_, cut) = sso_variables(os).expect("UTF-8 variables");
    assert_eq!(cut, ["SSO__REDIS__URL", "SSO__TOKEN__SIGNING_KEY"]);
    // Only the end: a line break inside a value is the value's (and refused where it is wrong).
    let inside = [("SSO__TOKEN__ISSUER".into(), "a\nb".into())].into_iter();
    let (kept, cut) = sso_variables(inside).expect("UTF-8 variables");
    assert_eq!(kept["SSO__TOKEN__ISSUER"], "a\nb");
    assert!(cut.is_empty());
    // A value that is only a line break is meant: a separator.
    let separator = [("SSO__TOKEN__RECORD_SCOPE_SEPARATOR", "\r\n")];
    let settings = load_from("", &separator).expect("a line break as the separator");
    assert_eq!(settings.token.record_scope_separator, "\r\n");
}

/// A fraction is refused, not rounded (`workers = 0.4` would be 0: one worker per core); a
/// whole number written with a point is the number.
#[test]
fn a_fraction_is_refused_where_a_whole_number_is_read() {
    for (overlay, setting) in [
        ("[server]\nworkers = 0.4\n", "server.workers"),
        ("[redis]\ntimeout_ms = 10.4\n", "redis.timeout_ms"),
        ("[token]\nexpires_in = 1800.5\n", "token.expires_in"),
    ] {
        let refused = load_error(overlay, &[]);
        assert!(
            refused.contains(&format!("`{setting}`")),
            "{overlay}: {refused}"
        );
        assert!(refused.contains("whole number"), "{overlay}: {refused}");
    }
    let whole = load_from("[redis]\ntimeout_ms = 1.5e3\n", &[]).expect("1500");
    assert_eq!(whole.redis.timeout_ms, 1500);
}

/// The config crate reads `true`, `"yes"` and `"on"` as 1 where a number is read; a whole
/// number's setting takes digits only, from a file or from the environment.
#[test]
fn a_word_or_a_boolean_is_refused_where_a_whole_number_is_read() {
    for (overlay, variables, setting, found) in [
        (
            "[throttle]\nmax_failures = true\n",
            &[][..],
            "throttle.max_failures",
            "true",
        ),
        (
            "",
            &[("SSO__SERVER__WORKERS", "yes")][..],
            "server.workers",
            "only digits",
        ),
        (
            "",
            &[("SSO__REDIS__TIMEOUT_MS", "on")][..],
            "redis.timeout_ms",
            "only digits",
        ),
        (
            "",
            &[("SSO__TOKEN__EXPIRES_IN", " 600")][..],
            "token.expires_in",
            "only digits",
        ),
        (
            "[redis]\nreplica_acks = -1\n",
            &[][..],
            "redis.replica_acks",
            "-1",
        ),
        (
            "[redis]\nreplica_acks = 5000000000\n",
            &[][..],
            "redis.replica_acks",
            "5000000000",
        ),
        // 2^64 is one past the largest u64, which `as` would have made it.
        (
            "[redis]\ntimeout_ms = 18446744073709551616.0\n",
            &[][..],
            "redis.timeout_ms",
            "too large",
        ),
        (
            "[redis]\ntimeout_ms = 1e20\n",
            &[][..],
            "redis.timeout_ms",
            "too large",
        ),
        (
            "[redis]\ntimeout_ms = -3.0\n",
            &[][..],
            "redis.timeout_ms",
            "negative",
        ),
        // Digits from the environment are text: not quoted, even too large.
        (
            "",
            &[("SSO__REDIS__REPLICA_ACKS", "5000000000")][..],
            "redis.replica_acks",
            "the number is too large",
        ),
    ] {
        let refused = load_error(overlay, variables);
        assert!(
            refused.contains(&format!("`{setting}`")),
            "{setting}: {refused}"
        );
        assert!(refused.contains(found), "{setting}: {refused}");
    }
    let digits = load_from("", &[("SSO__TOKEN__EXPIRES_IN", "600")]).expect("600");
    assert_eq!(digits.token.expires_in, 600);
}

/// The environment source reads names in any case: of `SSO__REDIS__URL` and
/// `sso__redis__url` with different values, which one won was chance. Refused, naming both
/// (not their values: they may hold passwords); with the same value, nothing is in doubt.
#[test]
fn two_variables_differing_only_in_case_must_agree() {
    let twins = [
        ("SSO__REDIS__URL", "redis://one:6379"),
        ("sso__redis__url", "redis://two:6379"),
    ];
    let refused = load_error("", &twins);
    assert!(refused.contains("`SSO__REDIS__URL`"), "{refused}");
    assert!(refused.contains("`sso__redis__url`"), "{refused}");
    assert!(
        !refused.contains("one:6379") && !refused.contains("two:6379"),
        "{refused}"
    );
    let agreeing = [
        ("SSO__REDIS__URL", "redis://one:6379"),
        ("Sso__Redis__Url", "redis://one:6379"),
    ];
    let settings = load_from("", &agreeing).expect("the same value twice");
    assert_eq!(settings.redis.url, "redis://one:6379");
    // A `.` in a name (Kubernetes allows one) makes the same key as `__`.
    let dotted = [
        ("SSO__REDIS__URL", "redis://one:6379"),
        ("SSO__REDIS.URL", "redis://two:6379"),
    ];
    let refused = load_error("", &dotted);
    assert!(refused.contains("`SSO__REDIS.URL`"), "{refused}");
}
