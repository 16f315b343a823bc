//! [`SlowLink`]: a TCP proxy in front of one Redis node whose every new connection reaches Redis
//! a set time late: what making a connection costs over a real network (a round trip or two,
//! TLS, a Sentinel look-up) and never costs on loopback.

use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

pub struct SlowLink {
    pub port: u16,
}

impl SlowLink {
    /// Passes every connection on to `upstream` after `delay`; bytes flow as they come after
    /// that. Runs until the test's runtime ends.
    pub async fn start(upstream: u16, delay: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    if let Ok(mut redis) = TcpStream::connect(("127.0.0.1", upstream)).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut redis).await;
                    }
                });
            }
        });
        Self { port }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}
