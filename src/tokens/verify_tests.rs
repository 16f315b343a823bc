use serde_json::json;

use super::*;
use crate::tokens::{Claims, KeyKind, Minter, SigningKey, random_id};

fn key(kind: KeyKind) -> SigningKey {
    SigningKey::from_pem(&SigningKey::generate_pem(kind).unwrap()).unwrap()
}

fn mint(key: SigningKey, jti: &str) -> String {
    mint_typed(key, "at+jwt", jti, &["user:basic".to_owned()])
}

fn mint_typed(key: SigningKey, typ: &str, jti: &str, scope: &[String]) -> String {
    Minter::new(key, typ)
        .unwrap()
        .mint(&Claims {
            sub: "acct-1",
            aud: "app",
            scope,
            iss: "https://sso.example",
            exp: 2_000,
            iat: 1_000,
            jti,
            client_id: "app",
        })
        .unwrap()
}

fn verifier_of(keys: &[&VerifyingKey]) -> Verifier {
    let mut verifier = Verifier::default();
    for key in keys {
        assert!(verifier.insert((*key).clone()));
    }
    verifier
}

/// A key to sign with, and its public half read from the public key file a retired key is
/// kept as.
fn pair(kind: KeyKind) -> (SigningKey, VerifyingKey) {
    let signer = key(kind);
    let public = VerifyingKey::from_pem(&signer.verifying_key().to_pem()).unwrap();
    (signer, public)
}

fn reencode(token: &str, index: usize, edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut value: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[index]).unwrap()).unwrap();
    edit(&mut value);
    parts[index] = URL_SAFE_NO_PAD.encode(value.to_string());
    parts.join(".")
}

#[test]
fn tokens_of_every_key_kind_verify_with_their_key_among_others() {
    let others = [key(KeyKind::Ed25519), key(KeyKind::P256)].map(|k| k.verifying_key().clone());
    for kind in [KeyKind::Rsa2048, KeyKind::P256, KeyKind::Ed25519] {
        let (signer, public) = pair(kind);
        let jti = random_id().unwrap();
        let token = mint(signer, &jti);
        let verifier = verifier_of(&[&others[0], &public, &others[1]]);

        let claims = verifier.verify(&token).unwrap();

        assert_eq!(claims.jti, jti, "{kind:?}");
        assert_eq!(claims.sub, "acct-1");
        assert_eq!(claims.client_id, "app");
        assert_eq!(claims.scope, ["user:basic"]);
        assert_eq!((claims.iat, claims.exp), (1_000, 2_000));
    }
}

#[test]
fn a_token_of_a_key_not_in_the_set_is_refused() {
    let token = mint(key(KeyKind::Ed25519), "x");
    let verifier = verifier_of(&[key(KeyKind::Ed25519).verifying_key()]);
    assert_eq!(verifier.verify(&token).unwrap_err(), Rejected::UnknownKey);
}

#[test]
fn a_changed_payload_or_signature_is_refused() {
    let (signer, public) = pair(KeyKind::P256);
    let token = mint(signer, "x");
    let verifier = verifier_of(&[&public]);
    let forged = reencode(&token, 1, |claims| claims["sub"] = json!("someone-else"));
    let mut damaged = token.clone().into_bytes();
    let last = damaged.len() - 2;
    damaged[last] = if damaged[last] == b'A' { b'B' } else { b'A' };
    let damaged = String::from_utf8(damaged).unwrap();

    assert!(verifier.verify(&token).is_ok());
    assert_eq!(verifier.verify(&forged).unwrap_err(), Rejected::Signature);
    assert_eq!(verifier.verify(&damaged).unwrap_err(), Rejected::Signature);
}

/// `token` with its header's `alg` set to `alg` and signed again, for real, by `sign`.
fn resigned(token: &str, alg: &str, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
    let changed = reencode(token, 0, |header| header["alg"] = json!(alg));
    let input = changed.rsplit_once('.').unwrap().0;
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sign(input.as_bytes())))
}

