//! The summary printed for people, a line per figure; the same [`Summary`] goes to `--json`
//! as it is, for scripts and comparisons.

use std::fmt::Write as _;

use super::Summary;
use crate::usage::ProcessCpu;

impl Summary {
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
