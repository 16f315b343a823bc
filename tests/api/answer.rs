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
