//! Checks every response against what the configuration says it must be: the seed's six fields,
//! the JOSE header, the claims, and (after the run, off the clock) the JWT signature.

use std::borrow::Cow;

use anyhow::Context;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ED25519, RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents,
    UnparsedPublicKey,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use sso_token::store::keys::RANDOM_CHARS;
use sso_token::tokens::{PublicJwk, is_rfc9068};

use crate::http::Response;
use crate::plan::Expect;

/// `iat` may differ this much from the client's clock at send and receive time (seconds).
const CLOCK_SLACK: u64 = 5;

/// The seed document's response, and nothing else.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenBody<'a> {
    #[serde(borrow)]
    username: Cow<'a, str>,
    #[serde(borrow)]
    token_type: Cow<'a, str>,
    expires_in: u64,
    #[serde(borrow)]
    access_token: Cow<'a, str>,
    #[serde(borrow)]
    scope: Cow<'a, str>,
    #[serde(borrow)]
    account_id: Cow<'a, str>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Header<'a> {
    #[serde(borrow)]
    typ: Cow<'a, str>,
    #[serde(borrow)]
    alg: Cow<'a, str>,
    #[serde(borrow)]
    kid: Cow<'a, str>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Claims<'a> {
    #[serde(borrow)]
    sub: Cow<'a, str>,
    #[serde(borrow)]
    aud: Cow<'a, str>,
    #[serde(borrow)]
    scope: Scope<'a>,
    #[serde(borrow)]
    iss: Cow<'a, str>,
    exp: u64,
    iat: u64,
    jti: String,
    #[serde(borrow)]
    client_id: Cow<'a, str>,
}

/// The `scope` claim: the seed's array, or one space-separated string when `typ` is `at+jwt`
/// (RFC 9068 §2.2.3).
#[derive(Deserialize)]
#[serde(untagged)]
enum Scope<'a> {
    #[serde(borrow)]
    List(Vec<Cow<'a, str>>),
    #[serde(borrow)]
    Joined(Cow<'a, str>),
}

impl Scope<'_> {
    /// Whether it holds exactly `expected`, in order, in the shape `typ` calls for.
    fn is(&self, expected: &[String], typ: &str) -> bool {
        match (self, is_rfc9068(typ)) {
            (Self::List(scopes), false) => scopes.iter().eq(expected.iter()),
            (Self::Joined(joined), true) => {
                joined.split(' ').eq(expected.iter().map(String::as_str))
            }
            _ => false,
        }
    }
}

/// A 200 that passed every inline check.
pub struct Accepted {
    pub jti: String,
    pub token: String,
}

/// Per-worker checker; remembers the one valid JOSE header so it is parsed only once.
pub struct Checker<'a> {
    expect: &'a Expect,
    header_ok: Option<String>,
}

impl<'a> Checker<'a> {
    pub fn new(expect: &'a Expect) -> Self {
        Self {
            expect,
            header_ok: None,
        }
    }

    /// Checks a 200 to the exchange of code `code_index`; `sent` and `received` are Unix
    /// seconds. `Err` is the violation, in words.
    pub fn token(
        &mut self,
        response: &Response<'_>,
        code_index: usize,
        code: &str,
        sent: u64,
        received: u64,
    ) -> Result<Accepted, String> {
        let e = self.expect;
        let body: TokenBody<'_> = serde_json::from_slice(response.body)
            .map_err(|err| format!("response body is not the seed's six fields: {err}"))?;
        if !response.no_store {
            return Err("no `Cache-Control: no-store` on a token response".into());
        }
        let account_id = e.account_id(code_index);
        let checks = [
            ("username", body.username == e.username),
            ("token_type", body.token_type == "bearer"),
            ("expires_in", body.expires_in == e.expires_in),
            ("scope", body.scope == e.scope_joined),
            ("account_id", body.account_id == account_id),
        ];
        if let Some((field, _)) = checks.iter().find(|(_, ok)| !ok) {
            return Err(format!(
                "response field `{field}` is not the one of the code sent"
            ));
        }
        let token = body.access_token.as_ref();
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("access_token is not a compact JWS of three parts".into());
        };
        if signature.is_empty() || URL_SAFE_NO_PAD.decode(signature).is_err() {
            return Err("access_token signature is not base64url".into());
        }
        self.check_header(header)?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| "access_token payload is not base64url".to_owned())?;
        let claims: Claims<'_> = serde_json::from_slice(&payload)
            .map_err(|err| format!("access_token claims are not the expected set: {err}"))?;
        let checks = [
            ("sub", claims.sub == account_id),
            ("aud", claims.aud == e.aud),
            ("iss", claims.iss == e.issuer),
            ("client_id", claims.client_id == e.client_id),
            ("scope", claims.scope.is(&e.scopes, &e.typ)),
            ("exp", claims.exp == claims.iat + e.expires_in),
            (
                "iat",
                claims.iat + CLOCK_SLACK >= sent && claims.iat <= received + CLOCK_SLACK,
            ),
            ("jti", is_jti(&claims.jti, &e.keys.record_id(code))),
        ];
        if let Some((claim, _)) = checks.iter().find(|(_, ok)| !ok) {
            return Err(format!("claim `{claim}` is not the one of the code sent"));
        }
        Ok(Accepted {
            jti: claims.jti,
            token: token.to_owned(),
        })
    }

    fn check_header(&mut self, encoded: &str) -> Result<(), String> {
        if self.header_ok.as_deref() == Some(encoded) {
            return Ok(());
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(encoded)
            .map_err(|_| "JOSE header is not base64url".to_owned())?;
        let header: Header<'_> = serde_json::from_slice(&bytes)
            .map_err(|err| format!("JOSE header is not {{typ, alg, kid}}: {err}"))?;
        let e = self.expect;
        if header.typ != e.typ || header.alg != e.alg || header.kid != e.kid {
            return Err(format!(
                "JOSE header {{typ {}, alg {}, kid {}}} differs from the configured key's",
                header.typ, header.alg, header.kid
            ));
        }
        self.header_ok = Some(encoded.to_owned());
        Ok(())
    }
}

