use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{
    AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream, ReadBuf, duplex,
};

use super::*;

const KEEP_ALIVE: Duration = Duration::from_secs(60);

/// The server's end of a new connection, and the client's.
fn connection() -> (Guarded<DuplexStream>, DuplexStream) {
    let (server, client) = duplex(1024);
    (Guarded::new(server, KEEP_ALIVE), client)
}

/// Has the server read what the client sent.
async fn read(server: &mut Guarded<DuplexStream>) {
    let mut buf = [0; 64];
    assert!(server.read(&mut buf).await.unwrap() > 0);
}

fn deadline(server: &Guarded<DuplexStream>) -> Option<Instant> {
    server.state.deadline.get()
}

/// Whether `at` is `after` past a moment between `before` and now.
fn after(at: Instant, before: Instant, after: Duration) -> bool {
    at >= before + after && at <= Instant::now() + after
}

/// Whether the server's next read fails as past its deadline within `within` (nothing comes).
async fn times_out(server: &mut Guarded<DuplexStream>, within: Duration) -> bool {
    let mut buf = [0; 8];
    match tokio::time::timeout(within, server.read(&mut buf)).await {
        Ok(read) => read.is_err_and(|e| e.kind() == io::ErrorKind::TimedOut),
        Err(_) => false,
    }
}

#[tokio::test(start_paused = true)]
async fn a_head_on_an_idle_connection_has_5_s_from_its_first_byte_and_its_later_bytes_do_not_move_it()
 {
    let (mut server, mut client) = connection();
    assert_eq!(deadline(&server), None, "nothing armed before a byte");

    let before = Instant::now();
    client.write_all(b"POST /tok").await.unwrap();
    read(&mut server).await;
    let first = deadline(&server).expect("armed by the first byte");
    assert!(after(first, before, HEAD_TIMEOUT));

    tokio::time::sleep(Duration::from_millis(20)).await;
    client.write_all(b"en HTTP/1.1\r\n").await.unwrap();
    read(&mut server).await;
    assert_eq!(deadline(&server), Some(first), "a later byte moved it");
}

#[tokio::test(start_paused = true)]
async fn an_answer_gives_the_next_head_keep_alive_and_5_s_and_its_first_byte_brings_that_to_5_s() {
    let (mut server, mut client) = connection();
    let conn = server.conn_deadline();
    conn.0.started();

    let before = Instant::now();
    conn.0.answered();
    let armed = deadline(&server).expect("armed by the answer");
    assert!(after(armed, before, KEEP_ALIVE + HEAD_TIMEOUT));

    let before = Instant::now();
    client.write_all(b"GET").await.unwrap();
    read(&mut server).await;
    let head = deadline(&server).unwrap();
    assert!(after(head, before, HEAD_TIMEOUT), "the head's 5 s, sooner");
}

/// Its body has `server.body_timeout_ms`, however long that is.
#[tokio::test(start_paused = true)]
async fn a_request_in_flight_has_no_head_deadline_as_its_body_comes() {
    let (mut server, mut client) = connection();
    client.write_all(b"POST /token HTTP/1.1\r\n").await.unwrap();
    read(&mut server).await;
    assert!(deadline(&server).is_some());

    server.conn_deadline().0.started();
    assert_eq!(deadline(&server), None, "its start disarms it");
    client.write_all(b"{\"grant_type\":").await.unwrap();
    read(&mut server).await;
    assert_eq!(deadline(&server), None, "a byte of its body armed it");
}

#[tokio::test(start_paused = true)]
async fn past_its_deadline_a_waiting_stream_fails_timed_out_and_stays_failed() {
    let (mut server, _client) = connection();
    let deadline = Instant::now() + Duration::from_millis(50);
    server.state.deadline.set(Some(deadline));

    // Well before the timer's first setting (5 s).
    assert!(times_out(&mut server, Duration::from_secs(2)).await);
    assert!(Instant::now() >= deadline, "before the deadline");
    let written = server.write(b"HTTP/1.1 200 OK\r\n").await;
    assert!(written.is_err_and(|e| e.kind() == io::ErrorKind::TimedOut));
    assert!(times_out(&mut server, Duration::from_millis(10)).await);
}

