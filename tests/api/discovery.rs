//! Discovery: the RFC 8414 metadata points at endpoints that answer, and the JWKS document alone
//! verifies every token we issue, whatever key type signed it.

use std::collections::HashSet;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation, decode, decode_header};
use reqwest::Method;
use serde_json::{Value, json};
use sso_token::tokens::KeyKind;
use uuid::Uuid;

use crate::helpers::{
    APP, Answer, ISSUER, OTHER, basic_auth, json_request, new_key_file, spawn_app, spawn_app_with,
};
use crate::log_capture;

// The paths as README lists them ("Around the token"), not the crate's constants: a path the
// code moved must fail here, not be followed.
const METADATA_PATH: &str = "/.well-known/oauth-authorization-server";
const JWKS_PATH: &str = "/identity/sso/oauth2/jwks";
const JWKS_WELL_KNOWN_PATH: &str = "/.well-known/jwks.json";
const TOKEN_PATH: &str = "/identity/sso/oauth2/access_token";

async fn get(app: &crate::helpers::TestApp, url: &str) -> Answer {
    Answer::of(app.http.get(url).send().await.expect("sent")).await
}

/// With no client (a fresh deployment, the shipped `config/clients.toml`) there is no scope to
/// list, and RFC 8414 §3.2 wants an empty claim left out rather than `[]`.
#[tokio::test]
async fn metadata_leaves_out_scopes_supported_when_no_client_has_one() {
    let empty = crate::helpers::test_dir().join(format!("clients-{}.toml", uuid::Uuid::new_v4()));
    std::fs::write(&empty, "").unwrap();
    let app = spawn_app_with(|s| s.clients.file = empty).await;

    let answer = get(&app, &app.url(METADATA_PATH)).await;

    assert_eq!(answer.status, 200, "{}", answer.text);
    assert!(answer.json["token_endpoint"].is_string(), "{}", answer.text);
    assert_eq!(answer.json.get("scopes_supported"), None, "{}", answer.text);
}

