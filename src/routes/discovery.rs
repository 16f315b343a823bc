//! `GET /identity/sso/oauth2/jwks` (also `/.well-known/jwks.json`) and
//! `GET /.well-known/oauth-authorization-server` (and, for an issuer with a path, with that path
//! after it; for one without, with a slash after it, as Spring asks): documents rendered at
//! load time, cacheable for `discovery.max_age_secs`.

use actix_web::guard::GuardContext;
use actix_web::http::header::{self, CacheControl, CacheDirective};
use actix_web::{HttpResponse, web};
use percent_encoding::percent_decode_str;

use super::paths::METADATA_PATH;
use crate::live::{Live, Snapshot};

pub async fn jwks(live: web::Data<Live>) -> HttpResponse {
    document(&live.snapshot(), |snapshot| snapshot.keys.jwks())
}

pub async fn metadata(live: web::Data<Live>) -> HttpResponse {
    document(&live.snapshot(), |snapshot| &snapshot.metadata)
}

/// Guard of `/.well-known/oauth-authorization-server/<path>`: where RFC 8414 §3.1 looks for the
/// metadata of an issuer with a path (`https://host/identity` → `…/oauth-authorization-server/
/// identity`). Any other path there is no resource: 404 whatever the method, not a CORS
/// preflight's 204 or a 405 that says it exists. A guard, since a reload may change the issuer.
pub fn names_the_issuer_path(request: &GuardContext<'_>) -> bool {
    let Some(live) = request.app_data::<web::Data<Live>>() else {
        return false;
    };
    let asked = percent_decode_str(request.head().uri.path()).decode_utf8_lossy();
    let asked = asked
        .strip_prefix(METADATA_PATH)
        .and_then(|p| p.strip_prefix('/'));
    let snapshot = live.snapshot();
    match (issuer_path(&snapshot.token.issuer), asked) {
        // Both decoded: a client inserts the issuer's path as written (`a%20b`), and the
        // server decodes what it asks for.
        (Some(issuer), Some(asked)) => {
            percent_decode_str(issuer).decode_utf8_lossy() == asked.trim_end_matches('/')
        }
        _ => false,
    }
}

/// Guard of `/.well-known/oauth-authorization-server/`: where Spring Security's `issuer-uri`
/// looks for the metadata of an issuer written with a trailing slash (`https://host/`): RFC 8414
/// §3.1 removes that slash before inserting the well-known path, Spring does not. Only an issuer
/// without a path has its metadata there; one with a path has it under that path.
pub fn issuer_has_no_path(request: &GuardContext<'_>) -> bool {
    request
        .app_data::<web::Data<Live>>()
        .is_some_and(|live| issuer_path(&live.snapshot().token.issuer).is_none())
}

/// The path of an `http(s)://` issuer without its leading and trailing slashes, when it has one.
fn issuer_path(issuer: &str) -> Option<&str> {
    let rest = (issuer.strip_prefix("https://")).or_else(|| issuer.strip_prefix("http://"))?;
    let path = rest.split_once('/')?.1.trim_end_matches('/');
    (!path.is_empty()).then_some(path)
}

/// Public and the same for everyone, so readable from any origin: a browser app (jose's
/// `createRemoteJWKSet`, oidc-client-ts) fetches them cross-origin. The token endpoint stays
/// without CORS: its clients are confidential, servers, not browsers.
fn document(snapshot: &Snapshot, body: impl Fn(&Snapshot) -> &str) -> HttpResponse {
    let max_age = u32::try_from(snapshot.discovery.max_age_secs).unwrap_or(u32::MAX);
    HttpResponse::Ok()
        .insert_header(CacheControl(vec![
            CacheDirective::Public,
            CacheDirective::MaxAge(max_age),
        ]))
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .content_type(header::ContentType::json())
        .body(body(snapshot).to_owned())
}

#[cfg(test)]
mod tests {
    use super::issuer_path;

    #[test]
    fn only_a_url_issuer_with_a_path_has_one() {
        assert_eq!(
            issuer_path("https://sso.example/identity/"),
            Some("identity")
        );
        assert_eq!(issuer_path("http://sso.example:8080/a/b"), Some("a/b"));
        for none in [
            "https://sso.example",
            "https://sso.example/",
            "com.central-x.security",
        ] {
            assert_eq!(issuer_path(none), None, "{none}");
        }
    }
}
