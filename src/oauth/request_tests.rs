use super::*;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::oauth::credentials::MAX_SECRET;

const CLIENT_ID: &str = "app";
const SECRET: &str = "Secret-Value-7f3a";
const CODE: &str = "Code-Value-91bd";
const REDIRECT_URI: &str = "https://app.example/cb?from=sso&x=1";
/// RFC 7636 Appendix B.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

#[derive(Debug, Clone, Copy)]
enum Format {
    Json,
    Form,
}

const FORMATS: [Format; 2] = [Format::Json, Format::Form];

impl Format {
    fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Form => "application/x-www-form-urlencoded",
        }
    }

    /// Encodes the pairs in order, keeping any repeated name (which a map would merge).
    fn encode(self, pairs: &[(&str, &str)]) -> Vec<u8> {
        match self {
            Format::Json => {
                let members: Vec<String> = pairs
                    .iter()
                    .map(|(k, v)| format!("{}:{}", json!(k), json!(v)))
                    .collect();
                format!("{{{}}}", members.join(",")).into_bytes()
            }
            Format::Form => serde_urlencoded::to_string(pairs).unwrap().into_bytes(),
        }
    }
}

/// Body fields in order; a name may repeat.
type Pairs<'a> = Vec<(&'a str, &'a str)>;

/// A complete request with body credentials, under the snake_case names.
fn complete() -> Pairs<'static> {
    vec![
        ("grant_type", "authorization_code"),
        ("client_id", CLIENT_ID),
        ("client_secret", SECRET),
        ("code", CODE),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", VERIFIER),
    ]
}

fn without<'a>(pairs: &[(&'a str, &'a str)], names: &[&str]) -> Pairs<'a> {
    pairs
        .iter()
        .filter(|(k, _)| !names.contains(k))
        .copied()
        .collect()
}

fn with<'a>(pairs: &[(&'a str, &'a str)], name: &'a str, value: &'a str) -> Pairs<'a> {
    let mut pairs = without(pairs, &[name]);
    pairs.push((name, value));
    pairs
}

fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

fn parse(
    format: Format,
    authorization: Option<&str>,
    pairs: &[(&str, &str)],
) -> Result<TokenRequest, OAuthError> {
    TokenRequest::parse(
        Some(format.content_type()),
        authorization,
        &format.encode(pairs),
    )
}

/// The description of an `invalid_request`, or a panic naming what came instead.
fn invalid_request(result: Result<TokenRequest, OAuthError>) -> String {
    match result {
        Err(OAuthError::InvalidRequest(description)) => description.into_owned(),
        other => panic!("expected invalid_request, got {other:?}"),
    }
}

/// A JSON body with `name` set to a raw JSON value, the other fields as in [`complete`].
fn json_with_raw(name: &str, raw: &Value) -> Vec<u8> {
    let mut object = serde_json::Map::new();
    for (k, v) in without(&complete(), &[name]) {
        object.insert(k.into(), json!(v));
    }
    object.insert(name.into(), raw.clone());
    serde_json::to_vec(&object).unwrap()
}

fn parse_json_bytes(body: &[u8]) -> Result<TokenRequest, OAuthError> {
    TokenRequest::parse(Some("application/json"), None, body)
}

#[test]
fn a_complete_request_is_parsed_from_json_and_from_a_form() {
    for format in FORMATS {
        let request = parse(format, None, &complete()).unwrap();
        assert_eq!(request.client.id, CLIENT_ID, "{format:?}");
        assert_eq!(request.client.secret.expose(), SECRET, "{format:?}");
        assert!(!request.client.used_basic, "{format:?}");
        assert_eq!(request.code.expose(), CODE, "{format:?}");
        assert_eq!(request.redirect_uri, REDIRECT_URI, "{format:?}");
        assert_eq!(
            request.code_verifier.as_ref().map(Sensitive::expose),
            Some(VERIFIER),
            "{format:?}"
        );
    }
}

#[test]
fn form_values_are_percent_and_plus_decoded() {
    let body = "grant_type=authorization_code&client_id=my+app&client_secret=a%2Bb%26c%3Dd\
                &code=x%20y&redirect_uri=https%3A%2F%2Fapp.example%2Fcb%3Fa%3D1%26b%3D2";
    let request = TokenRequest::parse(
        Some("application/x-www-form-urlencoded"),
        None,
        body.as_bytes(),
    )
    .unwrap();
    assert_eq!(request.client.id, "my app");
    assert_eq!(request.client.secret.expose(), "a+b&c=d");
    assert_eq!(request.code.expose(), "x y");
    assert_eq!(request.redirect_uri, "https://app.example/cb?a=1&b=2");
}

