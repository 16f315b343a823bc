use std::sync::LazyLock;

use serde_json::{Value, json};

use super::*;
use crate::clients::Registry;
use crate::oauth::{ClientCredentials, Sensitive};

const REDIRECT_URI: &str = "https://app.example/cb";
const OTHER_REDIRECT_URI: &str = "https://app.example/other";
/// RFC 7636 Appendix B.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const S256_CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
/// Well-formed, but not the verifier of [`S256_CHALLENGE`].
const OTHER_VERIFIER: &str = "eBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

const CLIENTS: &str = r#"
[[clients]]
id = "app"
secret = "sha256:cd577fe2561ebff23505db0bb006300c7cdecbd46bc0e03c449afafaca2c25bf"
redirect_uris = ["https://app.example/cb", "https://app.example/other"]
scopes = ["user:basic", "user:email"]

[[clients]]
id = "other-app"
secret = "sha256:cd577fe2561ebff23505db0bb006300c7cdecbd46bc0e03c449afafaca2c25bf"
redirect_uris = ["https://other.example/cb"]
scopes = ["user:basic", "admin"]
"#;

/// The registry is private to its module's constructors; load it the way the server does.
static REGISTRY: LazyLock<Registry> = LazyLock::new(|| {
    let path = std::env::temp_dir().join(format!(
        "sso-token-grant-tests-{}-{}.toml",
        std::process::id(),
        uuid::Uuid::new_v4()
    ));
    std::fs::write(&path, CLIENTS).unwrap();
    let registry = Registry::load(&path, &crate::secret_hash::Argon2Limit::half_the_cpus());
    let _ = std::fs::remove_file(&path);
    registry.unwrap()
});

fn client(id: &str) -> &'static Client {
    REGISTRY.get(id).unwrap()
}

fn request(redirect_uri: &str, verifier: Option<&str>) -> TokenRequest {
    TokenRequest {
        client: ClientCredentials {
            id: "app".into(),
            secret: Sensitive::new("demo-secret"),
            used_basic: false,
            assertion: None,
        },
        code: Sensitive::new("the-code"),
        redirect_uri: redirect_uri.into(),
        code_verifier: verifier.map(Sensitive::new),
    }
}

/// What the authorize service writes for `app`, without PKCE.
fn record() -> Value {
    json!({
        "client_id": "app",
        "redirect_uri": REDIRECT_URI,
        "username": "alice",
        "account_id": "42",
        "scope": ["user:basic", "user:email"],
        "issued_at": ISSUED_AT,
    })
}

fn record_with(changes: Value) -> String {
    let mut record = record();
    for (key, value) in changes.as_object().unwrap() {
        record[key] = value.clone();
    }
    record.to_string()
}

/// The record's `issued_at`.
const ISSUED_AT: u64 = 1_700_000_000;

/// Rules with this separator, 10 minutes' code age and 30 s leeway, a minute after `ISSUED_AT`.
fn rules(scope_separator: &str) -> CodeRules<'_> {
    CodeRules {
        scope_separator,
        base_scopes: &[],
        max_age_secs: 600,
        leeway_secs: 30,
        now: ISSUED_AT + 60,
    }
}

fn check_app(raw: &str, request: &TokenRequest) -> Result<Grant, OAuthError> {
    check(raw.as_bytes(), client("app"), request, rules(" "))
}

/// `app`'s record checked for its registered redirect URI with this scope separator.
fn check_scopes(raw: &str, separator: &str) -> Result<Grant, OAuthError> {
    check(
        raw.as_bytes(),
        client("app"),
        &request(REDIRECT_URI, None),
        rules(separator),
    )
}

/// The description of an `invalid_grant`, or a panic naming what came instead.
fn invalid_grant(result: Result<Grant, OAuthError>) -> String {
    match result {
        Err(OAuthError::InvalidGrant(description)) => description.into_owned(),
        other => panic!("expected invalid_grant, got {other:?}"),
    }
}

