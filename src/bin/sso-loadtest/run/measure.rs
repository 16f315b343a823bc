//! Driving the requests, for both endpoints' runs: the measured run and the warm-up before it.

use std::time::Duration;

use crate::cli::RunArgs;
use crate::drive::{self, Config, Work};
use crate::http::Target;
use crate::progress::{bar, run_bar};
use crate::report::{self, ServerMemory};
use crate::tally::Tally;
use crate::usage::{self, CpuUse};

/// The measured run. The servers' CPU and peak RSS count from its start and are read as it
/// ends: a recheck after it is no part of them.
pub(super) async fn measure(
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

/// A closed-loop run of `--warmup` requests whose figures are thrown away.
/// Returns its tally and its rate (successful requests per second).
pub(super) async fn warm_up(
    args: &RunArgs,
    targets: &[Target],
    work: Work,
) -> anyhow::Result<(Tally, f64)> {
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
