//! The summary of a run: printed for people, written as JSON (`--json`) for comparisons.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::usage::{CpuUse, ProcessCpu};

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

/// Reads another run's or a sign-bench's JSON and relates this rate to it.
/// `--trace`: one `due latency` line per answered request (see `drive::Outcome::trace`).
pub fn write_trace(path: &Path, trace: &[(u64, u64)]) -> anyhow::Result<()> {
    let mut text = String::with_capacity(16 * trace.len() + 32);
    text.push_str("# due_us latency_us\n");
    for (due, latency) in trace {
        let _ = writeln!(text, "{due} {latency}");
    }
    std::fs::write(path, text).with_context(|| format!("--trace {}", path.display()))
}

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

    pub fn text(&self) -> String {
        let mut out = String::new();
        self.write_heading(&mut out);
        self.write_latency(&mut out);
        self.write_answers(&mut out);
        self.write_redis(&mut out);
        self.write_servers(&mut out);
        self.write_cpu(&mut out);
        self.write_verdict(&mut out);
        out
    }

    /// What was driven, how, against what, and how much of it succeeded.
    fn write_heading(&self, out: &mut String) {
        let label = self
            .label
            .as_deref()
            .map(|l| format!(" [{l}]"))
            .unwrap_or_default();
        let what = match (&self.endpoint[..], &self.algorithm) {
            ("token", Some(alg)) => format!("token exchange, {alg}"),
            _ => format!("GET /{}", self.endpoint),
        };
        let mode = match self.target_rate_per_s {
            Some(rate) => format!(
                "open loop at {rate:.0}/s, up to {} in flight",
                self.connections
            ),
            None => format!("closed loop, {} connections", self.connections),
        };
        let body = if self.endpoint == "token" {
            match (self.form_basic, self.pkce) {
                (true, true) => ", form + Basic, PKCE",
                (true, false) => ", form + Basic",
                (false, true) => ", JSON, PKCE",
                (false, false) => ", JSON",
            }
        } else {
            ""
        };
        let _ = writeln!(out, "== sso-loadtest{label}: {what}{body}; {mode}");
        let _ = writeln!(out, "   against     {}", self.urls.join(", "));
        let warm = if self.warmup_requests > 0 {
            format!(" (after {} warm-up requests)", self.warmup_requests)
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "   requests    {} sent, {} succeeded in {:.2} s{warm}",
            self.requests_sent, self.successes, self.elapsed_s
        );
        let _ = writeln!(out, "   throughput  {:.1} successful/s", self.rate_per_s);
    }

    /// Latency, and in open loop how late requests left and whether the connections kept up.
    fn write_latency(&self, out: &mut String) {
        let l = &self.latency_us;
        let _ = writeln!(
            out,
            "   latency ms  p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}  (mean {:.3}{}{})",
            ms(l.p50),
            ms(l.p90),
            ms(l.p99),
            ms(l.p99_9),
            ms(l.max),
            l.mean / 1000.0,
            if self.target_rate_per_s.is_some() {
                ", from each request's scheduled time"
            } else {
                ""
            },
            // With --allow-errors: a timed-out or refused request has no place in it.
            if self.errors.is_empty() {
                ""
            } else {
                "; the verified answers only, not the errors below"
            }
        );
        if let Some(lag) = &self.send_lag_us {
            let _ = writeln!(
                out,
                "   send lag ms p50 {:.3}  p99 {:.3}  max {:.3}  (due time to sending: the generator's \
                 lateness and any wait for a free connection, inside the latency)",
                ms(lag.p50),
                ms(lag.p99),
                ms(lag.max)
            );
        }
        if let Some(saturated) = self.saturated_requests.filter(|&n| n > 0) {
            let _ = writeln!(
                out,
                "   WARNING     {saturated} requests ({:.2} %) came due with all {} connections busy \
                 (up to {} waiting at once): the load was closed-loop meanwhile; raise -c",
                100.0 * saturated as f64 / self.requests_sent.max(1) as f64,
                self.connections,
                self.most_waiting_for_a_connection.unwrap_or(0)
            );
        }
    }

    /// The answers other than verified successes: refused replays, the recheck, errors; and the
    /// signatures verified.
    fn write_answers(&self, out: &mut String) {
        if self.expected_rejections > 0 {
            let _ = writeln!(
                out,
                "   replays     {} refused as expected (400 invalid_grant)",
                self.expected_rejections
            );
        }
        if let Some(r) = &self.recheck {
            let _ = writeln!(
                out,
                "   recheck     {} codes presented again: {} refused (invalid_grant), {} got \
                 their first token",
                r.presented, r.refused, r.tokens
            );
        }
        if self.errors.is_empty() {
            let _ = writeln!(out, "   errors      none");
        } else {
            let errors: Vec<_> = self
                .errors
                .iter()
                .map(|(k, n)| format!("{k}: {n}"))
                .collect();
            let _ = writeln!(out, "   errors      {}", errors.join(", "));
        }
        match self.signatures_verified {
            Some(n) => {
                let _ = writeln!(out, "   signatures  {n} verified");
            }
            None if self.endpoint == "token" => {
                let _ = writeln!(out, "   signatures  not verified (--no-verify-signature)");
            }
            None => {}
        }
    }

    fn write_redis(&self, out: &mut String) {
        let Some(redis) = &self.redis else {
            if self.endpoint == "token" {
                let _ = writeln!(
                    out,
                    "   redis       not measured (Sentinel or Cluster, Redis restarted during the \
                     run, or no exchange succeeded)"
                );
            }
            return;
        };
        let per: Vec<_> = redis
            .per_exchange
            .iter()
            .map(|(name, n)| format!("{name} {n:.2}"))
            .collect();
        let _ = writeln!(
            out,
            "   redis       {:.2} commands per successful exchange ({}); {:.2} script calls",
            redis.total_per_exchange,
            if per.is_empty() {
                "none".to_owned()
            } else {
                per.join(", ")
            },
            redis.scripts_per_exchange
        );
        if let (Some(us), Some(cores)) = (redis.cpu_us_per_exchange, redis.cpu_cores) {
            let _ = writeln!(
                out,
                "   redis cpu   {cores:.2} cores, {us:.1} µs per successful exchange"
            );
        }
    }

    /// Each `--server-pid`'s memory.
    fn write_servers(&self, out: &mut String) {
        let mib = |k: Option<u64>| {
            k.map_or_else(
                || "?".to_owned(),
                |k| format!("{:.1} MiB", k as f64 / 1024.0),
            )
        };
        for server in &self.servers {
            let _ = writeln!(
                out,
                "   server      pid {}: peak RSS {}, now {}",
                server.pid,
                mib(server.peak_rss_kib),
                mib(server.rss_kib)
            );
        }
    }

    fn write_cpu(&self, out: &mut String) {
        let cpu = |p: &ProcessCpu| {
            format!(
                "{:.2} s = {:.2} cores, {:.1} µs per request",
                p.cpu_s, p.cores, p.us_per_request
            )
        };
        let _ = writeln!(out, "   cpu         generator {}", cpu(&self.cpu.generator));
        let servers = &self.cpu.servers;
        if let [server] = servers.as_slice() {
            let pid = server.pid.unwrap_or_default();
            let _ = writeln!(out, "   cpu         server pid {pid} {}", cpu(server));
        } else if !servers.is_empty() {
            // Each served a share of the requests: only their sum is a cost per request.
            for server in servers {
                let pid = server.pid.unwrap_or_default();
                let _ = writeln!(
                    out,
                    "   cpu         server pid {pid} {:.2} s = {:.2} cores",
                    server.cpu_s, server.cores
                );
            }
            let sum = |f: fn(&ProcessCpu) -> f64| servers.iter().map(f).sum::<f64>();
            let _ = writeln!(
                out,
                "   cpu         servers together {:.2} s = {:.2} cores, {:.1} µs per request",
                sum(|p| p.cpu_s),
                sum(|p| p.cores),
                sum(|p| p.us_per_request)
            );
        }
    }

    /// The comparisons, whether the codes ran out, and the violations.
    fn write_verdict(&self, out: &mut String) {
        for c in &self.comparisons {
            let _ = writeln!(
                out,
                "   ratio       {:.1} % of {} at {:.1}/s",
                c.ratio * 100.0,
                c.against,
                c.their_rate_per_s
            );
        }
        if self.codes_exhausted {
            let _ = writeln!(
                out,
                "   NOTE        the seeded codes ran out before the time was up: raise --codes"
            );
        }
        if self.violations > 0 {
            let _ = writeln!(out, "!! {} VIOLATION(S):", self.violations);
            for (message, count) in &self.violation_kinds {
                let _ = writeln!(out, "!!   {count} × {message}");
            }
        } else {
            let _ = writeln!(out, "   violations  none");
        }
    }
}

/// Microseconds as milliseconds.
fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}