#[test]
fn camel_case_names_are_accepted_like_snake_case_ones() {
    let camel = [
        ("grantType", "authorization_code"),
        ("clientId", CLIENT_ID),
        ("clientSecret", SECRET),
        ("code", CODE),
        ("redirectUri", REDIRECT_URI),
        ("codeVerifier", VERIFIER),
    ];
    for format in FORMATS {
        let request = parse(format, None, &camel).unwrap();
        assert_eq!(request.client.id, CLIENT_ID, "{format:?}");
        assert_eq!(request.client.secret.expose(), SECRET, "{format:?}");
        assert_eq!(request.redirect_uri, REDIRECT_URI, "{format:?}");
        assert_eq!(
            request.code_verifier.as_ref().map(Sensitive::expose),
            Some(VERIFIER),
            "{format:?}"
        );
    }
}

#[test]
fn grant_type_may_be_omitted_or_left_empty() {
    for format in FORMATS {
        let omitted = without(&complete(), &["grant_type"]);
        let empty = with(&complete(), "grant_type", "");
        for pairs in [omitted, empty] {
            let request = parse(format, None, &pairs);
            assert!(request.is_ok(), "{format:?} {pairs:?}: {request:?}");
        }
    }
}

#[test]
fn a_grant_type_other_than_authorization_code_is_unsupported() {
    for format in FORMATS {
        for grant_type in [
            "refresh_token",
            "client_credentials",
            "password",
            "Authorization_Code",
            "authorization_code ",
        ] {
            let result = parse(format, None, &with(&complete(), "grant_type", grant_type));
            assert!(
                matches!(result, Err(OAuthError::UnsupportedGrantType)),
                "{format:?} {grant_type:?}: {result:?}"
            );
        }
    }
}

#[test]
fn a_missing_or_empty_required_field_is_named_in_the_error() {
    for format in FORMATS {
        for field in ["client_id", "client_secret", "code", "redirect_uri"] {
            let omitted = without(&complete(), &[field]);
            let empty = with(&complete(), field, "");
            for pairs in [omitted, empty] {
                // RFC 6749 §5.2: missing client authentication is invalid_client.
                let description = match parse(format, None, &pairs) {
                    Err(OAuthError::InvalidClient(d)) if field.starts_with("client_") => d,
                    other => invalid_request(other).into(),
                };
                assert!(
                    description.contains(field) && description.contains("required"),
                    "{format:?} {pairs:?}: {description}"
                );
            }
        }
    }
}

#[test]
fn an_empty_code_verifier_is_treated_as_omitted() {
    for format in FORMATS {
        let request = parse(format, None, &with(&complete(), "code_verifier", "")).unwrap();
        assert!(request.code_verifier.is_none(), "{format:?}");
        let request = parse(format, None, &without(&complete(), &["code_verifier"])).unwrap();
        assert!(request.code_verifier.is_none(), "{format:?}");
    }
}

