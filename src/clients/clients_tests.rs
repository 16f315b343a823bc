use std::path::Path;

use super::file::FileError;
use super::*;
use crate::oauth::Sensitive;
use crate::oauth::request::MAX_REDIRECT_URI;
use crate::secret_hash::hash_secret_sha256;

const DEMO: &str = r#"
[[clients]]
id = "app"
secret = "sha256:cd577fe2561ebff23505db0bb006300c7cdecbd46bc0e03c449afafaca2c25bf"
redirect_uris = ["https://app.example/cb"]
scopes = ["user:basic"]
"#;

fn creds(id: &str, secret: &str) -> ClientCredentials {
    ClientCredentials {
        id: id.into(),
        secret: Sensitive::new(secret),
        used_basic: false,
        assertion: None,
    }
}

fn load(text: &str) -> Registry {
    match Registry::from_toml(text, &Argon2Limit::half_the_cpus(), Path::new(".")) {
        Ok(registry) => registry,
        Err(FileError::Parse(e)) => panic!("{e}"),
        Err(FileError::Invalid { client, problem }) => panic!("{client}: {problem}"),
    }
}

/// The problem a registry of `text` is refused for; panics, naming `what`, when it loads.
fn refusal(text: &str, what: impl std::fmt::Debug) -> String {
    match Registry::from_toml(text, &Argon2Limit::half_the_cpus(), Path::new(".")) {
        Err(FileError::Invalid { problem, .. }) => problem,
        _ => panic!("{what:?} was accepted"),
    }
}

#[actix_web::test]
async fn the_right_secret_authenticates() {
    let registry = load(DEMO);
    let verified = registry
        .verify_secret(&creds("app", "demo-secret"))
        .await
        .unwrap();
    assert_eq!(verified.client.id, "app");
    assert!(!verified.with_previous_secret);
}

#[actix_web::test]
async fn wrong_secret_unknown_and_disabled_clients_fail_alike() {
    let disabled = DEMO.replace("scopes", "enabled = false\nscopes");
    let cases = [
        (load(DEMO), creds("app", "demo-secreT")),
        (load(DEMO), creds("nobody", "demo-secret")),
        (load(&disabled), creds("app", "demo-secret")),
    ];
    let mut descriptions = Vec::new();
    for (registry, credentials) in cases {
        let error = registry.verify_secret(&credentials).await.unwrap_err();
        assert_eq!(error.code(), "invalid_client");
        descriptions.push(error.to_string());
    }
    descriptions.dedup();
    assert_eq!(descriptions.len(), 1, "{descriptions:?}");
}

#[test]
fn sha256_hashing_matches_the_stored_form() {
    assert_eq!(
        hash_secret_sha256("demo-secret"),
        "sha256:cd577fe2561ebff23505db0bb006300c7cdecbd46bc0e03c449afafaca2c25bf"
    );
}

#[test]
fn a_clients_file_that_does_not_parse_is_reported_without_its_lines() {
    let path = std::env::temp_dir().join(format!("sso-clients-{}.toml", uuid::Uuid::new_v4()));
    let cases = [
        // Unterminated string: toml's own message prints the whole `secret = ...` line.
        (DEMO.replace("sha256:cd57", "hunter2\n#"), "line 4, column"),
        // A secret of the wrong type: serde's message quotes the value.
        (
            DEMO.replace(
                "\"sha256:cd577fe2561ebff23505db0bb006300c7cdecbd46bc0e03c449afafaca2c25bf\"",
                "8675309",
            ),
            "line 4, column",
        ),
    ];
    for (text, expected) in cases {
        std::fs::write(&path, &text).unwrap();
        let shown = match Registry::load(&path, &Argon2Limit::half_the_cpus()) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("{text} loaded"),
        };
        assert!(shown.contains(expected), "{shown}");
        for value in ["hunter2", "8675309", "sha256:"] {
            assert!(!shown.contains(value), "{shown}");
        }
    }
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn a_client_id_outside_printable_ascii_is_refused() {
    for id in ["app\\n", "äpp", ""] {
        let text = DEMO.replace("id = \"app\"", &format!("id = \"{id}\""));
        let problem = refusal(&text, id);
        assert!(problem.contains("printable ASCII"), "{problem}");
    }
}