#[test]
fn a_matching_record_grants_its_user_and_scopes() {
    let grant = check_app(&record().to_string(), &request(REDIRECT_URI, None)).unwrap();
    assert_eq!(grant.username, "alice");
    assert_eq!(grant.account_id, "42");
    assert_eq!(grant.scopes, ["user:basic", "user:email"]);
}

#[test]
fn any_registered_redirect_uri_of_the_client_may_be_used() {
    let raw = record_with(json!({ "redirect_uri": OTHER_REDIRECT_URI }));
    assert!(check_app(&raw, &request(OTHER_REDIRECT_URI, None)).is_ok());
}

#[test]
fn optional_and_unknown_record_fields_may_be_left_out_or_added() {
    let mut minimal = record();
    minimal.as_object_mut().unwrap().remove("issued_at");
    minimal["state"] = json!("from-a-newer-authorize-service");
    minimal["code_challenge"] = Value::Null;
    assert!(check_app(&minimal.to_string(), &request(REDIRECT_URI, None)).is_ok());
}

#[test]
fn the_optional_profile_may_be_given_in_full_in_part_or_as_null() {
    for profile in [
        json!({ "name": "Alice", "avatar": "https://cdn.example/a.png",
                "email": "alice@example.com", "mobile": "+86 138 0000 0000" }),
        json!({ "name": "Alice" }),
        json!({ "email": null, "mobile": null }),
    ] {
        let raw = record_with(profile.clone());
        assert!(
            check_app(&raw, &request(REDIRECT_URI, None)).is_ok(),
            "{profile}"
        );
    }
}

#[test]
fn scopes_are_read_from_an_array_or_a_string_joined_by_the_configured_separator() {
    // (separator, stored scope, granted scopes)
    let cases = [
        (
            " ",
            json!(["user:basic", "user:email"]),
            vec!["user:basic", "user:email"],
        ),
        (
            ",",
            json!(["user:basic", "user:email"]),
            vec!["user:basic", "user:email"],
        ),
        (
            " ",
            json!("user:basic user:email"),
            vec!["user:basic", "user:email"],
        ),
        (
            " ",
            json!("  user:basic   user:email "),
            vec!["user:basic", "user:email"],
        ),
        (
            ",",
            json!("user:basic,user:email"),
            vec!["user:basic", "user:email"],
        ),
        (
            ",",
            json!("user:basic, user:email,"),
            vec!["user:basic", "user:email"],
        ),
        (" ", json!("user:email"), vec!["user:email"]),
        (
            " ",
            json!([" user:basic", "", "user:email  ", " "]),
            vec!["user:basic", "user:email"],
        ),
        // A repeat is dropped, the first of each kept in its place.
        (
            " ",
            json!("user:email user:basic user:email"),
            vec!["user:email", "user:basic"],
        ),
        (
            " ",
            json!(["user:basic", " user:basic", "user:email", "user:basic"]),
            vec!["user:basic", "user:email"],
        ),
    ];
    for (separator, scope, expected) in cases {
        let raw = record_with(json!({ "scope": scope }));
        let grant =
            check_scopes(&raw, separator).unwrap_or_else(|e| panic!("{separator:?} {scope}: {e}"));
        assert_eq!(grant.scopes, expected, "{separator:?} {scope}");
    }
}

#[test]
fn repeats_are_dropped_from_few_scopes_and_from_many_alike() {
    for count in [3, 16, 17, 100] {
        // user:basic, user:email, user:basic, user:email, ...
        let scope: Vec<&str> = (0..count)
            .map(|i| ["user:basic", "user:email"][i % 2])
            .collect();
        let raw = record_with(json!({ "scope": scope }));
        let grant = check_scopes(&raw, ",").unwrap();
        assert_eq!(grant.scopes, ["user:basic", "user:email"], "{count}");
    }
}