#[test]
fn the_algorithm_follows_the_key_not_the_header() {
    use aws_lc_rs::signature::{
        RSA_PKCS1_SHA256, RSA_PKCS1_SHA384, RSA_PSS_SHA256, RsaEncoding, RsaKeyPair,
    };
    use aws_lc_rs::{hmac, rand::SystemRandom};

    let private_pem = SigningKey::generate_pem(KeyKind::Rsa2048).unwrap();
    let signer = SigningKey::from_pem(&private_pem).unwrap();
    let public_pem = signer.verifying_key().to_pem();
    let public_der = pem::parse(&public_pem).unwrap().contents().to_vec();
    let verifier = verifier_of(&[&VerifyingKey::from_pem(&public_pem).unwrap()]);
    let token = mint(signer, "x");
    // The same RSA key, under whatever padding and digest the header names.
    let rsa = RsaKeyPair::from_pkcs8(pem::parse(&private_pem).unwrap().contents()).unwrap();
    let rsa = &rsa;
    let rsa_signs = |encoding: &'static dyn RsaEncoding| {
        move |input: &[u8]| {
            let mut signature = vec![0; rsa.public_modulus_len()];
            rsa.sign(encoding, &SystemRandom::new(), input, &mut signature)
                .unwrap();
            signature
        }
    };
    // The classic confusion: the public key's own bytes as an HMAC secret.
    let hmac_signs = |secret: Vec<u8>| {
        move |input: &[u8]| {
            let key = hmac::Key::new(hmac::HMAC_SHA256, &secret);
            hmac::sign(&key, input).as_ref().to_vec()
        }
    };

    // Control: signed again the same way under RS256, it verifies; so each refusal below is
    // the algorithm's, not the re-signing's.
    let control = resigned(&token, "RS256", rsa_signs(&RSA_PKCS1_SHA256));
    assert!(verifier.verify(&control).is_ok());
    for (alg, forged) in [
        (
            "HS256 (PEM)",
            resigned(&token, "HS256", hmac_signs(public_pem.clone().into_bytes())),
        ),
        (
            "HS256 (DER)",
            resigned(&token, "HS256", hmac_signs(public_der)),
        ),
        (
            "RS384",
            resigned(&token, "RS384", rsa_signs(&RSA_PKCS1_SHA384)),
        ),
        (
            "PS256",
            resigned(&token, "PS256", rsa_signs(&RSA_PSS_SHA256)),
        ),
        ("none", resigned(&token, "none", |_| Vec::new())),
    ] {
        assert!(verifier.verify(&forged).is_err(), "alg {alg} was accepted");
    }
    // Only the header renamed, the key's own RS256 signature kept: the header must name the
    // key's algorithm, whatever the signature says.
    for alg in ["RS384", "PS256", "HS256", "none", "rs256"] {
        let renamed = resigned(&token, alg, rsa_signs(&RSA_PKCS1_SHA256));
        assert_eq!(
            verifier.verify(&renamed).err(),
            Some(Rejected::Signature),
            "{alg}"
        );
    }
    let unsigned = format!("{}.", token.rsplit_once('.').unwrap().0);
    assert!(verifier.verify(&unsigned).is_err());
}

#[test]
fn malformed_tokens_are_refused_without_panicking() {
    let (signer, public) = pair(KeyKind::Ed25519);
    let token = mint(signer, "x");
    let verifier = verifier_of(&[&public]);
    let without_kid = reencode(&token, 0, |header| {
        header.as_object_mut().unwrap().remove("kid");
    });
    for bad in [
        String::new(),
        "a.b".into(),
        format!("{token}.x"),
        "!!!.???.***".into(),
        "e30.e30.".into(),
        format!("{token}{}", "A".repeat(MAX_TOKEN)),
        without_kid,
    ] {
        assert!(verifier.verify(&bad).is_err(), "{bad}");
    }
}

/// Signed anew by the key itself, so that only the header's `crit` can refuse them.
#[test]
fn a_header_with_crit_is_refused_whatever_its_value() {
    let pem = SigningKey::generate_pem(KeyKind::Ed25519).unwrap();
    let signer = SigningKey::from_pem(&pem).unwrap();
    let verifier = verifier_of(&[signer.verifying_key()]);
    let token = mint(SigningKey::from_pem(&pem).unwrap(), "x");
    let signed = |edit: &dyn Fn(&mut serde_json::Value)| {
        let edited = reencode(&token, 0, edit);
        let input = edited.rsplit_once('.').unwrap().0;
        let signature = URL_SAFE_NO_PAD.encode(signer.sign(input.as_bytes()).unwrap());
        format!("{input}.{signature}")
    };
    let unchanged = signed(&|_| {});
    assert!(verifier.verify(&unchanged).is_ok());
    for crit in [json!(["exp"]), json!([]), json!(null), json!("b64")] {
        let with_crit = signed(&|header| header["crit"] = crit.clone());
        assert!(verifier.verify(&with_crit).is_err(), "{crit}");
    }
}

