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
/// itself, an S256 one the base64url of a SHA-256 digest (RFC 7636 §4.2): 43 characters, the
/// last of which leaves the two bits base64url does not use at zero (`…-` is no digest's, only
/// `…w` or `…0`, say). Any other is a writer's mistake that no client can get past.
pub fn challenge_well_formed(method: Method, challenge: &str) -> bool {
    match method {
        Method::Plain => well_formed(challenge),
        // The engine refuses padding, `+` and `/`, and unused bits that are set. Decoded on the
        // stack: 33 bytes is what the engine asks room for from 43 characters.
        Method::S256 => {
            let mut digest = [0; 33];
            challenge.len() == 43
                && matches!(URL_SAFE_NO_PAD.decode_slice(challenge, &mut digest), Ok(32))
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
            // No digest's encoding ends so: `M` leaves the unused bits at zero, `N` sets one.
            &CHALLENGE.replace("-cM", "-cN"),
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

    /// Property tests ("fuzzing"): an S256 challenge is well-formed exactly when some verifier
    /// could meet it, and only its verifier meets it.
    /// `PROPTEST_CASES=1000000 cargo test --release --lib fuzz_`.
    mod fuzz {
        use proptest::prelude::*;

        use super::*;
        use crate::oauth::fuzz_tests::config;

        proptest! {
            #![proptest_config(config())]

            #[test]
            fn fuzz_an_s256_challenge_is_well_formed_when_a_verifier_can_meet_it(
                challenge in "[A-Za-z0-9_-]{42,44}",
            ) {
                // Some verifier meets it when it is the encoding of a SHA-256 digest: 32 bytes,
                // whose 43rd character leaves two bits that base64url does not use at zero.
                let meetable = URL_SAFE_NO_PAD
                    .decode(&challenge)
                    .is_ok_and(|digest| URL_SAFE_NO_PAD.encode(&digest) == challenge && digest.len() == 32);
                prop_assert_eq!(challenge_well_formed(Method::S256, &challenge), meetable);
            }

            #[test]
            fn fuzz_only_its_verifier_meets_an_s256_challenge(
                verifier in "[A-Za-z0-9._~-]{43,128}",
                other in "[A-Za-z0-9._~-]{43,128}",
            ) {
                let challenge = s256_challenge(&verifier);
                prop_assert!(challenge_well_formed(Method::S256, &challenge));
                prop_assert!(verify(Method::S256, &challenge, &verifier));
                prop_assert_eq!(verify(Method::S256, &challenge, &other), other == verifier);
                prop_assert!(verify(Method::Plain, &verifier, &verifier));
                prop_assert_eq!(verify(Method::Plain, &verifier, &other), other == verifier);
            }
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
