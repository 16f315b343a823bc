//! The access token of a resource request: `Authorization: Bearer <token>` (RFC 6750 §2.1) or,
//! in a POST, the form body's `access_token` (§2.2; OpenID Connect clients may send user info
//! requests that way). Never the query string (§2.3): tokens there end up in logs. As the
//! reference implementation's user info did, a compact JWS alone in `Authorization`, without
//! the scheme, is taken too: a token like the Bearer one, so never together with the body's.

use std::borrow::Cow;

use serde::Deserialize;

use super::body::{is_form, parse_body};
use super::error::OAuthError;

/// RFC 6750 §2.1 `b64token`: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

/// A compact JWS alone (`header.payload.signature`, base64url), which the reference
/// implementation's user info took as the whole `Authorization` value, without the `Bearer`
/// scheme: its clients keep working. No scheme is shaped like this.
fn is_compact_jws(value: &str) -> bool {
    let segment = |part: &str| {
        !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    let mut parts = value.split('.');
    (0..3).all(|_| parts.next().is_some_and(segment)) && parts.next().is_none()
}

/// The token of an `Authorization` header, and how it came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InHeader<'a> {
    /// `Bearer <token>` (RFC 6750 §2.1).
    Bearer(&'a str),
    /// A compact JWS with no scheme, as the reference took it: a token all the same, so a body
    /// with one as well is refused as for `Bearer`.
    Bare(&'a str),
}

impl<'a> InHeader<'a> {
    pub fn token(self) -> &'a str {
        match self {
            Self::Bearer(token) | Self::Bare(token) => token,
        }
    }
}

/// The token of the request's `Authorization` header values (all of them, as sent). No header,
/// or one of another scheme (`Basic …`), is a request without Bearer credentials (RFC 6750
/// §3.1: "attempted using an unsupported authentication method"; 401 without an error code).
/// A header that is a compact JWS alone, without a scheme, is [`InHeader::Bare`] (the reference
/// implementation's clients send it so; see `is_compact_jws`). Anything else that is not exactly
/// one `Bearer <b64token>` is a malformed request (`invalid_request`).
pub fn parse<'a>(mut values: impl Iterator<Item = &'a [u8]>) -> Result<InHeader<'a>, OAuthError> {
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
    if token.is_empty() && is_compact_jws(scheme) {
        return Ok(InHeader::Bare(scheme));
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
        Ok(InHeader::Bearer(token))
    } else {
        Err(malformed(
            "the Bearer token is not one valid b64token (RFC 6750 section 2.1)",
        ))
    }
}

#[derive(Deserialize)]
struct FormBody<'a> {
    #[serde(borrow, default)]
    access_token: Option<Cow<'a, str>>,
}

/// The `access_token` of a POST body (RFC 6750 §2.2): only a form body carries one, and only
/// once; other parameters are left alone. `None` for an empty body, another content type, or
/// a form without the parameter. An `encoded` form (a `Content-Encoding`) is refused: no
/// coding is decoded.
pub fn in_form_body(
    content_type: Option<&str>,
    encoded: bool,
    body: &[u8],
) -> Result<Option<String>, OAuthError> {
    if body.is_empty() || !is_form(content_type) {
        return Ok(None);
    }
    if encoded {
        return Err(malformed(
            "Content-Encoding is not supported: send the form unencoded",
        ));
    }
    let form: FormBody<'_> = parse_body(content_type, body, &["access_token"])
        .map_err(|_| malformed("the body is not a valid form with one access_token"))?;
    match form.access_token {
        None => Ok(None),
        Some(token) if is_b64token(&token) => Ok(Some(token.into_owned())),
        Some(_) => Err(malformed(
            "access_token is not one valid b64token (RFC 6750 section 2.1)",
        )),
    }
}

/// The request's one token, from its `Authorization` values (see [`parse`]) and its form
/// body's (see [`in_form_body`]): RFC 6750 §2 allows a single method per request. A header of
/// another scheme (`Basic …`) gives way to the body's token; a token in both is refused, bare
/// (a compact JWS without the scheme) or not: a gateway that checked the header's token must
/// not have the request served for another.
pub fn one_of<'a>(
    header: Result<InHeader<'a>, OAuthError>,
    body: Option<String>,
) -> Result<Cow<'a, str>, OAuthError> {
    match (header, body) {
        (Ok(header), None) => Ok(Cow::Borrowed(header.token())),
        (Err(OAuthError::BearerRequired), Some(token)) => Ok(Cow::Owned(token)),
        (Ok(InHeader::Bearer(_) | InHeader::Bare(_)), Some(_)) => Err(malformed(
            "send the access token once: in the Authorization header or in the body",
        )),
        (Err(e), _) => Err(e),
    }
}

