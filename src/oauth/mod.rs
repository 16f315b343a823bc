//! The OAuth 2.0 vocabulary of the token endpoint: errors, request parsing, PKCE.

pub mod basic;
pub mod error;
pub mod pkce;
pub mod request;
pub mod secret;

pub use error::OAuthError;
pub use request::{ClientCredentials, TokenRequest};
pub use secret::Sensitive;

#[cfg(test)]
mod fuzz_tests;
