//! A minimal HTTP/1.1 keep-alive client over a tokio `TcpStream`: one request at a time per
//! connection, `Content-Length` bodies only (what actix-web sends for these endpoints).
//!
//! Hand-written rather than hyper's client because the load generator must cost less CPU than
//! the server it measures: no header map, no body channel, no per-request allocation. The
//! response body is lent out of the connection's read buffer.

mod head;

use std::net::{SocketAddr, ToSocketAddrs};

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use head::{framing, parse_head};

/// Largest response head plus body we accept; a token response is about 1 KiB.
const MAX_RESPONSE: usize = 1 << 20;

/// A server to send requests to: `http://host[:port][/prefix]`.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: String,
    pub addr: SocketAddr,
    /// The `Host` header.
    pub host: String,
    /// Path prefix without the trailing slash (empty for none), for servers behind a proxy path.
    pub prefix: String,
}

impl Target {
    pub fn parse(url: &str) -> anyhow::Result<Self> {
        let Some(rest) = url.strip_prefix("http://") else {
            bail!("--url `{url}`: only http:// URLs are supported");
        };
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if authority.is_empty() {
            bail!("--url `{url}`: no host");
        }
        let with_port = if authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| !p.contains(']'))
        {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        let addr = with_port
            .to_socket_addrs()
            .with_context(|| format!("--url `{url}`: cannot resolve `{with_port}`"))?
            .next()
            .with_context(|| format!("--url `{url}`: `{with_port}` has no address"))?;
        Ok(Self {
            url: url.to_owned(),
            addr,
            host: authority.to_owned(),
            prefix: path.trim_end_matches('/').to_owned(),
        })
    }
}

/// Why a request got no usable response.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("connect: {0}")]
    Connect(std::io::ErrorKind),
    #[error("i/o: {0}")]
    Io(std::io::ErrorKind),
    #[error("connection closed before a full response")]
    Closed,
    #[error("malformed response: {0}")]
    Malformed(&'static str),
    /// A 2xx that could not be read whole (its framing, its size, cut short): what it carried
    /// (a token, its code spent) went unchecked, which counts as a violation, not an error.
    #[error("a success answer that could not be read: {0}")]
    UnreadSuccess(&'static str),
    #[error("timeout")]
    Timeout,
}

/// A response; the body borrows the connection's buffer until the next request.
pub struct Response<'a> {
    pub status: u16,
    pub body: &'a [u8],
    /// `Cache-Control` contains `no-store`.
    pub no_store: bool,
    /// The server asked to close the connection after this response.
    pub close: bool,
}

pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    filled: usize,
    /// Bytes of the previous response, dropped when the next request is sent.
    consumed: usize,
}

impl Conn {
    pub async fn connect(addr: SocketAddr) -> Result<Self, HttpError> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| HttpError::Connect(e.kind()))?;
        stream
            .set_nodelay(true)
            .map_err(|e| HttpError::Connect(e.kind()))?;
        Ok(Self {
            stream,
            buf: vec![0; 8192],
            filled: 0,
            consumed: 0,
        })
    }

    /// Whether the server has closed this idle connection (it sent its FIN, as a server does
    /// when it shuts down or its keep-alive timer expires). Checked before reuse, as HTTP
    /// clients do, so that a request is not written into a connection already closed: such a
    /// request was never in flight at the server.
    pub fn peer_closed(&self) -> bool {
        let mut probe = [0u8; 1];
        match self.stream.try_read(&mut probe) {
            Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
            // End of stream, or bytes nobody asked for: either way not reusable.
            Ok(_) => true,
        }
    }

    /// Sends one complete request and reads its response.
    pub async fn send(&mut self, request: &[u8]) -> Result<Response<'_>, HttpError> {
        if self.consumed > 0 {
            self.buf.copy_within(self.consumed..self.filled, 0);
            self.filled -= self.consumed;
            self.consumed = 0;
        }
        // One request at a time: bytes already here answer nothing this tool asked, and read
        // as the next answer they would make up its status and latency.
        if self.filled > 0 {
            return Err(HttpError::Malformed("bytes after the previous answer"));
        }
        self.stream
            .write_all(request)
            .await
            .map_err(|e| HttpError::Io(e.kind()))?;
        let mut head = None;
        loop {
            if head.is_none() && self.filled > 0 {
                head = parse_head(&self.buf[..self.filled])?;
                // An interim answer (100 Continue, 103 Early Hints) has no body and is not the
                // answer: drop it, the real one follows on the same connection.
                if let Some(h) = head.take_if(|h| (100..200).contains(&h.status) && h.status != 101)
                {
                    self.buf.copy_within(h.len..self.filled, 0);
                    self.filled -= h.len;
                    continue;
                }
            }
            if let Some(h) = &head {
                let end = h.len + h.content_length;
                if end > MAX_RESPONSE {
                    return Err(framing(h.status, "response larger than 1 MiB"));
                }
                if self.filled >= end {
                    self.consumed = end;
                    return Ok(Response {
                        status: h.status,
                        body: &self.buf[h.len..end],
                        no_store: h.no_store,
                        close: h.close,
                    });
                }
                if self.buf.len() < end {
                    self.buf.resize(end, 0);
                }
            }
            if self.filled == self.buf.len() {
                if self.buf.len() >= MAX_RESPONSE {
                    return Err(HttpError::Malformed("response head larger than 1 MiB"));
                }
                self.buf.resize(self.buf.len() * 2, 0);
            }
            let n = self
                .stream
                .read(&mut self.buf[self.filled..])
                .await
                .map_err(|e| HttpError::Io(e.kind()))?;
            if n == 0 {
                return Err(match &head {
                    Some(h) => framing(h.status, "connection closed inside the body"),
                    None => HttpError::Closed,
                });
            }
            self.filled += n;
        }
    }
}