#[test]
fn a_scope_the_client_may_not_have_is_refused_and_named() {
    // (separator, stored scope, the scope to be named)
    let cases = [
        (" ", json!(["user:basic", "admin"]), "admin"),
        (" ", json!("user:basic admin"), "admin"),
        (",", json!("user:email,admin"), "admin"),
        (",", json!("user:basic user:email"), "user:basic user:email"),
        (
            " ",
            json!(["user:basic user:email"]),
            "user:basic user:email",
        ),
        (" ", json!(["USER:BASIC"]), "USER:BASIC"),
    ];
    for (separator, scope, denied) in cases {
        let raw = record_with(json!({ "scope": scope }));
        match check_scopes(&raw, separator) {
            Err(OAuthError::InvalidScope(description)) => {
                assert!(
                    description.contains(&format!("`{denied}`")),
                    "{scope}: {description}"
                );
            }
            other => panic!("{separator:?} {scope}: expected invalid_scope, got {other:?}"),
        }
    }
}

#[test]
fn a_record_with_no_scope_is_refused() {
    for (separator, scope) in [
        (" ", json!("")),
        (",", json!([])),
        (",", json!(",, ")),
        (" ", json!([" ", ""])),
    ] {
        let raw = record_with(json!({ "scope": scope }));
        match check_scopes(&raw, separator) {
            Err(OAuthError::InvalidScope(description)) => {
                assert!(description.contains("no scope"), "{scope}: {description}");
            }
            other => panic!("{separator:?} {scope}: expected invalid_scope, got {other:?}"),
        }
    }
}

#[test]
fn a_refused_scope_is_quoted_escaped_and_cut_short() {
    let long = "a".repeat(5000);
    // (stored scope, what the description quotes)
    let cases = [
        ("x\nERROR forged", "x\\nERROR forged".to_owned()),
        ("x\u{1b}[31m\"", "x\\u{1b}[31m\\\"".to_owned()),
        (long.as_str(), format!("{}…", "a".repeat(64))),
    ];
    for (scope, shown) in cases {
        let raw = record_with(json!({ "scope": [scope] }));
        match check_scopes(&raw, " ") {
            Err(OAuthError::InvalidScope(description)) => {
                assert_eq!(
                    description.to_string(),
                    format!("scope `{shown}` is not allowed for this client")
                );
                assert!(!description.contains(char::is_control), "{description}");
            }
            other => panic!("{scope:?}: expected invalid_scope, got {other:?}"),
        }
    }
}

#[test]
fn a_record_for_another_client_or_redirect_uri_is_refused() {
    // (record changes, client, request redirect_uri, what the description must say)
    let cases = [
        (
            json!({}),
            "other-app",
            REDIRECT_URI,
            "not issued to this client",
        ),
        (
            json!({ "client_id": "other-app" }),
            "app",
            REDIRECT_URI,
            "not issued to this client",
        ),
        (
            json!({ "client_id": "APP" }),
            "app",
            REDIRECT_URI,
            "not issued to this client",
        ),
        (json!({}), "app", OTHER_REDIRECT_URI, "redirect_uri differs"),
        (
            json!({}),
            "app",
            "https://app.example/cb/",
            "redirect_uri differs",
        ),
        (
            json!({}),
            "app",
            "https://APP.example/cb",
            "redirect_uri differs",
        ),
        (
            json!({ "redirect_uri": "https://evil.example/cb" }),
            "app",
            "https://evil.example/cb",
            "not registered",
        ),
        (
            json!({ "client_id": "other-app", "redirect_uri": REDIRECT_URI }),
            "other-app",
            REDIRECT_URI,
            "not registered",
        ),
        // Registered means equal, not sharing a start with a registered one, either way.
        (
            json!({ "redirect_uri": "https://app.example/cb/../x" }),
            "app",
            "https://app.example/cb/../x",
            "not registered",
        ),
        (
            json!({ "redirect_uri": "https://app.example/cb.evil.example" }),
            "app",
            "https://app.example/cb.evil.example",
            "not registered",
        ),
        (
            json!({ "redirect_uri": "https://app.example/c" }),
            "app",
            "https://app.example/c",
            "not registered",
        ),
    ];
    for (changes, client_id, redirect_uri, expected) in cases {
        let raw = record_with(changes.clone());
        let description = invalid_grant(check(
            raw.as_bytes(),
            client(client_id),
            &request(redirect_uri, None),
            rules(" "),
        ));
        assert!(
            description.contains(expected),
            "{changes} {client_id} {redirect_uri}: {description}"
        );
    }
}

