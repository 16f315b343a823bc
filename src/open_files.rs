//! The open-files limit. Every connection, a client's or a Redis lane's, is a descriptor, and
//! the usual soft limit (1024 under systemd and in many containers) is far below what a busy
//! replica holds: past it, actix stops accepting for half a second at a time and Redis lanes
//! cannot reconnect. So the start raises the soft limit to the hard one, as Go's runtime and
//! nginx (`worker_rlimit_nofile`) do, and says when even that is low.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

use crate::config::{MIN_CONNECTIONS_PER_WORKER, RESERVED_OPEN_FILES, ServerSettings};

/// Below this many, the start warns: a few thousand connections are an ordinary day.
pub const LOW: u64 = 4096;

/// The soft limit before and after (`None`: unlimited), once raised to the hard limit.
pub fn raise_to_hard() -> std::io::Result<(Option<u64>, Option<u64>)> {
    let limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: limit.maximum,
                maximum: limit.maximum,
            },
        )?;
    }
    Ok((limit.current, getrlimit(Resource::Nofile).current))
}

/// The soft limit now (`None`: unlimited).
pub fn soft_limit() -> Option<u64> {
    getrlimit(Resource::Nofile).current
}

/// Raises the soft limit (see the module) and says how far, and whether `server`'s connections
/// fit in it: a warning when the limit is low, or when the workers may hold more connections
/// than it leaves after [`RESERVED_OPEN_FILES`] (clients holding every descriptor would leave
/// none to reconnect Redis).
pub fn raise_and_report(server: &ServerSettings) {
    let shown = |limit: Option<u64>| limit.map_or("unlimited".to_owned(), |n| n.to_string());
    let (before, now) = match raise_to_hard() {
        Ok(limits) => limits,
        Err(e) => {
            log::warn!("open files: the soft limit could not be raised: {e}");
            return;
        }
    };
    let raised = match before == now {
        true => String::new(),
        false => format!(" (raised from {})", shown(before)),
    };
    let (workers, per_worker) = (server.worker_threads(), server.connections_per_worker(now));
    let connections = workers.saturating_mul(per_worker);
    let low = now.is_some_and(|n| n < LOW);
    let overfull = now.is_some_and(|n| connections as u64 > n.saturating_sub(RESERVED_OPEN_FILES));
    if low {
        log::warn!(
            "open files: at most {}{raised}, and each connection takes one: raise the hard \
             limit (systemd LimitNOFILE, docker run --ulimit nofile)",
            shown(now)
        );
    }
    // Said when the limit is low too: the fix differs (the setting, not only the limit).
    if overfull {
        // With 0 the fit has a floor per worker: too many workers for the limit.
        let (why, remedy) = match server.max_connections {
            0 => (
                format!(
                    "server.max_connections 0 gives each worker {MIN_CONNECTIONS_PER_WORKER} at \
                     the least"
                ),
                "lower server.workers, or raise the limit",
            ),
            set => (
                format!("server.max_connections is {set}"),
                "lower it, or set 0 to fit",
            ),
        };
        log::warn!(
            "open files: at most {}{raised}, but {why}: {workers} worker(s) may hold \
             {connections} connections, and once clients hold every descriptor, Redis cannot be \
             reconnected; {remedy}",
            shown(now)
        );
    }
    if !low && !overfull {
        log::info!(
            "open files: at most {}{raised}; connections: at most {per_worker} a worker",
            shown(now)
        );
    }
}
