//! A run of `sso-loadtest run`: waits for the targets, warms up, seeds codes, drives the
//! measured run and hands what it saw to [`crate::summary`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sso_token::config::Settings;

use crate::cli::{Endpoint, RunArgs};
use crate::drive::{self, Config, HealthCheck, Work};
use crate::http::{Target, answers_200};
use crate::plan::{Template, TokenPlan};
use crate::progress::{bar, run_bar};
use crate::report::{self, ServerMemory};
use crate::seed;
use crate::summary::{exit_status, summarize};
use crate::tally::Tally;
use crate::usage::{self, CpuUse};

/// Codes seeded per second of a closed-loop `--duration` run without a warm-up to measure the
/// pace, unless `--codes` says otherwise.
const CODES_PER_SECOND: f64 = 50_000.0;

/// Checks the options, then runs on a runtime of `--threads` threads (1: the calling one).
pub fn run(settings: Settings, args: RunArgs) -> anyhow::Result<u8> {
    args.check()?;
    let runtime = if args.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()?
    };
    runtime.block_on(run_async(settings, args))
}

async fn run_async(settings: Settings, args: RunArgs) -> anyhow::Result<u8> {
    let targets = args
        .urls
        .iter()
        .map(|u| Target::parse(u))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if args.wait_ready > 0.0 {
        wait_ready(&targets, args.endpoint, args.wait_ready).await?;
    }
    let (requests, duration) = match (args.requests, args.duration, args.rate) {
        (Some(n), _, _) => (Some(n), None),
        (None, Some(secs), Some(rate)) => (Some((rate * secs).ceil().max(1.0) as u64), None),
        (None, Some(secs), None) => (None, Some(Duration::from_secs_f64(secs))),
        (None, None, _) => (Some(10_000), None),
    };
    let config = Config {
        targets: targets.clone(),
        connections: args.connections,
        requests,
        duration,
        rate: args.rate,
        timeout: Duration::from_secs_f64(args.timeout),
        trace: args.trace.is_some(),
        health_check: (args.health_check_ms > 0).then(|| HealthCheck {
            every: Duration::from_millis(args.health_check_ms),
            path: probe_path(args.endpoint),
        }),
    };
    let run = match args.endpoint {
        Endpoint::Healthz => run_healthz(&args, &targets, config).await?,
        Endpoint::Token => run_token(&settings, &args, &targets, config).await?,
    };
    if let Some(path) = &args.trace {
        report::write_trace(path, &run.outcome.trace)?;
    }
    let summary = summarize(&args, run)?;
    print!("{}", summary.text());
    if let Some(path) = &args.json {
        summary.write_json(path)?;
    }
    Ok(exit_status(&args, &summary))
}

/// What a run leaves to check and sum up.
pub struct Run {
    pub outcome: drive::Outcome,
    pub cpu: CpuUse,
    pub servers: Vec<ServerMemory>,
    /// Its failures, tokens and `jti`s join the run's checks.
    pub warm: Option<Tally>,
    pub token: Option<TokenRun>,
}

/// What only a run of exchanges has.
pub struct TokenRun {
    /// The key to verify the tokens with.
    pub plan: Arc<TokenPlan>,
    /// `None` when it could not be measured.
    pub redis: Option<seed::Used>,
    pub recheck: Option<Tally>,
}

async fn run_healthz(args: &RunArgs, targets: &[Target], config: Config) -> anyhow::Result<Run> {
    let templates = || targets.iter().map(Template::healthz).collect();
    let mut warm = None;
    if args.warmup > 0 {
        let work = Work::Healthz {
            templates: templates(),
        };
        warm = Some(warm_up(args, targets, work).await?.0);
    }
    let work = Work::Healthz {
        templates: templates(),
    };
    let (outcome, cpu, servers) = measure(args, config, work).await?;
    Ok(Run {
        outcome,
        cpu,
        servers,
        warm,
        token: None,
    })
}

/// Seeds the codes (the warm-up's first), drives the run, reads Redis' figures, rechecks, and
/// removes the codes it did not send.
async fn run_token(
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

/// The measured run. The servers' CPU and peak RSS count from its start and are read as it
/// ends: a recheck after it is no part of them.
async fn measure(
    args: &RunArgs,
    config: Config,
    work: Work,
) -> anyhow::Result<(drive::Outcome, CpuUse, Vec<ServerMemory>)> {
    usage::reset_peak_rss(&args.server_pids);
    let cpu = usage::Cpu::sample(&args.server_pids);
    let bar = run_bar(args, config.requests, config.duration);
    let outcome = drive::drive(config, work, bar).await?;
    let cpu = cpu.since(outcome.tally.sent, outcome.pacer_cpu_ns);
    Ok((outcome, cpu, servers_now(&args.server_pids)))
}

/// Each `--server-pid`'s memory now, its peak since the run began included.
fn servers_now(pids: &[u32]) -> Vec<ServerMemory> {
    pids.iter().map(|pid| report::server_memory(*pid)).collect()
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

/// A closed-loop run of `--warmup` requests whose figures are thrown away.
/// Returns its tally and its rate (successful requests per second).
async fn warm_up(args: &RunArgs, targets: &[Target], work: Work) -> anyhow::Result<(Tally, f64)> {
    let config = Config::closed_loop(
        targets,
        args.connections,
        args.warmup,
        Duration::from_secs_f64(args.timeout),
    );
    let outcome = drive::drive(config, work, bar(args, args.warmup, "warming up")).await?;
    let rate = outcome.tally.successes as f64 / outcome.elapsed.as_secs_f64().max(1e-9);
    Ok((outcome.tally, rate))
}

/// What tells that a target can take the run's requests: `/readyz` for exchanges (they need
/// Redis), `/healthz` for `/healthz`.
fn probe_path(endpoint: Endpoint) -> &'static str {
    match endpoint {
        Endpoint::Token => "/readyz",
        Endpoint::Healthz => "/healthz",
    }
}

/// Polls each target until its probe answers 200.
async fn wait_ready(targets: &[Target], endpoint: Endpoint, secs: f64) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let path = probe_path(endpoint);
    for target in targets {
        let mut request = Vec::new();
        Template::get(target, path).write("", &mut request);
        loop {
            if answers_200(target, &request, Duration::from_secs(1)).await {
                break;
            }
            if Instant::now() >= deadline {
                bail!("{}{path} did not answer 200 within {secs} s", target.url);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}
