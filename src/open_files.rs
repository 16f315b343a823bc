//! The open-files limit. Every connection, a client's or a Redis lane's, is a descriptor, and
//! the usual soft limit (1024 under systemd and in many containers) is far below what a busy
//! replica holds: past it, actix stops accepting for half a second at a time and Redis lanes
//! cannot reconnect. So the start raises the soft limit to the hard one, as Go's runtime and
//! nginx (`worker_rlimit_nofile`) do, and says when even that is low.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

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