/// README: `scopes_supported` is every scope of an enabled client. A disabled client's scope
/// that no enabled client has is left out; a scope it shares with an enabled one stays.
/// Control: enabled by a reload, the same client's scope is listed, so what left it out was
/// its being disabled.
#[tokio::test]
async fn metadata_lists_the_scopes_of_enabled_clients_only() {
    let file = |legacy_enabled: bool| {
        let path =
            crate::helpers::test_dir().join(format!("clients-{}.toml", uuid::Uuid::new_v4()));
        let secret =
            sso_token::secret_hash::hash_secret_sha256("scopes-secret-Lk3Vb8Qw1Nz6Tp4Hs9Dm");
        let entry = |id: &str, scopes: &str, enabled: bool| {
            format!(
                "[[clients]]\nid = \"{id}\"\nsecret = \"{secret}\"\n\
                 redirect_uris = [\"https://{id}.example/cb\"]\nscopes = {scopes}\n\
                 enabled = {enabled}\n"
            )
        };
        let registry = [
            entry("current-app", r#"["user:basic", "orders:read"]"#, true),
            entry(
                "legacy-app",
                r#"["user:basic", "legacy:x"]"#,
                legacy_enabled,
            ),
        ];
        std::fs::write(&path, registry.concat()).expect("clients file");
        path
    };
    let scopes = |meta: &Answer| -> HashSet<String> {
        let listed = meta.json["scopes_supported"].as_array();
        let listed = listed.unwrap_or_else(|| panic!("no scopes_supported: {}", meta.text));
        listed
            .iter()
            .map(|s| s.as_str().expect("a scope string").to_owned())
            .collect()
    };
    let disabled = file(false);
    let app = spawn_app_with(|s| s.clients.file = disabled).await;

    let answer = get(&app, &app.url(METADATA_PATH)).await;

    assert_eq!(answer.status, 200, "{}", answer.text);
    let expected: HashSet<String> = ["user:basic", "orders:read"].map(String::from).into();
    assert_eq!(scopes(&answer), expected, "{}", answer.text);

    app.reload_with(|s| s.clients.file = file(true))
        .expect("reload");
    let enabled = get(&app, &app.url(METADATA_PATH)).await;
    assert!(
        scopes(&enabled).contains("legacy:x"),
        "an enabled client's scope is not listed: {}",
        enabled.text
    );
}

#[tokio::test]
async fn metadata_fields_point_at_endpoints_that_answer() {
    let app = spawn_app().await;
    // The public base URL is known once the port is: set it as an operator would, and reload.
    app.reload_with(|s| s.discovery.base_url = format!("{}/", app.address))
        .expect("reload");

    let answer = get(&app, &app.url(METADATA_PATH)).await;

    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.header("cache-control"), Some("public, max-age=300"));
    let meta = &answer.json;
    assert_eq!(meta["issuer"], ISSUER);
    // README: each URL is the base URL (its trailing slash not doubled) and the endpoint's path
    // as README lists it; the authorize service's by default (`discovery.authorization_endpoint`).
    for (field, path) in [
        ("authorization_endpoint", "/identity/sso/oauth2/authorize"),
        ("token_endpoint", "/identity/sso/oauth2/access_token"),
        ("introspection_endpoint", "/identity/sso/oauth2/introspect"),
        ("revocation_endpoint", "/identity/sso/oauth2/revoke"),
        ("userinfo_endpoint", "/identity/sso/oauth2/user"),
    ] {
        assert_eq!(meta[field], format!("{}{path}", app.address), "{field}");
    }
    // Either of the two JWKS paths README lists: it does not say which one the metadata names.
    let jwks_uri = meta["jwks_uri"].as_str().expect("jwks_uri");
    assert!(
        [JWKS_PATH, JWKS_WELL_KNOWN_PATH]
            .iter()
            .any(|path| jwks_uri == format!("{}{path}", app.address)),
        "jwks_uri = {jwks_uri}"
    );
    for (field, expected) in [
        ("grant_types_supported", json!(["authorization_code"])),
        ("response_types_supported", json!(["code"])),
        ("code_challenge_methods_supported", json!(["S256", "plain"])),
        ("scopes_supported", json!(["user:basic", "user:contract"])),
    ] {
        assert_eq!(meta[field], expected, "{field}");
    }
    for endpoint in ["token", "introspection", "revocation"] {
        let methods = format!("{endpoint}_endpoint_auth_methods_supported");
        assert_eq!(
            meta[&methods],
            json!([
                "client_secret_basic",
                "client_secret_post",
                "private_key_jwt"
            ]),
            "{methods}"
        );
        let algs = format!("{endpoint}_endpoint_auth_signing_alg_values_supported");
        assert_eq!(
            meta[&algs],
            json!(["RS256", "PS256", "ES256", "EdDSA"]),
            "{algs}"
        );
    }
    let url = |field: &str| {
        let url = meta[field]
            .as_str()
            .unwrap_or_else(|| panic!("{field} missing"))
            .to_owned();
        assert!(url.starts_with(&app.address), "{field} = {url}");
        url
    };

    let code = app.issue_code(&APP).await;
    let issued = app
        .http
        .post(url("token_endpoint"))
        .json(&json_request(&APP, &code));
    let issued = Answer::of(issued.send().await.unwrap()).await;
    assert_eq!(issued.status, 200, "token_endpoint: {}", issued.text);
    let token = issued.json["access_token"].as_str().unwrap();
    let jwks = get(&app, &url("jwks_uri")).await;
    assert_eq!(
        jwks.json["keys"].as_array().map(Vec::len),
        Some(1),
        "jwks_uri"
    );
    let auth = basic_auth(APP.id, APP.secret);
    let introspected = app
        .http
        .post(url("introspection_endpoint"))
        .header("Authorization", &auth)
        .form(&[("token", token)]);
    let introspected = Answer::of(introspected.send().await.unwrap()).await;
    assert_eq!(introspected.json["active"], true, "{}", introspected.text);
    let user = app.http.get(url("userinfo_endpoint")).bearer_auth(token);
    assert_eq!(Answer::of(user.send().await.unwrap()).await.status, 200);
    let revoked = app
        .http
        .post(url("revocation_endpoint"))
        .header("Authorization", &auth)
        .form(&[("token", token)]);
    assert_eq!(Answer::of(revoked.send().await.unwrap()).await.status, 200);
    assert!(
        !app.is_active(&APP, token).await,
        "revocation_endpoint did not revoke"
    );
}