#[test]
fn grant_types_oauth_does_not_define_are_named() {
    let text = DEMO.replace(
        "scopes",
        "grant_types = [\"authorisation_code\", \"refresh_token\", \"client_credentials\"]\nscopes",
    );
    let registry = load(&text);
    let unknown: Vec<_> = registry.unknown_grant_types().collect();
    assert_eq!(unknown, [("app", "authorisation_code")]);
    assert_eq!(load(DEMO).unknown_grant_types().count(), 0);
}

#[test]
fn a_redirect_uri_no_request_could_match_is_refused() {
    for uri in [
        " https://app.example/cb",
        "https://app.example/c b",
        "app-cb",
        "https://a/cb#x",
        "http://",
        "https:///cb",
        "https:app.example/cb",
        ":/cb",
        "javascript:alert(1)",
        "JavaScript:/x",
        "data:text/html,x",
        "file:///etc/passwd",
        // A TOML escape: a raw control character is no TOML.
        "https://app.example/cb\\u0001",
    ] {
        let text = DEMO.replace("https://app.example/cb", uri);
        let problem = refusal(&text, uri);
        assert!(problem.contains("redirect URI"), "{problem}");
    }
}

/// A token request's `redirect_uri` may be 2048 bytes (`MAX_REDIRECT_URI`): a client registered
/// with a longer one could never exchange a code.
#[test]
fn a_redirect_uri_longer_than_a_request_may_send_is_refused() {
    let uri = |len: usize| format!("https://app.example/cb?x={}", "a".repeat(len - 25));
    assert_eq!(uri(MAX_REDIRECT_URI).len(), MAX_REDIRECT_URI);
    load(&DEMO.replace("https://app.example/cb", &uri(MAX_REDIRECT_URI)));
    let long = uri(MAX_REDIRECT_URI + 1);
    let problem = refusal(&DEMO.replace("https://app.example/cb", &long), "2049 bytes");
    assert!(problem.contains("longer than 2048 bytes"), "{problem}");
    assert!(problem.len() < 200, "quotes the start only: {problem}");
}

#[test]
fn a_native_apps_redirect_uri_is_accepted() {
    for uri in [
        "com.example.app:/oauth2redirect",
        "http://127.0.0.1:49152/cb",
        "HTTPS://App.example",
    ] {
        load(&DEMO.replace("https://app.example/cb", uri));
    }
}

/// An entry ending in `*` registers every redirect URI that begins with what comes before it
/// (and that without its last `/`), as long as that fixes the host and the URI's path does not
/// climb out of it; any other entry is matched exactly, a `*` inside it too.
#[test]
fn a_prefix_entry_registers_the_uris_under_it_and_must_fix_the_host() {
    let registry = load(&DEMO.replace(
        r#"["https://app.example/cb"]"#,
        r#"["https://app.example/cb", "https://app.example/app/*", "com.example.app:/*", "https://app.example/a*b"]"#,
    ));
    let client = registry.get("app").unwrap();
    for registered in [
        "https://app.example/cb",
        "https://app.example/app/",
        "https://app.example/app",
        "https://app.example/app/orders?id=5",
        "https://app.example/app/a.b/..x?next=../..",
        "https://app.example/app/x?next=%2Fhome&y=%2e%2e",
        "https://app.example/app/caf%C3%A9",
        "com.example.app:/oauth2redirect",
        "https://app.example/a*b",
    ] {
        assert!(client.has_redirect_uri(registered), "{registered}");
    }
    for unregistered in [
        "https://app.example/cb/",
        "https://app.example/other",
        "https://app.example/app/../admin",
        "https://app.example/app/..;/admin",
        "https://app.example/app/./x",
        "https://app.example/app/%2e%2e/admin",
        "https://app.example/app/%2E./admin",
        "https://app.example/app/..%2fadmin",
        "https://app.example/app/..%3B/admin",
        "https://app.example/app/%252e%252e/admin",
        "https://app.example/app/x%0d%0aSet-Cookie:a",
        "https://app.example/app/\\..\\evil",
        "https://app.example/app/#frag",
        "https://app.example/app/ x",
        "https://app.example/app/x\r\n",
        "com.example.app:/../x",
        "com.example.app://evil.example/x",
        "https://app.example/app/%2%65%2%65/admin",
        "https://app.example/app/%%32%65%%32%65/admin",
        "https://app.example/app/%u002e%u002e/admin",
        "https://app.example/app/%c0%ae%c0%ae/admin",
        "https://app.example/app/%E9",
        "https://app.example.evil.com/app/",
        "http://app.example/app/x",
        "https://app.example/a-b",
        "com.example.other:/cb",
    ] {
        assert!(!client.has_redirect_uri(unregistered), "{unregistered}");
    }
    for pattern in [
        "*",
        "https://*",
        "https://app.example*",
        "https:///cb/*",
        "https://app.example?x=*",
        "com.example.app:*",
        "https://app.example/cb#*",
        "https://app.example/c b/*",
        "https://@/cb/*",
        "https://:8080/cb/*",
        "myapp://*",
        "javascript:/*",
        "https://app.example\\\\@evil.example/cb/*",
    ] {
        let text = DEMO.replace("https://app.example/cb", pattern);
        let problem = refusal(&text, pattern);
        assert!(
            problem.contains("redirect URI prefix"),
            "{pattern}: {problem}"
        );
    }
}