/// Whether `request` (a probe) gets a 200 from `target` on a new connection within `within`.
pub async fn answers_200(target: &Target, request: &[u8], within: std::time::Duration) -> bool {
    let attempt = async {
        let mut conn = Conn::connect(target.addr).await?;
        conn.send(request).await.map(|r| r.status)
    };
    let status = tokio::time::timeout(within, attempt).await;
    matches!(status, Ok(Ok(200)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection to a server that reads one request and writes `answers` (all at once);
    /// the server's task gives its side of the connection back.
    async fn answering(
        answers: &'static [u8],
    ) -> (Conn, tokio::task::JoinHandle<tokio::net::TcpStream>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (conn, accepted) = tokio::join!(Conn::connect(addr), listener.accept());
        let (conn, (mut server_side, _)) = (conn.unwrap(), accepted.unwrap());
        let server = tokio::spawn(async move {
            let mut request = [0u8; 64];
            let _ = server_side.read(&mut request).await.unwrap();
            server_side.write_all(answers).await.unwrap();
            server_side
        });
        (conn, server)
    }

    /// A server that answers one request twice: the second answer is no answer to the next
    /// request, which would otherwise take it and its latency of nothing.
    #[tokio::test]
    async fn bytes_after_an_answer_are_not_taken_for_the_next() {
        let (mut conn, server) = answering(
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok\
              HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
        )
        .await;
        let request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(conn.send(request).await.unwrap().status, 200);
        let server_side = server.await.unwrap();

        let next = conn.send(request).await;

        assert!(
            matches!(next, Err(HttpError::Malformed(_))),
            "{:?}",
            next.err()
        );
        drop(server_side);
    }

    #[test]
    fn urls_keep_host_and_prefix() {
        let target = Target::parse("http://127.0.0.1:9000/sso/").unwrap();
        assert_eq!(target.host, "127.0.0.1:9000");
        assert_eq!(target.prefix, "/sso");
        assert_eq!(target.addr.port(), 9000);
        assert!(Target::parse("https://127.0.0.1").is_err());
    }

    #[tokio::test]
    async fn an_interim_answer_is_skipped_for_the_one_that_follows() {
        let (mut conn, server) = answering(
            b"HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n\
              HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
        )
        .await;

        let response = conn
            .send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();

        assert_eq!((response.status, response.body), (200, &b"ok"[..]));
        drop(server.await.unwrap());
    }

    #[tokio::test]
    async fn a_connection_the_server_closed_is_seen_as_closed_before_reuse() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (conn, accepted) = tokio::join!(Conn::connect(addr), listener.accept());
        let (conn, (server_side, _)) = (conn.unwrap(), accepted.unwrap());
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(!conn.peer_closed(), "an open idle connection");

        drop(server_side);

        let closed = async {
            while !conn.peer_closed() {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(2), closed)
            .await
            .expect("the server's FIN is seen");
    }
}
