//! `sso-loadtest`: the load generator of `scripts/loadtest.sh`.
//!
//! `run` seeds authorization codes into Redis in the contract's format, drives
//! `POST /identity/sso/oauth2/access_token` (or `GET /healthz`) closed- or open-loop, verifies
//! every response, and reports throughput, latency, errors, Redis commands per exchange, CPU and
//! the server's peak RSS. `sign-bench` measures the raw signing rate of the configured key.
//! It reads the same configuration as the server (`--config-dir`, `--env`, `SSO__…`).
//!
//! Exit status: 0 all checks passed, 1 a violation or an unexpected error response, 2 the run
//! could not be set up.

mod cli;
mod drive;
mod http;
mod plan;
mod report;
mod seed;
mod signbench;
mod tally;
mod usage;
mod verify;

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use sso_token::config::Settings;

use crate::cli::{Cli, Command, Endpoint, RunArgs};
use crate::drive::{Config, HealthCheck, Work};
use crate::http::{Target, answers_200};
use crate::plan::{Template, TokenPlan};
use crate::report::{Latency, RedisUse, ServerMemory, Summary};
use crate::tally::Tally;
use crate::usage::CpuUse;
use crate::verify::SignatureCheck;

/// Codes seeded per second of a closed-loop `--duration` run without a warm-up to measure the
/// pace, unless `--codes` says otherwise.
const CODES_PER_SECOND: f64 = 50_000.0;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = Settings::load(&cli.config_dir, cli.env.as_deref())
        .context("loading the server's configuration")
        .and_then(|settings| match cli.command {
            Command::Run(args) => run(settings, *args),
            Command::SignBench {
                seconds,
                label,
                json,
            } => signbench::run(&settings, seconds, label, json.as_deref()).map(|()| 0),
        });
    match result {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("sso-loadtest: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// Each `--server-pid`'s memory now, its peak since the run began included.
fn servers_now(pids: &[u32]) -> Vec<ServerMemory> {
    pids.iter().map(|pid| report::server_memory(*pid)).collect()
}

/// The longest duration, timeout or wait the options take, in seconds: a year.
const MAX_SECONDS: f64 = 365.0 * 86_400.0;

fn run(settings: Settings, args: RunArgs) -> anyhow::Result<u8> {
    if args.connections == 0 || args.threads == 0 || args.seed_batch == 0 {
        bail!("--connections, --threads and --seed-batch must be at least 1");
    }
    // A request a day at the least: the pacer's gap between two (1 / rate) must be a `Duration`.
    if args
        .rate
        .is_some_and(|r| !(r >= 1.0 / 86_400.0 && r.is_finite()))
    {
        bail!("--rate must be a positive number, at least one request a day (1.2e-5)");
    }
    // Seconds a `Duration` holds (a year is plenty): `1e20` would panic converting.
    let seconds = |s: f64| s > 0.0 && s <= MAX_SECONDS;
    if args.duration.is_some_and(|d| !seconds(d)) || args.requests == Some(0) {
        bail!("--duration and --requests must be positive (a duration at most {MAX_SECONDS} s)");
    }
    if !seconds(args.timeout) || !(args.wait_ready == 0.0 || seconds(args.wait_ready)) {
        bail!(
            "--timeout and --wait-ready must be positive numbers of seconds, at most {MAX_SECONDS}"
        );
    }
    // The round robin's mask of healthy targets has 64 bits.
    if args.urls.len() > 64 {
        bail!("--url: at most 64 targets");
    }
    // A pid /proc does not know would read as no CPU and no memory at all.
    if let Some(pid) =
        (args.server_pids.iter()).find(|pid| !Path::new(&format!("/proc/{pid}")).exists())
    {
        bail!("--server-pid {pid}: no such process");
    }
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
struct Run {
    outcome: drive::Outcome,
    cpu: CpuUse,
    servers: Vec<ServerMemory>,
    /// Its failures, tokens and `jti`s join the run's checks.
    warm: Option<Tally>,
    token: Option<TokenRun>,
}

/// What only a run of exchanges has.
struct TokenRun {
    /// The key to verify the tokens with.
    plan: Arc<TokenPlan>,
    /// `None` when it could not be measured.
    redis: Option<seed::Used>,
    recheck: Option<Tally>,
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

fn summarize(args: &RunArgs, run: Run) -> anyhow::Result<Summary> {
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
fn exit_status(args: &RunArgs, summary: &Summary) -> u8 {
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

/// `--recheck`: presents each of `codes` once more, closed loop, and returns what it saw.
async fn recheck_codes(
    args: &RunArgs,
    targets: &[Target],
    plan: &Arc<TokenPlan>,
    codes: &[String],
) -> anyhow::Result<Tally> {
    let config = Config {
        targets: targets.to_vec(),
        connections: args.connections,
        requests: Some(codes.len() as u64),
        duration: None,
        rate: None,
        timeout: Duration::from_secs_f64(args.timeout),
        trace: false,
        health_check: None,
    };
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
    let config = Config {
        targets: targets.to_vec(),
        connections: args.connections,
        requests: Some(args.warmup),
        duration: None,
        rate: None,
        timeout: Duration::from_secs_f64(args.timeout),
        trace: false,
        health_check: None,
    };
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

fn bar(args: &RunArgs, len: u64, message: &'static str) -> ProgressBar {
    if args.no_progress || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len).with_message(message);
    if let Ok(style) = ProgressStyle::with_template(
        "{msg:>14} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} ({per_sec}, {eta})",
    ) {
        bar.set_style(style);
    }
    bar
}

/// Counts requests when the run has a count, milliseconds when it has a duration.
fn run_bar(args: &RunArgs, requests: Option<u64>, duration: Option<Duration>) -> ProgressBar {
    match (requests, duration) {
        (Some(n), _) => bar(args, n, "requests"),
        (None, Some(d)) => {
            let bar = bar(args, d.as_millis() as u64, "running");
            if let Ok(style) =
                ProgressStyle::with_template("{prefix:>14} [{elapsed_precise}] {wide_bar} {msg}")
            {
                bar.set_style(style);
                bar.set_prefix("running");
            }
            bar
        }
        (None, None) => ProgressBar::hidden(),
    }
}