#[test]
fn clients_no_token_request_can_succeed_for_are_named() {
    let no_scopes = DEMO.replace("scopes = [\"user:basic\"]", "");
    let no_grants = DEMO.replace("scopes", "grant_types = []\nscopes");
    let others = DEMO.replace(
        "scopes = [\"user:basic\"]",
        "grant_types = [\"client_credentials\"]",
    );
    let disabled = format!("{no_scopes}enabled = false\n");

    let named = |text: &str| {
        load(text)
            .dead_ends()
            .map(|(id, why)| format!("{id}: {why}"))
            .collect::<Vec<_>>()
    };

    assert!(
        named(&no_scopes)[0].contains("invalid_scope"),
        "{:?}",
        named(&no_scopes)
    );
    assert!(
        named(&no_grants)[0].contains("unauthorized_client"),
        "{:?}",
        named(&no_grants)
    );
    for fine in [DEMO, others.as_str(), disabled.as_str()] {
        assert!(named(fine).is_empty(), "{fine}");
    }
}

#[test]
fn a_missing_clients_file_is_named_with_where_it_was_looked_for() {
    let relative = format!("no-such-dir-{}/clients.toml", uuid::Uuid::new_v4());

    let error = Registry::load(Path::new(&relative), &Argon2Limit::configured(1)).unwrap_err();

    let message = error.to_string();
    let absolute = std::env::current_dir().unwrap().join(&relative);
    assert!(message.starts_with("clients.file"), "{message}");
    assert!(
        message.contains(&absolute.display().to_string()),
        "{message}"
    );
}

#[test]
fn only_ids_outside_the_unreserved_characters_are_said_to_be_garbled_by_basic() {
    let text = format!(
        "{DEMO}{}{}",
        DEMO.replace("\"app\"", "\"has+plus\""),
        DEMO.replace("\"app\"", "\"A-Z.a_z~09\"")
    );
    let registry = load(&text);
    let garbled: Vec<&str> = registry.ids_basic_may_garble().collect();
    assert_eq!(garbled, ["has+plus"]);
}

#[test]
fn a_tokens_audience_is_the_clients_own_else_the_default_else_the_client_id() {
    let own = DEMO.replace("scopes", "audience = \"own-api\"\nscopes");
    let own = load(&own);
    let demo = load(DEMO);
    let (own, demo) = (own.get("app").unwrap(), demo.get("app").unwrap());
    assert_eq!(own.audience_or("default-api"), "own-api");
    assert_eq!(own.audience_or(""), "own-api");
    assert_eq!(demo.audience_or("default-api"), "default-api");
    assert_eq!(demo.audience_or(""), "app");
}