/// Non-string JSON values, each carrying a marker that must not reach the description.
fn wrong_types() -> [(Value, &'static str); 5] {
    [
        (json!(987_654_321), "987654321"),
        (json!(-12.5e3), "12500"),
        (json!(["Leaked-In-Array"]), "Leaked-In-Array"),
        (json!({"Leaked-Key": "Leaked-In-Object"}), "Leaked"),
        (json!(true), "true"),
    ]
}

#[test]
fn a_json_field_of_the_wrong_type_is_named_without_quoting_its_value() {
    for name in FIELDS {
        for (value, marker) in wrong_types() {
            let description = invalid_request(parse_json_bytes(&json_with_raw(name, &value)));
            assert!(
                description.contains(&format!("`{name}`")),
                "{name} = {value}: {description}"
            );
            assert!(
                !description.contains(marker),
                "{name} = {value}: {description}"
            );
        }
    }
}

#[test]
fn a_json_null_is_treated_as_omitted() {
    let request = parse_json_bytes(&json_with_raw("code_verifier", &Value::Null)).unwrap();
    assert!(request.code_verifier.is_none());
    let description = invalid_request(parse_json_bytes(&json_with_raw("code", &Value::Null)));
    assert!(description.contains("code is required"), "{description}");
}

#[test]
fn a_json_body_that_is_not_an_object_is_refused() {
    for body in [r#""a string""#, "42", "null", "true"] {
        let description = invalid_request(parse_json_bytes(body.as_bytes()));
        assert!(
            description.contains("must be a JSON object"),
            "{body}: {description}"
        );
    }
}

#[test]
fn a_json_array_body_is_refused_as_not_an_object() {
    // The second body is a complete request written positionally: it is accepted today.
    let bodies = [
        json!(["authorization_code", CLIENT_ID, SECRET, CODE, REDIRECT_URI]),
        json!([]),
    ];
    for body in bodies {
        let description = invalid_request(parse_json_bytes(&serde_json::to_vec(&body).unwrap()));
        assert!(
            description.contains("must be a JSON object"),
            "{body}: {description}"
        );
    }
}

#[test]
fn malformed_json_is_refused() {
    let bodies: [&[u8]; 6] = [
        b"",
        b"{",
        b"{\"code\": \"x\",}",
        b"{\"code\": \"x\"} trailing",
        b"{'code': 'x'}",
        b"{\"code\": \"\xff\xfe\"}",
    ];
    for body in bodies {
        let description = invalid_request(parse_json_bytes(body));
        assert!(
            description.contains("not valid JSON"),
            "{}: {description}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn a_field_of_the_wrong_type_is_named_whatever_else_the_object_holds() {
    // A value nested deeper than a `serde_json::Value` reads (128 levels), and a number.
    let deep = format!("{}{}", "[".repeat(1_500), "]".repeat(1_500));
    let body = format!(r#"{{"extra": {deep}, "code": 1}}"#);
    let description = invalid_request(parse_json_bytes(body.as_bytes()));
    assert_eq!(description, "`code` must be a string");
    // The wrong type comes first, broken JSON after it: the body is not JSON at all.
    let description = invalid_request(parse_json_bytes(br#"{"code": 1, "state": "#));
    assert!(description.contains("not valid JSON"), "{description}");
}

#[test]
fn malformed_json_is_located_without_quoting_it() {
    let body = format!("{{\n  \"client_secret\": \"{SECRET}\" \"code\": \"{CODE}\"}}");
    let description = invalid_request(parse_json_bytes(body.as_bytes()));
    assert!(description.contains("line 2, column"), "{description}");
    for value in [SECRET, CODE] {
        assert!(!description.contains(value), "{description}");
    }
}

#[test]
fn a_form_body_that_is_not_utf8_is_refused() {
    // The only way a form body can be malformed: raw or percent-encoded bytes that are not UTF-8
    // (JSON bodies with such bytes are refused; see malformed_json_is_refused).
    let prefix = "grant_type=authorization_code&client_id=app&client_secret=s\
                  &redirect_uri=https%3A%2F%2Fapp.example%2Fcb&code=";
    for tail in [&b"\xff\xfe"[..], b"%FF%FE", b"abc%C3"] {
        let body = [prefix.as_bytes(), tail].concat();
        let result = TokenRequest::parse(Some("application/x-www-form-urlencoded"), None, &body);
        invalid_request(result);
    }
}

#[test]
fn a_field_given_twice_is_refused_under_the_same_or_an_aliased_name() {
    let twice = [
        ("code", "code", "code"),
        ("client_id", "client_id", "client_id"),
        ("grant_type", "grantType", "grant_type"),
        ("client_id", "clientId", "client_id"),
        ("clientSecret", "client_secret", "client_secret"),
        ("redirect_uri", "redirectUri", "redirect_uri"),
        ("code_verifier", "codeVerifier", "code_verifier"),
    ];
    for format in FORMATS {
        for (first, second, named) in twice {
            let value = complete()
                .into_iter()
                .find(|(k, _)| *k == named)
                .map(|(_, v)| v)
                .unwrap();
            let mut pairs = without(&complete(), &[named]);
            pairs.push((first, value));
            pairs.push((second, value));
            let description = invalid_request(parse(format, None, &pairs));
            assert!(
                description.contains(&format!("`{named}`"))
                    && description.contains("more than once"),
                "{format:?} {first}+{second}: {description}"
            );
        }
    }
}

#[test]
fn unknown_fields_are_ignored() {
    for format in FORMATS {
        let mut pairs = complete();
        pairs.extend([("state", "xyz"), ("scope", "user:basic"), ("Code", "other")]);
        let request = parse(format, None, &pairs).unwrap();
        assert_eq!(request.code.expose(), CODE, "{format:?}");
    }
    let body = json_with_raw("nonce", &json!({"nested": [1, 2, 3]}));
    assert!(parse_json_bytes(&body).is_ok());
}

#[test]
fn content_types_are_matched_on_their_essence_ignoring_case_and_parameters() {
    let accepted = [
        ("application/json; charset=utf-8", Format::Json),
        ("Application/JSON", Format::Json),
        (" application/json ;charset=UTF-8", Format::Json),
        (
            "application/x-www-form-urlencoded; charset=UTF-8",
            Format::Form,
        ),
        ("APPLICATION/X-WWW-FORM-URLENCODED", Format::Form),
    ];
    for (content_type, format) in accepted {
        let body = format.encode(&complete());
        let result = TokenRequest::parse(Some(content_type), None, &body);
        assert!(result.is_ok(), "{content_type}: {result:?}");
    }
}

#[test]
fn other_or_missing_content_types_are_refused() {
    let form = Format::Form.encode(&complete());
    let refused = [
        None,
        Some(""),
        Some("text/plain"),
        Some("multipart/form-data; boundary=xyz"),
        Some("application/jsonp"),
        Some("application/x-www-form-urlencoded-extra"),
        Some("application/json-patch+json"),
    ];
    for content_type in refused {
        let description = invalid_request(TokenRequest::parse(content_type, None, &form));
        assert!(
            description.contains("Content-Type"),
            "{content_type:?}: {description}"
        );
    }
}

#[test]
fn basic_credentials_alone_authenticate_the_client() {
    let body = without(&complete(), &["client_id", "client_secret"]);
    for format in FORMATS {
        let request = parse(format, Some(&basic("basic-app", "basic-secret")), &body).unwrap();
        assert_eq!(request.client.id, "basic-app", "{format:?}");
        assert_eq!(request.client.secret.expose(), "basic-secret", "{format:?}");
        assert!(request.client.used_basic, "{format:?}");
    }
}

#[test]
fn basic_credentials_with_the_same_client_id_in_the_body_are_accepted() {
    let body = without(&complete(), &["client_secret"]);
    for format in FORMATS {
        let request = parse(format, Some(&basic(CLIENT_ID, "basic-secret")), &body).unwrap();
        assert_eq!(request.client.id, CLIENT_ID, "{format:?}");
        assert_eq!(request.client.secret.expose(), "basic-secret", "{format:?}");
        assert!(request.client.used_basic, "{format:?}");
    }
}

/// A gateway's `Bearer` or a browser's `Negotiate` is not client authentication: the body's
/// credentials are used, as Keycloak and Hydra do (RFC 6749 §2.3 forbids two methods, and
/// another scheme is none).
#[test]
fn an_authorization_header_of_another_scheme_leaves_the_body_credentials() {
    for format in FORMATS {
        for header in [
            "Bearer some-token",
            "Negotiate YII=",
            "Digest username=\"x\"",
        ] {
            let request = parse(format, Some(header), &complete()).expect(header);
            assert_eq!(request.client.id, CLIENT_ID, "{format:?} {header}");
            assert_eq!(
                request.client.secret.expose(),
                SECRET,
                "{format:?} {header}"
            );
            assert!(!request.client.used_basic, "{format:?} {header}");
        }
    }
}

#[test]
fn conflicting_or_unusable_authorization_headers_are_refused() {
    let no_secret = without(&complete(), &["client_secret"]);
    let no_credentials = without(&complete(), &["client_id", "client_secret"]);
    // (Authorization header, body, expected error code); invalid_client must challenge Basic.
    let cases: [(String, Pairs, &str); 9] = [
        (
            basic(CLIENT_ID, "basic-secret"),
            complete(),
            "invalid_request",
        ),
        (
            basic(CLIENT_ID, SECRET),
            without(&complete(), &["client_id"]),
            "invalid_request",
        ),
        (
            basic("someone-else", "s"),
            no_secret.clone(),
            "invalid_request",
        ),
        // Another scheme is no client authentication: none then, without body credentials.
        (
            "Bearer some-token".into(),
            no_credentials.clone(),
            "invalid_client",
        ),
        (
            "Digest username=\"app\"".into(),
            no_credentials.clone(),
            "invalid_client",
        ),
        (
            "Basic !!!not-base64".into(),
            no_credentials.clone(),
            "invalid_client",
        ),
        (
            format!("Basic {}", STANDARD.encode("no-colon-here")),
            no_credentials.clone(),
            "invalid_client",
        ),
        ("Basic".into(), no_credentials.clone(), "invalid_client"),
        (basic("app", ""), no_credentials, "invalid_client"),
    ];
    for format in FORMATS {
        for (authorization, body, code) in &cases {
            let error = parse(format, Some(authorization), body).unwrap_err();
            assert_eq!(error.code(), *code, "{format:?} {authorization}: {error}");
        }
    }
}

#[test]
fn a_well_formed_code_verifier_is_accepted_at_both_length_bounds() {
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~";
    let shortest: String = alphabet.chars().take(43).collect();
    let longest: String = alphabet.chars().cycle().take(128).collect();
    let every_char = alphabet.to_owned();
    for verifier in [&shortest, &longest, &every_char] {
        for format in FORMATS {
            let request =
                parse(format, None, &with(&complete(), "code_verifier", verifier)).unwrap();
            assert_eq!(
                request.code_verifier.as_ref().map(Sensitive::expose),
                Some(verifier.as_str())
            );
        }
    }
}

#[test]
fn a_code_verifier_of_the_wrong_length_or_alphabet_is_refused() {
    let valid = "a".repeat(43);
    let bad = [
        "a".repeat(42),
        "a".repeat(129),
        format!("{}+", &valid[1..]),
        format!("{}/", &valid[1..]),
        format!("{}=", &valid[1..]),
        format!("{} ", &valid[1..]),
        format!("{}é", &valid[2..]),
        format!("{}\u{0}", &valid[1..]),
    ];
    for format in FORMATS {
        for verifier in &bad {
            let description = invalid_request(parse(
                format,
                None,
                &with(&complete(), "code_verifier", verifier),
            ));
            assert!(
                description.contains("code_verifier"),
                "{verifier:?}: {description}"
            );
        }
    }
}

#[test]
fn values_are_refused_just_past_their_length_limits() {
    let long = |n: usize| "x".repeat(n);
    // (field, longest accepted length)
    let limits = [
        ("code", 512),
        ("redirect_uri", 2048),
        ("client_id", 256),
        ("client_secret", 512),
    ];
    for format in FORMATS {
        for (field, max) in limits {
            let at_limit = long(max);
            let over = long(max + 1);
            let ok = parse(format, None, &with(&complete(), field, &at_limit));
            assert!(ok.is_ok(), "{format:?} {field} at {max}: {ok:?}");
            let refused = parse(format, None, &with(&complete(), field, &over));
            if field == "client_secret" {
                // No client has such a secret: a failed authentication (RFC 6749 §5.2).
                assert!(
                    matches!(refused, Err(OAuthError::InvalidClient(_))),
                    "{format:?}: {refused:?}"
                );
                continue;
            }
            let description = invalid_request(refused);
            assert!(
                description.contains(field),
                "{format:?} {field}: {description}"
            );
        }
    }
}

#[test]
fn basic_credentials_are_held_to_the_same_length_limits() {
    let body = without(&complete(), &["client_id", "client_secret"]);
    let ok = [basic(&"i".repeat(256), "s"), basic("app", &"s".repeat(512))];
    let over = [basic(&"i".repeat(257), "s"), basic("app", &"s".repeat(513))];
    for format in FORMATS {
        for authorization in &ok {
            assert!(
                parse(format, Some(authorization), &body).is_ok(),
                "{format:?}"
            );
        }
        // An id or a secret longer than any registered one is a failed authentication (RFC
        // 6749 §5.2: through the header, 401 with a challenge).
        for authorization in &over {
            match parse(format, Some(authorization), &body) {
                Err(OAuthError::InvalidClient(_)) => {}
                other => panic!("{format:?}: expected invalid_client, got {other:?}"),
            }
        }
    }
}

#[test]
fn a_code_with_control_characters_is_refused() {
    for format in FORMATS {
        for code in ["abc\ndef", "abc\u{0}", "\tabc", "abc\u{7f}"] {
            let description =
                invalid_request(parse(format, None, &with(&complete(), "code", code)));
            assert!(description.contains("code"), "{code:?}: {description}");
        }
    }
}

#[test]
fn a_client_id_outside_vschar_is_malformed_in_the_body_and_a_failed_authentication_in_basic() {
    let too_long = "a".repeat(257);
    let bad_ids = [
        "app\nFORGED log line",
        "app\u{0}",
        "\tapp",
        "app\u{7f}",
        "äpp",
        too_long.as_str(),
    ];
    for id in bad_ids {
        for format in FORMATS {
            let in_body = with(&complete(), "client_id", id);
            let description = invalid_request(parse(format, None, &in_body));
            assert!(description.contains("client_id"), "{id:?}: {description}");
            assert!(!description.contains(id), "{id:?}: {description}");
            // Named as malformed whatever secret comes with it, one too long for any client too.
            let long_secret = "s".repeat(MAX_SECRET + 1);
            let with_long_secret = with(&in_body, "client_secret", &long_secret);
            let description = invalid_request(parse(format, None, &with_long_secret));
            assert!(description.contains("client_id"), "{id:?}: {description}");
            // Or with none.
            let no_secret = without(&in_body, &["client_secret"]);
            let description = invalid_request(parse(format, None, &no_secret));
            assert!(description.contains("client_id"), "{id:?}: {description}");
            // RFC 6749 §2.3.1: form-urlencoded inside Basic, as a client library sends it.
            let encoded = serde_urlencoded::to_string([("", id)]).unwrap();
            let header = basic(&encoded[1..], SECRET);
            let pairs = without(&complete(), &["client_id", "client_secret"]);
            match parse(format, Some(&header), &pairs) {
                Err(OAuthError::InvalidClient(_)) => {}
                other => panic!("{id:?} {format:?}: expected invalid_client, got {other:?}"),
            }
        }
    }
    // The whole printable range is fine, space and punctuation included.
    let printable: String = (0x20u8..=0x7e).map(char::from).collect();
    let request = parse(
        Format::Json,
        None,
        &with(&complete(), "client_id", &printable),
    )
    .unwrap();
    assert_eq!(request.client.id, printable);
}

/// In the body, a malformed client_id is said to be too long only past 256 bytes: one of 256
/// bytes with a control character in it is outside VSCHAR, not too long.
#[test]
fn a_malformed_client_id_in_the_body_is_too_long_only_past_256_bytes() {
    // (client_id, what the description must say, what it must not)
    let cases = [
        ("a".repeat(257), "too long", "printable"),
        (format!("{}\n", "a".repeat(256)), "too long", "printable"),
        (format!("{}\n", "a".repeat(255)), "printable", "too long"),
        ("app\n".to_owned(), "printable", "too long"),
    ];
    for format in FORMATS {
        for (id, said, unsaid) in &cases {
            let in_body = with(&complete(), "client_id", id);
            let description = invalid_request(parse(format, None, &in_body));
            assert!(
                description.contains(said) && !description.contains(unsaid),
                "{format:?} {} bytes: {description}",
                id.len()
            );
        }
    }
}

#[test]
fn a_parsed_request_does_not_print_its_secret_code_or_verifier() {
    let request = parse(Format::Json, None, &complete()).unwrap();
    let printed = format!("{request:?}");
    for value in [SECRET, CODE, VERIFIER] {
        assert!(!printed.contains(value), "{printed}");
    }
    assert!(printed.contains(CLIENT_ID));
}

/// `Content-Type`, `Authorization` and body of a request.
type RawRequest = (Option<&'static str>, Option<String>, Vec<u8>);

/// Every way of getting a request wrong, with the secret and the code somewhere in it.
fn bad_requests() -> Vec<RawRequest> {
    let json = Some("application/json");
    let form = Some("application/x-www-form-urlencoded");
    let mut cases: Vec<RawRequest> = Vec::new();
    for format in FORMATS {
        let ct = Some(format.content_type());
        let pairs = complete();
        // Each required field missing, one at a time.
        for field in ["client_id", "client_secret", "code", "redirect_uri"] {
            cases.push((ct, None, format.encode(&without(&pairs, &[field]))));
        }
        // Unsupported grant types whose value is the secret or the code.
        for value in [SECRET, CODE] {
            cases.push((ct, None, format.encode(&with(&pairs, "grant_type", value))));
        }
        // Duplicates carrying the secret and the code.
        let mut twice = pairs.clone();
        twice.push(("clientSecret", SECRET));
        cases.push((ct, None, format.encode(&twice)));
        let mut twice = pairs.clone();
        twice.push(("code", CODE));
        cases.push((ct, None, format.encode(&twice)));
        // Secret or code as the code_verifier, and a code with a control character.
        for value in [SECRET, CODE] {
            cases.push((
                ct,
                None,
                format.encode(&with(&pairs, "code_verifier", value)),
            ));
        }
        let code_with_newline = format!("{CODE}\n");
        cases.push((
            ct,
            None,
            format.encode(&with(&pairs, "code", &code_with_newline)),
        ));
        // Over-long secret and code built from the real values.
        let long_secret = SECRET.repeat(40);
        let long_code = CODE.repeat(40);
        cases.push((
            ct,
            None,
            format.encode(&with(&pairs, "client_secret", &long_secret)),
        ));
        cases.push((ct, None, format.encode(&with(&pairs, "code", &long_code))));
        // Authorization header problems with the secret inside: Basic plus a body secret,
        // Basic for another client_id, another scheme, malformed Basic, over-long Basic id.
        let no_credentials = without(&pairs, &["client_id", "client_secret"]);
        for (authorization, body) in [
            (basic(CLIENT_ID, SECRET), pairs.clone()),
            (
                basic("someone-else", SECRET),
                without(&pairs, &["client_secret"]),
            ),
            (format!("Bearer {SECRET}"), no_credentials.clone()),
            (
                format!("Basic {}", STANDARD.encode(SECRET)),
                no_credentials.clone(),
            ),
            (format!("Basic {SECRET}!"), no_credentials.clone()),
            (basic(&SECRET.repeat(20), SECRET), no_credentials.clone()),
        ] {
            cases.push((ct, Some(authorization), format.encode(&body)));
        }
        // The right body under a content type that is refused.
        cases.push((Some("text/plain"), None, format.encode(&pairs)));
        cases.push((None, None, format.encode(&pairs)));
    }
    // JSON-only problems: wrong types holding the secret or the code, broken syntax around them,
    // a body that is the secret itself.
    for (name, value) in [
        ("client_secret", SECRET),
        ("code", CODE),
        ("client_id", SECRET),
    ] {
        for raw in [json!([value]), json!({ value: value }), json!([[value]])] {
            cases.push((json, None, json_with_raw(name, &raw)));
        }
    }
    cases.push((
        json,
        None,
        format!(r#"{{"client_secret": "{SECRET}", "code": "{CODE}""#).into_bytes(),
    ));
    cases.push((
        json,
        None,
        format!(r#"{{"client_secret": {SECRET}, "code": {CODE}}}"#).into_bytes(),
    ));
    cases.push((json, None, format!(r#""{SECRET}{CODE}""#).into_bytes()));
    cases.push((
        json,
        None,
        format!(r#"{{"code": "{CODE}", "code": 1}}"#).into_bytes(),
    ));
    cases.push((
        form,
        None,
        format!("client_secret={SECRET}&code={CODE}&code={CODE}").into_bytes(),
    ));
    cases
}

#[test]
fn no_error_description_contains_the_secret_or_the_code() {
    let cases = bad_requests();
    assert!(cases.len() >= 50, "the matrix shrank to {}", cases.len());
    for (content_type, authorization, body) in cases {
        let shown = String::from_utf8_lossy(&body).into_owned();
        let error = TokenRequest::parse(content_type, authorization.as_deref(), &body)
            .expect_err(&format!("{content_type:?} {authorization:?} {shown}"));
        let rendered = error.to_string();
        for value in [SECRET, CODE] {
            assert!(
                !rendered.contains(value),
                "{content_type:?} {authorization:?} {shown}: {rendered}"
            );
        }
    }
}

#[test]
fn every_name_of_utf_8_reads_a_body_as_utf_8() {
    let redirect_uri = "https://app.example/cb?next=caf\u{e9}";
    let mut pairs = complete();
    pairs.retain(|(name, _)| *name != "redirect_uri");
    pairs.push(("redirect_uri", redirect_uri));
    for format in FORMATS {
        let body = format.encode(&pairs);
        for charset in ["utf8", "UTF8", "Unicode-1-1-UTF-8", "x-unicode20utf8"] {
            let content_type = format!("{}; charset={charset}", format.content_type());
            let request = TokenRequest::parse(Some(&content_type), None, &body);
            let request = request.unwrap_or_else(|e| panic!("{content_type}: {e:?}"));
            assert_eq!(request.redirect_uri, redirect_uri, "{content_type}");
        }
    }
}

#[test]
fn another_charset_is_read_only_for_an_ascii_body() {
    for format in [Format::Form, Format::Json] {
        let body = format.encode(&complete());
        let essence = format.content_type();
        // UTF-8, or an ASCII-compatible charset with an ASCII body (Apache HttpClient 4's
        // forms, Java clients' GBK).
        for charset in [
            "UTF-8",
            "\"utf-8\"",
            "ISO-8859-1",
            "us-ascii",
            "windows-1252",
            "GBK",
            "gb18030",
            "GB2312",
            "Big5",
            "Shift_JIS",
            "EUC-KR",
            "ISO-8859-15",
        ] {
            let content_type = format!("{essence}; charset={charset}");
            let request = TokenRequest::parse(Some(&content_type), None, &body);
            assert!(request.is_ok(), "{content_type}: {:?}", request.err());
        }
        // Charsets that read ASCII bytes as something else, and names of no charset.
        for charset in [
            "utf-16",
            "UTF-16LE",
            "iso-2022-jp",
            "hz-gb-2312",
            "utf-7",
            "x-foo",
        ] {
            let content_type = format!("{essence}; charset={charset}");
            let description =
                invalid_request(TokenRequest::parse(Some(&content_type), None, &body));
            assert!(
                description.contains("UTF-8"),
                "{content_type}: {description}"
            );
        }
    }
    // Not ASCII in ISO-8859-1: raw, or percent-encoded in a form (é is %E9 there, %C3%A9 in
    // UTF-8: either way it would be read as something else).
    let mut latin = complete();
    latin.retain(|(name, _)| *name != "client_id");
    latin.push(("client_id", "caf\u{e9}"));
    let bodies = [
        (
            "application/x-www-form-urlencoded",
            Format::Form.encode(&latin),
        ),
        ("application/json", Format::Json.encode(&latin)),
        (
            "application/x-www-form-urlencoded",
            b"grant_type=authorization_code&client_id=caf%E9".to_vec(),
        ),
    ];
    for (essence, body) in bodies {
        let content_type = format!("{essence}; charset=ISO-8859-1");
        let in_gbk = format!("{essence}; charset=GBK");
        let description = invalid_request(TokenRequest::parse(Some(&in_gbk), None, &body));
        assert!(description.contains("UTF-8"), "{in_gbk}: {description}");
        let description = invalid_request(TokenRequest::parse(Some(&content_type), None, &body));
        assert!(
            description.contains("UTF-8"),
            "{content_type}: {description}"
        );
    }
    // In JSON a percent sign is a character like any other: an ASCII body stays readable.
    let mut escaped = complete();
    escaped.retain(|(name, _)| *name != "redirect_uri");
    escaped.push(("redirect_uri", "https://app.example/cb?next=%C3%A9"));
    let content_type = "application/json; charset=ISO-8859-1";
    let request = TokenRequest::parse(Some(content_type), None, &Format::Json.encode(&escaped));
    assert_eq!(
        request.map(|r| r.redirect_uri).ok().as_deref(),
        Some("https://app.example/cb?next=%C3%A9")
    );
}

#[test]
fn a_json_body_may_start_with_a_byte_order_mark() {
    let mut body = b"\xEF\xBB\xBF".to_vec();
    body.extend(Format::Json.encode(&complete()));
    let request = TokenRequest::parse(Some("application/json"), None, &body);
    assert!(request.is_ok(), "{:?}", request.err());
    // Only at the start.
    let mut inside = Format::Json.encode(&complete());
    inside.splice(1..1, *b"\xEF\xBB\xBF");
    let description = invalid_request(TokenRequest::parse(Some("application/json"), None, &inside));
    assert!(description.contains("JSON"), "{description}");
}

/// The same for a form: its first field (here `code`, which has no default) is read, not hidden
/// behind the mark.
#[test]
fn a_form_body_may_start_with_a_byte_order_mark() {
    let mut pairs = complete();
    pairs.sort_by_key(|(name, _)| *name != "code");
    let form = Format::Form.encode(&pairs);
    let plain = TokenRequest::parse(Some("application/x-www-form-urlencoded"), None, &form);
    let body = [b"\xEF\xBB\xBF".as_slice(), &form].concat();

    let marked = TokenRequest::parse(Some("application/x-www-form-urlencoded"), None, &body);

    assert!(marked.is_ok(), "{:?}", marked.err());
    assert_eq!(format!("{marked:?}"), format!("{plain:?}"));
}

#[test]
fn a_json_body_sent_as_a_form_is_told_to_be_json() {
    let json = Format::Json.encode(&complete());
    let with_bom = [b"\xEF\xBB\xBF".as_slice(), &json].concat();
    for body in [json.clone(), [b" \n".as_slice(), &json].concat(), with_bom] {
        let description = invalid_request(TokenRequest::parse(
            Some("application/x-www-form-urlencoded"),
            None,
            &body,
        ));
        assert!(description.contains("application/json"), "{description}");
    }
}
