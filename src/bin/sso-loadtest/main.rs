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
mod progress;
mod report;
mod run;
mod seed;
mod signbench;
mod summary;
mod tally;
mod usage;
mod verify;

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use sso_token::config::Settings;

use crate::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = Settings::load(&cli.config_dir, cli.env.as_deref())
        .context("loading the server's configuration")
        .and_then(|settings| match cli.command {
            Command::Run(args) => run::run(settings, *args),
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