#[tokio::test]
async fn the_authorization_endpoint_and_max_age_come_from_config() {
    let app = spawn_app_with(|s| {
        s.discovery.authorization_endpoint = "https://login.example/oauth2/authorize".into();
        s.discovery.max_age_secs = 60;
        s.discovery.base_url = "https://sso.example".into();
    })
    .await;

    let meta = get(&app, &app.url(METADATA_PATH)).await;
    let jwks = get(&app, &app.url(JWKS_PATH)).await;

    assert_eq!(
        meta.json["authorization_endpoint"],
        "https://login.example/oauth2/authorize"
    );
    assert_eq!(
        meta.json["token_endpoint"],
        "https://sso.example/identity/sso/oauth2/access_token"
    );
    for answer in [&meta, &jwks] {
        assert_eq!(answer.header("cache-control"), Some("public, max-age=60"));
        assert!(
            answer
                .header("content-type")
                .is_some_and(|t| t.starts_with("application/json"))
        );
    }
}

#[tokio::test]
async fn browsers_may_read_the_public_documents_from_any_origin_but_not_the_token_endpoint() {
    let app = spawn_app().await;
    let public = [METADATA_PATH, JWKS_PATH, JWKS_WELL_KNOWN_PATH];

    for path in public {
        let answer = get(&app, &app.url(path)).await;
        assert_eq!(answer.status, 200, "{path}");
        assert_eq!(
            answer.header("access-control-allow-origin"),
            Some("*"),
            "{path}"
        );
    }
    let token = Answer::of(app.exchange(&APP, "OC-no-such-code").await).await;
    assert_eq!(token.status, 400);
    assert_eq!(token.header("access-control-allow-origin"), None);
}

/// A fetch that carries a header of its own (an `Authorization` that an interceptor adds to
/// every request) is preceded by a preflight, whose refusal would block it; the token endpoint
/// still refuses one.
#[tokio::test]
async fn a_browsers_preflight_for_the_public_documents_is_allowed_but_not_for_the_token() {
    let app = spawn_app().await;
    let preflight = |path: &str| {
        app.http
            .request(reqwest::Method::OPTIONS, app.url(path))
            .header("Origin", "https://app.example")
            .header("Access-Control-Request-Method", "GET")
            .header(
                "Access-Control-Request-Headers",
                "authorization,x-requested-with",
            )
            .send()
    };
    for path in [METADATA_PATH, JWKS_PATH, JWKS_WELL_KNOWN_PATH] {
        let answer = Answer::of(preflight(path).await.expect("sent")).await;
        assert_eq!(answer.status, 204, "{path}: {}", answer.text);
        assert_eq!(
            answer.header("access-control-allow-origin"),
            Some("*"),
            "{path}"
        );
        let methods = answer.header("access-control-allow-methods").unwrap_or("");
        assert!(methods.split(", ").any(|m| m == "GET"), "{path}: {methods}");
        assert_eq!(
            answer.header("access-control-allow-headers"),
            Some("authorization,x-requested-with"),
            "{path}"
        );
    }
    let token = Answer::of(preflight(TOKEN_PATH).await.expect("sent")).await;
    assert_eq!(token.status, 405, "{}", token.text);
    assert_eq!(token.header("access-control-allow-origin"), None);
}

#[tokio::test]
async fn both_jwks_paths_publish_the_signer_and_every_verify_key() {
    let (verify_only, verify_kid) = new_key_file(KeyKind::Ed25519);
    let app = spawn_app_with(|s| s.token.verify_keys = vec![verify_only]).await;
    let token = app.token_for(&APP).await;
    let signer_kid = decode_header(&token).unwrap().kid.unwrap();

    let first = get(&app, &app.url(JWKS_PATH)).await;
    let second = get(&app, &app.url(JWKS_WELL_KNOWN_PATH)).await;

    assert_eq!(first.text, second.text);
    let keys = first.json["keys"].as_array().expect("keys");
    let kids: Vec<&str> = keys.iter().map(|k| k["kid"].as_str().unwrap()).collect();
    assert_eq!(kids, [signer_kid.as_str(), verify_kid.as_str()]);
    for key in keys {
        assert_eq!(key["use"], "sig");
        assert!(key["kty"].is_string() && key["alg"].is_string(), "{key}");
        assert!(
            key.get("d").is_none(),
            "a private member is published: {key}"
        );
    }
}

