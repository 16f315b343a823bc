//! A keep-alive HTTP/1.1 connection of the test's own, over a bare `TcpStream`: unlike an HTTP
//! client's pool, it makes certain which requests share a connection, and shows when the server
//! closes it.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct RawConn(TcpStream);

impl RawConn {
    /// Connects to `base` (`http://host:port`).
    pub async fn open(base: &str) -> Self {
        Self(
            TcpStream::connect(base.trim_start_matches("http://"))
                .await
                .unwrap(),
        )
    }

    /// Sends one request and reads its answer: status, head (lower case) and body.
    pub async fn send(&mut self, method: &str, path: &str, body: &str) -> (u16, String, String) {
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.0.write_all(request.as_bytes()).await.unwrap();
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
                    return (status, head, rest.to_owned());
                }
            }
            let n = tokio::time::timeout(Duration::from_secs(5), self.0.read(&mut buf))
                .await
                .expect("an answer within 5 s")
                .expect("the connection holds");
            assert!(n > 0, "closed before a full answer: {text}");
            raw.extend_from_slice(&buf[..n]);
        }
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
