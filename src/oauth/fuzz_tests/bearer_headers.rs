//! [`bearer::parse`], the `Authorization` header(s) of a user info request (RFC 6750 §2.1): none
//! is a bare 401 challenge; exactly one `Bearer <b64token>` gives that token, intact, and so
//! does a compact JWS alone (as the reference implementation took it); anything else is a 400
//! `invalid_request` challenge that quotes nothing of what was sent.

use actix_web::ResponseError;
use actix_web::body::MessageBody;
use proptest::prelude::*;

use super::{assert_rfc_error, config, text};
use crate::oauth::bearer::InHeader;
use crate::oauth::{OAuthError, bearer};

/// One header value: bytes that are not text, any text, near misses of the Bearer syntax
/// (another scheme, no token, two tokens, a comma, `=` inside), and well-formed ones.
fn header_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..120),
        1 => text(0..=80).prop_map(String::into_bytes),
        3 => "(Bearer|bearer|BEARER|Basic|Token|Bearer:)?[ \t]{0,2}[A-Za-z0-9._~+/=, \"-]{0,80}"
            .prop_map(String::into_bytes),
        1 => well_formed().prop_map(|(header, _)| header.into_bytes()),
        // A compact JWS alone, or near it (a segment empty, a fourth one, padding).
        1 => "[ ]?[A-Za-z0-9_-]{0,12}\\.[A-Za-z0-9_=-]{1,12}\\.[A-Za-z0-9_.-]{0,12}[ ]?"
            .prop_map(String::into_bytes),
    ]
}

/// A header value that must be accepted, and its token: the scheme in any case, one or more
/// spaces, a b64token; spaces around it are trimmed.
fn well_formed() -> impl Strategy<Value = (String, String)> {
    // RFC 6750 §2.1 `b64token`: its characters, then `=`s.
    let token = "[A-Za-z0-9._~+/-]{1,300}={0,2}";
    (
        "[Bb][Ee][Aa][Rr][Ee][Rr]",
        " {1,3}",
        token,
        " {0,2}",
        " {0,2}",
    )
        .prop_map(|(scheme, gap, token, before, after)| {
            (format!("{before}{scheme}{gap}{token}{after}"), token)
        })
}

/// The oracle, written from RFC 6750 §2.1 independently of the parser:
/// `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_b64token(token: &str) -> bool {
    let padding = token.bytes().rev().take_while(|&b| b == b'=').count();
    let body = &token.as_bytes()[..token.len() - padding];
    !body.is_empty()
        && body.iter().all(|b| {
            matches!(b, b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
}

/// What follows a leading `Bearer` (any case) of a header value, else all of it: the scheme is
/// in our own descriptions ("… Authorization: Bearer <token>"), the rest must not be.
fn after_scheme(value: &str) -> &str {
    let value = value.trim_start();
    match value.get(..6) {
        Some(scheme) if scheme.eq_ignore_ascii_case("bearer") => &value[6..],
        _ => value,
    }
}

/// The `WWW-Authenticate` value of `error`'s answer.
fn challenge(error: &OAuthError) -> Option<String> {
    let response = error.error_response();
    let value = response.headers().get("www-authenticate")?;
    value.to_str().ok().map(str::to_owned)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn fuzz_any_authorization_headers_give_one_bearer_token_or_an_rfc_6750_refusal(
        values in prop::collection::vec(header_value(), 0..=3),
    ) {
        match bearer::parse(values.iter().map(Vec::as_slice)) {
            Ok(header) => {
                prop_assert_eq!(values.len(), 1);
                let token = header.token();
                prop_assert!(is_b64token(token), "{:?}", token);
                let sent = String::from_utf8_lossy(&values[0]);
                match header {
                    // The scheme, then the token.
                    InHeader::Bearer(_) => {
                        let scheme = sent.trim().split(' ').next().unwrap_or_default();
                        prop_assert!(scheme.eq_ignore_ascii_case("bearer"), "{:?}", sent);
                        prop_assert!(sent.trim().ends_with(token), "{:?} from {:?}", token, sent);
                    }
                    // The whole value: three base64url segments.
                    InHeader::Bare(_) => {
                        prop_assert_eq!(sent.trim(), token);
                        prop_assert_eq!(token.split('.').count(), 3);
                        prop_assert!(!token.contains(['+', '/', '=', '~']), "{:?}", token);
                    }
                }
            }
            Err(OAuthError::BearerRequired) => {
                // No credentials, or another method's: 401, a bare challenge, no body
                // (RFC 6750 §3.1).
                match values.as_slice() {
                    [] => {}
                    [one] => {
                        let sent = String::from_utf8_lossy(one);
                        let scheme = sent.trim().split(' ').next().unwrap_or_default();
                        prop_assert!(
                            !scheme.is_empty() && !scheme.eq_ignore_ascii_case("bearer"),
                            "{:?}",
                            sent
                        );
                    }
                    _ => prop_assert!(false, "several headers: {:?}", values),
                }
                let error = OAuthError::BearerRequired;
                let bare = challenge(&error);
                prop_assert_eq!(bare.as_deref(), Some(r#"Bearer realm="sso-token""#));
                let response = error.error_response();
                prop_assert_eq!(response.status().as_u16(), 401);
                let body = response.into_body().try_into_bytes().unwrap_or_default();
                prop_assert!(body.is_empty());
            }
            Err(error) => {
                prop_assert!(!values.is_empty(), "{error:?}");
                let sent: Vec<String> =
                    values.iter().map(|v| String::from_utf8_lossy(v).into_owned()).collect();
                let sent: Vec<&str> = sent.iter().map(|v| after_scheme(v)).collect();
                assert_rfc_error(&error, &["invalid_request"], &sent)?;
                prop_assert_eq!(error.error_response().status().as_u16(), 400);
                let challenged = challenge(&error);
                prop_assert_eq!(
                    challenged.as_deref(),
                    Some(r#"Bearer realm="sso-token", error="invalid_request""#)
                );
            }
        }
    }

    #[test]
    fn fuzz_every_well_formed_bearer_header_gives_its_token_and_a_second_one_a_refusal(
        (header, token) in well_formed(),
        other in header_value(),
    ) {
        let parsed = bearer::parse(std::iter::once(header.as_bytes()));
        let parsed = parsed.map_err(|e| TestCaseError::fail(format!("{e}")))?;
        prop_assert_eq!(parsed, InHeader::Bearer(token.as_str()));
        let two = [header.as_bytes(), other.as_slice()];
        let refused = matches!(bearer::parse(two.into_iter()), Err(OAuthError::MalformedBearer(_)));
        prop_assert!(refused, "two Authorization headers were accepted");
    }
}
