//! The command line: `run` and `sign-bench`, and every option of a run.

use std::path::{Path, PathBuf};

use anyhow::bail;
use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    version,
    about = "Load generator for sso-token: seeds codes, drives the token endpoint, verifies \
             every answer, reports. Exit status 0 = passed, 1 = violations or errors, 2 = \
             could not run."
)]
pub struct Cli {
    /// Folder with default.toml and, with --env, <env>.toml (the server's configuration).
    #[arg(long, env = "SSO_CONFIG_DIR", default_value = "config", global = true)]
    pub config_dir: PathBuf,
    /// Overlay <config-dir>/<env>.toml on top of <config-dir>/default.toml.
    #[arg(long, env = "SSO_ENV", global = true)]
    pub env: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Seed codes, drive the endpoint, verify every response, print a summary.
    Run(Box<RunArgs>),
    /// Raw signatures/s of the configured signing key on one thread (`SigningKey::sign`).
    SignBench {
        /// How long to sign, in seconds.
        #[arg(long, default_value_t = 5.0, value_parser = positive_seconds)]
        seconds: f64,
        /// A name for the JSON summary.
        #[arg(long)]
        label: Option<String>,
        /// Also write the result as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Endpoint {
    /// POST /identity/sso/oauth2/access_token with a fresh code each time.
    Token,
    /// GET /healthz: the cost of a trivial request, for the exchange/healthz ratio.
    Healthz,
}

#[derive(Args)]
pub struct RunArgs {
    /// Base URL of a server (http only); repeat for several, up to 64: requests go round-robin,
    /// each of the `--connections` holding a connection to every one.
    #[arg(long = "url", default_value = "http://127.0.0.1:8080")]
    pub urls: Vec<String>,
    /// What to drive.
    #[arg(long, value_enum, default_value = "token")]
    pub endpoint: Endpoint,
    /// Connections: each sends its next request when the last is answered (closed loop), or,
    /// with --rate, the most requests in flight: a request due while all are busy waits for
    /// one (counted, and warned of, in the summary).
    #[arg(long, short = 'c', default_value_t = 50)]
    pub connections: usize,
    /// Open loop: requests per second on a fixed timetable (released every 200 µs at most);
    /// latency counts from each request's scheduled time, so queueing in the server is not
    /// hidden, nor is the generator's own lateness.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Stop after this many requests [default: 10000 unless --duration].
    #[arg(long, short = 'n', conflicts_with = "duration")]
    pub requests: Option<u64>,
    /// Stop after this many seconds (with --rate: rate × duration requests).
    #[arg(long, short = 'd')]
    pub duration: Option<f64>,
    /// Requests sent closed-loop before the measured run (connections, pools and caches warm
    /// up); their answers are checked too, but they are not in the figures.
    #[arg(long, default_value_t = 0)]
    pub warmup: u64,
    /// Codes to seed [default: what --requests (or --rate × --duration) needs; for a
    /// closed-loop --duration run four times the warm-up's rate, or 50000 per second without a
    /// warm-up]. Fewer than a counted run needs is refused; a run that uses them all before
    /// its time is up fails (exit 1), having measured less than it was asked to.
    #[arg(long)]
    pub codes: Option<u64>,
    /// Client to exchange codes for (an id of the clients file).
    #[arg(long, default_value = "demo-app")]
    pub client_id: String,
    /// That client's secret in plain text (the clients file holds only its hash).
    #[arg(
        long,
        env = "SSO_LOADTEST_CLIENT_SECRET",
        default_value = "demo-secret"
    )]
    pub client_secret: String,
    /// Redirect URI of the codes [default: the client's first registered one].
    #[arg(long)]
    pub redirect_uri: Option<String>,
    /// Scope each code record names; repeat for several [default: the client's first scope].
    /// Tokens carry `token.base_scopes` too, where the client is registered for them.
    #[arg(long = "scope")]
    pub scopes: Vec<String>,
    /// `username` of the code records.
    #[arg(long, default_value = "zhangs")]
    pub username: String,
    /// `account_id` of the code records; code number i gets `<this>-<i>`.
    #[arg(long, default_value = "8cneYRM97jU0pqVpJWY")]
    pub account_id: String,
    /// Store an S256 PKCE challenge with each code and send the verifier.
    #[arg(long)]
    pub pkce: bool,
    /// Send form bodies with HTTP Basic client authentication instead of the seed's JSON.
    #[arg(long)]
    pub form_basic: bool,
    /// Every K-th request (K ≥ 2) re-sends the code of the request before it, usually while
    /// that one is in flight: exactly one of the two must get a token, the other 400
    /// invalid_grant. (Not while Redis connections are being cut: the replay may revoke the
    /// first one's token before its call, repeated on a new connection, answers; both are then
    /// refused, which this run counts as a violation.)
    #[arg(long, default_value_t = 0, value_parser = replay_every)]
    pub replay_every: u64,
    /// TTL of the seeded codes, seconds; unused codes are deleted after the run. The server
    /// refuses codes older than `token.code_max_age_secs` (600) whatever their TTL.
    #[arg(long, default_value_t = 600)]
    pub code_ttl: u64,
    /// SET commands per pipelined round trip when seeding.
    #[arg(long, default_value_t = 1000)]
    pub seed_batch: usize,
    /// Skip the JWT signature check (claims and everything else are still checked). Signatures
    /// are otherwise verified after the run, off the clock, on all cores.
    #[arg(long)]
    pub no_verify_signature: bool,
    /// Per-request timeout, seconds.
    #[arg(long, default_value_t = 10.0)]
    pub timeout: f64,
    /// Wait up to this many seconds for every URL's /readyz (token) or /healthz to answer 200.
    #[arg(long, default_value_t = 0.0)]
    pub wait_ready: f64,
    /// Health-check the URLs as a load balancer does: GET each one's /readyz (token) or
    /// /healthz every MS milliseconds, all at once, and send no request to one whose last
    /// check did not answer 200 within MS (one failed check takes a URL out, one passed check
    /// brings it back; when none passed, requests go round-robin as without checks). 0: off.
    /// Each /readyz sends Redis a PING, which the Redis figures then count (`ping` per
    /// exchange): leave the checks out of a run whose Redis cost is measured.
    #[arg(long, default_value_t = 0, value_name = "MS")]
    pub health_check_ms: u64,
    /// A server process to watch (the server itself, not a wrapper): its peak RSS during the
    /// measured run (VmHWM, reset at its start where the kernel lets us) and CPU time; repeat
    /// for several.
    #[arg(long = "server-pid")]
    pub server_pids: Vec<u32>,
    /// Also write the summary as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write every answered request of the measured run to FILE, one `due latency` pair per
    /// line (microseconds; due time from the run's start, in due order): when the slow ones
    /// happened, e.g. together every 100 ms or once a second.
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,
    /// Relate this run's rate to another summary (a run's or sign-bench's --json); repeatable.
    #[arg(long = "compare")]
    pub compare: Vec<PathBuf>,
    /// A name for this run in the summary.
    #[arg(long)]
    pub label: Option<String>,
    /// After the run, present every code it sent once more (closed loop): `invalid_grant` is
    /// expected, a token for a code that already got one is a violation. Proves single use
    /// across a failover (scripts/failover-load.sh).
    #[arg(long)]
    pub recheck: bool,
    /// Exit 0 even when some requests failed (violations still fail the run).
    #[arg(long)]
    pub allow_errors: bool,
    /// No progress bar (it is hidden anyway when stderr is not a terminal).
    #[arg(long)]
    pub no_progress: bool,
    /// Runtime threads of the generator; 1 runs everything on the calling thread.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
}

