//! The listening sockets, bound here rather than by actix so that port 0 (tests) reports the
//! port it got and a failure names its setting, with the backlog actix would have asked for.

use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};

use socket2::{Domain, Protocol, Socket, Type};

/// Connections the kernel queues before they are accepted: actix's default when it binds
/// itself. `TcpListener::bind` asks for 128, which a burst of new connections overflows (a
/// balancer reconnecting after a restart, a thousand clients at once): the kernel then drops
/// their SYNs, and each retries a second later. Capped by `net.core.somaxconn` (4096 on
/// current kernels).
pub const BACKLOG: i32 = 2048;

/// Binds the first of `address`'s resolutions that binds, as `TcpListener::bind` does, and
/// listens with [`BACKLOG`].
pub fn bind(address: &str) -> io::Result<TcpListener> {
    let mut failed = None;
    for resolved in address.to_socket_addrs()? {
        match bind_one(resolved) {
            Ok(listener) => return Ok(listener),
            Err(e) => failed = Some(e),
        }
    }
    Err(failed.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "the address resolves to nothing",
        )
    }))
}

fn bind_one(address: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    // As `TcpListener::bind` on Unix: a restarted server binds while old connections linger.
    socket.set_reuse_address(true)?;
    socket.bind(&address.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}