/// The `jti` of a token for the code whose record id is `id` (`Keys::record_id`: the code's
/// hash, after its slot tag in Cluster mode): `id`, then 144 random bits as URL-safe base64.
fn is_jti(jti: &str, id: &str) -> bool {
    jti.len() == id.len() + RANDOM_CHARS
        && jti.starts_with(id)
        && jti
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `GET /healthz` answers exactly this.
pub fn healthz(response: &Response<'_>) -> Result<(), String> {
    if response.body == br#"{"status":"ok"}"# {
        Ok(())
    } else {
        Err("/healthz body is not {\"status\":\"ok\"}".into())
    }
}

/// `<status> <RFC 6749 error code>` of a refused request, e.g. `400 invalid_grant`.
pub fn error_kind(response: &Response<'_>) -> String {
    #[derive(Deserialize)]
    struct ErrorBody<'a> {
        #[serde(borrow)]
        error: Cow<'a, str>,
    }
    match serde_json::from_slice::<ErrorBody<'_>>(response.body) {
        Ok(body) => format!("{} {}", response.status, body.error),
        Err(_) => format!("{} (no RFC 6749 error body)", response.status),
    }
}

/// Verifies JWS signatures with the public half of the configured key.
/// Not the server's verifier (`sso_token::tokens`): a bug there must not pass its own check.
pub enum SignatureCheck {
    Rsa { n: Vec<u8>, e: Vec<u8> },
    Ecdsa(Vec<u8>),
    Ed25519(Vec<u8>),
}

impl SignatureCheck {
    pub fn from_jwk(jwk: &PublicJwk) -> anyhow::Result<Self> {
        let field = |value: &Option<String>, name: &str| -> anyhow::Result<Vec<u8>> {
            let value = value
                .as_deref()
                .with_context(|| format!("public key lacks `{name}`"))?;
            Ok(URL_SAFE_NO_PAD.decode(value)?)
        };
        Ok(match jwk.kty {
            "RSA" => Self::Rsa {
                n: field(&jwk.n, "n")?,
                e: field(&jwk.e, "e")?,
            },
            "EC" => {
                let mut point = vec![4u8];
                point.extend(field(&jwk.x, "x")?);
                point.extend(field(&jwk.y, "y")?);
                Self::Ecdsa(point)
            }
            "OKP" => Self::Ed25519(field(&jwk.x, "x")?),
            other => anyhow::bail!("unsupported key type {other}"),
        })
    }

    pub fn verify(&self, token: &str) -> bool {
        let Some((message, signature)) = token.rsplit_once('.') else {
            return false;
        };
        let Ok(signature) = URL_SAFE_NO_PAD.decode(signature) else {
            return false;
        };
        let message = message.as_bytes();
        match self {
            Self::Rsa { n, e } => RsaPublicKeyComponents { n, e }
                .verify(&RSA_PKCS1_2048_8192_SHA256, message, &signature)
                .is_ok(),
            Self::Ecdsa(point) => UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
                .verify(message, &signature)
                .is_ok(),
            Self::Ed25519(x) => UnparsedPublicKey::new(&ED25519, x)
                .verify(message, &signature)
                .is_ok(),
        }
    }

