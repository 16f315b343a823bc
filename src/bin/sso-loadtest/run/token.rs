//! What only a run of exchanges does: seed codes (the warm-up's first), recheck, remove the unsent.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use sso_token::config::Settings;

use super::measure::{measure, warm_up};
use super::{Run, TokenRun};
use crate::cli::RunArgs;
use crate::drive::{self, Config, Work};
use crate::http::Target;
use crate::plan::TokenPlan;
use crate::progress::bar;
use crate::seed;
use crate::tally::Tally;

/// Codes seeded per second of a closed-loop `--duration` run without a warm-up to measure the
/// pace, unless `--codes` says otherwise.
const CODES_PER_SECOND: f64 = 50_000.0;

/// Seeds the codes (the warm-up's first), drives the run, reads Redis' figures, rechecks, and
/// removes the codes it did not send.
pub(super) async fn run_token(
    settings: &Settings,
    args: &RunArgs,
    targets: &[Target],
    config: Config,
) -> anyhow::Result<Run> {
    let plan = Arc::new(TokenPlan::new(settings, args, targets).await?);
    let mut redis = seed::Redis::connect(&settings.redis).await?;
    let warm = if args.warmup > 0 {
        Some(warm_up_exchanges(args, targets, &plan, &mut redis).await?)
    } else {
        None
    };
    let count = codes_to_seed(args, config.requests, warm.as_ref().map(|(_, rate)| *rate))?;
    let seeding = bar(args, count as u64, "seeding codes");
    let codes = redis
        .seed(&plan, count, args.code_ttl, args.seed_batch, &seeding)
        .await?;
    seeding.finish_and_clear();
    let codes = Arc::new(codes);
    let counters = redis.counters().await?;
    let work = Work::Token {
        plan: Arc::clone(&plan),
        codes: Arc::clone(&codes),
        replay_every: args.replay_every,
        keep_tokens: !args.no_verify_signature,
        recheck: false,
    };
    let (outcome, cpu, servers) = measure(args, config, work).await?;
    // Redis' counters before the recheck: its calls are not the run's exchanges.
    let used = redis.used_since(counters).await?;
    let sent = outcome.codes_sent.min(codes.len());
    let recheck = if args.recheck {
        Some(recheck_codes(args, targets, &plan, &codes[..sent]).await?)
    } else {
        None
    };
    redis.remove(&codes[sent..], args.seed_batch).await?;
    Ok(Run {
        outcome,
        cpu,
        servers,
        warm: warm.map(|(tally, _)| tally),
        token: Some(TokenRun {
            plan,
            redis: used,
            recheck,
        }),
    })
}

/// The warm-up of a run of exchanges, on `--warmup` codes of its own.
/// Returns its tally and its rate (successful requests per second).
async fn warm_up_exchanges(
    args: &RunArgs,
    targets: &[Target],
    plan: &Arc<TokenPlan>,
    redis: &mut seed::Redis,
) -> anyhow::Result<(Tally, f64)> {
    let seeding = bar(args, args.warmup, "seeding warm-up");
    let warm_codes = redis
        .seed(
            plan,
            args.warmup as usize,
            args.code_ttl,
            args.seed_batch,
            &seeding,
        )
        .await?;
    seeding.finish_and_clear();
    let work = Work::Token {
        plan: Arc::clone(plan),
        codes: Arc::new(warm_codes),
        replay_every: 0,
        // Checked like the run's: their signatures, and their jtis among the run's.
        keep_tokens: !args.no_verify_signature,
        recheck: false,
    };
    warm_up(args, targets, work).await
}

/// How many codes to seed for the measured run: `--codes`, or what its requests need, or
/// (a `--duration` run) a guess from the warm-up's pace.
fn codes_to_seed(
    args: &RunArgs,
    requests: Option<u64>,
    warm_rate: Option<f64>,
) -> anyhow::Result<usize> {
    let count = match (requests, args.codes) {
        (Some(n), Some(codes)) if codes < drive::codes_for(n, args.replay_every) => {
            bail!(
                "--codes {codes} is fewer than the {} codes this run of {n} requests needs",
                drive::codes_for(n, args.replay_every)
            );
        }
        (_, Some(codes)) => codes,
        (Some(n), None) => drive::codes_for(n, args.replay_every),
        (None, None) => {
            // Four times the warm-up's pace, or a generous guess without one: the
            // warm-up runs cold (EdDSA on one core: 15,100/s warming up, then 35,264/s).
            let per_second = warm_rate.map_or(CODES_PER_SECOND, |r| (4.0 * r).max(5_000.0));
            (per_second * args.duration.unwrap_or(1.0)).ceil() as u64
        }
    };
    usize::try_from(count).context("--codes is too large")
}

/// `--recheck`: presents each of `codes` once more, closed loop, and returns what it saw.
async fn recheck_codes(
    args: &RunArgs,
    targets: &[Target],
    plan: &Arc<TokenPlan>,
    codes: &[String],
) -> anyhow::Result<Tally> {
    let config = Config::closed_loop(
        targets,
        args.connections,
        codes.len() as u64,
        Duration::from_secs_f64(args.timeout),
    );
    let work = Work::Token {
        plan: Arc::clone(plan),
        codes: Arc::new(codes.to_vec()),
        replay_every: 0,
        keep_tokens: !args.no_verify_signature,
        recheck: true,
    };
    let bar = bar(args, codes.len() as u64, "rechecking");
    Ok(drive::drive(config, work, bar).await?.tally)
}
