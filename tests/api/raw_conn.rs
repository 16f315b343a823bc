//! A keep-alive HTTP/1.1 connection of the test's own, over a bare `TcpStream`: unlike an HTTP
//! client's pool, it makes certain which requests share a connection, and shows when the server
//! closes it.

use std::time::{Duration, Instant};

use sso_token::routes::paths::TOKEN_PATH;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct RawConn(TcpStream);

/// A client that pipelines: `first` (a whole request) and a token exchange of `body` in one
/// write on a new connection to `base`, then reads until the server closes it. What was read,
/// or `Err` with it when the connection is still open after `within`.
pub async fn pipelined_exchange(
    base: &str,
    first: &str,
    body: &str,
    within: Duration,
) -> Result<String, String> {
    let exchange = format!(
        "POST {TOKEN_PATH} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut conn = TcpStream::connect(base.trim_start_matches("http://"))
        .await
        .unwrap();
    conn.write_all(format!("{first}{exchange}").as_bytes())
        .await
        .unwrap();
    let mut read = Vec::new();
    let closed = tokio::time::timeout(within, conn.read_to_end(&mut read)).await;
    let read = String::from_utf8_lossy(&read).into_owned();
    match closed {
        Ok(_) => Ok(read),
        Err(_) => Err(read),
    }
}

impl RawConn {
    /// Connects to `base` (`http://host:port`).
    pub async fn open(base: &str) -> Self {
        Self(
            TcpStream::connect(base.trim_start_matches("http://"))
                .await
                .unwrap(),
        )
    }

    /// Connects to `base` and has `GET path` answered 200 on a connection the server keeps.
    pub async fn kept_open(base: &str, path: &str) -> Self {
        let mut conn = Self::open(base).await;
        let (status, head, _) = conn.send("GET", path, "").await;
        assert_eq!(status, 200);
        assert!(!head.contains("connection: close"), "{head}");
        conn
    }

    /// Sends one request and reads its answer: status, head (lower case) and body.
    pub async fn send(&mut self, method: &str, path: &str, body: &str) -> (u16, String, String) {
        self.write(method, path, body).await;
        self.answer(Duration::from_secs(5))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Sends `request` (whole, as bytes on the wire) and reads its answer.
    pub async fn send_raw(&mut self, request: &str) -> (u16, String, String) {
        self.0.write_all(request.as_bytes()).await.unwrap();
        self.answer(Duration::from_secs(5))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Writes `bytes` as they are (part of a request, say).
    pub async fn write_bytes(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.0.write_all(bytes).await
    }

    /// Sends one request without reading its answer.
    /// Closes the connection with a reset (`SO_LINGER` 0), as a client that gives up does.
    pub fn reset(self) {
        self.0.set_zero_linger().unwrap();
    }

    /// Closes the sending side only, as `nc` does once its input ends: a FIN, then it reads.
    pub async fn half_close(&mut self) {
        self.0.shutdown().await.unwrap();
    }

    pub async fn write(&mut self, method: &str, path: &str, body: &str) {
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.0.write_all(request.as_bytes()).await.unwrap();
    }

    /// Reads one answer, each read bounded by `within`: status, head (lower case) and body.
    pub async fn answer(&mut self, within: Duration) -> Result<(u16, String, String), String> {
        let mut raw = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let text = String::from_utf8_lossy(&raw).into_owned();
            if let Some((head, rest)) = text.split_once("\r\n\r\n") {
                let head = head.to_ascii_lowercase();
                let length = (head.lines())
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map_or(0, |n| n.trim().parse::<usize>().unwrap());
                if rest.len() >= length {
                    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
                    return Ok((status, head, rest.to_owned()));
                }
            }
            let read = tokio::time::timeout(within, self.0.read(&mut buf)).await;
            match read {
                Ok(Ok(n @ 1..)) => raw.extend_from_slice(&buf[..n]),
                Ok(Ok(0)) => return Err(format!("closed before a full answer: {text}")),
                Ok(Err(e)) => return Err(format!("the connection broke: {e}; read: {text}")),
                Err(_) => return Err(format!("no answer within {within:?}; read: {text}")),
            }
        }
    }

    /// (our port, the server's port)
    fn ports(&self) -> (u16, u16) {
        let ours = self.0.local_addr().unwrap().port();
        (ours, self.0.peer_addr().unwrap().port())
    }

    /// Waits until the server has read all that was written (a connection still in the
    /// listen queue is unread): the kernel acknowledged our bytes, and its end has no unread
    /// bytes left.
    pub async fn read_by_server(&self) {
        let (ours, theirs) = self.ports();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let sent = queues(ours, theirs).is_some_and(|(unacked, _)| unacked == 0);
            let read = queues(theirs, ours).is_some_and(|(_, unread)| unread == 0);
            if sent && read {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not read the request"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Whether no byte of an answer has arrived, and the server has not closed the connection
    /// (for a connection the test has not read from yet).
    pub fn unanswered(&self) -> bool {
        let (ours, theirs) = self.ports();
        queues(ours, theirs).is_some_and(|(_, unread)| unread == 0)
    }

    /// Whether the server closes the connection within 2 s.
    pub async fn closed_by_server(&mut self) -> bool {
        self.closed_within(Duration::from_secs(2)).await.is_some()
    }

    /// How long the server took to close the connection (end of stream, or a reset), waiting
    /// up to `within`; `None` if it is still open then, or sent bytes nobody asked for.
    pub async fn closed_within(&mut self, within: Duration) -> Option<Duration> {
        let started = Instant::now();
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(within, self.0.read(&mut buf)).await;
        matches!(read, Ok(Ok(0)) | Ok(Err(_))).then(|| started.elapsed())
    }
}

/// The send queue (bytes not yet acknowledged) and receive queue (bytes not yet read) of the
/// established connection on 127.0.0.1 from port `local` to port `remote`, from the kernel's
/// socket table; `None` if there is none (not yet, or no longer, established).
fn queues(local: u16, remote: u16) -> Option<(u64, u64)> {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    let port = |address: &str| u16::from_str_radix(address.rsplit(':').next()?, 16).ok();
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let ends = (port(fields.get(1)?)?, port(fields.get(2)?)?);
        let established = *fields.get(3)? == "01";
        let (send, receive) = fields.get(4)?.split_once(':')?;
        let queues = (
            u64::from_str_radix(send, 16).ok()?,
            u64::from_str_radix(receive, 16).ok()?,
        );
        (ends == (local, remote) && established).then_some(queues)
    })
}