/// A resource server that knows nothing but the JWKS URL verifies RS256, ES256 and EdDSA tokens.
#[tokio::test]
async fn the_jwks_document_alone_verifies_every_issued_token() {
    let (rsa, _) = new_key_file(KeyKind::Rsa3072);
    let (p256, _) = new_key_file(KeyKind::P256);
    let (ed25519, _) = new_key_file(KeyKind::Ed25519);
    let all = [rsa.clone(), p256.clone(), ed25519.clone()];
    let app = spawn_app_with(|s| s.token.signing_key = rsa.clone()).await;
    let mut tokens = Vec::new();
    for signer in &all {
        app.reload_with(|s| {
            s.token.signing_key = signer.clone();
            s.token.verify_keys = all.to_vec();
        })
        .expect("reload");
        tokens.push(app.token_for(&APP).await);
        tokens.push(app.token_for(&OTHER).await);
    }

    let document = app.jwks().await;

    let jwks: JwkSet = serde_json::from_value(document).expect("an RFC 7517 JWK Set");
    let mut kids = HashSet::new();
    for token in &tokens {
        let header = decode_header(token).unwrap();
        let kid = header.kid.clone().expect("kid");
        let jwk = jwks
            .find(&kid)
            .unwrap_or_else(|| panic!("kid {kid} is not published"));
        let key = DecodingKey::from_jwk(jwk).expect("a usable JWK");
        let mut validation = Validation::new(header.alg);
        validation.set_audience(&[APP.id, OTHER.id]);
        validation.set_issuer(&[ISSUER]);
        let claims = decode::<Value>(token, &key, &validation)
            .unwrap_or_else(|e| panic!("{:?} token does not verify: {e}", header.alg))
            .claims;
        assert!(claims["jti"].is_string());
        kids.insert(kid);
    }
    assert_eq!(kids.len(), 3, "three signers, three kids");
}

/// RFC 8414 §3.1: an issuer with a path has its metadata at the well-known path followed by the
/// issuer's path, where openid-client looks for it; any other path there is not found.
#[tokio::test]
async fn an_issuer_with_a_path_has_its_metadata_after_the_well_known_path() {
    let issuer = "https://sso.example/identity";
    let app = spawn_app_with(|s| {
        s.token.issuer = issuer.into();
        s.discovery.base_url = issuer.into();
    })
    .await;

    let found = get(&app, &app.url(&format!("{METADATA_PATH}/identity"))).await;
    let other = get(&app, &app.url(&format!("{METADATA_PATH}/elsewhere"))).await;

    assert_eq!(found.status, 200, "{}", found.text);
    assert_eq!(found.json["issuer"], issuer);
    assert_eq!(found.json, get(&app, &app.url(METADATA_PATH)).await.json);
    assert_eq!(other.status, 404);
    let plain = spawn_app().await;
    let answer = get(&plain, &plain.url(&format!("{METADATA_PATH}/identity"))).await;
    assert_eq!(
        answer.status, 404,
        "the default issuer is no URL: {}",
        answer.text
    );
    let with_a_slash = get(&app, &app.url(&format!("{METADATA_PATH}/"))).await;
    assert_eq!(with_a_slash.status, 404, "its metadata is under its path");
    let encoded = get(&app, &app.url(&format!("{METADATA_PATH}/%69dentity/"))).await;
    assert_eq!(encoded.status, 200, "{}", encoded.text);
    // An issuer whose path holds an escape, asked for as written (oauth4webapi does).
    let escaped = "https://sso.example/a%20b";
    let app_escaped = spawn_app_with(|s| {
        s.token.issuer = escaped.into();
        s.discovery.base_url = escaped.into();
    })
    .await;
    let as_written = app_escaped.url(&format!("{METADATA_PATH}/a%20b"));
    let found_escaped = get(&app_escaped, &as_written).await;
    assert_eq!(found_escaped.status, 200, "{}", found_escaped.text);
    assert_eq!(found_escaped.json["issuer"], escaped);

    // A path that is not the issuer's is no resource, whatever the method: no CORS preflight
    // that lets a browser ask for it, no 405 that says it exists.
    let status = |method: Method, path: String| {
        let request = app.http.request(method, app.url(&path)).send();
        async move { request.await.unwrap().status().as_u16() }
    };
    for path in [
        format!("{METADATA_PATH}/elsewhere"),
        format!("{METADATA_PATH}/"),
    ] {
        assert_eq!(status(Method::OPTIONS, path.clone()).await, 404, "{path}");
        assert_eq!(status(Method::POST, path.clone()).await, 404, "{path}");
    }
    let path = format!("{METADATA_PATH}/identity");
    assert_eq!(status(Method::OPTIONS, path.clone()).await, 204);
    assert_eq!(status(Method::POST, path).await, 405);
}