    /// Verifies every token on all cores (the run is over, the clock stopped); returns the
    /// number that failed.
    pub fn verify_all(&self, tokens: &[String]) -> usize {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let chunk = tokens.len().div_ceil(threads).max(1);
        std::thread::scope(|scope| {
            let workers: Vec<_> = tokens
                .chunks(chunk)
                .map(|part| {
                    let handle =
                        scope.spawn(move || part.iter().filter(|t| !self.verify(t)).count());
                    (part.len(), handle)
                })
                .collect();
            // A verifier thread that panicked verified nothing: its part counts as failed.
            workers
                .into_iter()
                .map(|(len, handle)| handle.join().unwrap_or(len))
                .sum()
        })
    }
}

#[cfg(test)]
mod tests {
    use sso_token::store::keys::Keys;
    use sso_token::tokens::{Claims, KeyKind, Minter, SigningKey};

    use super::*;

    #[test]
    fn a_jti_is_its_codes_record_id_and_24_random_characters() {
        let (id, random) = ("x9ZAbCdEfGhIjKl", "MnOpQrSt-_Uv0123456789ab");
        assert!(is_jti(&format!("{id}{random}"), id));
        assert!(
            !is_jti(&format!("x9Y{}{random}", &id[3..]), id),
            "another code's"
        );
        assert!(!is_jti(id, id), "no random part");
        assert!(!is_jti(&format!("{id}{}", &random[1..]), id), "too short");
        assert!(
            !is_jti(&format!("{id}{}=", &random[1..]), id),
            "not URL-safe base64"
        );
    }

