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
//! A head ends with a blank line: `\r\n\r\n`, or `\n\n` (which httparse also takes), after a
//! line that is neither blank (an empty line between requests, which the parser skips) nor a
//! last chunk (`0\r\n`: a chunked body's end). So each head is counted once, and only a body's
//! own blank lines count beyond them; that excess is forgiven whenever the connection is idle
//! (no request in flight, no answer waiting: actix has then started every head it was handed),
//! so it never outlasts the requests it came with. Within one pipelined burst, a body with more
//! than [`MAX_HEADS_AHEAD`] blank lines waits for its body timeout, which no JSON or form body
//! of this service's requests has.

/// The most request heads handed to actix that it has not started to serve: actix's own bound
/// for requests queued behind the one being served. (Forgiving assumes every answer body is
/// whole when produced, as here: a streaming or compressed body would leave requests queued
/// with none in flight.)
pub const MAX_HEADS_AHEAD: u64 = 16;

/// What a line has been so far (without its line feed): only what tells a head's end apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Line {
    Empty,
    Cr,
    /// `0`s: a last chunk's size, so far.
    Zeros,
    /// `0`s then `\r`, or `0`s then `;` and an extension: a last chunk's line.
    LastChunk,
    Other,
}

impl Line {
    fn then(self, bytes: &[u8]) -> Line {
        let mut line = self;
        for &byte in bytes {
            line = match (line, byte) {
                (Line::Other, _) => return Line::Other,
                (Line::Empty, b'\r') => Line::Cr,
                (Line::Empty | Line::Zeros, b'0') => Line::Zeros,
                (Line::Zeros, b'\r' | b';') => Line::LastChunk,
                (Line::LastChunk, _) => Line::LastChunk,
                _ => Line::Other,
            };
        }
        line
    }

    fn blank(self) -> bool {
        matches!(self, Line::Empty | Line::Cr)
    }
}

/// The head ends in the bytes handed on so far, and where the line being handed on stands.
#[derive(Debug)]
pub struct HeadCount {
    ends: u64,
    /// The line being handed on, up to the last byte handed on.
    line: Line,
    /// The last whole line: a blank line after a blank one (an empty line between requests,
    /// which the parser skips) or after a last chunk (a chunked body's end) ends no head.
    previous: Line,
}

impl Default for HeadCount {
    fn default() -> Self {
        // As if after a blank line: empty lines before the first request end nothing.
        Self {
            ends: 0,
            line: Line::Empty,
            previous: Line::Empty,
        }
    }
}

impl HeadCount {
    /// The most head ends that may have been handed on once `started` requests have started
    /// (none more while answers wait to be written).
    pub fn limit(&self, started: u64, answers_waiting: bool) -> u64 {
        match answers_waiting {
            true => self.ends,
            false => started + MAX_HEADS_AHEAD,
        }
    }

    /// The connection is idle and every head handed on has started: ends counted beyond them
    /// (a body's own blank lines) ended none.
    pub fn forgive(&mut self, started: u64) {
        self.ends = self.ends.min(started);
    }

    /// How many bytes of `bytes` may be handed on under `limit` (see [`Self::limit`]): all of
    /// them, or those before the line feed that would end one head too many. Counts the head
    /// ends in what it allows: blank lines, but not one after a blank line or a last chunk.
    pub fn allow(&mut self, bytes: &[u8], limit: u64) -> usize {
        let mut from = 0;
        for at in memchr::memchr_iter(b'\n', bytes) {
            let line = self.line.then(&bytes[from..at]);
            let ends_head =
                line.blank() && !self.previous.blank() && self.previous != Line::LastChunk;
            if ends_head {
                if self.ends >= limit {
                    self.line = line;
                    return at;
                }
                self.ends += 1;
            }
            self.previous = match line {
                Line::Zeros => Line::LastChunk,
                line => line,
            };
            self.line = Line::Empty;
            from = at + 1;
        }
        self.line = self.line.then(&bytes[from..]);
        bytes.len()
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
        // A body with a blank line of its own.
        let request = b"POST / HTTP/1.1\r\nContent-Length: 6\r\n\r\n{\r\n\r\n}";
        assert_eq!(count.allow(request, MAX_HEADS_AHEAD), request.len());
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

    #[test]
    fn a_chunked_bodys_end_and_empty_lines_between_requests_end_no_head() {
        let mut count = HeadCount::default();
        let chunked = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n";
        let extension = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n000;a=b\r\n\r\n";
        let spaced = b"\r\nGET / HTTP/1.1\r\n\r\n\r\n\n";
        for bytes in [&chunked[..], extension, spaced] {
            // Split anywhere, the same.
            for split in 0..bytes.len() {
                let mut count = HeadCount::default();
                let (a, b) = bytes.split_at(split);
                count.allow(a, MAX_HEADS_AHEAD);
                count.allow(b, MAX_HEADS_AHEAD);
                assert_eq!(
                    count.ends,
                    1,
                    "{:?} split at {split}",
                    String::from_utf8_lossy(bytes)
                );
            }
        }
        for _ in 0..40 {
            assert_eq!(count.allow(chunked, 40 + MAX_HEADS_AHEAD), chunked.len());
        }
        assert_eq!(count.ends, 40);
    }
}