/// Spring Security's `issuer-uri` does not remove an issuer's trailing slash (RFC 8414 §3.1
/// does) before inserting the well-known path: `https://host/` looks at `…-server/`.
#[tokio::test]
async fn an_issuer_with_a_trailing_slash_also_finds_its_metadata_where_spring_looks() {
    let issuer = "https://sso.example/";
    let app = spawn_app_with(|s| {
        s.token.issuer = issuer.into();
        s.discovery.base_url = "https://sso.example".into();
    })
    .await;

    let spring = get(&app, &app.url(&format!("{METADATA_PATH}/"))).await;

    assert_eq!(spring.status, 200, "{}", spring.text);
    assert_eq!(spring.json["issuer"], issuer);
    assert_eq!(spring.json, get(&app, &app.url(METADATA_PATH)).await.json);
}

/// An issuer that is neither `discovery.base_url` nor a path under it is warned of at start:
/// openid-client, which looks the metadata up under the issuer, would refuse it. One under the
/// base URL is not. A reload warns again only when it changes the issuer or the base URL (the
/// seed's issuer is such a one: warned at every reload, the line would be noise). Hosts no
/// other test uses, so that the lines are this test's.
#[tokio::test]
async fn an_issuer_outside_the_base_url_is_warned_of_at_start_and_when_changed() {
    let log = log_capture::mark();
    let host = |what: &str| format!("https://{what}-{}.example", Uuid::new_v4().simple());
    let (under, outside) = (host("under"), host("outside"));
    let _discoverable = spawn_app_with(|s| {
        s.token.issuer = format!("{under}/identity");
        s.discovery.base_url = under.clone();
    })
    .await;
    let base = host("base");
    let undiscoverable = spawn_app_with(|s| {
        s.token.issuer = format!("{outside}/identity");
        s.discovery.base_url = base.clone();
    })
    .await;

    // Started second: once its warning is in, the first app's would be too.
    let lines = log
        .lines_when(|lines| lines.iter().any(|l| l.contains(&outside)))
        .await;
    let warned = lines.iter().find(|l| l.contains(&outside)).unwrap();
    assert!(warned.starts_with("WARN"), "{warned}");
    assert!(warned.contains("is neither discovery.base_url"), "{warned}");
    assert!(!lines.iter().any(|l| l.contains(&under)), "{lines:#?}");

    let warnings = |issuer: &str| {
        let lines = log.lines();
        let about = |l: &&String| l.contains("is neither discovery.base_url") && l.contains(issuer);
        lines.iter().filter(about).count()
    };
    let same = |s: &mut sso_token::config::Settings| {
        s.token.issuer = format!("{outside}/identity");
        s.discovery.base_url = base.clone();
    };
    undiscoverable.reload_with(same).expect("reload");
    assert_eq!(
        warnings(&outside),
        1,
        "warned again by a reload that changed nothing"
    );
    let moved = format!("{outside}/moved");
    undiscoverable
        .reload_with(|s| {
            same(s);
            s.token.issuer = moved.clone();
        })
        .expect("reload");
    assert_eq!(warnings(&moved), 1, "a changed issuer not warned of");
}
