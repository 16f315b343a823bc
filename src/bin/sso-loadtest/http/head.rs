//! Parsing a response head: its status, its framing (`Content-Length` only, as actix-web
//! sends these answers) and the two headers the checks read. No I/O: tested on bytes.

use super::HttpError;

const MAX_HEADERS: usize = 32;

pub struct Head {
    pub len: usize,
    pub status: u16,
    pub content_length: usize,
    pub no_store: bool,
    pub close: bool,
}

/// A response of `status` that cannot be read for `why`: for a 2xx a violation.
pub fn framing(status: u16, why: &'static str) -> HttpError {
    match status {
        200..=299 => HttpError::UnreadSuccess(why),
        _ => HttpError::Malformed(why),
    }
}

pub fn parse_head(bytes: &[u8]) -> Result<Option<Head>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(bytes) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(HttpError::Malformed("unparsable status line or headers")),
    };
    let status = response
        .code
        .ok_or(HttpError::Malformed("no status code"))?;
    let mut head = Head {
        len,
        status,
        content_length: 0,
        no_store: false,
        close: response.version == Some(0),
    };
    let mut has_length = false;
    for header in response.headers.iter() {
        let name = header.name;
        if name.eq_ignore_ascii_case("content-length") {
            head.content_length = std::str::from_utf8(header.value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .ok_or(framing(status, "bad Content-Length"))?;
            has_length = true;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(framing(status, "chunked bodies are not supported"));
        } else if name.eq_ignore_ascii_case("cache-control") {
            head.no_store = contains_token(header.value, b"no-store");
        } else if name.eq_ignore_ascii_case("connection") {
            head.close = contains_token(header.value, b"close");
        }
    }
    if !has_length && !matches!(status, 100..=199 | 204 | 304) {
        return Err(framing(status, "no Content-Length"));
    }
    Ok(Some(head))
}

fn contains_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|b| *b == b',')
        .any(|part| part.trim_ascii().eq_ignore_ascii_case(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_complete_head_is_parsed_and_a_partial_one_waits() {
        let raw = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncache-control: no-store\r\n\r\n{}";
        let head = parse_head(raw).unwrap().unwrap();
        assert_eq!((head.status, head.content_length), (200, 2));
        assert!(head.no_store && !head.close);
        assert!(parse_head(&raw[..20]).unwrap().is_none());
    }

    #[test]
    fn chunked_responses_are_refused_a_success_as_unread() {
        let raw = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
        assert!(matches!(parse_head(raw), Err(HttpError::UnreadSuccess(_))));
        let raw = b"HTTP/1.1 503 Service Unavailable\r\ntransfer-encoding: chunked\r\n\r\n";
        assert!(matches!(parse_head(raw), Err(HttpError::Malformed(_))));
    }
}
