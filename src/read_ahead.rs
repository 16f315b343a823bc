//! How many request heads a connection's stream may hand actix ahead of the requests it has
//! started to serve.
//!
//! actix-http decodes every complete request in its read buffer (up to 128 KiB) into a queued
//! request at once, and checks its own bound (16) only before it starts decoding. A client
//! that pipelines thousands of tiny requests (`GET / HTTP/1.1\r\n\r\n`, 18 bytes) and never
//! reads the answers had each of them held as a request of a few KiB: 10–30 MB a connection
//! until its deadline, hundreds of connections enough to exhaust the memory. So the stream
//! ([`crate::conn_deadline::Guarded`]) hands on bytes only up to the head that would put more
//! than [`MAX_HEADS_AHEAD`] heads ahead of the requests started, none at all while its answers
//! wait to be written (actix queues bodiless answers without bound), and keeps the rest until
//! a request starts or the answers go out; bytes that end no head (a body, the start of a
//! head) pass.
//!
//! A head ends with a blank line: `\r\n\r\n`, or `\n\n` (which httparse also takes). Counting
//! blank lines counts each head once, and some bytes that end none: a chunked body's end, a
//! body's own blank lines, an empty line between requests. That excess is forgiven whenever the
//! connection is idle (no request in flight, no answer waiting: actix has then started every
//! head it was handed), so it never outlasts the requests it came with; within one pipelined
//! burst, a body with more than [`MAX_HEADS_AHEAD`] blank lines waits for its body timeout,
//! which no JSON or form body of this service's requests has.

/// The most request heads handed to actix that it has not started to serve: actix's own bound
/// for requests queued behind the one being served.
pub const MAX_HEADS_AHEAD: u64 = 16;

/// The blank lines in the bytes handed on so far, and the two bytes before the next.
#[derive(Debug, Default)]
pub struct HeadCount {
    ends: u64,
    /// The last two bytes handed on, the latest last (0 before any).
    last: [u8; 2],
}

impl HeadCount {
    /// The most blank lines that may have been handed on once `started` requests have started
    /// (none more while answers wait to be written).
    pub fn limit(&self, started: u64, answers_waiting: bool) -> u64 {
        match answers_waiting {
            true => self.ends,
            false => started + MAX_HEADS_AHEAD,
        }
    }

    /// The connection is idle and every head handed on has started: blank lines counted beyond
    /// them ended none.
    pub fn forgive(&mut self, started: u64) {
        self.ends = self.ends.min(started);
    }

    /// How many bytes of `bytes` may be handed on under `limit` (see [`Self::limit`]): all of
    /// them, or those before the line feed that would end one head too many. Counts the blank
    /// lines in what it allows.
    pub fn allow(&mut self, bytes: &[u8], limit: u64) -> usize {
        for at in memchr::memchr_iter(b'\n', bytes) {
            let before = |back: usize| match at.checked_sub(back) {
                Some(i) => bytes[i],
                None => self.last[2 + at - back],
            };
            let blank = before(1) == b'\n' || (before(1) == b'\r' && before(2) == b'\n');
            if blank {
                if self.ends >= limit {
                    self.remember_end_of(&bytes[..at]);
                    return at;
                }
                self.ends += 1;
            }
        }
        self.remember_end_of(bytes);
        bytes.len()
    }

    fn remember_end_of(&mut self, handed: &[u8]) {
        match handed {
            [.., a, b] => self.last = [*a, *b],
            [b] => self.last = [self.last[1], *b],
            [] => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TINY: &[u8] = b"GET / HTTP/1.1\r\n\r\n";

    #[test]
    fn heads_beyond_the_bound_wait_for_requests_to_start() {
        let burst = TINY.repeat(40);
        let mut count = HeadCount::default();
        let allowed = count.allow(&burst, MAX_HEADS_AHEAD);
        // Up to the line feed that would end the 17th head.
        assert_eq!(allowed, 17 * TINY.len() - 1);
        assert_eq!(
            count.allow(&burst[allowed..], MAX_HEADS_AHEAD),
            0,
            "no room until one starts"
        );
        let next = count.allow(&burst[allowed..], MAX_HEADS_AHEAD + 1);
        assert_eq!(next, TINY.len(), "one started: one more head");
    }

    #[test]
    fn blank_lines_split_across_reads_and_bare_line_feeds_count() {
        let mut count = HeadCount::default();
        // `\r\n\r\n` split after each of its bytes, then `\n\n` heads.
        for split in 1..4 {
            let (a, b) = b"\r\n\r\n".split_at(split);
            assert_eq!(count.allow(b"GET / HTTP/1.1", MAX_HEADS_AHEAD), 14);
            assert_eq!(count.allow(a, MAX_HEADS_AHEAD), a.len());
            assert_eq!(count.allow(b, MAX_HEADS_AHEAD), b.len());
        }
        assert_eq!(count.ends, 3);
        let lf_only = b"GET / HTTP/1.1\n\n".repeat(20);
        let allowed = count.allow(&lf_only, MAX_HEADS_AHEAD);
        assert_eq!(count.ends, MAX_HEADS_AHEAD);
        assert_eq!(
            allowed,
            14 * 16 - 1,
            "13 more heads, up to the 14th's last line feed"
        );
    }

    #[test]
    fn bytes_that_end_no_head_pass_with_no_room_left() {
        let mut count = HeadCount::default();
        let burst = TINY.repeat(16);
        assert_eq!(count.allow(&burst, MAX_HEADS_AHEAD), burst.len());
        let body = br#"{"grant_type":"authorization_code",
"code":"x"}"#;
        assert_eq!(
            count.allow(body, MAX_HEADS_AHEAD),
            body.len(),
            "a body's single line feeds"
        );
        assert_eq!(
            count.allow(b"POST /x HTTP/1.1\r\nHost: a\r\n", MAX_HEADS_AHEAD),
            27
        );
        assert_eq!(
            count.allow(b"\r\n", MAX_HEADS_AHEAD),
            1,
            "the blank line's line feed waits"
        );
    }

    #[test]
    fn what_ended_no_head_is_forgiven_and_answers_waiting_stop_new_heads() {
        let mut count = HeadCount::default();
        // One request with a chunked body: its end is a blank line too.
        let chunked = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n";
        assert_eq!(count.allow(chunked, MAX_HEADS_AHEAD), chunked.len());
        assert_eq!(count.ends, 2);
        count.forgive(1);
        assert_eq!(
            count.ends, 1,
            "one head started: the other blank line ended none"
        );
        assert_eq!(count.limit(1, false), 1 + MAX_HEADS_AHEAD);
        assert_eq!(count.limit(1, true), 1, "no new head while answers wait");
        assert_eq!(count.allow(TINY, count.limit(1, true)), TINY.len() - 1);
    }
}