#[test]
fn expiry_allows_the_leeway_and_no_more() {
    let claims = AccessClaims {
        sub: String::new(),
        aud: String::new(),
        scope: Vec::new(),
        iss: String::new(),
        exp: 100,
        iat: 0,
        jti: String::new(),
        client_id: String::new(),
    };
    assert!(!claims.expired(99, 0));
    assert!(claims.expired(100, 0));
    assert!(!claims.expired(129, 30));
    assert!(claims.expired(130, 30));
    assert!(!claims.expired(u64::MAX - 1, u64::MAX));
}

#[test]
fn scope_reads_the_same_from_the_seeds_array_and_rfc9068s_string() {
    let scopes = vec!["user:basic".to_owned(), "user:contract".to_owned()];
    for typ in ["access_token", "at+jwt"] {
        let (signer, public) = pair(KeyKind::Ed25519);
        let token = mint_typed(signer, typ, &random_id().unwrap(), &scopes);

        let claims = verifier_of(&[&public]).verify(&token).unwrap();

        assert_eq!(claims.scope, scopes, "{typ}");
    }
}

#[test]
fn a_scope_claim_of_another_type_is_malformed() {
    let pem = SigningKey::generate_pem(KeyKind::Ed25519).unwrap();
    let key = || SigningKey::from_pem(&pem).unwrap();
    let token = mint(key(), &random_id().unwrap());
    let (signer, verifier) = (key(), verifier_of(&[key().verifying_key()]));
    // Signed anew, so that only the claim's type is wrong.
    let resigned = |token: &str| {
        let (input, _) = token.rsplit_once('.').unwrap();
        let signature = signer.sign(input.as_bytes()).unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    };
    assert!(verifier.verify(&resigned(&token)).is_ok(), "the control");
    for scope in [
        json!(7),
        json!({"a": 1}),
        json!([1]),
        serde_json::Value::Null,
    ] {
        let edited = reencode(&token, 1, |claims| claims["scope"] = scope.clone());

        let verified = verifier.verify(&resigned(&edited));

        assert_eq!(verified.unwrap_err(), Rejected::Malformed, "{scope}");
    }
}

#[test]
fn a_key_is_inserted_once_whether_read_as_private_or_public() {
    let (private, public) = pair(KeyKind::Ed25519);
    let mut verifier = Verifier::default();
    assert!(verifier.insert(private.verifying_key().clone()));
    assert!(!verifier.insert(public));
    assert!(verifier.insert(key(KeyKind::Ed25519).verifying_key().clone()));
    assert_eq!(verifier.len(), 2);
}

#[test]
fn a_token_verifies_with_the_public_half_taken_from_the_private_key_too() {
    for kind in [KeyKind::Rsa2048, KeyKind::P256, KeyKind::Ed25519] {
        let signer = key(kind);
        let verifier = verifier_of(&[signer.verifying_key()]);
        let token = mint(signer, "x");

        assert_eq!(verifier.verify(&token).unwrap().jti, "x", "{kind:?}");
    }
}

#[test]
fn a_verifier_knows_the_kids_of_its_keys_and_no_others() {
    let (_, public) = pair(KeyKind::Ed25519);
    let other = key(KeyKind::Ed25519);
    let mut verifier = Verifier::default();
    assert!(verifier.is_empty());
    assert!(!verifier.knows(public.kid()));

    assert!(verifier.insert(public.clone()));

    assert!(!verifier.is_empty());
    assert!(verifier.knows(public.kid()));
    assert!(!verifier.knows(other.verifying_key().kid()));
}

