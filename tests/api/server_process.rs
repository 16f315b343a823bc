//! The real `sso-token serve` as a child process, for what only a process shows: signals.
//! Its configuration is the shipped `default.toml` plus an overlay (`test.toml`) written from
//! test settings; it logs at `info` to a pipe the test reads.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use sso_token::config::Settings;
use sso_token::issue_code;
use sso_token::routes::paths::JWKS_PATH;
use sso_token::store::Store;

use crate::helpers::{APP, Answer, code_record, http_client, test_dir};

pub const WAIT: Duration = Duration::from_secs(10);

/// Runs `$1 $2…` in place of the shell (same pid: signals and the exit status are the
/// server's), leaving behind a watcher that waits for EOF on the shell's stdin, a pipe held by
/// the test process, and then kills the server. So a test process that ends without dropping
/// its [`ServerProcess`] (the watchdog's `exit`, a CI timeout's SIGKILL) leaves no server
/// behind. The watcher kills only the process it was started for (same pid and start time: a
/// server that ended and was reaped may see its pid reused).
const WRAPPER: &str = r#"exec 3<&0
(
  read -r stat </proc/$$/stat; set -- $stat; started=${22}
  read -r _ <&3
  read -r stat </proc/$$/stat && set -- $stat && [ "${22}" = "$started" ] && kill -KILL $$
) </dev/null >/dev/null 2>&1 &
exec "$@" </dev/null 3<&-"#;

/// The server process; killed when the test ends, however it ends.
pub struct ServerProcess {
    child: Child,
    log: Receiver<String>,
    pub base: String,
    /// The log lines up to the one that says it listens, that one included.
    pub start_log: Vec<String>,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ServerProcess {
    /// Starts the server on a config directory made by [`config_dir`] and waits until it
    /// listens.
    pub fn start(config_dir: &Path) -> Self {
        Self::start_after(config_dir, "")
    }

    /// [`Self::start`], the shell running `prelude` (such as `ulimit -Sn 256;`) first.
    pub fn start_after(config_dir: &Path, prelude: &str) -> Self {
        let mut server = Self::spawn(config_dir, prelude);
        server.await_listening();
        server
    }

    /// The process, started as [`Self::start_after`] starts it, not waited for.
    pub fn spawn(config_dir: &Path, prelude: &str) -> Self {
        let script = format!("{prelude}{WRAPPER}");
        let mut child = without_sso_env(&mut Command::new("sh"))
            .args(["-c", &script, "sh", env!("CARGO_BIN_EXE_sso-token")])
            .args(["--config-dir"])
            .arg(config_dir)
            .args(["--env", "test", "serve"])
            .env("RUST_LOG", "info")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("sso-token starts");
        let stderr = child.stderr.take().expect("piped stderr");
        let (lines, log) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            log,
            base: String::new(),
            start_log: Vec::new(),
        }
    }

    /// Reads the log until the server listens, and takes its port from that line.
    pub fn await_listening(&mut self) {
        self.start_log = self.log_until("listening on");
        let line = self.start_log.last().expect("the listening line").clone();
        // The release, for telling replicas apart in a rolling deploy.
        let release = concat!("sso-token ", env!("CARGO_PKG_VERSION"), " listening on");
        assert!(line.contains(release), "`{line}` does not name the release");
        // And the workers, since actix-server's own lines are off.
        assert!(
            line.ends_with(" worker(s)"),
            "`{line}` does not count the workers"
        );
        // `listening on http://<host>:<port bound> with`: the scheme, and the port of `:0`.
        let port = line
            .split_once("listening on http://")
            .and_then(|(_, rest)| rest.split(' ').next())
            .and_then(|address| address.rsplit_once(':'))
            .and_then(|(_, port)| port.parse::<u16>().ok())
            .unwrap_or_else(|| panic!("no http:// address with its port in `{line}`"));
        self.base = format!("http://127.0.0.1:{port}");
    }