/// A refusal of a resource request as RFC 6750 §3 has it: an `invalid_request` (a body that
/// could not be read) carries the Bearer challenge. Other errors are unchanged.
pub fn challenged(error: OAuthError) -> OAuthError {
    match error {
        OAuthError::InvalidRequest(description) => OAuthError::MalformedBearer(description),
        other => other,
    }
}

fn malformed(description: &'static str) -> OAuthError {
    OAuthError::MalformedBearer(description.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORM: Option<&str> = Some("application/x-www-form-urlencoded");

    #[test]
    fn a_form_body_carries_one_access_token_and_other_bodies_none() {
        let token = in_form_body(FORM, false, b"access_token=abc.DEF-_~%2B%2F%3D&x=1").unwrap();
        assert_eq!(token.as_deref(), Some("abc.DEF-_~+/="));
        assert_eq!(in_form_body(FORM, false, b"").unwrap(), None);
        assert_eq!(in_form_body(FORM, false, b"scope=openid").unwrap(), None);
        let json = Some("application/json");
        assert_eq!(
            in_form_body(json, false, br#"{"access_token":"abc"}"#).unwrap(),
            None
        );
        // Another body is ignored whatever its coding; an encoded form is not read.
        assert_eq!(in_form_body(json, true, b"\x1f\x8b").unwrap(), None);
        assert!(matches!(
            in_form_body(FORM, true, b"access_token=abc"),
            Err(OAuthError::MalformedBearer(_))
        ));
        for refused in [&b"access_token=a&access_token=b"[..], b"access_token=a%20b"] {
            assert!(
                matches!(
                    in_form_body(FORM, false, refused),
                    Err(OAuthError::MalformedBearer(_))
                ),
                "{}",
                String::from_utf8_lossy(refused)
            );
        }
    }

    #[test]
    fn a_request_uses_one_method_for_its_token() {
        let body = || Some("b".to_owned());
        assert_eq!(one_of(Ok(InHeader::Bearer("h")), None).unwrap(), "h");
        assert_eq!(one_of(Ok(InHeader::Bare("h")), None).unwrap(), "h");
        assert_eq!(
            one_of(Err(OAuthError::BearerRequired), body()).unwrap(),
            "b"
        );
        for header in [InHeader::Bearer("h"), InHeader::Bare("h")] {
            assert!(matches!(
                one_of(Ok(header), body()),
                Err(OAuthError::MalformedBearer(_))
            ));
        }
        assert!(matches!(
            one_of(Err(OAuthError::BearerRequired), None),
            Err(OAuthError::BearerRequired)
        ));
        let malformed_header = Err(malformed("x"));
        assert!(matches!(
            one_of(malformed_header, body()),
            Err(OAuthError::MalformedBearer(_))
        ));
    }

    fn parse_one(header: &str) -> Result<InHeader<'_>, OAuthError> {
        parse(std::iter::once(header.as_bytes()))
    }

    #[test]
    fn the_token_of_a_bearer_header_is_taken_whatever_the_scheme_case() {
        assert_eq!(
            parse_one("Bearer a.b-c_d~").unwrap(),
            InHeader::Bearer("a.b-c_d~")
        );
        assert_eq!(parse_one("bearer  ab==").unwrap(), InHeader::Bearer("ab=="));
    }

    #[test]
    fn a_compact_jws_alone_is_taken_as_the_reference_took_it_and_nothing_else_without_a_scheme() {
        assert_eq!(
            parse_one("eyJh.eyJz.c2ln").unwrap(),
            InHeader::Bare("eyJh.eyJz.c2ln")
        );
        assert_eq!(
            parse_one(" a-b.c_d.e ").unwrap(),
            InHeader::Bare("a-b.c_d.e")
        );
        for header in ["a.b", "a.b.c.d", "a..c", "a.b.c=", "a+b.c.d", "ab/c.d.e"] {
            assert!(
                matches!(parse_one(header), Err(OAuthError::BearerRequired)),
                "{header}"
            );
        }
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
