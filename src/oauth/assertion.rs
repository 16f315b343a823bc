//! A client assertion as a request presents it (RFC 7521 §4.2, RFC 7523 §2.2): the two body
//! fields, their shape, and the client id the assertion claims, read before anything verifies
//! it so that the throttle can count a failure against that id. Verification is
//! `client_assertion`'s.

use std::borrow::Cow;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use super::error::OAuthError;

/// RFC 7523 §2.2: the one `client_assertion_type` served.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// The longest `client_assertion` read: a signed JWT of a few claims is well under 1 KiB even
/// with an RSA-4096 signature; anything longer is refused before it is decoded.
pub const MAX_ASSERTION: usize = 4096;

/// The client id an assertion claims (its `iss`), as far as it can be read without verifying
/// anything: `None` when the assertion is not a compact JWS whose payload has a string `iss`.
/// Only for the throttle and the logs until the signature is checked.
pub fn claimed_issuer(assertion: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Issuer<'a> {
        #[serde(borrow)]
        iss: Option<Cow<'a, str>>,
    }
    let mut parts = assertion.split('.');
    let (_, payload, _, None) = (parts.next()?, parts.next()?, parts.next()?, parts.next()) else {
        return None;
    };
    let json = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let claims: Issuer<'_> = serde_json::from_slice(&json).ok()?;
    claims.iss.map(Cow::into_owned)
}

/// Checks the two fields of an assertion for shape (RFC 7521 §4.2.1): both present, the type
/// ours, the assertion not too long. Every failure is `invalid_client` (RFC 7521 §4.2.1 and
/// RFC 6749 §5.2: the client's authentication is what is wrong).
pub(super) fn check_fields<'a>(
    assertion_type: Option<Cow<'a, str>>,
    assertion: Option<Cow<'a, str>>,
) -> Result<Cow<'a, str>, OAuthError> {
    let (assertion_type, assertion) = match (assertion_type, assertion) {
        (Some(t), Some(a)) => (t, a),
        (Some(_), None) => {
            return Err(OAuthError::InvalidClient(
                "client_assertion_type needs client_assertion, the signed JWT".into(),
            ));
        }
        (None, _) => {
            return Err(OAuthError::InvalidClient(
                format!("client_assertion needs client_assertion_type={JWT_BEARER}").into(),
            ));
        }
    };
    if assertion_type != JWT_BEARER {
        return Err(OAuthError::InvalidClient(
            format!("client_assertion_type must be {JWT_BEARER} (RFC 7523)").into(),
        ));
    }
    if assertion.len() > MAX_ASSERTION {
        return Err(OAuthError::InvalidClient(
            format!("client_assertion is longer than {MAX_ASSERTION} bytes").into(),
        ));
    }
    Ok(assertion)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::oauth::{TokenQuery, TokenRequest};

    const FORM: Option<&str> = Some("application/x-www-form-urlencoded");
    const JSON: Option<&str> = Some("application/json");

    /// An unsigned-looking compact JWS whose payload is `claims`: the parser reads the
    /// claimed `iss` and verifies nothing.
    fn jws(claims: serde_json::Value) -> String {
        let part = |v: serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());
        format!("{}.{}.c2ln", part(json!({"alg": "ES256"})), part(claims))
    }

    fn form(fields: &[(&str, &str)]) -> String {
        serde_urlencoded::to_string(fields).unwrap()
    }

    fn token_request(
        authorization: Option<&str>,
        fields: &[(&str, &str)],
    ) -> Result<TokenRequest, OAuthError> {
        let mut all = vec![("code", "c"), ("redirect_uri", "https://s.example/cb")];
        all.extend_from_slice(fields);
        TokenRequest::parse(FORM, authorization, form(&all).as_bytes())
    }

    #[test]
    fn an_assertion_names_the_client_by_its_iss_in_a_form_or_json_body() {
        let assertion = jws(json!({"iss": "signing-app", "sub": "signing-app"}));
        let request = token_request(
            None,
            &[
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", &assertion),
            ],
        )
        .unwrap();
        let json = json!({
            "token": "t",
            "clientId": "signing-app",
            "clientAssertionType": JWT_BEARER,
            "clientAssertion": assertion,
        });
        let query = TokenQuery::parse(JSON, None, json.to_string().as_bytes()).unwrap();
        for client in [&request.client, &query.client] {
            assert_eq!(client.id, "signing-app");
            assert_eq!(client.assertion.as_ref().unwrap().expose(), assertion);
            assert_eq!((client.secret.expose(), client.used_basic), ("", false));
        }
    }

    #[test]
    fn an_assertion_with_another_method_is_an_invalid_request() {
        let assertion = jws(json!({"iss": "signing-app"}));
        let fields = [
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", assertion.as_str()),
        ];
        let basic = "Basic c2lnbmluZy1hcHA6cw=="; // signing-app:s
        let with_secret = [&fields[..], &[("client_secret", "s")]].concat();
        for refused in [
            token_request(Some(basic), &fields),
            token_request(None, &with_secret),
        ] {
            match refused {
                Err(OAuthError::InvalidRequest(d)) => assert!(d.contains("one client"), "{d}"),
                other => panic!("expected invalid_request, got {other:?}"),
            }
        }
        // A Bearer header of a gateway is no client authentication.
        assert!(token_request(Some("Bearer abc"), &fields).is_ok());
    }

    #[test]
    fn a_wrong_missing_or_oversized_assertion_field_is_an_invalid_client() {
        let assertion = jws(json!({"iss": "signing-app"}));
        let long = format!("{assertion}{}", "A".repeat(MAX_ASSERTION));
        let no_iss = jws(json!({"sub": "signing-app"}));
        let cases: [(&[(&str, &str)], &str); 7] = [
            (
                &[
                    (
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:saml2-bearer",
                    ),
                    ("client_assertion", &assertion),
                ],
                "must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            (
                &[("client_assertion_type", JWT_BEARER)],
                "needs client_assertion",
            ),
            (
                &[("client_assertion", &assertion)],
                "needs client_assertion_type",
            ),
            (
                &[
                    ("client_assertion_type", JWT_BEARER),
                    ("client_assertion", &long),
                ],
                "longer than 4096",
            ),
            (
                &[
                    ("client_assertion_type", JWT_BEARER),
                    ("client_assertion", "not-a-jwt"),
                ],
                "compact JWS",
            ),
            (
                &[
                    ("client_assertion_type", JWT_BEARER),
                    ("client_assertion", &no_iss),
                ],
                "compact JWS",
            ),
            (
                &[
                    ("client_id", "other-app"),
                    ("client_assertion_type", JWT_BEARER),
                    ("client_assertion", &assertion),
                ],
                "differs",
            ),
        ];
        for (fields, expected) in cases {
            match token_request(None, fields) {
                Err(OAuthError::InvalidClient(d)) => assert!(d.contains(expected), "{d}"),
                other => panic!("{expected}: expected invalid_client, got {other:?}"),
            }
        }
    }

    #[test]
    fn the_assertion_fields_are_known_to_the_query_check() {
        for field in [
            "client_assertion_type",
            "clientAssertionType",
            "client_assertion",
            "clientAssertion",
        ] {
            assert!(crate::oauth::request::FIELDS.contains(&field), "{field}");
            assert!(
                crate::oauth::token_query::FIELDS.contains(&field),
                "{field}"
            );
        }
    }
}