/// RFC 6749 §3.3: a scope-token is `%x21 / %x23-5B / %x5D-7E`, and goes as written into
/// tokens, introspection and the metadata. (TOML escapes below: `\\` is `\`, `\"` is `"`.)
#[test]
fn a_scope_outside_rfc_6749s_scope_token_is_refused() {
    for scope in [
        "",
        "user basic",
        "user:basic\\t",
        "r\\\\d",
        "q\\\"",
        "\\u007f",
        "用户",
        "é",
    ] {
        let text = DEMO.replace("\"user:basic\"", &format!("\"user:basic\", \"{scope}\""));
        let problem = refusal(&text, scope);
        assert!(problem.contains("scope-token"), "{scope:?}: {problem}");
    }
    let edges = "!#[]~:/.-_*";
    let registry = load(&DEMO.replace("\"user:basic\"", &format!("\"user:basic\", \"{edges}\"")));
    assert!(
        registry
            .get("app")
            .unwrap()
            .scopes
            .iter()
            .any(|s| s == edges)
    );
}

/// A reload's log line names the clients it added, removed, disabled, enabled or changed.
#[test]
fn a_registry_names_the_clients_changed_since_the_one_it_replaces() {
    let entry = |id: &str, secret: &str, scope: &str, enabled: bool| {
        format!(
            "[[clients]]\nid = \"{id}\"\nsecret = \"plain:{secret}\"\n\
             redirect_uris = [\"https://{id}.example/cb\"]\nscopes = [\"{scope}\"]\n\
             enabled = {enabled}\n"
        )
    };
    let older = load(
        &[
            entry("kept", "s1", "a", true),
            entry("gone", "s1", "a", true),
            entry("off", "s1", "a", true),
            entry("on", "s1", "a", false),
            entry("rekeyed", "s1", "a", true),
            entry("rescoped", "s1", "a", true),
            entry("back", "s1", "a", false),
        ]
        .concat(),
    );
    let newer = load(
        &[
            entry("kept", "s1", "a", true),
            entry("new", "s1", "a", true),
            entry("off", "s1", "a", false),
            entry("on", "s1", "a", true),
            entry("rekeyed", "s2", "a", true),
            entry("rescoped", "s1", "b", true),
            entry("back", "s1", "b", true),
        ]
        .concat(),
    );

    assert_eq!(
        newer.changes_since(&older),
        [
            ("added", vec!["new"]),
            ("removed", vec!["gone"]),
            ("disabled", vec!["off"]),
            ("enabled", vec!["back", "on"]),
            // Enabled again with wider scopes: both are said.
            ("changed", vec!["back", "rekeyed", "rescoped"]),
        ]
    );
    assert!(newer.changes_since(&newer).is_empty(), "nothing changed");
}

/// Which clients keep their secret in plain text: said when the registry is applied, not as
/// the file is read (a refused reload applies none of it).
#[test]
fn the_clients_with_a_plaintext_secret_are_named() {
    let text = format!(
        "{DEMO}\n[[clients]]\nid = \"plain-app\"\nsecret = \"plain:s3cret\"\nredirect_uris = [\"https://p.example/cb\"]\n"
    );
    let registry = load(&text);
    assert_eq!(
        registry.plaintext_secrets().collect::<Vec<_>>(),
        ["plain-app"]
    );
}

/// A prefix whose `*` continues a path segment takes more than it seems to: named, with the
/// entries meant more often; one after a `/` or in the query is not.
#[test]
fn a_prefix_that_ends_inside_a_path_segment_is_named() {
    let text = DEMO.replace(
        r#"["https://app.example/cb"]"#,
        r#"["https://app.example/cb*", "https://app.example/in/*", "https://app.example/q?*", "https://app.example/q?next=*", "https://app.example/exact"]"#,
    );
    let registry = load(&text);

    assert_eq!(
        registry.prefixes_mid_segment().collect::<Vec<_>>(),
        [("app", "https://app.example/cb*")]
    );
    let doubts = registry.doubts();
    assert!(
        doubts
            .iter()
            .any(|d| d.contains("`https://app.example/cb*`")
                && d.contains("`https://app.example/cb/*`")
                && d.contains("`https://app.example/cb?*`")),
        "{doubts:?}"
    );
    assert!(load(DEMO).doubts().is_empty(), "{:?}", load(DEMO).doubts());
}