#[tokio::test(start_paused = true)]
async fn a_deadline_moved_later_after_the_timer_was_set_is_kept() {
    let (mut server, _client) = connection();
    server
        .state
        .deadline
        .set(Some(Instant::now() + Duration::from_millis(50)));
    assert!(!times_out(&mut server, Duration::from_millis(10)).await);

    let later = Instant::now() + Duration::from_millis(300);
    server.state.deadline.set(Some(later));
    assert!(times_out(&mut server, Duration::from_secs(2)).await);
    assert!(
        Instant::now() >= later,
        "cut by the timer set for the earlier deadline"
    );
}

#[tokio::test(start_paused = true)]
async fn a_deadline_moved_earlier_after_the_timer_was_set_is_not_missed() {
    let (mut server, _client) = connection();
    server
        .state
        .deadline
        .set(Some(Instant::now() + Duration::from_secs(10)));
    assert!(!times_out(&mut server, Duration::from_millis(10)).await);

    server
        .state
        .deadline
        .set(Some(Instant::now() + Duration::from_millis(50)));
    assert!(
        times_out(&mut server, Duration::from_secs(2)).await,
        "waited for the timer set for the later deadline"
    );
}

#[tokio::test(start_paused = true)]
async fn the_connections_requests_share_its_state() {
    let (server, _client) = connection();
    let mut data = Extensions::new();
    share(&server, &mut data);
    data.get::<ConnDeadline>().expect("shared").0.answered();
    assert!(deadline(&server).is_some());
}

/// A stream that takes every write but whose flush and shutdown never end: TLS, with answers a
/// client does not read waiting in rustls's buffer (every `poll_write` succeeded).
struct NeverFlushed;

impl AsyncRead for NeverFlushed {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        _: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Poll::Pending
    }
}

impl AsyncWrite for NeverFlushed {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Pending
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Pending
    }
}

/// After an answer, a flush that never ends fails at the deadline (`keep_alive` + 5 s), and so
/// does a shutdown: actix waits only there once its buffer is written, so the connection was
/// held for ever.
#[tokio::test(start_paused = true)]
async fn a_flush_or_shutdown_that_never_ends_fails_at_the_deadline() {
    for shutdown in [false, true] {
        let mut server = Guarded::new(NeverFlushed, KEEP_ALIVE);
        let conn = server.conn_deadline();
        conn.0.started();
        conn.0.answered();
        server.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
        let before = Instant::now();

        let limit = KEEP_ALIVE + HEAD_TIMEOUT + Duration::from_secs(1);
        let ended = if shutdown {
            tokio::time::timeout(limit, server.shutdown()).await
        } else {
            tokio::time::timeout(limit, server.flush()).await
        };

        let failed = ended.expect("still waiting past the deadline");
        assert!(
            failed.is_err_and(|e| e.kind() == io::ErrorKind::TimedOut),
            "shutdown: {shutdown}"
        );
        assert!(Instant::now() >= before + KEEP_ALIVE + HEAD_TIMEOUT);
    }
}

/// A connection whose buffer holds a whole pipelined burst, and its shared state.
fn roomy_connection() -> (Guarded<DuplexStream>, DuplexStream, ConnDeadline) {
    let (server, client) = duplex(64 * 1024);
    let server = Guarded::new(server, KEEP_ALIVE);
    let conn = server.conn_deadline();
    (server, client, conn)
}

/// Reads what the server's stream hands on until it holds back (or has nothing): actix's read
/// loop, which ends at the first `Pending` (and decodes what it read before it reads again).
fn read_until_held(server: &mut Guarded<DuplexStream>) -> Vec<u8> {
    let mut handed = Vec::new();
    let woken = Arc::new(Woken::default());
    while let Poll::Ready(bytes) = poll_read_once(server, &woken) {
        if bytes.is_empty() {
            break;
        }
        handed.extend(bytes);
    }
    handed
}

/// Polls one read with a waker that records being woken.
fn poll_read_once(server: &mut Guarded<DuplexStream>, woken: &Arc<Woken>) -> Poll<Vec<u8>> {
    let waker = Waker::from(Arc::clone(woken));
    let mut cx = Context::from_waker(&waker);
    let mut buf = vec![0; 64 * 1024];
    let mut read = ReadBuf::new(&mut buf);
    match Pin::new(server).poll_read(&mut cx, &mut read) {
        Poll::Ready(done) => {
            done.unwrap();
            Poll::Ready(read.filled().to_vec())
        }
        Poll::Pending => Poll::Pending,
    }
}