/// `token` with a padding claim (and, as unpadded base64 skips one length in four, a padding
/// header field) making it `length` bytes long, signed again by `signer`.
fn of_length(token: &str, signer: &SigningKey, length: usize) -> String {
    let signature_len = token.rsplit_once('.').unwrap().1.len();
    for head_pad in 0..4 {
        let head = reencode(token, 0, |header| {
            header["pad"] = json!("h".repeat(head_pad))
        });
        for pad in 0..length {
            let input = reencode(&head, 1, |claims| claims["pad"] = json!("p".repeat(pad)));
            let input = input.rsplit_once('.').unwrap().0;
            let len = input.len() + 1 + signature_len;
            if len == length {
                let signature = URL_SAFE_NO_PAD.encode(signer.sign(input.as_bytes()).unwrap());
                return format!("{input}.{signature}");
            }
            if len > length {
                break;
            }
        }
    }
    panic!("no padding made a token of {length} bytes");
}

/// A token of exactly `MAX_TOKEN` bytes verifies; one byte longer is refused before it is read,
/// though our own key signed it.
#[test]
fn a_token_of_max_token_bytes_verifies_and_a_longer_one_is_refused_however_signed() {
    let pem = SigningKey::generate_pem(KeyKind::Ed25519).unwrap();
    let signer = SigningKey::from_pem(&pem).unwrap();
    let verifier = verifier_of(&[signer.verifying_key()]);
    let token = mint(SigningKey::from_pem(&pem).unwrap(), "x");
    let longest = of_length(&token, &signer, MAX_TOKEN);
    let longer = of_length(&token, &signer, MAX_TOKEN + 1);

    assert_eq!(longest.len(), MAX_TOKEN);
    assert_eq!(verifier.verify(&longest).unwrap().jti, "x");
    assert_eq!(longer.len(), MAX_TOKEN + 1);
    assert_eq!(verifier.verify(&longer).unwrap_err(), Rejected::Malformed);
}

/// Property tests ("fuzzing") of verification, whose input is any string a client sends to
/// introspection or user info: a real token of each key kind with one character changed (to a
/// base64url one, a delimiter or any other), cut short, or with characters inserted is never
/// accepted, nor does any string panic. One token has exactly one spelling: a signature whose
/// last character differs only in bits base64url leaves unused would be a second token with
/// the same `jti`, and is refused too. `PROPTEST_CASES=1000000 cargo test --release --lib fuzz_`
/// runs 10⁶ cases.
mod fuzz {
    use std::sync::LazyLock;

    use proptest::prelude::*;

    use super::*;
    use crate::oauth::fuzz_tests::{config, text};

    /// A token of each key kind and the verifier of its key.
    static TOKENS: LazyLock<Vec<(String, Verifier)>> = LazyLock::new(|| {
        [KeyKind::Rsa2048, KeyKind::P256, KeyKind::Ed25519]
            .into_iter()
            .map(|kind| {
                let (signer, public) = pair(kind);
                (mint(signer, "fuzzed"), verifier_of(&[&public]))
            })
            .collect()
    });

    /// A character a damaged token may hold instead.
    fn any_char() -> impl Strategy<Value = char> {
        prop_oneof![
            6 => prop::sample::select(
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
                    .map(char::from)
                    .to_vec()
            ),
            1 => prop::sample::select(vec!['.', '=', '+', '/', ' ']),
            1 => any::<char>(),
        ]
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn fuzz_a_damaged_token_is_never_accepted(
            which in 0..3usize,
            // 0: a character replaced; 1: cut short; 2: characters inserted; 3: the last
            // character of a part replaced, where base64url has unused bits.
            damage in 0..4u8,
            at in any::<prop::sample::Index>(),
            with in any_char(),
            inserted in text(1..=8),
        ) {
            let (token, verifier) = &TOKENS[which];
            prop_assert!(verifier.verify(token).is_ok());
            let mut chars: Vec<char> = token.chars().collect();
            let i = at.index(chars.len());
            match damage {
                0 => chars[i] = with,
                1 => chars.truncate(i),
                2 => {
                    chars.splice(i..i, inserted.chars());
                }
                _ => {
                    let ends: Vec<usize> = (0..chars.len())
                        .filter(|&j| chars.get(j + 1).is_none_or(|&next| next == '.'))
                        .collect();
                    chars[ends[at.index(ends.len())]] = with;
                }
            }
            let damaged = String::from_iter(chars);
            if damaged != *token {
                prop_assert!(verifier.verify(&damaged).is_err(), "accepted: {damaged}");
            }
        }

        #[test]
        fn fuzz_any_string_is_refused_without_panicking(token in text(0..=300)) {
            for (_, verifier) in TOKENS.iter() {
                prop_assert!(verifier.verify(&token).is_err());
            }
        }
    }
}
