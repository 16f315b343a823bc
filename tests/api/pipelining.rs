//! A client that pipelines thousands of tiny requests and reads no answer: actix decodes every
//! request it has read into a queued request of a few KiB, so each such connection held tens
//! of MB until its deadline; the stream hands actix no more heads than `read_ahead` allows.
//! Memory is a process's, so the server is a child process here.

use std::time::{Duration, Instant};

use sso_token::routes::paths::HEALTHZ_PATH;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};

use crate::helpers::{http_client, test_settings};
use crate::server_process::{ServerProcess, config_dir};

/// The server's resident memory, KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("its status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// A connection that reads nothing (a small receive buffer, so the server's answers back up
/// soon) and sends `burst` as far as the server takes it.
async fn unread(base: &str, burst: &[u8]) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let address = base.trim_start_matches("http://").parse().unwrap();
    let mut conn = socket.connect(address).await.unwrap();
    // What the server does not read stays in the kernel's buffers, and the write waits.
    let _ = tokio::time::timeout(Duration::from_secs(2), conn.write_all(burst)).await;
    conn
}

#[tokio::test]
async fn pipelined_requests_nobody_reads_hold_little_memory_and_others_are_served() {
    let server = ServerProcess::start(&config_dir(&test_settings(), &[]));
    let before = rss_kib(server.pid());
    // 4,500 requests of 26 bytes a connection: 117 KB, within actix's 128 KiB read buffer.
    let burst = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".repeat(4500);
    let mut conns = Vec::new();
    for _ in 0..30 {
        conns.push(unread(&server.base, &burst).await);
    }

    // Watched for 3 s: without the bound this debug build grew by 50 MiB and more in that
    // time (a release build by ~30 MB a connection), with it by 2 MiB.
    let mut peak = before;
    let watched = Instant::now();
    while watched.elapsed() < Duration::from_secs(3) {
        peak = peak.max(rss_kib(server.pid()));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let grown_mib = peak.saturating_sub(before) / 1024;
    assert!(
        grown_mib < 16,
        "30 connections grew the server by {grown_mib} MiB"
    );

    let healthz = http_client()
        .get(format!("{}{HEALTHZ_PATH}", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(healthz.status(), 200, "another client is served meanwhile");
    drop(conns);
}