#[test]
fn pkce_grants_only_the_matching_verifier() {
    let s256 = json!({ "code_challenge": S256_CHALLENGE, "code_challenge_method": "S256" });
    let plain = json!({ "code_challenge": VERIFIER, "code_challenge_method": "plain" });
    let unnamed = json!({ "code_challenge": VERIFIER });
    // (record changes, verifier, granted)
    let cases = [
        (s256.clone(), Some(VERIFIER), true),
        (s256.clone(), Some(OTHER_VERIFIER), false),
        (s256.clone(), Some(S256_CHALLENGE), false),
        (s256, None, false),
        (plain.clone(), Some(VERIFIER), true),
        (plain.clone(), Some(OTHER_VERIFIER), false),
        (plain, None, false),
        // RFC 7636 §4.3: no method means plain.
        (unnamed.clone(), Some(VERIFIER), true),
        (unnamed, Some(OTHER_VERIFIER), false),
        (
            json!({ "code_challenge": S256_CHALLENGE }),
            Some(VERIFIER),
            false,
        ),
        // No downgrade: a verifier for a code issued without a challenge.
        (json!({}), Some(VERIFIER), false),
        (json!({}), None, true),
    ];
    for (changes, verifier, granted) in cases {
        let raw = record_with(changes.clone());
        let result = check_app(&raw, &request(REDIRECT_URI, verifier));
        if granted {
            assert!(result.is_ok(), "{changes} {verifier:?}: {result:?}");
        } else {
            let description = invalid_grant(result);
            assert!(
                description.contains("code_verifier"),
                "{changes} {verifier:?}: {description}"
            );
        }
    }
}

#[test]
fn a_malformed_record_is_refused_as_an_invalid_grant() {
    let mut missing_username = record();
    missing_username.as_object_mut().unwrap().remove("username");
    let mut missing_scope = record();
    missing_scope.as_object_mut().unwrap().remove("scope");
    let malformed = [
        String::new(),
        "not json".into(),
        "null".into(),
        "[]".into(),
        "{}".into(),
        missing_username.to_string(),
        missing_scope.to_string(),
        record_with(json!({ "scope": 7 })),
        record_with(json!({ "scope": ["user:basic", 7] })),
        record_with(json!({ "account_id": 42 })),
        record_with(json!({ "code_challenge": VERIFIER, "code_challenge_method": "s256" })),
        record_with(json!({ "issued_at": "yesterday" })),
        record_with(json!({ "issued_at": -1 })),
        record_with(json!({ "issued_at": -0.5 })),
        record_with(json!({ "name": 7 })),
        record_with(json!({ "email": ["a@example.com"] })),
        record().to_string()[1..].to_owned(),
        // What serde would read by position into the same struct: only an object will do.
        json!(["app", REDIRECT_URI, "zhangs", "acct", ["user:basic"]]).to_string(),
        // PKCE switched off by a writer's mistake.
        record_with(json!({ "code_challenge_method": "S256" })),
        record_with(json!({ "code_challenge": "", "code_challenge_method": "plain" })),
        // A challenge no verifier meets: padded, standard base64, a last character that sets
        // bits base64url leaves unused (no digest's encoding), too short for plain.
        record_with(json!({
            "code_challenge": format!("{}=", pkce::s256_challenge(VERIFIER)),
            "code_challenge_method": "S256",
        })),
        record_with(json!({
            "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw+cM",
            "code_challenge_method": "S256",
        })),
        record_with(json!({
            "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-c-",
            "code_challenge_method": "S256",
        })),
        record_with(json!({ "code_challenge": "short" })),
    ];
    for raw in malformed {
        let description = invalid_grant(check_app(&raw, &request(REDIRECT_URI, None)));
        assert!(description.contains("malformed"), "{raw}: {description}");
    }
}

