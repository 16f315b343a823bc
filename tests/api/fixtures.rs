//! The world around the service, as the tests see it: the registered clients (and their
//! registry file), the code records the authorize service writes, and the requests clients send.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use sso_token::issue_code::NewCode;
use sso_token::secret_hash::hash_secret_sha256;
use sso_token::userinfo::Profile;
use uuid::Uuid;

/// A client of the registry the tests load.
pub struct TestClient {
    pub id: &'static str,
    pub secret: &'static str,
    pub redirect_uri: &'static str,
}

pub const APP: TestClient = TestClient {
    id: "app",
    secret: "app-secret-Zr8vKq2LwT9xNc4B7hMd",
    redirect_uri: "https://app.example/sso/callback",
};
pub const OTHER: TestClient = TestClient {
    id: "other-app",
    secret: "other-secret-Qp3Wm8Ys1Kd6Rv0Ej5Tn",
    redirect_uri: "https://other.example/callback",
};
/// Id and secret that must be form-urlencoded in HTTP Basic (RFC 6749 §2.3.1). The id is
/// VSCHAR (printable ASCII, RFC 6749 Appendix A.1), as every client id must be; the secret
/// need not be.
pub const ENCODED: TestClient = TestClient {
    id: "partner:app +1/%&=?",
    secret: "s3:cr/et+%&=ü ?#Xy7Lk2",
    redirect_uri: "https://partner.example/cb?tenant=1",
};
pub const DISABLED: TestClient = TestClient {
    id: "retired-app",
    secret: "retired-secret-Hb4Nc9Vx2Lq7Wz1Pf8Gs",
    redirect_uri: "https://retired.example/cb",
};
/// Its tokens carry `aud = "central-security"` instead of the client id.
pub const AUDIENCED: TestClient = TestClient {
    id: "audienced-app",
    secret: "audienced-secret-Tm6Rj3Ck8Xa1Uy5Do0Bw",
    redirect_uri: "https://audienced.example/cb",
};
/// Registered, but not for the authorization_code grant.
pub const NO_CODE_GRANT: TestClient = TestClient {
    id: "machine-app",
    secret: "machine-secret-Ge2Lp7Ns4Ah9Kx3Vt6Mq",
    redirect_uri: "https://machine.example/cb",
};
/// A resource server registered as a client, to introspect the tokens meant for it: no grant
/// types, so the registry holds no redirect URI or scope for it (`redirect_uri` is unused).
pub const RESOURCE_API: TestClient = TestClient {
    id: "resource-api",
    secret: "resource-secret-Wc5Hs8Ld2Jx7Nv4Qa1Zk",
    redirect_uri: "https://api.example/unused",
};
/// Its tokens carry `aud = "resource-api"`, the id of RESOURCE_API.
pub const FOR_RESOURCE: TestClient = TestClient {
    id: "frontend-app",
    secret: "frontend-secret-Pb7Tg2Mv9Rc4Yw6Ke3Ux",
    redirect_uri: "https://frontend.example/cb",
};
/// Used by the log tests alone, so that they can count its lines among other tests' lines.
pub const LOGGED: TestClient = TestClient {
    id: "logged-app",
    secret: "logged-secret-Rf5Nw2Kc8Jv3Xt6Hb9Ld",
    redirect_uri: "https://logged.example/cb",
};
/// Used by the log-hygiene test alone: the lines that name it are that test's.
pub const HYGIENIC: TestClient = TestClient {
    id: "hygienic-app",
    secret: "hygienic-secret-Vn4Qs8Lw2Zp6Jd3Tb7Xe",
    redirect_uri: "https://hygienic.example/cb",
};
/// The default `token.issuer` (the seed's `iss`).
pub const ISSUER: &str = "com.central-x.security";
/// The example of RFC 7636 Appendix B.
pub const RFC7636_VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
pub const RFC7636_CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
/// The `audience` of AUDIENCED in the registry (the seed's example audience).
pub const AUDIENCE_OVERRIDE: &str = "central-security";
/// Registered for APP besides its own redirect URI.
pub const APP_SECOND_REDIRECT: &str = "https://app.example/sso/callback2";
/// Registered for both APP and OTHER.
pub const SHARED_REDIRECT: &str = "https://shared.example/sso/callback";
pub const ALLOWED_SCOPES: [&str; 2] = ["user:basic", "user:contract"];

/// The registry file of the test clients, secrets hashed as `sha256:<hex>`.
pub fn clients_toml() -> String {
    let quote = |s: &str| serde_json::to_string(s).unwrap();
    let entry = |c: &TestClient, more_uris: &[&str], extra: &str| {
        let uris: Vec<&str> = [c.redirect_uri].iter().chain(more_uris).copied().collect();
        format!(
            "[[clients]]\nid = {}\nsecret = {}\nredirect_uris = {}\nscopes = {}\n{extra}\n",
            quote(c.id),
            quote(&hash_secret_sha256(c.secret)),
            serde_json::to_string(&uris).unwrap(),
            serde_json::to_string(&ALLOWED_SCOPES).unwrap(),
        )
    };
    [
        entry(&APP, &[APP_SECOND_REDIRECT, SHARED_REDIRECT], ""),
        entry(&OTHER, &[SHARED_REDIRECT], ""),
        entry(&ENCODED, &[], ""),
        entry(&DISABLED, &[], "enabled = false"),
        entry(
            &AUDIENCED,
            &[],
            &format!("audience = {}", quote(AUDIENCE_OVERRIDE)),
        ),
        entry(
            &NO_CODE_GRANT,
            &[],
            "grant_types = [\"client_credentials\"]",
        ),
        format!(
            "[[clients]]\nid = {}\nsecret = {}\ngrant_types = []\n",
            quote(RESOURCE_API.id),
            quote(&hash_secret_sha256(RESOURCE_API.secret)),
        ),
        entry(&LOGGED, &[], ""),
        entry(&HYGIENIC, &[], ""),
        entry(
            &FOR_RESOURCE,
            &[],
            &format!("audience = {}", quote(RESOURCE_API.id)),
        ),
    ]
    .concat()
}

/// A code record for `client` with a random user and one allowed scope.
pub fn code_record(client: &TestClient) -> NewCode {
    let suffix = &Uuid::new_v4().simple().to_string()[..8];
    NewCode {
        client_id: client.id.into(),
        redirect_uri: client.redirect_uri.into(),
        username: format!("user-{suffix}"),
        account_id: format!("acct{suffix}"),
        scope: vec!["user:basic".into()],
        code_challenge: None,
        code_challenge_method: None,
        issued_at: sso_token::clock::unix_now(),
        profile: Profile::default(),
    }
}

/// The seed document's JSON request body.
pub fn json_request(client: &TestClient, code: &str) -> Value {
    json!({
        "grant_type": "authorization_code",
        "client_id": client.id,
        "client_secret": client.secret,
        "code": code,
        "redirect_uri": client.redirect_uri,
    })
}

/// README: every `invalid_client` answer challenges with this (RFC 9110 §15.5.2), whether the
/// credentials came in Basic or in the body.
pub const BASIC_CHALLENGE: &str = r#"Basic realm="sso-token", charset="UTF-8""#;

/// RFC 6749 §2.3.1: each part form-urlencoded, then `id:secret` in base64.
pub fn basic_auth(id: &str, secret: &str) -> String {
    let encode = |s: &str| serde_urlencoded::to_string([("", s)]).unwrap()[1..].to_owned();
    format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", encode(id), encode(secret)))
    )
}
