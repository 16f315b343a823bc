//! A run of `sso-loadtest run`: waits for the targets, warms up, seeds codes, drives the
//! measured run and hands what it saw to [`crate::summary`].

mod measure;
mod token;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use sso_token::config::Settings;

use crate::cli::{Endpoint, RunArgs};
use crate::drive::{self, Config, HealthCheck, Work};
use crate::http::{Target, answers_200};
use crate::plan::{Template, TokenPlan};
use crate::report::{self, ServerMemory};
use crate::seed;
use crate::summary::{exit_status, summarize};
use crate::tally::Tally;
use crate::usage::CpuUse;
use measure::{measure, warm_up};
use token::run_token;

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
