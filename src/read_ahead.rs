//! How many request heads a connection's stream may hand actix ahead of the requests it has
//! started to serve.
//!
//! actix-http decodes every complete request in its read buffer (up to 128 KiB) into a queued
//! request at once, and checks its own bound (16) only before it starts decoding. A client
//! that pipelines thousands of tiny requests (`GET / HTTP/1.1\r\n\r\n`, 18 bytes) and never
//! reads the answers had each of them held as a request of a few KiB: 10–30 MB a connection
//! until its deadline, hundreds of connections enough to exhaust the memory. So the stream
//! ([`crate::conn_deadline::Guarded`]) hands on bytes only up to the head that would put more
//! than [`MAX_HEADS_AHEAD`] heads ahead of the requests started, and keeps the rest until a
//! request starts; bytes that end no head (a body, the start of a head) always pass.
//!
//! A head ends with a blank line: `\r\n\r\n`, or `\n\n` (which httparse also takes). Counting
//! every blank line counts each head once and a body's blank lines too, so the count is never
//! below the heads handed on: a body with more than [`MAX_HEADS_AHEAD`] blank lines waits for
//! its request's body timeout, which no JSON or form body of this service's requests has.

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
    /// How many bytes of `bytes` may be handed on once `started` requests have started: all
    /// of them, or those before the line feed that would end one head too many. Counts the
    /// blank lines in what it allows.
    pub fn allow(&mut self, bytes: &[u8], started: u64) -> usize {
        let limit = started + MAX_HEADS_AHEAD;
        for at in memchr::memchr_iter(b'\n', bytes) {
            let before = |back: usize| match at.checked_sub(back) {
                Some(i) => bytes[i],
                None => self.last[2 + at - back],
            };
            let blank = before(1) == b'\n' || (before(1) == b'\r' && before(2) == b'\n');
            if blank {
                if self.ends == limit {
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
        let allowed = count.allow(&burst, 0);
        // Up to the line feed that would end the 17th head.
        assert_eq!(allowed, 17 * TINY.len() - 1);
        assert_eq!(
            count.allow(&burst[allowed..], 0),
            0,
            "no room until one starts"
        );
        let next = count.allow(&burst[allowed..], 1);
        assert_eq!(next, TINY.len(), "one started: one more head");
    }

    #[test]
    fn blank_lines_split_across_reads_and_bare_line_feeds_count() {
        let mut count = HeadCount::default();
        // `\r\n\r\n` split after each of its bytes, then `\n\n` heads.
        for split in 1..4 {
            let (a, b) = b"\r\n\r\n".split_at(split);
            assert_eq!(count.allow(b"GET / HTTP/1.1", 0), 14);
            assert_eq!(count.allow(a, 0), a.len());
            assert_eq!(count.allow(b, 0), b.len());
        }
        assert_eq!(count.ends, 3);
        let lf_only = b"GET / HTTP/1.1\n\n".repeat(20);
        let allowed = count.allow(&lf_only, 0);
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
        assert_eq!(count.allow(&burst, 0), burst.len());
        let body = br#"{"grant_type":"authorization_code",
"code":"x"}"#;
        assert_eq!(
            count.allow(body, 0),
            body.len(),
            "a body's single line feeds"
        );
        assert_eq!(count.allow(b"POST /x HTTP/1.1\r\nHost: a\r\n", 0), 27);
        assert_eq!(
            count.allow(b"\r\n", 0),
            1,
            "the blank line's line feed waits"
        );
    }
}
