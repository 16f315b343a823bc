//! The OAuth 2.0 vocabulary of our endpoints: errors, request parsing, PKCE, Bearer tokens.

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

#[cfg(test)]
mod fuzz_tests;
