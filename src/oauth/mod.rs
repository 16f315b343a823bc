//! The OAuth 2.0 vocabulary of our endpoints: errors, request parsing, PKCE, Bearer tokens.

pub mod assertion;
pub mod basic;
pub mod bearer;
mod body;
pub mod credentials;
pub mod error;
pub mod pkce;
pub mod request;
pub mod secret;
pub mod token_query;

pub use credentials::ClientCredentials;
pub use error::OAuthError;
pub use request::TokenRequest;
pub use secret::Sensitive;
pub use token_query::TokenQuery;

/// The one grant type this service serves (RFC 6749 §4.1.3).
pub const AUTHORIZATION_CODE: &str = "authorization_code";

/// RFC 3986 §2.3's unreserved characters, `A-Z a-z 0-9 - . _ ~`: those of a PKCE verifier, and
/// the only ones that Basic credentials sent without RFC 6749's form-encoding keep intact.
pub fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"-._~".contains(&byte)
}

/// RFC 6749 §3.3's `scope-token`: one or more printable ASCII characters but space, `"` and `\`
/// (`%x21 / %x23-5B / %x5D-7E`).
pub fn is_scope_token(scope: &str) -> bool {
    !scope.is_empty()
        && scope
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

/// The client libraries known to put the id and secret into Basic credentials without that
/// form-encoding (README, "Compatibility with client libraries"): named by every warning about
/// ids and secrets outside [`is_unreserved`].
pub const BASIC_WITHOUT_ENCODING: &str =
    "authlib, requests-oauthlib, Ruby's oauth2 gem, ScribeJava, python-social-auth";

#[cfg(test)]
pub(crate) mod fuzz_tests;
