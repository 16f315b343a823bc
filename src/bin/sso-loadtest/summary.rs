//! What a run found: its checks over the exchanges, its summary, and its exit status.

use crate::cli::{Endpoint, RunArgs};
use crate::report::{self, Latency, RedisUse, Summary};
use crate::run::{Run, TokenRun};
use crate::tally::{self, Tally};
use crate::verify::SignatureCheck;

/// What the checks over a run of exchanges found.
#[derive(Default)]
struct Exchanges {
    recheck: Option<report::Recheck>,
    signatures_verified: Option<u64>,
    redis: Option<RedisUse>,
    algorithm: Option<String>,
    kid: Option<String>,
}

/// Folds `--recheck` into the tally, then checks all of it: no `jti` or code twice, and every
/// signature verifies.
fn check_exchanges(
    args: &RunArgs,
    tally: &mut Tally,
    token: TokenRun,
    elapsed: f64,
) -> anyhow::Result<Exchanges> {
    let recheck = token.recheck.map(|again| {
        let summary = report::Recheck {
            presented: again.sent,
            refused: again.expected_rejections,
            tokens: again.successes,
        };
        tally.absorb_recheck(again);
        summary
    });
    tally::uniqueness(tally, args.replay_every);
    let mut signatures_verified = None;
    if !args.no_verify_signature {
        let check = SignatureCheck::from_jwk(&token.plan.jwk)?;
        let bad = check.verify_all(&tally.tokens);
        tally.run_violations(
            "access token signature(s) do not verify with the configured key",
            bad as u64,
        );
        signatures_verified = Some((tally.tokens.len() - bad) as u64);
    }
    // Per exchange: nothing to say of none (it read as 0 commands each).
    let used = token.redis.filter(|_| tally.successes > 0);
    let redis =
        used.map(|used| RedisUse::new(used.calls, used.cpu_seconds, tally.successes, elapsed));
    Ok(Exchanges {
        recheck,
        signatures_verified,
        redis,
        algorithm: Some(token.plan.expect.alg.clone()),
        kid: Some(token.plan.expect.kid.clone()),
    })
}

pub fn summarize(args: &RunArgs, run: Run) -> anyhow::Result<Summary> {
    let outcome = run.outcome;
    let mut tally = outcome.tally;
    if let Some(warm) = run.warm {
        tally.absorb_warm_up(warm);
    }
    let elapsed = outcome.elapsed.as_secs_f64();
    let exchanges = match run.token {
        Some(token) => check_exchanges(args, &mut tally, token, elapsed)?,
        None => Exchanges::default(),
    };
    let rate = tally.successes as f64 / elapsed.max(1e-9);
    // A comparison that cannot be read (the other run failed before writing it) is said, and
    // the run's own summary still printed and written.
    let comparisons = args
        .compare
        .iter()
        .filter_map(|path| {
            report::compare(path, rate)
                .map_err(|e| eprintln!("warning: no comparison with {}: {e:#}", path.display()))
                .ok()
        })
        .collect::<Vec<_>>();
    Ok(Summary {
        kind: "run",
        label: args.label.clone(),
        endpoint: match args.endpoint {
            Endpoint::Token => "token".into(),
            Endpoint::Healthz => "healthz".into(),
        },
        mode: if args.rate.is_some() {
            "open"
        } else {
            "closed"
        },
        urls: args.urls.clone(),
        connections: args.connections,
        target_rate_per_s: args.rate,
        form_basic: args.form_basic,
        pkce: args.pkce,
        algorithm: exchanges.algorithm,
        kid: exchanges.kid,
        warmup_requests: args.warmup,
        requests_sent: tally.sent,
        successes: tally.successes,
        elapsed_s: elapsed,
        rate_per_s: rate,
        latency_us: Latency::of(&tally.latency),
        send_lag_us: args.rate.map(|_| Latency::of(&tally.lag)),
        saturated_requests: args.rate.map(|_| outcome.saturation.requests),
        most_waiting_for_a_connection: args.rate.map(|_| outcome.saturation.most_waiting),
        expected_rejections: tally.expected_rejections,
        errors: tally.errors,
        violations: tally.violation_count,
        violation_kinds: tally.violations,
        signatures_verified: exchanges.signatures_verified,
        redis: exchanges.redis,
        servers: run.servers,
        cpu: run.cpu,
        codes_exhausted: outcome.exhausted,
        comparisons,
        recheck: exchanges.recheck,
    })
}

/// 1 when the run failed, saying why on stderr; 0 when it passed.
pub fn exit_status(args: &RunArgs, summary: &Summary) -> u8 {
    let errors: u64 = summary.errors.values().sum();
    if summary.violations > 0 {
        eprintln!("sso-loadtest: FAILED: {} violation(s)", summary.violations);
        1
    } else if errors > 0 && !args.allow_errors {
        eprintln!("sso-loadtest: FAILED: {errors} request(s) did not get the expected answer");
        1
    } else if summary.successes == 0 {
        eprintln!("sso-loadtest: FAILED: no request succeeded");
        1
    } else if summary.codes_exhausted {
        // Less was measured than was asked for: the figures are of a shorter (colder) run.
        eprintln!("sso-loadtest: FAILED: the seeded codes ran out before the run was done");
        1
    } else {
        0
    }
}