/// A resource server registers to introspect the tokens meant for it (`aud`): no grant types,
/// so no redirect URIs either, and no warning. The code grant still needs one.
#[test]
fn only_a_client_that_exchanges_codes_needs_a_redirect_uri() {
    let resource_server =
        "[[clients]]\nid = \"api\"\nsecret = \"plain:s3cret\"\ngrant_types = []\n";
    let registry = load(resource_server);
    assert!(registry.get("api").is_some());
    assert!(
        registry.dead_ends().next().is_none(),
        "{:?}",
        registry.dead_ends().collect::<Vec<_>>()
    );

    for code_grant in [
        "[[clients]]\nid = \"app\"\nsecret = \"plain:s3cret\"\n",
        "[[clients]]\nid = \"app\"\nsecret = \"plain:s3cret\"\nredirect_uris = []\n",
    ] {
        let problem = refusal(code_grant, code_grant);
        assert!(problem.contains("redirect_uris"), "{problem}");
    }
    // With redirect URIs but no grant type, it is more likely a mistake than a resource server.
    let no_grants = DEMO.replace("scopes", "grant_types = []\nscopes");
    assert_eq!(load(&no_grants).dead_ends().count(), 1);
}

/// DEMO's secret as it stores it, a TOML string.
const DEMO_STORED: &str =
    r#""sha256:cd577fe2561ebff23505db0bb006300c7cdecbd46bc0e03c449afafaca2c25bf""#;

/// DEMO's client with `previous` as its `previous_secrets` (TOML array elements).
fn with_previous(previous: &str) -> String {
    DEMO.replace(
        "scopes",
        &format!("previous_secrets = [{previous}]\nscopes"),
    )
}