    /// The first log line from now on that contains `needle`; panics after [`WAIT`].
    pub fn wait_for_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.log.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        panic!("no log line with `{needle}` within {WAIT:?}");
    }

    /// Every log line from now on up to the first that contains `needle`, that one included;
    /// panics after [`WAIT`].
    pub fn log_until(&self, needle: &str) -> Vec<String> {
        let deadline = Instant::now() + WAIT;
        let mut lines = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.log.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(needle);
                    lines.push(line);
                    if found {
                        return lines;
                    }
                }
                Err(_) => break,
            }
        }
        panic!("no log line with `{needle}` within {WAIT:?}: {lines:#?}");
    }

    /// Every log line from now on until the process has ended, which it must within `within`.
    pub fn log_to_the_end(&mut self, within: Duration) -> Vec<String> {
        assert!(
            self.exit_within(within).is_some(),
            "running after {within:?}"
        );
        // The process is gone: the reader thread sends what is left, then hangs up.
        std::iter::from_fn(|| self.log.recv_timeout(Duration::from_secs(2)).ok()).collect()
    }

    /// The server's process id (the wrapper shell execs it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends the signal `name` (`HUP`, `TERM`, `INT`) to the server.
    pub fn signal(&self, name: &str) {
        send_signal(self.child.id(), name);
    }

    /// How the process ended, or `None` if it still runs after `within`.
    pub fn exit_within(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("the child's status") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits, off the runtime's threads, for the process to end within `within` with status 0
    /// (a graceful stop; a forced one fails); panics with `why` if it does not.
    pub async fn ends_cleanly_within(mut self, within: Duration, why: &'static str) {
        let status = tokio::task::spawn_blocking(move || self.exit_within(within))
            .await
            .expect("the waiting thread")
            .unwrap_or_else(|| panic!("still running after {within:?}: {why}"));
        assert!(status.success(), "{why}: not a graceful stop: {status:?}");
    }

    pub async fn kids(&self) -> Vec<String> {
        let response = http_client()
            .get(format!("{}{JWKS_PATH}", self.base))
            .send()
            .await;
        let answer = Answer::of(response.expect("JWKS answered")).await;
        let keys = answer.json["keys"].as_array().cloned().unwrap_or_default();
        keys.iter()
            .map(|k| k["kid"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}

/// A fresh code for [`APP`], written to the Redis of `settings` as the authorize service would.
pub async fn write_code(settings: &Settings) -> String {
    let store = Store::new(&settings.redis).unwrap();
    let code = issue_code::new_code().unwrap();
    let written = issue_code::write(&store, &code, &code_record(&APP), 60).await;
    assert!(written.unwrap(), "the code was new");
    code
}

/// A fresh config directory: the shipped `default.toml` and an overlay from `settings`.
pub fn config_dir(settings: &Settings, verify: &[&Path]) -> PathBuf {
    let dir = test_dir().join(format!("config-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("default.toml"),
        include_str!("../../config/default.toml"),
    )
    .unwrap();
    write_overlay(&dir, settings, verify);
    dir
}

/// Writes `<dir>/test.toml`, the overlay SIGHUP reads again.
pub fn write_overlay(dir: &Path, settings: &Settings, verify: &[&Path]) {
    let quote = |p: &Path| serde_json::to_string(&p.display().to_string()).unwrap();
    let verify: Vec<String> = verify.iter().map(|p| quote(p)).collect();
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nworkers = 1\nshutdown_timeout_secs = {}\n\
         shutdown_delay_ms = {}\nexchange_slots = {}\n\
         [redis]\nurl = {}\nkey_prefix = {}\ntimeout_ms = {}\n\
         [token]\nsigning_key = {}\nverify_keys = [{}]\n\
         [clients]\nfile = {}\n\
         [metrics]\nlisten = {}\n",
        settings.server.shutdown_timeout_secs,
        settings.server.shutdown_delay_ms,
        settings.server.exchange_slots,
        serde_json::to_string(&settings.redis.url).unwrap(),
        serde_json::to_string(&settings.redis.key_prefix).unwrap(),
        settings.redis.timeout_ms,
        quote(&settings.token.signing_key),
        verify.join(", "),
        quote(&settings.clients.file),
        serde_json::to_string(&settings.metrics.listen).unwrap(),
    );
    std::fs::write(dir.join("test.toml"), text).expect("overlay written");
}

/// Sends the signal `name` to `pid` with the shell's `kill` (no procps needed).
pub fn send_signal(pid: u32, name: &str) {
    let status = Command::new("sh")
        .args(["-c", &format!("kill -{name} {pid}")])
        .status()
        .expect("sh runs kill");
    assert!(status.success());
}

/// `command` without the environment's `SSO_…` variables (any case, as the configuration reads
/// `SSO__…`): a developer's or CI's `SSO__REDIS__URL` or `SSO_ENV` must not override the test's.
pub fn without_sso_env(command: &mut Command) -> &mut Command {
    for (name, _) in std::env::vars_os() {
        let bytes = name.as_encoded_bytes();
        if bytes.len() >= 4 && bytes[..4].eq_ignore_ascii_case(b"SSO_") {
            command.env_remove(name);
        }
    }
    command
}