/// The longest duration, timeout or wait the options take, in seconds: a year.
const MAX_SECONDS: f64 = 365.0 * 86_400.0;

impl RunArgs {
    /// What clap cannot check alone: ranges, and limits set by `Duration` and the round robin.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.connections == 0 || self.threads == 0 || self.seed_batch == 0 {
            bail!("--connections, --threads and --seed-batch must be at least 1");
        }
        // A request a day at the least: the pacer's gap between two (1 / rate) must be a
        // `Duration`.
        if self
            .rate
            .is_some_and(|r| !(r >= 1.0 / 86_400.0 && r.is_finite()))
        {
            bail!("--rate must be a positive number, at least one request a day (1.2e-5)");
        }
        // Seconds a `Duration` holds (a year is plenty): `1e20` would panic converting.
        let seconds = |s: f64| s > 0.0 && s <= MAX_SECONDS;
        if self.duration.is_some_and(|d| !seconds(d)) || self.requests == Some(0) {
            bail!(
                "--duration and --requests must be positive (a duration at most {MAX_SECONDS} s)"
            );
        }
        if !seconds(self.timeout) || !(self.wait_ready == 0.0 || seconds(self.wait_ready)) {
            bail!(
                "--timeout and --wait-ready must be positive numbers of seconds, at most {MAX_SECONDS}"
            );
        }
        // The round robin's mask of healthy targets has 64 bits.
        if self.urls.len() > 64 {
            bail!("--url: at most 64 targets");
        }
        // A pid /proc does not know would read as no CPU and no memory at all.
        if let Some(pid) =
            (self.server_pids.iter()).find(|pid| !Path::new(&format!("/proc/{pid}")).exists())
        {
            bail!("--server-pid {pid}: no such process");
        }
        Ok(())
    }
}

fn replay_every(value: &str) -> Result<u64, String> {
    match value.parse::<u64>() {
        Ok(k) if k != 1 => Ok(k),
        _ => Err("must be 0 (off) or at least 2".into()),
    }
}

fn positive_seconds(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs > 0.0 && secs <= 86_400.0 => Ok(secs),
        _ => Err("must be a number of seconds above 0, at most a day".into()),
    }
}
