//! Parse, don't validate: an introspection (RFC 7662 §2.1) or revocation (RFC 7009 §2.1)
//! request becomes a [`TokenQuery`] or an RFC 6749 error. Same bodies (JSON or form) and the
//! same client authentication as the token endpoint.

use std::borrow::Cow;

use serde::Deserialize;

use super::body::{parse_body, present};
use super::credentials::{BodyCredentials, credentials};
use super::error::OAuthError;
use super::{ClientCredentials, Sensitive};

/// A client asking about, or giving up, a token.
///
/// The token is looked for only once the client is authenticated ([`TokenQuery::token`]): a
/// caller whose credentials are wrong gets 401 `invalid_client` whatever its body lacks
/// (RFC 7662 §2.3), and its failure is counted against the throttle like any other.
#[derive(Debug)]
pub struct TokenQuery {
    pub client: ClientCredentials,
    token: Option<Sensitive>,
}

#[derive(Deserialize)]
struct RawQuery<'a> {
    #[serde(borrow, default)]
    token: Option<Cow<'a, str>>,
    /// `token_type_hint`: a string if given, and otherwise ignored (RFC 7009 §2.1, RFC 7662
    /// §2.1): there is one token type, and a hint naming another must not leave a token live.
    #[serde(borrow, default, rename = "token_type_hint", alias = "tokenTypeHint")]
    _hint: Option<Cow<'a, str>>,
    #[serde(borrow, default, alias = "clientId")]
    client_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, alias = "clientSecret")]
    client_secret: Option<Cow<'a, str>>,
    #[serde(borrow, default, alias = "clientAssertionType")]
    client_assertion_type: Option<Cow<'a, str>>,
    #[serde(borrow, default, alias = "clientAssertion")]
    client_assertion: Option<Cow<'a, str>>,
}

/// Every body field name the parser knows (snake and camel case).
pub(crate) const FIELDS: [&str; 11] = [
    "token",
    "token_type_hint",
    "tokenTypeHint",
    "client_id",
    "clientId",
    "client_secret",
    "clientSecret",
    "client_assertion_type",
    "clientAssertionType",
    "client_assertion",
    "clientAssertion",
];

impl TokenQuery {
    /// Builds a query from the `Content-Type` and `Authorization` headers and the body.
    pub fn parse(
        content_type: Option<&str>,
        authorization: Option<&str>,
        body: &[u8],
    ) -> Result<Self, OAuthError> {
        let raw: RawQuery<'_> = parse_body(content_type, body, &FIELDS)?;
        let client = credentials(
            authorization,
            BodyCredentials {
                id: present(raw.client_id),
                secret: present(raw.client_secret),
                assertion_type: present(raw.client_assertion_type),
                assertion: present(raw.client_assertion),
            },
        )?;
        Ok(Self {
            client,
            token: present(raw.token).map(Sensitive::new),
        })
    }

    /// The token asked about, of any length the body limit lets through: a token longer than
    /// any we issue is simply not ours, `{"active":false}` and 200 (RFC 7662 §2.2, RFC 7009
    /// §2.2), not an error. Ask once the client is authenticated.
    pub fn token(&self) -> Result<&Sensitive, OAuthError> {
        self.token
            .as_ref()
            .ok_or_else(|| OAuthError::invalid_request("token is required"))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const JSON: Option<&str> = Some("application/json");
    const FORM: Option<&str> = Some("application/x-www-form-urlencoded");

    fn description(result: Result<TokenQuery, OAuthError>) -> String {
        match result {
            Err(OAuthError::InvalidRequest(d)) => d.into_owned(),
            other => panic!("expected invalid_request, got {other:?}"),
        }
    }

    #[test]
    fn a_form_or_json_query_with_body_credentials_parses() {
        let form = b"token=abc.def.ghi&token_type_hint=access_token&client_id=app&client_secret=s";
        let json = json!({"token": "abc.def.ghi", "clientId": "app", "clientSecret": "s"});
        let from_form = TokenQuery::parse(FORM, None, form).unwrap();
        let from_json = TokenQuery::parse(JSON, None, json.to_string().as_bytes()).unwrap();
        for query in [&from_form, &from_json] {
            assert_eq!(query.token().unwrap().expose(), "abc.def.ghi");
            assert_eq!(query.client.id, "app");
            assert!(!query.client.used_basic);
        }
    }

    #[test]
    fn any_hint_is_read_and_ignored() {
        for hint in ["access_token", "refresh_token", &"x".repeat(65)] {
            let body = format!("token=t&client_id=app&client_secret=s&token_type_hint={hint}");
            let query = TokenQuery::parse(FORM, None, body.as_bytes()).unwrap();
            assert_eq!(query.token().unwrap().expose(), "t", "{hint}");
        }
        let number =
            json!({"token": "t", "token_type_hint": 1, "client_id": "app", "client_secret": "s"});
        let twice = "token=t&client_id=app&client_secret=s&token_type_hint=a&token_type_hint=b";
        for refused in [
            TokenQuery::parse(JSON, None, number.to_string().as_bytes()),
            TokenQuery::parse(FORM, None, twice.as_bytes()),
        ] {
            assert!(description(refused).contains("token_type_hint"));
        }
    }

    #[test]
    fn basic_credentials_are_accepted() {
        let basic = "Basic YXBwOnM="; // app:s
        let query = TokenQuery::parse(FORM, Some(basic), b"token=t").unwrap();
        assert_eq!(
            (query.client.id.as_str(), query.client.used_basic),
            ("app", true)
        );
    }

    #[test]
    fn a_missing_token_is_an_invalid_request_once_asked_for() {
        // Parsed, so that its client is authenticated first (RFC 7662 §2.3).
        for body in [
            &b"client_id=app&client_secret=s"[..],
            b"token=&client_id=app&client_secret=s",
        ] {
            let query = TokenQuery::parse(FORM, None, body).unwrap();
            assert_eq!(query.client.id, "app");
            match query.token() {
                Err(OAuthError::InvalidRequest(got)) => assert_eq!(got, "token is required"),
                other => panic!("expected invalid_request, got {other:?}"),
            }
        }
    }

    #[test]
    fn a_repeated_or_mistyped_field_is_an_invalid_request_naming_it() {
        let cases: [(Option<&str>, &[u8], &str); 3] = [
            (
                FORM,
                b"token=a&token=b&client_id=app&client_secret=s",
                "`token`",
            ),
            (
                JSON,
                br#"{"token": 7, "client_id": "app", "client_secret": "s"}"#,
                "`token`",
            ),
            (Some("text/plain"), b"token=a", "Content-Type"),
        ];
        for (content_type, body, expected) in cases {
            let got = description(TokenQuery::parse(content_type, None, body));
            assert!(got.contains(expected), "{expected}: {got}");
        }
    }

    #[test]
    fn client_credentials_are_required() {
        // RFC 6749 §5.2 (RFC 7662 §2.1, RFC 7009 §2.1 defer to it): invalid_client.
        match TokenQuery::parse(FORM, None, b"token=a") {
            Err(OAuthError::InvalidClient(got)) => assert!(got.contains("client_id"), "{got}"),
            other => panic!("expected invalid_client, got {other:?}"),
        }
    }
}
