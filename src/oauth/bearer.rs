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

/// The token of an `Authorization` header value.
pub fn parse(header: Option<&str>) -> Result<&str, OAuthError> {
    let header = header.map(str::trim).unwrap_or_default();
    let (scheme, token) = header.split_once(' ').unwrap_or((header, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(OAuthError::BearerRequired);
    }
    let token = token.trim();
    if is_b64token(token) {
        Ok(token)
    } else {
        Err(OAuthError::invalid_request(
            "the Bearer token is not a valid b64token (RFC 6750 §2.1)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_of_a_bearer_header_is_taken_whatever_the_scheme_case() {
        assert_eq!(parse(Some("Bearer a.b-c_d~")).unwrap(), "a.b-c_d~");
        assert_eq!(parse(Some("bearer  ab==")).unwrap(), "ab==");
    }

    #[test]
    fn no_header_or_another_scheme_asks_for_a_bearer_token() {
        for header in [None, Some(""), Some("Basic YTpi"), Some("Bearertoken")] {
            assert!(
                matches!(parse(header), Err(OAuthError::BearerRequired)),
                "{header:?}"
            );
        }
    }

    #[test]
    fn a_malformed_token_is_an_invalid_request() {
        for header in [
            "Bearer ",
            "Bearer a b",
            "Bearer a,b",
            "Bearer ===",
            "Bearer é",
        ] {
            assert!(
                matches!(parse(Some(header)), Err(OAuthError::InvalidRequest(_))),
                "{header}"
            );
        }
    }
}
