//! Client credentials as a request presents them: HTTP Basic, `client_id` + `client_secret`
//! in the body, or a client assertion (`private_key_jwt`, RFC 7523 §2.2), one of them only,
//! checked for shape before anything is hashed or verified.

use std::borrow::Cow;

use super::assertion::{check_fields, claimed_issuer};
use super::basic::{self, Authorization};
use super::body::present;
use super::error::OAuthError;
use super::secret::Sensitive;

const MAX_CLIENT_ID: usize = 256;
/// The longest client secret a request may send (and the registry hold).
pub const MAX_SECRET: usize = 512;

/// The credentials a client presented, and how.
#[derive(Debug)]
pub struct ClientCredentials {
    pub id: String,
    pub secret: Sensitive,
    /// Whether the credentials came in HTTP Basic (else in the body).
    pub used_basic: bool,
    /// A client assertion (a compact JWS) in place of a secret, `secret` then empty; `id` is
    /// the assertion's `iss`, unverified until `client_assertion` checks it.
    pub assertion: Option<Sensitive>,
}

/// The body's credential fields, each `None` when absent or empty.
pub(super) struct BodyCredentials<'a> {
    pub id: Option<Cow<'a, str>>,
    pub secret: Option<Cow<'a, str>>,
    pub assertion_type: Option<Cow<'a, str>>,
    pub assertion: Option<Cow<'a, str>>,
}

/// Client authentication: HTTP Basic, `client_id` + `client_secret` in the body, or a client
/// assertion, one method only. An `Authorization` header of another scheme is not client
/// authentication (RFC 6749 §2.3 knows Basic only) and is passed over, as Keycloak and Hydra
/// do: a gateway may add its own `Bearer` or a browser its `Negotiate` to a request whose
/// credentials are in the body.
pub(super) fn credentials(
    authorization: Option<&str>,
    body: BodyCredentials<'_>,
) -> Result<ClientCredentials, OAuthError> {
    if body.assertion_type.is_some() || body.assertion.is_some() {
        return assertion_credentials(authorization, body);
    }
    let (body_id, body_secret) = (body.id, body.secret);
    let basic = match authorization.map(basic::parse) {
        None | Some(Ok(Authorization::OtherScheme)) => None,
        Some(Ok(Authorization::Basic { id, secret })) => Some((id, secret)),
        Some(Err(malformed)) => {
            return Err(OAuthError::InvalidClient(malformed.0.into()));
        }
    };
    let (id, secret, used_basic) = match basic {
        Some((id, secret)) => {
            if body_secret.is_some() {
                return Err(OAuthError::invalid_request(
                    "use one client authentication method: HTTP Basic or client_secret in the body, not both",
                ));
            }
            if body_id.is_some_and(|body_id| body_id != id) {
                return Err(OAuthError::invalid_request(
                    "client_id in the body differs from the one in the Authorization header",
                ));
            }
            // RFC 6749 §5.2 wants a 401 with a challenge for a failed attempt at
            // authentication, which a malformed id in the header is.
            if !is_client_id(&id) {
                return Err(OAuthError::authentication_failed());
            }
            (id, secret, true)
        }
        None => {
            // RFC 6749 §5.2: "no client authentication included" is invalid_client.
            let id = present(body_id).ok_or_else(|| {
                // Here a header is one of another scheme: Basic was taken above.
                let other_scheme = match authorization {
                    Some(_) => " (the Authorization header has another scheme)",
                    None => "",
                };
                OAuthError::InvalidClient(
                    format!(
                        "client authentication is required: HTTP Basic{other_scheme}, \
                         client_id and client_secret in the body, or client_assertion"
                    )
                    .into(),
                )
            })?;
            // In the body, a malformed field, whatever came with it.
            if !is_client_id(&id) {
                return Err(OAuthError::invalid_request(if id.len() > MAX_CLIENT_ID {
                    "client_id is too long"
                } else {
                    "client_id must be printable ASCII (RFC 6749 VSCHAR: %x20-7E)"
                }));
            }
            let secret = body_secret.ok_or_else(|| {
                OAuthError::InvalidClient(
                    "client_secret is required, in the body or with HTTP Basic".into(),
                )
            })?;
            (id.into_owned(), Sensitive::new(secret), false)
        }
    };
    // A wrong secret like any other (RFC 6749 §5.2; with Basic, 401 and its challenge), told
    // before any hashing: the registry holds no secret this long.
    if secret.expose().len() > MAX_SECRET {
        return Err(OAuthError::authentication_failed());
    }
    Ok(ClientCredentials {
        id,
        secret,
        used_basic,
        assertion: None,
    })
}

/// RFC 7521 §4.2 and RFC 7523 §3: the assertion alone authenticates, so Basic or a
/// `client_secret` beside it is a second method (RFC 6749 §2.3: one only); a `client_id`
/// beside it must be the client the assertion is issued by.
fn assertion_credentials(
    authorization: Option<&str>,
    body: BodyCredentials<'_>,
) -> Result<ClientCredentials, OAuthError> {
    let one_method = || {
        OAuthError::invalid_request(
            "use one client authentication method: client_assertion, HTTP Basic or \
             client_secret, not two",
        )
    };
    match authorization.map(basic::parse) {
        None | Some(Ok(Authorization::OtherScheme)) => {}
        Some(Ok(Authorization::Basic { .. })) => return Err(one_method()),
        Some(Err(malformed)) => return Err(OAuthError::InvalidClient(malformed.0.into())),
    }
    if body.secret.is_some() {
        return Err(one_method());
    }
    let assertion = check_fields(body.assertion_type, body.assertion)?;
    let issuer = claimed_issuer(&assertion).ok_or_else(|| {
        OAuthError::InvalidClient(
            "client_assertion must be a signed JWT (compact JWS) whose claims name the client \
             in iss and sub (RFC 7523 section 3)"
                .into(),
        )
    })?;
    if body.id.is_some_and(|id| id != issuer) {
        return Err(OAuthError::InvalidClient(
            "client_id differs from the client assertion's iss".into(),
        ));
    }
    // No registered client has such an id: a failed authentication like any.
    if !is_client_id(&issuer) {
        return Err(OAuthError::authentication_failed());
    }
    Ok(ClientCredentials {
        id: issuer,
        secret: Sensitive::new(String::new()),
        used_basic: false,
        assertion: Some(Sensitive::new(assertion)),
    })
}

/// RFC 6749 Appendix A.1: `client-id = *VSCHAR`, `VSCHAR = %x20-7E`. Refusing anything else at
/// the parser keeps control characters (a forged log line) from travelling any further.
pub fn is_client_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_CLIENT_ID && id.bytes().all(|b| (0x20..=0x7e).contains(&b))
}
