//! The metrics' unit tests: label indexes, the outcome of each answer, and the exposition.

use super::labels::OUTCOMES;
use super::series::{LATENCY_BUCKETS, REDIS_BUCKETS};
use super::*;
use crate::routes::paths::{
    HEALTHZ_PATH, INTROSPECT_PATH, JWKS_PATH, JWKS_WELL_KNOWN_PATH, METADATA_PATH, METRICS_PATH,
    READYZ_PATH, REVOKE_PATH, TOKEN_PATH, USERINFO_PATH,
};

#[test]
fn every_endpoint_and_operation_sits_at_its_own_index() {
    for (i, endpoint) in Endpoint::ALL.iter().enumerate() {
        assert_eq!(*endpoint as usize, i, "{endpoint:?}");
    }
    for (i, op) in RedisOp::ALL.iter().enumerate() {
        assert_eq!(*op as usize, i, "{op:?}");
    }
    for (i, reason) in Revocation::ALL.iter().enumerate() {
        assert_eq!(*reason as usize, i, "{reason:?}");
    }
    for (i, by) in ThrottledBy::ALL.iter().enumerate() {
        assert_eq!(*by as usize, i, "{by:?}");
    }
    for (i, result) in Reload::ALL.iter().enumerate() {
        assert_eq!(*result as usize, i, "{result:?}");
    }
    for (i, code) in ErrorCode::ALL.iter().enumerate() {
        assert_eq!(*code as usize, i, "{code:?}");
    }
}

#[test]
fn the_redis_buckets_reach_the_longest_redis_timeout() {
    let longest = crate::config::MAX_REDIS_TIMEOUT_MS as f64 / 1000.0;
    assert!(REDIS_BUCKETS.last().is_some_and(|&top| top >= longest));
    assert!(REDIS_BUCKETS.is_sorted() && LATENCY_BUCKETS.is_sorted());
}

/// One error of each variant, from lines `pattern => sample`: the patterns make a match
/// with no other arm, so a new variant does not compile until it has its line, and each
/// sample is checked to match its pattern.
macro_rules! one_of_each {
    ($($pattern:pat => $sample:expr,)+) => {{
        let _exhaustive = |error: &OAuthError| match error {
            $($pattern => (),)+
        };
        vec![$({
            let sample = $sample;
            assert!(matches!(sample, $pattern), "{sample:?} is no {}", stringify!($pattern));
            sample
        },)+]
    }};
}

#[test]
fn every_error_counts_under_its_own_code() {
    use OAuthError::*;
    let errors = one_of_each! {
        InvalidRequest(_) => OAuthError::invalid_request("x"),
        InvalidClient(_) => OAuthError::authentication_failed(),
        InvalidGrant(_) => OAuthError::invalid_grant("x"),
        UnauthorizedClient(_) => UnauthorizedClient("x".into()),
        UnsupportedGrantType => UnsupportedGrantType,
        InvalidScope(_) => InvalidScope("x".into()),
        BearerRequired => BearerRequired,
        MalformedBearer(_) => MalformedBearer("x".into()),
        InvalidToken => InvalidToken,
        InsufficientScope { .. } => InsufficientScope { scope: "x", description: "x".into() },
        Throttled { .. } => Throttled { retry_after_secs: 1 },
        PayloadTooLarge => PayloadTooLarge,
        BodyTimeout => BodyTimeout,
        MethodNotAllowed { .. } => MethodNotAllowed { allow: "GET" },
        NotFound => NotFound,
        Unavailable(..) => Unavailable(RedisOp::Exchange, StoreError::Reply),
        Busy => Busy,
        Overloaded => Overloaded,
        Internal(_) => Internal("x".into()),
    };
    for error in &errors {
        let outcome = outcome_of(error.error_code());
        assert_eq!(OUTCOMES[outcome], error.code(), "{error:?}");
        assert!(outcome != OK && outcome != OTHER, "{error:?}");
    }
    // Each code is answered with, and has a series of its own.
    for code in ErrorCode::ALL {
        assert!(errors.iter().any(|e| e.error_code() == *code), "{code:?}");
    }
    let mut labels = OUTCOMES.to_vec();
    labels.sort_unstable();
    labels.dedup();
    assert_eq!(labels.len(), OUTCOMES.len(), "{OUTCOMES:?}");
}

#[test]
fn an_unacknowledged_write_is_counted_under_its_operation() {
    use futures_util::FutureExt;
    let metrics = Metrics::new().unwrap();
    let unacknowledged = || async {
        Err::<(), _>(StoreError::Unacknowledged {
            wanted: 1,
            acked: 0,
            within_ms: 300,
        })
    };
    for op in [RedisOp::Exchange, RedisOp::Exchange, RedisOp::DeleteToken] {
        assert!(
            metrics
                .time_redis(op, unacknowledged())
                .now_or_never()
                .is_some()
        );
    }
    let _ = metrics
        .time_redis(RedisOp::Exchange, async { Err::<(), _>(StoreError::Reply) })
        .now_or_never();
    let text = metrics.render(0).unwrap();
    for line in [
        r#"sso_replica_ack_failures_total{operation="exchange"} 2"#,
        r#"sso_replica_ack_failures_total{operation="delete_token"} 1"#,
        r#"sso_redis_errors_total{operation="exchange"} 3"#,
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
    }
}

