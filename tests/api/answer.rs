//! Responses taken apart for assertions.

use serde_json::Value;

/// A response taken apart: status, headers, body text and the body as JSON (`Null` if not JSON).
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
    pub json: Value,
}

impl Answer {
    pub async fn of(response: reqwest::Response) -> Self {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Self {
            status,
            headers,
            text,
            json,
        }
    }

    /// A whole HTTP/1.1 answer as read off a connection the server closed after it.
    pub fn of_raw(raw: &[u8]) -> Self {
        use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

        let raw = String::from_utf8_lossy(raw);
        let (head, text) = raw
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("no end of the head: {raw}"));
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|line| line.split(' ').nth(1)?.parse().ok())
            .unwrap_or_else(|| panic!("no status: {raw}"));
        let mut headers = HeaderMap::new();
        for line in lines {
            let (name, value) = line
                .split_once(':')
                .unwrap_or_else(|| panic!("not a header: {line}"));
            let name = HeaderName::from_bytes(name.trim().as_bytes()).expect("a header name");
            headers.append(
                name,
                HeaderValue::from_str(value.trim()).expect("a header value"),
            );
        }
        Self {
            status,
            headers,
            text: text.to_owned(),
            json: serde_json::from_str(text).unwrap_or(Value::Null),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn error(&self) -> &str {
        self.json["error"].as_str().unwrap_or("<no error field>")
    }

    /// RFC 6749 §5.2: a JSON object with string `error` and `error_description`, not cached.
    pub fn assert_error_shape(&self, context: &str) {
        assert!(
            self.header("content-type")
                .is_some_and(|t| t.starts_with("application/json")),
            "{context}: error is not JSON: {:?}",
            self.headers
        );
        assert!(
            self.json["error"].as_str().is_some_and(|e| !e.is_empty())
                && self.json["error_description"].is_string(),
            "{context}: not an RFC 6749 error body: {}",
            self.text
        );
        assert_eq!(
            self.header("cache-control"),
            Some("no-store"),
            "{context}: error may be cached"
        );
    }
}
