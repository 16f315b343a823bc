//! PKCE (RFC 7636): does the `code_verifier` of the token request match the `code_challenge`
//! that the authorize service stored with the code?

use aws_lc_rs::digest::{SHA256, digest};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use subtle::ConstantTimeEq;

/// `code_challenge_method`; RFC 7636 §4.3 makes `plain` the default when none is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
pub enum Method {
    S256,
    #[default]
    #[serde(rename = "plain")]
    Plain,
}

/// RFC 7636 §4.1 and §4.2: a verifier, and so a `plain` challenge, is 43 to 128 characters of
/// `[A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~"`; an S256 challenge is 43 of them.
pub fn well_formed(value: &str) -> bool {
    (43..=128).contains(&value.len()) && value.bytes().all(super::is_unreserved)
}

/// Whether a stored challenge is one some verifier could meet: a `plain` one is a verifier
/// itself, an S256 one 43 characters of base64url (RFC 7636 §4.2). Any other is a writer's
/// mistake that no client can get past.
pub fn challenge_well_formed(method: Method, challenge: &str) -> bool {
    match method {
        Method::Plain => well_formed(challenge),
        Method::S256 => {
            challenge.len() == 43
                && (challenge.bytes()).all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        }
    }
}

/// The S256 challenge of a verifier: `BASE64URL(SHA256(verifier))` without padding.
pub fn s256_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest(&SHA256, verifier.as_bytes()))
}

/// Compares in constant time: a challenge is not a secret, but the verifier is.
pub fn verify(method: Method, challenge: &str, verifier: &str) -> bool {
    match method {
        Method::S256 => s256_challenge(verifier)
            .as_bytes()
            .ct_eq(challenge.as_bytes())
            .into(),
        Method::Plain => verifier.as_bytes().ct_eq(challenge.as_bytes()).into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of RFC 7636 Appendix B.
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn s256_matches_the_rfc_example() {
        assert_eq!(s256_challenge(VERIFIER), CHALLENGE);
        assert!(verify(Method::S256, CHALLENGE, VERIFIER));
    }

    #[test]
    fn s256_rejects_another_verifier_and_the_challenge_itself() {
        assert!(!verify(
            Method::S256,
            CHALLENGE,
            &VERIFIER.replace('d', "e")
        ));
        assert!(!verify(Method::S256, CHALLENGE, CHALLENGE));
    }

    #[test]
    fn plain_compares_verbatim() {
        assert!(verify(Method::Plain, VERIFIER, VERIFIER));
        assert!(!verify(Method::Plain, VERIFIER, CHALLENGE));
    }

    /// Every character counts, not a prefix: a long `plain` challenge against a verifier that
    /// differs only past its 43rd character, is cut there, or goes one further.
    #[test]
    fn plain_compares_the_whole_of_a_long_challenge() {
        let challenge = format!("{VERIFIER}{VERIFIER}");
        let late_difference = format!("{VERIFIER}{}", VERIFIER.replace('d', "e"));
        let longer = format!("{challenge}a");
        assert!(verify(Method::Plain, &challenge, &challenge));
        for verifier in [
            late_difference.as_str(),
            VERIFIER,
            &challenge[..64],
            &longer,
        ] {
            assert!(!verify(Method::Plain, &challenge, verifier), "{verifier}");
        }
    }

    #[test]
    fn only_a_challenge_some_verifier_meets_is_well_formed() {
        assert!(challenge_well_formed(Method::S256, CHALLENGE));
        assert!(challenge_well_formed(Method::Plain, VERIFIER));
        assert!(challenge_well_formed(Method::Plain, &"~".repeat(128)));
        let padded = format!("{CHALLENGE}=");
        let standard = CHALLENGE.replace('-', "+");
        for s256 in [
            "",
            &CHALLENGE[1..],
            &padded,
            &standard,
            &CHALLENGE.replace('E', "."),
        ] {
            assert!(!challenge_well_formed(Method::S256, s256), "{s256}");
        }
        for plain in [
            "",
            &VERIFIER[1..],
            &"a".repeat(129),
            &VERIFIER.replace('d', " "),
        ] {
            assert!(!challenge_well_formed(Method::Plain, plain), "{plain}");
        }
    }

    #[test]
    fn methods_parse_with_their_rfc_names() {
        let s256: Method = serde_json::from_str("\"S256\"").unwrap();
        let plain: Method = serde_json::from_str("\"plain\"").unwrap();
        assert_eq!((s256, plain), (Method::S256, Method::Plain));
        assert!(serde_json::from_str::<Method>("\"s256\"").is_err());
    }
}
