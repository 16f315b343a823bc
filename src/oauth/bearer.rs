//! The access token of a resource request: `Authorization: Bearer <token>` (RFC 6750 §2.1, the
//! only method we accept; tokens in query strings end up in logs).

use super::error::OAuthError;

/// RFC 6750 §2.1 `b64token`: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

/// The token of the request's `Authorization` header values (all of them, as sent). No header,
/// or one of another scheme (`Basic …`), is a request without Bearer credentials (RFC 6750
/// §3.1: "attempted using an unsupported authentication method"; 401 without an error code).
/// Anything else that is not exactly one `Bearer <b64token>` is a malformed request
/// (`invalid_request`).
pub fn parse<'a>(mut values: impl Iterator<Item = &'a [u8]>) -> Result<&'a str, OAuthError> {
    let Some(value) = values.next() else {
        return Err(OAuthError::BearerRequired);
    };
    if values.next().is_some() {
        return Err(malformed("send one Authorization header, not several"));
    }
    let value = std::str::from_utf8(value)
        .map_err(|_| malformed("the Authorization header is not text"))?
        .trim();
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if scheme.is_empty() {
        return Err(malformed(
            "the Authorization header is empty: Authorization: Bearer <token>",
        ));
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        // `Bearer<TAB>token`: meant as Bearer credentials, but not `Bearer 1*SP b64token`.
        let bearer_then_space = scheme
            .get(..6)
            .is_some_and(|s| s.eq_ignore_ascii_case("bearer"))
            && scheme
                .as_bytes()
                .get(6)
                .is_some_and(u8::is_ascii_whitespace);
        if bearer_then_space {
            return Err(malformed(
                "separate Bearer and the token with a space: Authorization: Bearer <token>",
            ));
        }
        return Err(OAuthError::BearerRequired);
    }
    let token = token.trim();
    if is_b64token(token) {
        Ok(token)
    } else {
        Err(malformed(
            "the Bearer token is not one valid b64token (RFC 6750 section 2.1)",
        ))
    }
}

fn malformed(description: &'static str) -> OAuthError {
    OAuthError::MalformedBearer(description.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_one(header: &str) -> Result<&str, OAuthError> {
        parse(std::iter::once(header.as_bytes()))
    }

    #[test]
    fn the_token_of_a_bearer_header_is_taken_whatever_the_scheme_case() {
        assert_eq!(parse_one("Bearer a.b-c_d~").unwrap(), "a.b-c_d~");
        assert_eq!(parse_one("bearer  ab==").unwrap(), "ab==");
    }

    #[test]
    fn no_header_or_another_scheme_asks_for_a_bearer_token() {
        assert!(matches!(
            parse(std::iter::empty()),
            Err(OAuthError::BearerRequired)
        ));
        for header in ["Basic YTpi", "Bearertoken", "DPoP a.b.c", "Negotiate"] {
            assert!(
                matches!(parse_one(header), Err(OAuthError::BearerRequired)),
                "{header}"
            );
        }
    }

    #[test]
    fn an_empty_header_or_a_malformed_token_is_a_malformed_request() {
        for header in [
            "",
            "Bearer ",
            "Bearer a b",
            "Bearer\ta.b.c",
            "Bearer a,b",
            "Bearer ===",
            "Bearer é",
        ] {
            assert!(
                matches!(parse_one(header), Err(OAuthError::MalformedBearer(_))),
                "{header}"
            );
        }
    }

    #[test]
    fn two_headers_or_one_that_is_not_text_are_malformed_requests() {
        let two = [b"Bearer a".as_slice(), b"Bearer b".as_slice()];
        assert!(matches!(
            parse(two.into_iter()),
            Err(OAuthError::MalformedBearer(_))
        ));
        assert!(matches!(
            parse(std::iter::once(b"Bearer \xff".as_slice())),
            Err(OAuthError::MalformedBearer(_))
        ));
    }
}
