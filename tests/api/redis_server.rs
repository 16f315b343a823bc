//! A real `redis-server` for the tests: no persistence, its own free port on 127.0.0.1.
//!
//! Every instance runs under a small `sh` wrapper whose stdin is a pipe held by the test process:
//! when the pipe closes (on [`RedisServer::stop`], on drop, or when the test process exits in any
//! way) the wrapper kills `redis-server` and waits for it. So even the shared instance, kept in a
//! static that is never dropped, cannot outlive the test process.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Starts redis in the background, prints its pid, waits for a line or EOF on stdin, then stops
/// it: with SIGKILL (a crash) if the line is `crash`, else with SIGTERM, and SIGCONT in case a
/// test froze it (a stopped process acts on SIGTERM only once continued). `$1` is the program,
/// `$2` a directory to remove afterwards (may be empty), `$3` its dump file, removed too (a
/// replica's full sync writes one even without persistence), the rest its arguments.
const WRAPPER: &str = r#"r="$1"; cleanup="$2"; dump="$3"; shift 3
"$r" "$@" >/dev/null 2>&1 &
pid=$!
echo "$pid"
read -r how
if [ "$how" = crash ]; then kill -KILL "$pid" 2>/dev/null; else kill "$pid" 2>/dev/null; fi
kill -CONT "$pid" 2>/dev/null
wait "$pid"
[ -n "$cleanup" ] && rm -rf "$cleanup"
rm -f "$dump"
exit 0"#;

const START_TIMEOUT: Duration = Duration::from_secs(3);

pub struct RedisServer {
    port: u16,
    /// redis-server's own pid (the wrapper's child).
    pid: u32,
    child: Option<Child>,
}

impl RedisServer {
    /// A new instance on a free port.
    pub fn start() -> Self {
        Self::start_with(&[], None)
    }

    /// A new instance on a free port; `extra` goes to `redis-server`, `cleanup` is removed once
    /// the instance has stopped.
    pub fn start_with(extra: &[&str], cleanup: Option<&Path>) -> Self {
        Self::start_config(None, extra, cleanup)
    }

    /// A new instance on a free port that reads `config` first (sentinels need a config file
    /// they can rewrite); `extra` and `cleanup` as for [`RedisServer::start_with`].
    pub fn start_config(config: Option<&Path>, extra: &[&str], cleanup: Option<&Path>) -> Self {
        for _ in 0..5 {
            if let Some(server) = Self::try_start(free_port(), config, extra, cleanup) {
                return server;
            }
        }
        panic!("could not start redis-server (set REDIS_SERVER to its path if not on PATH)");
    }

    /// An instance on `held`, which a stopped instance may have used before.
    pub fn start_on(held: &HeldPort, extra: &[&str]) -> Self {
        let port = held.port();
        for _ in 0..5 {
            if let Some(server) = Self::try_start(port, None, extra, None) {
                return server;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("could not start redis-server on port {port}");
    }

    fn try_start(
        port: u16,
        config: Option<&Path>,
        extra: &[&str],
        cleanup: Option<&Path>,
    ) -> Option<Self> {
        let program = std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let cleanup = cleanup.map(|p| p.display().to_string()).unwrap_or_default();
        let port_arg = port.to_string();
        let dir = std::env::temp_dir();
        // Not the default dump.rdb: a file another redis-server left in the shared temp folder
        // (a replica's full sync writes one) would be loaded at start (BusyLoading).
        let dump_name = format!("sso-test-{port}-{}.rdb", std::process::id());
        let dump = dir.join(&dump_name).display().to_string();
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(WRAPPER)
            .arg("sh")
            .args([program.as_str(), cleanup.as_str(), dump.as_str()])
            .args(config)
            .args(["--port", &port_arg, "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .args(["--loglevel", "warning", "--dir"])
            .arg(&dir)
            .args(["--dbfilename", &dump_name])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("sh must be available to run redis-server");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("piped stdout");
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("wrapper prints the pid");
        let pid: u32 = line.trim().parse().expect("a pid");
        let mut server = Self {
            port,
            pid,
            child: Some(child),
        };
        // The port may have been taken by someone else in the meantime: only our process counts.
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if redis_pid(port) == Some(pid) {
                return Some(server);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        server.stop();
        None
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Freezes redis-server (SIGSTOP): it holds its connections but answers nothing, replicates
    /// nothing, acknowledges nothing. Stopping or dropping the server continues it first.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Lets a frozen redis-server go on (SIGCONT).
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        if self.child.is_none() {
            return;
        }
        // The shell's own `kill`: /bin/kill comes from procps, which a minimal Debian lacks.
        let status = Command::new("sh")
            .args(["-c", &format!("kill {signal} {}", self.pid)])
            .status()
            .expect("sh must be available");
        assert!(status.success(), "kill {signal} {}", self.pid);
    }

    /// Stops redis-server (SIGTERM) and waits until it is gone.
    pub fn stop(&mut self) {
        self.end(false);
    }

    /// Kills redis-server (SIGKILL), as a crash would, and waits until it is gone.
    pub fn crash(&mut self) {
        self.end(true);
    }

    fn end(&mut self, crash: bool) {
        if let Some(mut child) = self.child.take() {
            if let Some(mut stdin) = child.stdin.take() {
                let _ = stdin.write_all(if crash { b"crash\n" } else { b"stop\n" });
            }
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port kept for a redis-server that comes and goes (crashes, restarts, starts late), for as
/// long as this lives: a socket bound to it with `SO_REUSEADDR` that never listens. Linux then
/// hands the port to no other bind to port 0 and to no outgoing connection, so no parallel test
/// can take it; connections to it are refused, as to a stopped server; and redis-server, which
/// binds with `SO_REUSEADDR` too, may still listen on it, so nothing is released to restart it.
pub struct HeldPort {
    socket: tokio::net::TcpSocket,
}

impl HeldPort {
    pub fn new() -> Self {
        let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
        socket.set_reuseaddr(true).expect("SO_REUSEADDR");
        socket
            .bind(([127, 0, 0, 1], 0).into())
            .expect("a port to hold");
        Self { socket }
    }

    pub fn port(&self) -> u16 {
        self.socket.local_addr().expect("a bound socket").port()
    }
}

/// A port nobody listens on right now (and nothing keeps free: see [`HeldPort`]).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// The `process_id` that the redis on `port` reports, if one answers.
fn redis_pid(port: u16) -> Option<u32> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .ok()?;
    stream.write_all(b"INFO server\r\n").ok()?;
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        reply.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&reply);
        if let Some(start) = text.find("process_id:") {
            let rest = &text[start + "process_id:".len()..];
            if let Some(end) = rest.find("\r\n") {
                return rest[..end].trim().parse().ok();
            }
        }
    }
}