#[test]
fn an_issued_at_with_a_fraction_or_an_exponent_counts_its_whole_seconds() {
    let expired = |issued_at: Value| {
        let raw = record_with(json!({ "issued_at": issued_at }));
        let at_limit = CodeRules {
            now: ISSUED_AT + 630,
            ..rules(" ")
        };
        check(
            raw.as_bytes(),
            client("app"),
            &request(REDIRECT_URI, None),
            at_limit,
        )
        .is_err()
    };
    // 630 s after ISSUED_AT is the last second of 600 s plus 30 s of leeway.
    assert!(!expired(json!(ISSUED_AT as f64 + 0.75)));
    assert!(!expired(json!(1.7e9)));
    assert!(expired(json!(ISSUED_AT as f64 - 0.25)));
    assert!(expired(json!(ISSUED_AT - 1)));
}

#[test]
fn a_record_with_an_empty_username_or_account_id_is_refused() {
    for changes in [
        json!({ "username": "" }),
        json!({ "account_id": "" }),
        json!({ "username": "", "account_id": "" }),
        json!({ "username": "   " }),
        json!({ "account_id": "\t\n " }),
    ] {
        let raw = record_with(changes.clone());
        let description = invalid_grant(check_app(&raw, &request(REDIRECT_URI, None)));
        assert!(
            description.contains("incomplete"),
            "{changes}: {description}"
        );
    }
}

#[test]
fn a_code_older_than_the_maximum_age_is_expired_even_while_its_record_lasts() {
    let raw = record();
    let raw = raw.to_string();
    let at = |now: u64, max_age_secs: u64| CodeRules {
        now,
        max_age_secs,
        ..rules(" ")
    };
    let exchange = |rules| {
        check(
            raw.as_bytes(),
            client("app"),
            &request(REDIRECT_URI, None),
            rules,
        )
    };
    // Within 600 s plus 30 s of leeway, or issued "later" by a clock ahead of ours: granted.
    for now in [ISSUED_AT, ISSUED_AT + 630, ISSUED_AT - 3600] {
        assert!(
            exchange(at(now, 600)).is_ok(),
            "now = issued_at {:+}",
            now as i64 - ISSUED_AT as i64
        );
    }
    // More than a day "later" is no clock skew (milliseconds, say): never granted, since the
    // age check could never end it.
    assert!(exchange(at(ISSUED_AT - 86_401, 600)).is_err());
    // A day ahead exactly is still skew.
    assert!(exchange(at(ISSUED_AT - 86_400, 600)).is_ok());
    assert!(exchange(at(ISSUED_AT / 1000, 0)).is_err());
    let description = invalid_grant(exchange(at(ISSUED_AT + 631, 600)));
    assert!(description.contains("expired"), "{description}");
    // 0 leaves the record's TTL as the only limit.
    assert!(exchange(at(ISSUED_AT + 86_400, 0)).is_ok());
    // Without issued_at only the TTL limits the code.
    let mut undated = record();
    undated.as_object_mut().unwrap().remove("issued_at");
    let undated = undated.to_string();
    let late = at(ISSUED_AT + 86_400, 600);
    assert!(
        check(
            undated.as_bytes(),
            client("app"),
            &request(REDIRECT_URI, None),
            late
        )
        .is_ok()
    );
}

/// Property tests ("fuzzing") of the code record, which another service writes: whatever Redis
/// holds for a code, the exchange ends in a grant or in an RFC 6749 refusal (`invalid_grant`,
/// or `invalid_scope`, which names the refused scope, escaped and cut short), never a panic;
/// neither an `invalid_grant` nor the log line about a malformed record quotes the record's
/// values, and no log line carries a control character. Named `fuzz_…` like the request parsers' (`oauth::fuzz_tests`), whose helpers they
/// use: `PROPTEST_CASES=1000000 cargo test --release --lib fuzz_`.
mod fuzz {
    use proptest::prelude::*;