/// Pipelined heads beyond `read_ahead`'s bound are held until a request starts, which wakes
/// the reader; none while answers wait to be written; what they hold back is handed on whole,
/// in order. (As actix does: it starts the first head it decodes, and each next one once the
/// answer before is written.)
#[tokio::test(start_paused = true)]
async fn pipelined_heads_past_the_bound_wait_for_a_request_to_start() {
    let (mut server, mut client, conn) = roomy_connection();
    let head = b"GET / HTTP/1.1\r\n\r\n";
    let burst = head.repeat(40);
    client.write_all(&burst).await.unwrap();

    let mut handed = read_until_held(&mut server);
    assert_eq!(
        handed.len(),
        17 * head.len() - 1,
        "16 heads, the 17th less its end"
    );
    // actix starts the first (it waits on Redis): room for one more head.
    conn.0.started();
    handed.extend(read_until_held(&mut server));
    assert_eq!(handed.len(), 18 * head.len() - 1);

    // Its answer cannot be written (the client reads nothing): no head, even as the next starts.
    conn.0.answered();
    conn.0.answers_wait(true);
    conn.0.started();
    let woken = Arc::new(Woken::default());
    assert!(poll_read_once(&mut server, &woken).is_pending());
    // Once an answer goes out, the held-back read wakes and one more head comes.
    conn.0.answers_wait(false);
    assert!(
        woken.0.load(Ordering::SeqCst),
        "written answers wake the held-back reader"
    );
    let Poll::Ready(more) = poll_read_once(&mut server, &woken) else {
        panic!("nothing handed on once the answers were written");
    };
    handed.extend(more);
    assert_eq!(handed.len(), 19 * head.len() - 1);

    // A start wakes a reader held back for want of room.
    let woken = Arc::new(Woken::default());
    assert!(poll_read_once(&mut server, &woken).is_pending());
    conn.0.answered();
    conn.0.started();
    assert!(
        woken.0.load(Ordering::SeqCst),
        "a start wakes the held-back reader"
    );

    for _ in 0..40 {
        conn.0.answered();
        conn.0.started();
    }
    handed.extend(read_until_held(&mut server));
    assert_eq!(handed, burst, "every byte, in order");
}

/// A keep-alive connection (a balancer's) that carries chunked requests one after another:
/// the blank line that ends each body is no head's end, so the 17th and later heads pass.
#[tokio::test(start_paused = true)]
async fn blank_lines_that_end_no_head_are_forgiven_between_requests() {
    let (mut server, mut client, conn) = roomy_connection();
    let request = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n";
    for i in 0..40 {
        client.write_all(request).await.unwrap();
        let handed = read_until_held(&mut server);
        assert_eq!(handed, request, "request {i}");
        conn.0.started();
        conn.0.answered();
    }
}

/// A body's own blank lines count as head ends; once its request is answered and no other
/// starts, the connection is idle, and a head held back meanwhile is handed on: the answer
/// wakes the held-back reader.
#[tokio::test(start_paused = true)]
async fn an_answer_with_nothing_queued_wakes_a_held_back_reader() {
    let (mut server, mut client, conn) = roomy_connection();
    let body = b"x\r\n\r\n".repeat(16);
    let head = format!("POST /a HTTP/1.1\r\nContent-Length: {}\r\n\r\n", body.len());
    let request = [head.as_bytes(), &body].concat();
    client.write_all(&request).await.unwrap();
    let mut handed = read_until_held(&mut server);
    // actix starts it (it waits on Redis): its body's last blank line comes.
    conn.0.started();
    handed.extend(read_until_held(&mut server));
    assert_eq!(handed, request);

    // The client pipelines the next request meanwhile: held, 17 ends for 1 start.
    let next = b"GET /b HTTP/1.1\r\n\r\n";
    client.write_all(next).await.unwrap();
    let woken = Arc::new(Woken::default());
    let Poll::Ready(start) = poll_read_once(&mut server, &woken) else {
        panic!("nothing of the next head handed on");
    };
    assert_eq!(start, next[..next.len() - 1], "its end held back");
    assert!(poll_read_once(&mut server, &woken).is_pending());
    conn.0.answered();
    assert!(
        woken.0.load(Ordering::SeqCst),
        "the answer wakes the held-back reader"
    );
    assert_eq!(
        read_until_held(&mut server),
        b"\n",
        "idle: the excess is forgiven"
    );
}

#[derive(Default)]
struct Woken(AtomicBool);

impl std::task::Wake for Woken {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}
