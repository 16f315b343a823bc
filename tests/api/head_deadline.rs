//! The head of every request on a connection is timed, not only the first one's (actix's
//! 5 s): a client that sends a request, then the start of another and nothing more, no longer
//! holds its connection for ever (see `conn_deadline`). A head that starts on an idle
//! connection has 5 s from its first byte, however slowly its bytes come.

use std::time::{Duration, Instant};

use sso_token::routes::paths::{HEALTHZ_PATH, TOKEN_PATH};
use tokio::io::AsyncWriteExt;

use crate::helpers::spawn_app_with;
use crate::raw_conn::RawConn;

/// The start of a request head, and no end.
fn partial_head() -> String {
    format!("POST {TOKEN_PATH} HTTP/1.1\r\nHost: x\r\n")
}

#[tokio::test]
async fn a_partial_head_after_an_answer_is_closed_after_5_s() {
    let app = spawn_app_with(|_| {}).await;
    let mut conn = RawConn::kept_open(&app.address, HEALTHZ_PATH).await;

    conn.write_bytes(partial_head().as_bytes()).await.unwrap();

    let early = conn.closed_within(Duration::from_secs(3)).await;
    assert_eq!(early, None, "closed before the head's 5 s");
    let closed = conn.closed_within(Duration::from_secs(6)).await;
    assert!(closed.is_some(), "still open 9 s after a partial head");
}

/// The metrics listener times heads too: a peer there half-sending requests once held its
/// connections for ever, and enough of them every file descriptor of the process.
#[tokio::test]
async fn a_partial_head_on_the_metrics_listener_is_closed_after_5_s() {
    let app = spawn_app_with(|s| s.metrics.listen = "127.0.0.1:0".into()).await;
    let port = app.metrics_port.expect("a metrics listener");
    let metrics = format!("http://127.0.0.1:{port}");
    let mut conn = RawConn::kept_open(&metrics, "/metrics").await;

    conn.write_bytes(b"GET /met").await.unwrap();

    let early = conn.closed_within(Duration::from_secs(3)).await;
    assert_eq!(early, None, "closed before the head's 5 s");
    let closed = conn.closed_within(Duration::from_secs(6)).await;
    assert!(closed.is_some(), "still open 9 s after a partial head");
}

/// The timer starts at the head's first byte, and the bytes after it do not restart it.
#[tokio::test]
async fn a_head_sent_a_byte_a_second_is_closed_5_s_after_its_first_byte() {
    let app = spawn_app_with(|_| {}).await;
    let mut conn = RawConn::kept_open(&app.address, HEALTHZ_PATH).await;
    let head = partial_head();

    let started = Instant::now();
    let mut closed = None;
    for byte in head.as_bytes().iter().cycle().take(20) {
        if conn.write_bytes(&[*byte]).await.is_err() {
            closed = Some(started.elapsed());
            break;
        }
        if conn.closed_within(Duration::from_secs(1)).await.is_some() {
            closed = Some(started.elapsed());
            break;
        }
    }

    let after = closed.expect("still open after 20 s of a byte a second");
    assert!(
        after > Duration::from_secs(4) && after < Duration::from_secs(9),
        "closed {after:?} after the first byte"
    );
}

/// A head pipelined behind a whole request, in the same write: actix's keep-alive timer closes
/// it (here at `keep_alive_secs`); the deadline, `keep_alive_secs` + 5 s from the answer, is the
/// backstop. Either way it is closed.
#[tokio::test]
async fn a_partial_head_pipelined_behind_a_request_is_closed() {
    let app = spawn_app_with(|s| s.server.keep_alive_secs = 2).await;
    let mut conn = RawConn::open(&app.address).await;
    let request = format!(
        "GET {HEALTHZ_PATH} HTTP/1.1\r\nHost: test\r\n\r\n{}",
        partial_head()
    );

    conn.write_bytes(request.as_bytes()).await.unwrap();
    let (status, _, _) = conn.answer(Duration::from_secs(5)).await.unwrap();

    assert_eq!(status, 200);
    let closed = conn.closed_within(Duration::from_secs(9)).await;
    assert!(closed.is_some(), "still open 9 s after the answer");
}

/// The control: a connection idle for a while, then a head completed within its 5 s, is
/// served as before.
#[tokio::test]
async fn a_kept_connection_serves_requests_after_silence_and_a_slow_head() {
    let app = spawn_app_with(|_| {}).await;
    let mut conn = RawConn::kept_open(&app.address, HEALTHZ_PATH).await;

    tokio::time::sleep(Duration::from_secs(2)).await;
    let (status, head, _) = conn.send("GET", HEALTHZ_PATH, "").await;
    assert_eq!(status, 200);
    assert!(!head.contains("connection: close"), "{head}");

    let request = format!("GET {HEALTHZ_PATH} HTTP/1.1\r\nHost: test\r\n\r\n");
    let (start, end) = request.split_at(10);
    conn.write_bytes(start.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    conn.write_bytes(end.as_bytes()).await.unwrap();
    let (status, head, _) = conn.answer(Duration::from_secs(5)).await.unwrap();
    assert_eq!(status, 200);
    assert!(!head.contains("connection: close"), "{head}");

    // And the timer of that slow head is gone with its request.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (status, _, _) = conn.send("GET", HEALTHZ_PATH, "").await;
    assert_eq!(status, 200);
}

/// A client that pipelines requests and never reads the answers: once the answers fill the
/// connection's buffers the server can write no more, and it closes the connection
/// `keep_alive_secs` + 5 s after the last answer it produced, instead of holding it for ever.
#[tokio::test]
async fn a_client_that_never_reads_its_answers_is_closed() {
    let app = spawn_app_with(|s| s.server.keep_alive_secs = 1).await;
    let stream = tokio::net::TcpStream::connect(app.address.trim_start_matches("http://"))
        .await
        .unwrap();
    let (_unread, mut writer) = stream.into_split();
    let requests = format!("GET {HEALTHZ_PATH} HTTP/1.1\r\nHost: test\r\n\r\n").repeat(100);

    let flood = async {
        loop {
            if let Err(e) = writer.write_all(requests.as_bytes()).await {
                return e;
            }
        }
    };
    let broken = tokio::time::timeout(Duration::from_secs(20), flood).await;

    assert!(broken.is_ok(), "still open after 20 s");
}