    use super::*;
    use crate::oauth::fuzz_tests::{QUOTE, assert_rfc_error, config, quotes_any, text};
    use crate::store::TokenRecord;

    /// The record's fields, and one it does not know.
    const FIELDS: [&str; 13] = [
        "client_id",
        "redirect_uri",
        "username",
        "account_id",
        "scope",
        "code_challenge",
        "code_challenge_method",
        "issued_at",
        "name",
        "avatar",
        "email",
        "mobile",
        "tenant",
    ];

    /// Any small JSON value: the types a writer may put in a field by mistake.
    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            // Mapped, not filtered: JSON has no NaN nor infinity.
            any::<f64>().prop_map(|f| Value::from(if f.is_finite() { f } else { 0.5 })),
            text(0..=24).prop_map(Value::from),
            control_text().prop_map(Value::from),
            Just(Value::from(S256_CHALLENGE)),
            Just(Value::from("user:basic")),
        ];
        leaf.prop_recursive(2, 8, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                prop::collection::btree_map("[a-z_]{1,12}", inner, 0..3)
                    .prop_map(|fields| Value::Object(fields.into_iter().collect())),
            ]
        })
    }

    /// Text with control characters, which a log line must not carry as they are.
    fn control_text() -> impl Strategy<Value = String> {
        let char = prop_oneof![
            proptest::char::range('\0', '\u{1f}'),
            proptest::char::range('a', 'z')
        ];
        prop::collection::vec(char, 1..12).prop_map(String::from_iter)
    }

    /// A `scope` field: scopes `app` may have and others, as a list or joined by `,`, or any
    /// JSON.
    fn any_scope() -> impl Strategy<Value = Value> {
        let scope = prop_oneof![
            Just("user:basic".to_owned()),
            Just("user:email".to_owned()),
            text(0..=16),
            control_text(),
        ];
        prop_oneof![
            prop::collection::vec(scope.clone(), 0..4).prop_map(Value::from),
            prop::collection::vec(scope, 0..4).prop_map(|scopes| Value::from(scopes.join(","))),
            any_json(),
        ]
    }

    /// `app`'s well-formed record with its scope, and up to four fields, replaced by any
    /// JSON or left out.
    fn any_record() -> impl Strategy<Value = Value> {
        let change = (
            prop::sample::select(&FIELDS[..]),
            prop::option::of(any_json()),
        );
        let changes = prop::collection::vec(change, 0..=4);
        (prop::option::of(any_scope()), changes).prop_map(|(scope, changes)| {
            let mut record = record();
            if let Some(scope) = scope {
                record["scope"] = scope;
            }
            for (field, value) in changes {
                match value {
                    Some(value) => record[field] = value,
                    None => {
                        record.as_object_mut().map(|fields| fields.remove(field));
                    }
                }
            }
            record
        })
    }

    /// Every string value in `value` of at least [`QUOTE`] characters.
    fn long_strings(value: &Value, found: &mut Vec<String>) {
        match value {
            Value::String(text) if text.chars().count() >= QUOTE => found.push(text.clone()),
            Value::Array(items) => items.iter().for_each(|item| long_strings(item, found)),
            // Not the keys: the contract's field names, which a message may name.
            Value::Object(fields) => fields.values().for_each(|item| long_strings(item, found)),
            _ => {}
        }
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn fuzz_any_code_record_gives_a_grant_or_an_rfc_refusal_that_quotes_none_of_it(
            record in any_record(),
            // 0: the record's JSON as is; 1: cut short; 2: one byte changed (not UTF-8 too);
            // 3: an unknown field first, of JSON that `Value` cannot hold.
            damage in 0..4u8,
            odd in prop::sample::select(vec![
                "1e400", "-1e400", "1e-400", "123456789012345678901234567890",
                r#""\ud800""#, r#""\udc00x""#, r#""\u0000""#, r#"[1e400,{"a":"\ud800"}]"#,
            ]),
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
            verifier in prop::option::of(prop::sample::select(vec![VERIFIER, OTHER_VERIFIER])),
        ) {
            let mut raw = record.to_string().into_bytes();
            match damage {
                1 => raw.truncate(at.index(raw.len() + 1)),
                2 => {
                    let i = at.index(raw.len());
                    raw[i] = byte;
                }
                3 => {
                    let field = format!(r#""odd":{odd},"#);
                    raw.splice(1..1, field.into_bytes());
                }
                _ => {}
            }
            let mut values = Vec::new();
            long_strings(&record, &mut values);
            let hidden: Vec<&str> = values.iter().map(String::as_str).collect();
            if let Err(problem) = parse(&raw) {
                // The log line's words ("code record is malformed: {problem}").
                prop_assert!(!quotes_any(&problem, &hidden), "the log line quotes a value: {problem}");
                prop_assert!(!problem.contains(char::is_control), "{problem:?}");
            }
            let app = client("app");
            match check(&raw, app, &request(REDIRECT_URI, verifier), rules(",")) {
                Ok(grant) => {
                    prop_assert!(!grant.username.trim().is_empty());
                    prop_assert!(!grant.account_id.trim().is_empty());
                    prop_assert!(!grant.scopes.is_empty());
                    prop_assert!(grant.scopes.iter().all(|scope| app.allows_scope(scope)));
                    // The token record the exchange script writes (its head, the code record,
                    // `}`) reads back as the same grant: introspection and user info find the
                    // token live.
                    let mut stored = crate::store::record_head("jti-1", &app.id, 1, 2);
                    stored.extend_from_slice(&raw);
                    stored.push(b'}');
                    let read = std::str::from_utf8(&stored)
                        .ok()
                        .and_then(|text| serde_json::from_str::<TokenRecord>(text).ok());
                    let Some(read) = read else {
                        let stored = String::from_utf8_lossy(&stored);
                        return Err(TestCaseError::fail(format!("unreadable: {stored}")));
                    };
                    prop_assert_eq!(read.jti, "jti-1");
                    prop_assert_eq!(read.client_id, app.id.as_str());
                    prop_assert_eq!(read.grant.username, grant.username);
                    prop_assert_eq!(read.grant.account_id, grant.account_id);
                }
                Err(error) => {
                    match error {
                        OAuthError::InvalidGrant(_) => {
                            assert_rfc_error(&error, &["invalid_grant"], &hidden)?;
                        }
                        _ => assert_rfc_error(&error, &["invalid_scope"], &[])?,
                    }
                    // What the log line about the refusal says (`log_token_refusal`).
                    let logged = error.to_string();
                    prop_assert!(!logged.contains(char::is_control), "{logged:?}");
                }
            }
        }
    }
}

#[test]
fn base_scopes_follow_the_records_own_where_the_client_is_registered_for_them() {
    // `app` is registered for user:basic and user:email, not admin.
    let base = ["user:basic".to_owned(), "admin".to_owned()];
    let with_base = CodeRules {
        base_scopes: &base,
        ..rules(" ")
    };
    let scopes = |scope: Value| {
        let raw = record_with(json!({ "scope": scope }));
        check(
            raw.as_bytes(),
            client("app"),
            &request(REDIRECT_URI, None),
            with_base,
        )
        .map(|grant| grant.scopes)
    };
    assert_eq!(
        scopes(json!(["user:email"])).unwrap(),
        ["user:email", "user:basic"]
    );
    assert_eq!(
        scopes(json!("user:email user:basic")).unwrap(),
        ["user:email", "user:basic"]
    );
    assert_eq!(
        scopes(json!(["user:basic", "user:email"])).unwrap(),
        ["user:basic", "user:email"]
    );
    // An empty record is the writer's mistake: no base scope makes up for it.
    assert!(matches!(
        scopes(json!([])),
        Err(OAuthError::InvalidScope(_))
    ));
}
