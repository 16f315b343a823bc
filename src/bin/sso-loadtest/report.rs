//! The summary of a run: printed for people, written as JSON (`--json`) for comparisons.

mod text;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::usage::CpuUse;

#[derive(Debug, Serialize)]
pub struct Summary {
    pub kind: &'static str,
    pub label: Option<String>,
    /// `token` or `healthz`.
    pub endpoint: String,
    /// `closed` or `open`.
    pub mode: &'static str,
    pub urls: Vec<String>,
    pub connections: usize,
    pub target_rate_per_s: Option<f64>,
    pub form_basic: bool,
    pub pkce: bool,
    pub algorithm: Option<String>,
    pub kid: Option<String>,
    /// Requests of the warm-up before the measured run (not in any figure below).
    pub warmup_requests: u64,
    pub requests_sent: u64,
    pub successes: u64,
    pub elapsed_s: f64,
    /// Successful requests per second: the headline number.
    pub rate_per_s: f64,
    /// Of the verified answers only: the errors (with `--allow-errors`) are not in it.
    pub latency_us: Latency,
    /// Open loop: how late requests left against their due time (included in `latency_us`):
    /// the generator's own lateness, and any wait for a free connection (below).
    pub send_lag_us: Option<Latency>,
    /// Open loop: requests that came due with every connection busy, and the most of them
    /// waiting at once. Meanwhile the load was closed-loop: raise `connections`.
    pub saturated_requests: Option<u64>,
    pub most_waiting_for_a_connection: Option<u64>,
    pub expected_rejections: u64,
    pub errors: BTreeMap<String, u64>,
    pub violations: u64,
    /// Violation message → count (the first 20 distinct messages).
    pub violation_kinds: BTreeMap<String, u64>,
    /// `None` when signatures were not checked (`--no-verify-signature`, healthz).
    pub signatures_verified: Option<u64>,
    pub redis: Option<RedisUse>,
    pub servers: Vec<ServerMemory>,
    /// CPU time over the drive, of the generator and of each `--server-pid`.
    pub cpu: CpuUse,
    pub codes_exhausted: bool,
    pub comparisons: Vec<Comparison>,
    /// `--recheck`: every code sent once more after the run.
    pub recheck: Option<Recheck>,
}

#[derive(Debug, Serialize)]
pub struct Recheck {
    pub presented: u64,
    /// `400 invalid_grant`: spent, as expected.
    pub refused: u64,
    /// Tokens for codes whose first answer was not a token (a 503, say); a second token for
    /// one code is a violation instead.
    pub tokens: u64,
}

#[derive(Debug, Serialize)]
pub struct Latency {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p99_9: u64,
    pub max: u64,
    pub mean: f64,
}

#[derive(Debug, Serialize)]
pub struct RedisUse {
    /// Calls per successful exchange, by command name. Redis counts the commands a script runs
    /// as well as the script call itself (`evalsha`).
    pub per_exchange: BTreeMap<String, f64>,
    pub total_per_exchange: f64,
    /// `eval`/`evalsha`/`fcall` calls per exchange: each is one round trip.
    pub scripts_per_exchange: f64,
    pub calls: BTreeMap<String, u64>,
    /// Redis' own CPU time per successful exchange (`INFO cpu`), in µs: what sizes Redis.
    pub cpu_us_per_exchange: Option<f64>,
    /// The same as a share of one core over the run.
    pub cpu_cores: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct ServerMemory {
    pub pid: u32,
    pub peak_rss_kib: Option<u64>,
    pub rss_kib: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct Comparison {
    pub against: String,
    pub their_rate_per_s: f64,
    pub ratio: f64,
}

impl Latency {
    pub fn of(histogram: &Histogram<u64>) -> Self {
        Self {
            p50: histogram.value_at_quantile(0.50),
            p90: histogram.value_at_quantile(0.90),
            p99: histogram.value_at_quantile(0.99),
            p99_9: histogram.value_at_quantile(0.999),
            max: histogram.max(),
            mean: histogram.mean(),
        }
    }
}

impl RedisUse {
    pub fn new(
        calls: BTreeMap<String, u64>,
        cpu_seconds: Option<f64>,
        exchanges: u64,
        elapsed: f64,
    ) -> Self {
        let per = |n: u64| {
            if exchanges == 0 {
                0.0
            } else {
                n as f64 / exchanges as f64
            }
        };
        let total: u64 = calls.values().sum();
        let scripts: u64 = calls
            .iter()
            .filter(|(name, _)| {
                [
                    "eval",
                    "evalsha",
                    "eval_ro",
                    "evalsha_ro",
                    "fcall",
                    "fcall_ro",
                ]
                .contains(&name.as_str())
            })
            .map(|(_, n)| n)
            .sum();
        Self {
            per_exchange: calls.iter().map(|(k, v)| (k.clone(), per(*v))).collect(),
            total_per_exchange: per(total),
            scripts_per_exchange: per(scripts),
            calls,
            cpu_us_per_exchange: cpu_seconds
                .filter(|_| exchanges > 0)
                .map(|s| s * 1e6 / exchanges as f64),
            cpu_cores: cpu_seconds.map(|s| s / elapsed.max(1e-9)),
        }
    }
}

/// Peak and current resident set size of a process, from `/proc/<pid>/status`.
pub fn server_memory(pid: u32) -> ServerMemory {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    };
    ServerMemory {
        pid,
        peak_rss_kib: field("VmHWM:"),
        rss_kib: field("VmRSS:"),
    }
}

/// `--trace`: one `due latency` line per answered request (see `drive::Outcome::trace`).
pub fn write_trace(path: &Path, trace: &[(u64, u64)]) -> anyhow::Result<()> {
    let mut text = String::with_capacity(16 * trace.len() + 32);
    text.push_str("# due_us latency_us\n");
    for (due, latency) in trace {
        let _ = writeln!(text, "{due} {latency}");
    }
    std::fs::write(path, text).with_context(|| format!("--trace {}", path.display()))
}

/// Reads another run's or a sign-bench's JSON and relates this rate to it.
pub fn compare(path: &Path, rate: f64) -> anyhow::Result<Comparison> {
    #[derive(Deserialize)]
    struct Other {
        kind: String,
        label: Option<String>,
        endpoint: Option<String>,
        algorithm: Option<String>,
        rate_per_s: f64,
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    let other: Other =
        serde_json::from_str(&text).with_context(|| format!("{}", path.display()))?;
    let name = other.label.unwrap_or_else(|| {
        [Some(other.kind), other.endpoint, other.algorithm]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ")
    });
    Ok(Comparison {
        against: format!("{name} ({})", path.display()),
        their_rate_per_s: other.rate_per_s,
        ratio: if other.rate_per_s > 0.0 {
            rate / other.rate_per_s
        } else {
            0.0
        },
    })
}

impl Summary {
    pub fn write_json(&self, path: &Path) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(path, text + "\n").with_context(|| format!("--json {}", path.display()))
    }
}
