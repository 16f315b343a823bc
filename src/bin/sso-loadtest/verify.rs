//! Checks every response against what the configuration says it must be: the seed's six fields,
//! the JOSE header, the claims, and (after the run, off the clock) the JWT signature.

mod signature;

use std::borrow::Cow;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use sso_token::store::keys::RANDOM_CHARS;
use sso_token::tokens::is_rfc9068;

use crate::http::Response;
use crate::plan::Expect;

pub use signature::SignatureCheck;

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

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;
