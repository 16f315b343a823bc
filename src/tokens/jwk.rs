//! A public key as RFC 7517 publishes it, and its RFC 7638 thumbprint, which is its `kid`.

use aws_lc_rs::digest::{SHA256, digest};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

use super::keys::Algorithm;

/// The public key as RFC 7517 publishes it; also the input of the RFC 7638 thumbprint.
#[derive(Debug, Clone, Serialize)]
pub struct PublicJwk {
    pub kty: &'static str,
    pub kid: String,
    pub alg: Algorithm,
    #[serde(rename = "use")]
    pub use_: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crv: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
}

/// The public members of a key, as big-endian bytes.
pub(super) enum Members<'a> {
    Rsa { n: &'a [u8], e: &'a [u8] },
    P256 { x: &'a [u8], y: &'a [u8] },
    Ed25519 { x: &'a [u8] },
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Builds the public JWK; `kid` is the RFC 7638 thumbprint over the required members, in
/// lexicographic order and without white space.
pub(super) fn public_jwk(members: Members<'_>) -> PublicJwk {
    let blank = |kty, alg, crv| PublicJwk {
        kty,
        kid: String::new(),
        alg,
        use_: "sig",
        crv,
        n: None,
        e: None,
        x: None,
        y: None,
    };
    let (mut jwk, canonical) = match members {
        Members::Rsa { n, e } => {
            let (n, e) = (b64(n), b64(e));
            let canonical = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
            let jwk = PublicJwk {
                n: Some(n),
                e: Some(e),
                ..blank("RSA", Algorithm::RS256, None)
            };
            (jwk, canonical)
        }
        Members::P256 { x, y } => {
            let (x, y) = (b64(x), b64(y));
            let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
            let jwk = PublicJwk {
                x: Some(x),
                y: Some(y),
                ..blank("EC", Algorithm::ES256, Some("P-256"))
            };
            (jwk, canonical)
        }
        Members::Ed25519 { x } => {
            let x = b64(x);
            let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
            let jwk = PublicJwk {
                x: Some(x),
                ..blank("OKP", Algorithm::EdDSA, Some("Ed25519"))
            };
            (jwk, canonical)
        }
    };
    jwk.kid = b64(digest(&SHA256, canonical.as_bytes()).as_ref());
    jwk
}