#[test]
fn the_exposition_names_every_series() {
    let metrics = Metrics::new().unwrap();
    metrics.token_issued();
    metrics.throttled(ThrottledBy::Client);
    let text = metrics.render(3).unwrap();
    for line in [
        "sso_tokens_issued_total 1",
        r#"sso_throttled_requests_total{by="client"} 1"#,
        r#"sso_requests_total{endpoint="token",outcome="invalid_grant"} 0"#,
        r#"sso_tokens_revoked_total{reason="request"} 0"#,
        r#"sso_replica_ack_failures_total{operation="exchange"} 0"#,
        "sso_redis_connections 3",
        concat!(
            r#"sso_build_info{version=""#,
            env!("CARGO_PKG_VERSION"),
            r#""} 1"#
        ),
        "sso_argon2_overloaded_total 0",
        r#"sso_config_reloads_total{result="refused"} 0"#,
        r#"sso_redis_duration_seconds_bucket{operation="exchange",le="0.001"} 0"#,
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
    }
}

/// `process_cpu_seconds_total` to the clock tick: between the process's CPU time read just
/// before the scrape and just after (prometheus' own collector gave whole seconds).
#[test]
fn the_process_cpu_seconds_are_counted_to_the_tick() {
    let metrics = Metrics::new().unwrap();
    let cpu = || {
        let stat = procfs::process::Process::myself().unwrap().stat().unwrap();
        (stat.utime + stat.stime) as f64 / procfs::ticks_per_second() as f64
    };
    // Some CPU of this process's own, so that a whole-second count would fall short.
    let spin = std::time::Instant::now();
    while cpu() < 0.05 && spin.elapsed() < std::time::Duration::from_secs(5) {}

    let before = cpu();
    let text = metrics.render(0).unwrap();
    let after = cpu();

    let [line] = series(&text, "process_cpu_seconds_total")[..] else {
        panic!("one process_cpu_seconds_total line in\n{text}");
    };
    let counted: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(
        (before..=after).contains(&counted),
        "{before} <= {counted} <= {after}"
    );
}

/// A keyring that signs with a new key of `kind` and also verifies `verify_only` more.
fn keyring(kind: crate::tokens::KeyKind, verify_only: usize) -> Keyring {
    use crate::tokens::SigningKey;
    let key = |kind| SigningKey::from_pem(&SigningKey::generate_pem(kind).unwrap()).unwrap();
    let others = (0..verify_only)
        .map(|_| key(crate::tokens::KeyKind::Ed25519).verifying_key().clone())
        .collect();
    Keyring::new(key(kind), others, "JWT").unwrap()
}