    fn scope(json: &str) -> Scope<'_> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn the_scope_claim_is_checked_in_the_shape_of_the_typ() {
        let expected = ["user:basic".to_owned(), "user:contract".to_owned()];
        let (list, joined) = (
            r#"["user:basic","user:contract"]"#,
            r#""user:basic user:contract""#,
        );
        assert!(scope(list).is(&expected, "access_token"));
        assert!(scope(joined).is(&expected, "at+jwt"));
        assert!(
            !scope(joined).is(&expected, "access_token"),
            "string, seed typ"
        );
        assert!(!scope(list).is(&expected, "at+jwt"), "array, RFC 9068 typ");
        for (other, typ) in [
            (r#"["user:contract","user:basic"]"#, "access_token"),
            (r#"["user:basic"]"#, "access_token"),
            (r#""user:basic""#, "at+jwt"),
            (r#""user:basic,user:contract""#, "at+jwt"),
            (r#""user:basic  user:contract""#, "at+jwt"),
        ] {
            assert!(!scope(other).is(&expected, typ), "{other}");
        }
    }

    /// A token minted by the server's own minter (key `pem`) with its claims edited by `edit`,
    /// in the seed's six-field answer, checked as the answer to code 7 of `expect`; and the
    /// token.
    fn check(expect: &Expect, pem: &str, edit: &Edit) -> (Result<Accepted, String>, String) {
        check_as(expect, expect, pem, edit)
    }

    /// [`check`], the token minted (header `typ`, claims) for `minted` and checked for `expect`.
    fn check_as(
        minted: &Expect,
        expect: &Expect,
        pem: &str,
        edit: &Edit,
    ) -> (Result<Accepted, String>, String) {
        let now = sso_token::clock::unix_now();
        let code = "OC-7";
        let mut claims = serde_json::json!({
            "sub": expect.account_id(7), "aud": expect.aud, "scope": expect.scopes,
            "iss": expect.issuer, "exp": now + expect.expires_in, "iat": now,
            "jti": expect.keys.new_jti(code).unwrap(), "client_id": expect.client_id,
        });
        edit(&mut claims);
        let text = |name: &str| claims[name].as_str().unwrap().to_owned();
        let scope: Vec<String> = serde_json::from_value(claims["scope"].clone()).unwrap();
        let (sub, aud, iss, jti, client) = (
            text("sub"),
            text("aud"),
            text("iss"),
            text("jti"),
            text("client_id"),
        );
        let key = SigningKey::from_pem(pem).unwrap();
        let token = Minter::new(key, &minted.typ)
            .unwrap()
            .mint(&Claims {
                sub: &sub,
                aud: &aud,
                scope: &scope,
                iss: &iss,
                exp: claims["exp"].as_u64().unwrap(),
                iat: claims["iat"].as_u64().unwrap(),
                jti: &jti,
                client_id: &client,
            })
            .unwrap();
        let body = serde_json::json!({
            "username": expect.username, "token_type": "bearer",
            "expires_in": expect.expires_in, "access_token": token,
            "scope": expect.scope_joined, "account_id": expect.account_id(7),
        })
        .to_string();
        let response = Response {
            status: 200,
            body: body.as_bytes(),
            no_store: true,
            close: false,
        };
        let verdict = Checker::new(expect).token(&response, 7, code, now, now);
        (verdict, token)
    }

    /// A change to a token's claims.
    type Edit = dyn Fn(&mut serde_json::Value);

    fn expect_for(pem: &str) -> Expect {
        let key = SigningKey::from_pem(pem).unwrap();
        Expect {
            client_id: "app".into(),
            username: "zhangs".into(),
            account_base: "acct".into(),
            scopes: vec!["user:basic".into(), "user:contract".into()],
            scope_joined: "user:basic user:contract".into(),
            expires_in: 1800,
            issuer: "https://sso.example".into(),
            aud: "app".into(),
            typ: "access_token".into(),
            alg: format!("{:?}", key.algorithm()),
            kid: key.kid().to_owned(),
            keys: Keys::new("t:", false),
        }
    }

    fn new_pem() -> String {
        SigningKey::generate_pem(KeyKind::Ed25519).unwrap()
    }

    #[test]
    fn a_token_with_a_claim_not_the_codes_is_a_violation() {
        let pem = new_pem();
        let expect = expect_for(&pem);
        let (verdict, _) = check(&expect, &pem, &|_| {});
        assert!(verdict.is_ok(), "{:?}", verdict.err());
        let other_codes_jti = expect.keys.new_jti("OC-8").unwrap();
        let edits: [(&str, Box<Edit>); 8] = [
            ("sub", Box::new(|c| c["sub"] = "acct-8".into())),
            ("aud", Box::new(|c| c["aud"] = "other".into())),
            (
                "iss",
                Box::new(|c| c["iss"] = "https://evil.example".into()),
            ),
            ("client_id", Box::new(|c| c["client_id"] = "other".into())),
            (
                "scope",
                Box::new(|c| c["scope"] = serde_json::json!(["user:basic"])),
            ),
            (
                "exp",
                Box::new(|c| c["exp"] = (c["exp"].as_u64().unwrap() + 1).into()),
            ),
            (
                "iat",
                Box::new(|c| {
                    c["iat"] = (c["iat"].as_u64().unwrap() - 60).into();
                    c["exp"] = (c["exp"].as_u64().unwrap() - 60).into();
                }),
            ),
            (
                "jti",
                Box::new(move |c| c["jti"] = other_codes_jti.clone().into()),
            ),
        ];
        for (claim, edit) in edits {
            let (verdict, _) = check(&expect, &pem, &*edit);
            let violation = verdict.err().unwrap_or_else(|| panic!("{claim} passed"));
            assert!(
                violation.contains(&format!("`{claim}`")),
                "{claim}: {violation}"
            );
        }
    }

    #[test]
    fn a_token_of_another_key_fails_the_header_and_the_signature() {
        let (pem, other) = (new_pem(), new_pem());
        let expect = expect_for(&pem);
        let (verdict, token) = check(&expect, &other, &|_| {});
        let violation = verdict.err().expect("another key's token passed");
        assert!(violation.contains("JOSE header"), "{violation}");

        let ours = SigningKey::from_pem(&pem).unwrap();
        let check_ours = SignatureCheck::from_jwk(ours.public_jwk()).unwrap();
        let (_, good) = check(&expect, &pem, &|_| {});
        assert!(check_ours.verify(&good));
        assert_eq!(check_ours.verify_all(&[good.clone(), token]), 1);
        assert_eq!(
            check_ours.verify_all(&[good.clone(), good.clone(), good]),
            0
        );
        assert_eq!(check_ours.verify_all(&[]), 0);
    }

    /// Each of the header's `typ`, `alg` and `kid` is checked on its own: a token whose `typ`
    /// alone is not the configured one is refused by its header.
    #[test]
    fn a_token_of_another_typ_fails_the_header() {
        let pem = new_pem();
        let expect = expect_for(&pem);
        let minted = Expect {
            typ: "at+jwt".into(),
            ..expect.clone()
        };
        let (verdict, _) = check_as(&minted, &expect, &pem, &|_| {});
        let violation = verdict.err().expect("a token of another typ passed");
        assert!(
            violation.contains("JOSE header {typ at+jwt,"),
            "{violation}"
        );
    }

    #[test]
    fn healthz_answers_exactly_ok_and_a_refusal_is_named_by_status_and_error() {
        let response = |status, body: &'static [u8]| Response {
            status,
            body,
            no_store: false,
            close: false,
        };
        assert!(healthz(&response(200, br#"{"status":"ok"}"#)).is_ok());
        assert!(healthz(&response(200, br#"{"status":"down"}"#)).is_err());
        let refused = br#"{"error":"invalid_grant","error_description":"used"}"#;
        assert_eq!(error_kind(&response(400, refused)), "400 invalid_grant");
        assert_eq!(
            error_kind(&response(502, b"<html>")),
            "502 (no RFC 6749 error body)"
        );
    }
}
