//! Parse, don't validate: the raw body and headers of a token request become a typed
//! [`TokenRequest`] or an RFC 6749 error, here and nowhere else (reading the body with
//! `body`, the client's credentials with `credentials`).

use std::borrow::Cow;

use serde::Deserialize;

use super::AUTHORIZATION_CODE;
use super::body::{parse_body, present, required};
use super::credentials::{BodyCredentials, ClientCredentials, credentials};
use super::error::OAuthError;
use super::secret::Sensitive;

const MAX_CODE: usize = 512;
/// The longest `redirect_uri` a token request may send; a client's registered ones are held to
/// it at load, or the client could never exchange a code.
pub const MAX_REDIRECT_URI: usize = 2048;

/// A well-formed authorization-code token request.
#[derive(Debug)]
pub struct TokenRequest {
    pub client: ClientCredentials,
    pub code: Sensitive,
    pub redirect_uri: String,
    pub code_verifier: Option<Sensitive>,
}

/// The body's fields, under their seed (snake_case) and reference-client (camelCase) names.
/// Unknown fields are ignored (RFC 6749 §3.2); a field given twice is an error.
#[derive(Deserialize, Default)]
struct RawParams<'a> {
    #[serde(borrow, default, alias = "grantType")]
    grant_type: Option<Cow<'a, str>>,
    #[serde(borrow, default, alias = "clientId")]
    client_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, alias = "clientSecret")]
    client_secret: Option<Cow<'a, str>>,
    #[serde(borrow, default, alias = "clientAssertionType")]
    client_assertion_type: Option<Cow<'a, str>>,
    #[serde(borrow, default, alias = "clientAssertion")]
    client_assertion: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    code: Option<Cow<'a, str>>,
    #[serde(borrow, default, alias = "redirectUri")]
    redirect_uri: Option<Cow<'a, str>>,
    #[serde(borrow, default, alias = "codeVerifier")]
    code_verifier: Option<Cow<'a, str>>,
}

/// Every body field name the parser knows (snake and camel case).
pub(crate) const FIELDS: [&str; 15] = [
    "grant_type",
    "grantType",
    "client_id",
    "clientId",
    "client_secret",
    "clientSecret",
    "client_assertion_type",
    "clientAssertionType",
    "client_assertion",
    "clientAssertion",
    "code",
    "redirect_uri",
    "redirectUri",
    "code_verifier",
    "codeVerifier",
];

impl TokenRequest {
    /// Builds a request from the `Content-Type` and `Authorization` headers and the body.
    pub fn parse(
        content_type: Option<&str>,
        authorization: Option<&str>,
        body: &[u8],
    ) -> Result<Self, OAuthError> {
        let params: RawParams<'_> = parse_body(content_type, body, &FIELDS)?;
        let grant_type = present(params.grant_type);
        if grant_type.is_some_and(|g| g != AUTHORIZATION_CODE) {
            return Err(OAuthError::UnsupportedGrantType);
        }
        let client = credentials(
            authorization,
            BodyCredentials {
                id: present(params.client_id),
                secret: present(params.client_secret),
                assertion_type: present(params.client_assertion_type),
                assertion: present(params.client_assertion),
            },
        )?;
        let code = required(params.code, "code", MAX_CODE)?;
        if code.chars().any(char::is_control) {
            return Err(OAuthError::invalid_request(
                "code contains control characters",
            ));
        }
        let redirect_uri = required(params.redirect_uri, "redirect_uri", MAX_REDIRECT_URI)?;
        let code_verifier = present(params.code_verifier)
            .map(|v| check_verifier(&v).map(|()| Sensitive::new(v)))
            .transpose()?;
        Ok(Self {
            client,
            code: Sensitive::new(code),
            redirect_uri: redirect_uri.into_owned(),
            code_verifier,
        })
    }
}

fn check_verifier(verifier: &str) -> Result<(), OAuthError> {
    if super::pkce::well_formed(verifier) {
        Ok(())
    } else {
        Err(OAuthError::invalid_request(
            "code_verifier must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~ (RFC 7636)",
        ))
    }
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
