//! CPU time of the generator and of the watched servers over the drive, from
//! `/proc/<pid>/task/*/schedstat` (nanoseconds on CPU, summed over threads): what one request
//! costs each side, and proof that the generator is the cheaper one. Only live threads are
//! listed there: a generator thread that ends within the drive (the open loop's pacer) hands
//! in its own time ([`this_thread_cpu_ns`]).

use std::time::Instant;

use serde::Serialize;

/// CPU counters at the start of the drive.
pub struct Cpu {
    start: Instant,
    generator: Option<u64>,
    servers: Vec<(u32, Option<u64>)>,
}

#[derive(Debug, Serialize)]
pub struct CpuUse {
    pub generator: ProcessCpu,
    pub servers: Vec<ProcessCpu>,
}

#[derive(Debug, Serialize)]
pub struct ProcessCpu {
    /// `None` for the generator itself.
    pub pid: Option<u32>,
    pub cpu_s: f64,
    /// CPU seconds per wall-clock second: 1.0 is one core kept busy.
    pub cores: f64,
    /// This process's CPU over every request of the drive: with several servers behind the
    /// URLs, each served only its share, so only their sum is a cost per request.
    pub us_per_request: f64,
}

/// Resets each server's peak RSS (VmHWM) to its RSS now, so that the peak read after the run is
/// this run's, not that of an earlier one on the same process (a `--healthz` run before, a
/// warm-up of more connections). Where the kernel refuses (another user's process), the peak
/// stays the process's since it started.
pub fn reset_peak_rss(server_pids: &[u32]) {
    for pid in server_pids {
        let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
    }
}

impl Cpu {
    pub fn sample(server_pids: &[u32]) -> Self {
        Self {
            start: Instant::now(),
            generator: cpu_ns("self"),
            servers: server_pids
                .iter()
                .map(|pid| (*pid, cpu_ns(&pid.to_string())))
                .collect(),
        }
    }

    /// CPU used since [`Cpu::sample`], and per request for `requests` requests; `ended_ns`:
    /// the time of the generator's threads that ended since.
    pub fn since(&self, requests: u64, ended_ns: u64) -> CpuUse {
        let wall = self.start.elapsed().as_secs_f64().max(1e-9);
        let used = |pid: Option<u32>, before: Option<u64>, now: Option<u64>| {
            let ns = now.zip(before).map_or(0, |(n, b)| n.saturating_sub(b));
            let cpu_s = ns as f64 / 1e9;
            ProcessCpu {
                pid,
                cpu_s,
                cores: cpu_s / wall,
                us_per_request: if requests == 0 {
                    0.0
                } else {
                    ns as f64 / 1e3 / requests as f64
                },
            }
        };
        CpuUse {
            generator: used(None, self.generator, cpu_ns("self").map(|ns| ns + ended_ns)),
            servers: self
                .servers
                .iter()
                .map(|(pid, before)| used(Some(*pid), *before, cpu_ns(&pid.to_string())))
                .collect(),
        }
    }
}

/// Nanoseconds on CPU of every live thread of the process; `None` when /proc cannot tell.
fn cpu_ns(pid: &str) -> Option<u64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let total = (tasks.flatten())
        .filter_map(|task| schedstat_ns(&task.path().join("schedstat")))
        .sum();
    Some(total)
}

/// Nanoseconds on CPU of the calling thread so far; 0 when /proc cannot tell.
pub fn this_thread_cpu_ns() -> u64 {
    schedstat_ns(std::path::Path::new("/proc/thread-self/schedstat")).unwrap_or(0)
}

/// The first field of a `schedstat` file: time on CPU, nanoseconds.
fn schedstat_ns(path: &std::path::Path) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A thread that worked and ended within the drive still counts, once handed in.
    ///
    /// Run in a process of its own: libtest runs the other tests of this binary on threads of
    /// this process, and one that ended between the sample and `since` took its time out of the
    /// live threads' sum, so the count came out short of the handed-in time (about 1 run in 10
    /// of the whole binary on 2 cores). There the spinner is the only thread that ends.
    #[test]
    fn an_ended_threads_time_counts_when_handed_in() {
        const ALONE: &str = "SSO_LOADTEST_USAGE_TEST_ALONE";
        if std::env::var_os(ALONE).is_none() {
            let name = "usage::tests::an_ended_threads_time_counts_when_handed_in";
            let exe = std::env::current_exe().expect("the test binary's path");
            let out = std::process::Command::new(exe)
                .args(["--exact", name, "--test-threads=1", "--nocapture"])
                .env(ALONE, "1")
                .output()
                .expect("the test binary runs");
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{}{text}",
                String::from_utf8_lossy(&out.stderr)
            );
            // A filter that matched nothing would pass too: it must have run.
            assert!(text.contains("1 passed"), "{text}");
            return;
        }
        let cpu = Cpu::sample(&[]);
        // Spins until it has had 30 ms of CPU, not for a wall-clock time: on a loaded machine
        // 50 ms of wall clock held less. The wall-clock cap ends a clock that never advances.
        let spent = std::thread::spawn(|| {
            let start = std::time::Instant::now();
            let mut x = 0u64;
            while this_thread_cpu_ns() < 30_000_000
                && start.elapsed() < std::time::Duration::from_secs(10)
            {
                x = std::hint::black_box(x.wrapping_add(1));
            }
            this_thread_cpu_ns()
        })
        .join()
        .unwrap();

        assert!(spent >= 30_000_000, "{spent} ns");
        let counted = cpu.since(1, spent).generator.cpu_s;
        assert!(counted >= spent as f64 / 1e9, "{counted} s");
    }
}