/// The lines of `name`'s series in the exposition (its HELP and TYPE lines left out).
fn series<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name} ")) || l.starts_with(&format!("{name}{{")))
        .collect()
}

/// The one `sso_signing_key_info` line expected for `keys`' signer, whose alg is `alg`.
fn signer_line(alg: &str, keys: &Keyring) -> [String; 1] {
    let kid = keys.minter().key().kid();
    [format!(
        r#"sso_signing_key_info{{alg="{alg}",kid="{kid}"}} 1"#
    )]
}

#[test]
fn a_reload_that_changes_the_signer_replaces_its_series() {
    use crate::tokens::KeyKind;
    let metrics = Metrics::new().unwrap();
    let text = metrics.render(0).unwrap();
    assert!(series(&text, "sso_signing_key_info").is_empty(), "{text}");

    let first = keyring(KeyKind::P256, 0);
    metrics.config_started(&first);
    let text = metrics.render(0).unwrap();
    assert_eq!(
        series(&text, "sso_signing_key_info"),
        signer_line("ES256", &first)
    );
    let started = series(&text, "sso_config_last_applied_timestamp_seconds");
    assert_eq!(started.len(), 1, "{text}");
    let stamp: u64 = started[0].rsplit(' ').next().unwrap().parse().unwrap();
    assert!(stamp.abs_diff(crate::clock::unix_now()) <= 1, "{stamp}");
    assert!(
        text.lines().any(|l| l == "sso_verification_keys 1"),
        "{text}"
    );

    assert!(
        text.lines()
            .any(|l| l == "sso_config_last_reload_successful 1"),
        "{text}"
    );

    let next = keyring(KeyKind::Ed25519, 1);
    metrics.reload_refused();
    let refused = metrics.render(0).unwrap();
    assert!(
        refused
            .lines()
            .any(|l| l == "sso_config_last_reload_successful 0"),
        "{refused}"
    );
    metrics.reload_applied(&next);
    let text = metrics.render(0).unwrap();
    assert_eq!(
        series(&text, "sso_signing_key_info"),
        signer_line("EdDSA", &next),
        "the old signer's series stays"
    );
    for line in [
        r#"sso_config_reloads_total{result="applied"} 1"#,
        r#"sso_config_reloads_total{result="refused"} 1"#,
        "sso_config_last_reload_successful 1",
        "sso_verification_keys 2",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
    }
}

#[test]
fn each_path_is_counted_under_its_endpoint() {
    for (path, endpoint) in [
        (TOKEN_PATH, Endpoint::Token),
        (INTROSPECT_PATH, Endpoint::Introspect),
        (REVOKE_PATH, Endpoint::Revoke),
        (USERINFO_PATH, Endpoint::UserInfo),
        (JWKS_PATH, Endpoint::Discovery),
        (JWKS_WELL_KNOWN_PATH, Endpoint::Discovery),
        (METADATA_PATH, Endpoint::Discovery),
        (HEALTHZ_PATH, Endpoint::Healthz),
        (READYZ_PATH, Endpoint::Readyz),
        (METRICS_PATH, Endpoint::Metrics),
        // An issuer's metadata under its path, and Spring's trailing slash.
        (
            "/.well-known/oauth-authorization-server/identity",
            Endpoint::Discovery,
        ),
        (
            "/.well-known/oauth-authorization-server/",
            Endpoint::Discovery,
        ),
        // Not under the metadata path: only its name starts the same.
        (
            "/.well-known/oauth-authorization-serverless",
            Endpoint::Other,
        ),
        ("/identity/sso/oauth2/authorize", Endpoint::Other),
        ("/", Endpoint::Other),
    ] {
        assert_eq!(Endpoint::of(path), endpoint, "{path}");
    }
}

/// Counts `answer` under the token endpoint, and the `outcome` series that it went to.
fn counted(answer: actix_web::HttpResponse) -> Vec<String> {
    let metrics = Metrics::new().unwrap();
    // Not `to_srv_response`, which rebuilds the answer without its error.
    let request = actix_web::test::TestRequest::default().to_http_request();
    let response = ServiceResponse::new(request, answer);
    metrics.record(Endpoint::Token, Instant::now(), &Ok(response));
    counted_in(&metrics)
}

/// The token endpoint's request series that are not 0, and its latency count.
fn counted_in(metrics: &Metrics) -> Vec<String> {
    let text = metrics.render(0).unwrap();
    let mut lines: Vec<String> = series(&text, "sso_requests_total")
        .into_iter()
        .chain(series(&text, "sso_request_duration_seconds_count"))
        .filter(|l| !l.ends_with(" 0"))
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}

fn token_outcome(outcome: &str) -> Vec<String> {
    vec![
        r#"sso_request_duration_seconds_count{endpoint="token"} 1"#.to_owned(),
        format!(r#"sso_requests_total{{endpoint="token",outcome="{outcome}"}} 1"#),
    ]
}

/// An answer rendered from an `OAuthError` counts under its code; any other under its status:
/// a success is `ok`, a 503 (`/readyz`, a drain) `temporarily_unavailable`, the rest `other`.
#[test]
fn an_answer_counts_under_its_error_code_or_else_its_status() {
    use actix_web::HttpResponse;
    use actix_web::http::StatusCode;
    for (answer, outcome) in [
        (
            HttpResponse::from_error(OAuthError::invalid_grant("x")),
            "invalid_grant",
        ),
        (
            HttpResponse::from_error(OAuthError::Unavailable(
                RedisOp::Exchange,
                StoreError::Reply,
            )),
            "temporarily_unavailable",
        ),
        (HttpResponse::Ok().finish(), "ok"),
        (HttpResponse::NoContent().finish(), "ok"),
        (
            HttpResponse::ServiceUnavailable().finish(),
            "temporarily_unavailable",
        ),
        (HttpResponse::NotFound().finish(), "other"),
        (HttpResponse::new(StatusCode::BAD_GATEWAY), "other"),
    ] {
        let status = answer.status();
        assert_eq!(counted(answer), token_outcome(outcome), "{status}");
    }
}

/// A middleware's error, which actix renders after the count: its own code, or `other`.
#[test]
fn an_error_in_place_of_an_answer_counts_under_its_code() {
    for (error, outcome) in [
        (
            actix_web::Error::from(OAuthError::invalid_request("x")),
            "invalid_request",
        ),
        (
            actix_web::error::ErrorServiceUnavailable("x"),
            "temporarily_unavailable",
        ),
        (actix_web::error::ErrorNotFound("x"), "other"),
    ] {
        let metrics = Metrics::new().unwrap();
        let answer: Result<ServiceResponse, _> = Err(error);
        metrics.record(Endpoint::Token, Instant::now(), &answer);
        assert_eq!(counted_in(&metrics), token_outcome(outcome), "{outcome}");
    }
}

#[test]
fn ok_comes_first_and_other_last() {
    assert_eq!((OUTCOMES[OK], OUTCOMES[OTHER]), ("ok", "other"));
    assert_eq!(OTHER, OUTCOMES.len() - 1);
}