/// DEMO's client with `demo-secret` moved into `previous_secrets` and a new secret.
fn rotated() -> String {
    with_previous(DEMO_STORED).replacen(DEMO_STORED, r#""plain:new-demo-secret""#, 1)
}

#[actix_web::test]
async fn the_secret_and_each_previous_secret_authenticate_a_wrong_one_fails_as_before() {
    let registry = load(&rotated());
    for (secret, previous) in [("new-demo-secret", false), ("demo-secret", true)] {
        let verified = registry.verify_secret(&creds("app", secret)).await.unwrap();
        assert_eq!(verified.client.id, "app", "{secret}");
        assert_eq!(verified.with_previous_secret, previous, "{secret}");
    }
    let wrong = registry.verify_secret(&creds("app", "demo-secreT")).await;
    let before = load(DEMO).verify_secret(&creds("app", "demo-secreT")).await;
    assert_eq!(
        wrong.unwrap_err().to_string(),
        before.unwrap_err().to_string()
    );

    let disabled = rotated().replace("scopes", "enabled = false\nscopes");
    let disabled = load(&disabled)
        .verify_secret(&creds("app", "demo-secret"))
        .await;
    assert_eq!(disabled.unwrap_err().code(), "invalid_client");
}

#[test]
fn previous_secrets_no_rotation_needs_are_refused_naming_the_entry() {
    let other = |n: usize| format!("\"plain:old-secret-{n}\"");
    let five = (1..=5).map(other).collect::<Vec<_>>().join(", ");
    let cases = [
        (
            with_previous(DEMO_STORED),
            "entry 1 is the client's secret itself",
        ),
        // The same secret in another stored form is the same secret.
        (
            with_previous("\"plain:demo-secret\""),
            "entry 1 is the client's secret itself",
        ),
        (
            with_previous(&format!("{}, {}, {}", other(1), other(2), other(1))),
            "entry 3 repeats entry 1",
        ),
        (with_previous("\"\""), "entry 1 is empty"),
        (
            with_previous(&format!("{}, \"plain:\"", other(1))),
            "entry 2: plain: the secret is empty",
        ),
        (
            with_previous("\"sha256:00\""),
            "entry 1: sha256: secret must be 64 hex digits",
        ),
        (with_previous(&five), "has 5 entries, more than 4"),
    ];
    for (text, expected) in cases {
        let problem = refusal(&text, expected);
        assert!(problem.contains("previous_secrets"), "{problem}");
        assert!(problem.contains(expected), "{problem}");
        assert!(
            !problem.contains("old-secret"),
            "quotes a secret: {problem}"
        );
    }
    let four = (1..=4).map(other).collect::<Vec<_>>().join(", ");
    assert_eq!(
        load(&with_previous(&four))
            .get("app")
            .unwrap()
            .previous_secrets
            .len(),
        4
    );
    load(&with_previous(""));
}

#[test]
fn a_plaintext_previous_secret_is_named_with_the_plaintext_secrets() {
    let registry = load(&with_previous("\"plain:old-secret\""));
    assert_eq!(registry.plaintext_secrets().collect::<Vec<_>>(), ["app"]);
    assert!(
        (registry.doubts().iter()).any(|d| d.contains("`app` has a plaintext secret")),
        "{:?}",
        registry.doubts()
    );
}

/// A reload names a client whose previous secrets it changed, added or removed.
#[test]
fn a_client_whose_previous_secrets_changed_is_named_by_a_reload() {
    let (during, again) = (load(&rotated()), load(&rotated()));
    let done = load(&rotated().replace("previous_secrets", "# previous_secrets"));
    let changed = vec![("changed", vec!["app"])];
    assert_eq!(during.changes_since(&done), changed);
    assert_eq!(done.changes_since(&during), changed);
    assert!(again.changes_since(&during).is_empty());
}

/// An Argon2id hash of `secret` with small parameters and a salt of its own.
fn cheap_argon2(secret: &str) -> String {
    use argon2::{Algorithm, Argon2, Params, PasswordHasher, Version};
    let params = Params::new(1024, 1, 1, None).unwrap();
    let salt = uuid::Uuid::new_v4().simple().to_string();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_with_salt(secret.as_bytes(), &salt.as_bytes()[..16])
        .unwrap()
        .to_string()
}

fn remembers(hash: &SecretHash) -> bool {
    match hash {
        SecretHash::Argon2 { verified, .. } => verified.read().unwrap().is_some(),
        SecretHash::Sha256(_) => unreachable!("an Argon2 hash"),
    }
}

/// A rotation moves an Argon2 secret into `previous_secrets`: what was verified of it is kept,
/// so the instances still on it pay no Argon2 again; a changed hash remembers nothing.
#[actix_web::test]
async fn a_reload_keeps_what_was_verified_of_each_unchanged_argon2_hash() {
    let (old, new) = (cheap_argon2("demo-secret"), cheap_argon2("new-demo-secret"));
    let stored = |secret: &str, previous: &[&str]| {
        let previous: Vec<String> = previous.iter().map(|p| format!("{p:?}")).collect();
        DEMO.replace(
            DEMO_STORED,
            &format!("{secret:?}\nprevious_secrets = [{}]", previous.join(", ")),
        )
    };
    let before = load(&stored(&old, &[]));
    before
        .verify_secret(&creds("app", "demo-secret"))
        .await
        .unwrap();

    let rotated = load(&stored(&new, &[&old]));
    rotated.inherit_verified(&before);
    let client = rotated.get("app").unwrap();
    assert!(
        !remembers(client.secret.as_ref().unwrap()),
        "the new secret was never verified"
    );
    assert!(
        remembers(&client.previous_secrets[0]),
        "the old one was, and is unchanged"
    );

    rotated
        .verify_secret(&creds("app", "new-demo-secret"))
        .await
        .unwrap();
    let rehashed = load(&stored(&new, &[&cheap_argon2("demo-secret")]));
    rehashed.inherit_verified(&rotated);
    let client = rehashed.get("app").unwrap();
    assert!(remembers(client.secret.as_ref().unwrap()));
    assert!(
        !remembers(&client.previous_secrets[0]),
        "another hash of the old secret"
    );
}

/// Root reads any file, so the hint is checked on the error itself: an unreadable clients file
/// says what to check, as an unreadable key file does.
#[test]
fn an_unreadable_clients_file_says_who_must_be_able_to_read_it() {
    let read = |kind| RegistryError::Read {
        path: "/etc/sso/clients.toml".into(),
        source: std::io::Error::from(kind),
    };
    let denied = read(std::io::ErrorKind::PermissionDenied).to_string();
    assert!(denied.contains("must be able to read it"), "{denied}");
    let missing = read(std::io::ErrorKind::NotFound).to_string();
    assert!(!missing.contains("must be able to read it"), "{missing}");
}
