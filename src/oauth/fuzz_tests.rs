//! Property tests ("fuzzing") of the request parsers: [`TokenRequest::parse`] over JSON and form
//! bodies, content types, `Authorization` headers and sizes, and [`basic::parse`]; the
//! introspection and revocation bodies ([`queries`]) and the user info `Authorization`
//! headers ([`bearer_headers`]) in the modules below, with the strategies of this one.
//!
//! Properties: no input panics; every rejection is an RFC 6749 error (RFC 6750 for Bearer: a
//! 4xx whose body is exactly `{"error", "error_description"}`, never echoing a secret, a code
//! or a token; or RFC 6750's bare 401 when there are no credentials at all); every
//! well-formed request is accepted with its values intact.
//!
//! Each test runs [`CASES`] cases (about 10⁴ in all, a few seconds in debug). For 10⁶ per test
//! (every test here is named `fuzz_…`):
//! `PROPTEST_CASES=1000000 cargo test --release --lib fuzz_`.

mod bearer_headers;
mod queries;

use actix_web::ResponseError;
use actix_web::body::MessageBody;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::{Value, json};

use super::basic::{self, Authorization};
use super::request::FIELDS;
use super::{OAuthError, TokenRequest};

/// Cases per test when `PROPTEST_CASES` is not set: nine tests here, and PKCE's two
/// (`oauth::pkce`), the code record's one (`grant`), verification's two (`tokens::verify`) and
/// the source address' three (`throttle::source`), about 1.9 × 10⁴ cases in all.
const CASES: u32 = 1_100;

/// The codes a parse may end in: the rest (invalid_grant, …) need the registry or Redis.
const PARSE_ERRORS: [&str; 3] = [
    "invalid_request",
    "invalid_client",
    "unsupported_grant_type",
];

pub(crate) fn config() -> Config {
    let mut config = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = CASES;
    }
    config
}

/// A description may not hold this many consecutive characters of a value sent.
pub(crate) const QUOTE: usize = 10;

/// Asserts that `error` is one of `codes` and renders as an RFC 6749 §5.2 error that quotes
/// none of `hidden`.
pub(crate) fn assert_rfc_error(
    error: &OAuthError,
    codes: &[&str],
    hidden: &[&str],
) -> Result<(), TestCaseError> {
    let code = error.code();
    prop_assert!(codes.contains(&code), "unexpected error {error:?}");
    let response = error.error_response();
    prop_assert!(response.status().is_client_error(), "{error:?}");
    let body = response.into_body().try_into_bytes();
    let body: Value = serde_json::from_slice(&body.unwrap_or_default())
        .map_err(|e| TestCaseError::fail(format!("body is not JSON: {e}")))?;
    let object = body.as_object().cloned().unwrap_or_default();
    prop_assert_eq!(object.len(), 2, "{}", body);
    prop_assert_eq!(object.get("error"), Some(&json!(code)));
    let description = object.get("error_description").and_then(Value::as_str);
    prop_assert!(description.is_some_and(|d| !d.is_empty()), "{}", body);
    let description = description.unwrap_or_default();
    prop_assert!(
        description
            .chars()
            .all(|c| matches!(c, ' '..='!' | '#'..='[' | ']'..='~')),
        "error_description outside RFC 6749 section 5.2's characters: {}",
        body
    );
    prop_assert!(
        !quotes_any(description, hidden),
        "the description quotes a value: {}",
        body
    );
    Ok(())
}

/// Whether `text` holds [`QUOTE`] consecutive characters of one of `values`.
pub(crate) fn quotes_any(text: &str, values: &[&str]) -> bool {
    values.iter().any(|value| {
        let chars: Vec<char> = value.chars().collect();
        chars
            .windows(QUOTE)
            .any(|window| text.contains(&String::from_iter(window)))
    })
}

/// RFC 6749 §2.3.1: id and secret form-urlencoded (here: every byte but letters and digits
/// percent-encoded), joined by `:`, base64.
fn basic_header(id: &str, secret: &str) -> String {
    use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
    let encode = |s| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string();
    format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", encode(id), encode(secret)))
    )
}

/// Text without control characters, mostly ASCII (where the delimiters are), some of it any
/// other Unicode; cheaper to generate than a `\PC` regex.
pub(crate) fn text(length: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = String> {
    let char = prop_oneof![
        6 => proptest::char::range(' ', '~'),
        // Mapped, not filtered: a filter's rejections abort a 10⁶-case run.
        1 => any::<char>().prop_map(|c| if c.is_control() { '\u{fffd}' } else { c }),
    ];
    prop::collection::vec(char, length).prop_map(String::from_iter)
}

fn content_type() -> impl Strategy<Value = Option<String>> {
    let known = prop::sample::select(vec![
        "application/json",
        "application/x-www-form-urlencoded",
    ]);
    prop_oneof![
        1 => Just(None),
        4 => (known, any::<bool>(), "[ ;a-z=0-9-]{0,20}").prop_map(|(essence, upper, params)| {
            let essence = if upper { essence.to_uppercase() } else { essence.to_owned() };
            Some(format!("{essence}{params}"))
        }),
        1 => text(0..=40).prop_map(Some),
    ]
}

fn authorization() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        4 => Just(None),
        1 => (text(0..=30), text(0..=30))
            .prop_map(|(id, secret)| Some(format!("Basic {}", STANDARD.encode(format!("{id}:{secret}"))))),
        1 => prop::collection::vec(any::<u8>(), 0..80)
            .prop_map(|raw| Some(format!("Basic {}", STANDARD.encode(raw)))),
        1 => "(Basic|basic|Bearer|Digest)? ?[A-Za-z0-9+/=:% ]{0,60}".prop_map(Some),
        1 => text(0..=80).prop_map(Some),
    ]
}

/// The words a parser knows: the field names and the one value each endpoint looks for.
#[derive(Debug, Clone, Copy)]
struct Vocabulary {
    fields: &'static [&'static str],
    /// `authorization_code` for the token endpoint, `access_token` for the token hint.
    word: &'static str,
}

const TOKEN_REQUEST: Vocabulary = Vocabulary {
    fields: &FIELDS,
    word: "authorization_code",
};

/// A field name: one the parser knows, or another.
fn field_name(words: Vocabulary) -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(words.fields).prop_map(str::to_owned),
        1 => text(0..=12),
    ]
}

/// A value of any size: short, over a limit (64 / 512 / 2048 / 4096 bytes), control
/// characters, …
fn field_value(words: Vocabulary) -> impl Strategy<Value = String> {
    prop_oneof![
        6 => text(0..=40),
        1 => text(0..=3).prop_map(|s| s.repeat(700)),
        1 => any::<String>(),
        1 => Just(words.word.to_owned()),
    ]
}

fn json_value(words: Vocabulary) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        field_value(words).prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::vec((field_name(words), inner), 0..4)
                .prop_map(|members| Value::Object(members.into_iter().collect())),
        ]
    })
}

/// A JSON object or a form of `fields`, as `(content type, body)`; JSON keeps repeated names.
fn encode_fields(json: bool, fields: &[(String, String)]) -> (&'static str, Vec<u8>) {
    if json {
        let members: Vec<String> = fields
            .iter()
            .map(|(k, v)| format!("{}:{}", json!(k), json!(v)))
            .collect();
        (
            "application/json",
            format!("{{{}}}", members.join(",")).into_bytes(),
        )
    } else {
        let form = serde_urlencoded::to_string(fields).unwrap_or_default();
        ("application/x-www-form-urlencoded", form.into_bytes())
    }
}

/// Bodies: garbage, JSON with fields of any type (repeats kept), forms with raw escapes.
fn body(words: Vocabulary) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..600),
        2 => prop::collection::vec((field_name(words), json_value(words)), 0..8).prop_map(|members| {
            let members: Vec<String> = members
                .iter()
                .map(|(k, v)| format!("{}:{v}", json!(k)))
                .collect();
            format!("{{{}}}", members.join(",")).into_bytes()
        }),
        1 => json_value(words).prop_map(|v| v.to_string().into_bytes()),
        2 => prop::collection::vec((field_name(words), field_value(words)), 0..8)
            .prop_map(|pairs| serde_urlencoded::to_string(pairs).unwrap_or_default().into_bytes()),
        1 => "([a-z_A-Z]{0,14}=?(%[0-9a-fA-F]{0,2}|[^&]){0,20}&?){0,8}".prop_map(String::into_bytes),
        1 => (1usize..3000, any::<bool>()).prop_map(|(depth, array)| {
            let (open, close) = if array { ("[", "]") } else { (r#"{"code":"#, "}") };
            format!("{}{}", open.repeat(depth), close.repeat(depth / 2)).into_bytes()
        }),
    ]
}

/// A request that must be accepted: any non-control values within the limits.
#[derive(Debug, Clone)]
struct WellFormed {
    json: bool,
    basic: bool,
    camel: bool,
    grant_type: bool,
    client_id: String,
    secret: String,
    code: String,
    redirect_uri: String,
    verifier: Option<String>,
}

fn well_formed() -> impl Strategy<Value = WellFormed> {
    let verifier = prop::option::of("[A-Za-z0-9._~-]{43,128}");
    (
        (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()),
        // A client id is VSCHAR (RFC 6749 Appendix A.1); the other values any text.
        ("[ -~]{1,40}", text(1..=60), text(1..=60), text(1..=120)),
        verifier,
    )
        .prop_map(
            |(
                (json, basic, camel, grant_type),
                (client_id, secret, code, redirect_uri),
                verifier,
            )| {
                WellFormed {
                    json,
                    basic,
                    camel,
                    grant_type,
                    client_id,
                    secret,
                    code,
                    redirect_uri,
                    verifier,
                }
            },
        )
}

impl WellFormed {
    fn encode(&self) -> (String, Option<String>, Vec<u8>) {
        let name =
            |snake: &'static str, camel: &'static str| if self.camel { camel } else { snake };
        let mut pairs = vec![
            ("code", self.code.as_str()),
            (name("redirect_uri", "redirectUri"), &self.redirect_uri),
        ];
        if self.grant_type {
            pairs.push((name("grant_type", "grantType"), "authorization_code"));
        }
        if let Some(verifier) = &self.verifier {
            pairs.push((name("code_verifier", "codeVerifier"), verifier));
        }
        let authorization = if self.basic {
            Some(basic_header(&self.client_id, &self.secret))
        } else {
            pairs.push((name("client_id", "clientId"), &self.client_id));
            pairs.push((name("client_secret", "clientSecret"), &self.secret));
            None
        };
        if self.json {
            let object: serde_json::Map<String, Value> = pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), json!(v)))
                .collect();
            (
                "application/json".into(),
                authorization,
                Value::Object(object).to_string().into_bytes(),
            )
        } else {
            let form = serde_urlencoded::to_string(&pairs).unwrap_or_default();
            (
                "application/x-www-form-urlencoded".into(),
                authorization,
                form.into_bytes(),
            )
        }
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn fuzz_any_request_is_parsed_or_refused_with_an_rfc_error(
        content_type in content_type(),
        authorization in authorization(),
        body in body(TOKEN_REQUEST),
    ) {
        let parsed = TokenRequest::parse(content_type.as_deref(), authorization.as_deref(), &body);
        if let Err(error) = parsed {
            assert_rfc_error(&error, &PARSE_ERRORS, &[])?;
        }
    }

    #[test]
    fn fuzz_a_field_of_the_wrong_type_size_or_count_is_an_rfc_error(
        json in any::<bool>(),
        fields in prop::collection::vec(
            (field_name(TOKEN_REQUEST), field_value(TOKEN_REQUEST)),
            0..10,
        ),
        authorization in authorization(),
    ) {
        let (content_type, body) = encode_fields(json, &fields);
        match TokenRequest::parse(Some(content_type), authorization.as_deref(), &body) {
            Ok(request) => {
                // What was accepted is what was sent.
                let sent = |names: &[&str], value: &str| {
                    fields.iter().any(|(k, v)| names.contains(&k.as_str()) && v == value)
                };
                prop_assert!(sent(&["code"], request.code.expose()));
                prop_assert!(sent(&["redirect_uri", "redirectUri"], &request.redirect_uri));
                prop_assert!(request.client.used_basic || sent(&["client_id", "clientId"], &request.client.id));
            }
            Err(error) => {
                let values: Vec<&str> = fields
                    .iter()
                    .map(|(_, v)| v.as_str())
                    .filter(|v| *v != TOKEN_REQUEST.word)
                    .collect();
                assert_rfc_error(&error, &PARSE_ERRORS, &values)?;
            }
        }
    }

    #[test]
    fn fuzz_every_well_formed_request_is_accepted_with_its_values(request in well_formed()) {
        let (content_type, authorization, body) = request.encode();
        let parsed = TokenRequest::parse(Some(&content_type), authorization.as_deref(), &body);
        let parsed = parsed.map_err(|e| TestCaseError::fail(format!("{e}")))?;
        prop_assert_eq!(&parsed.client.id, &request.client_id);
        prop_assert_eq!(parsed.client.secret.expose(), request.secret.as_str());
        prop_assert_eq!(parsed.client.used_basic, request.basic);
        prop_assert_eq!(parsed.code.expose(), request.code.as_str());
        prop_assert_eq!(&parsed.redirect_uri, &request.redirect_uri);
        prop_assert_eq!(parsed.code_verifier.as_ref().map(|v| v.expose()), request.verifier.as_deref());
    }

    #[test]
    fn fuzz_basic_headers_round_trip_or_are_refused(
        id in text(0..=40),
        secret in text(0..=40),
        raw in text(0..=100),
    ) {
        // Anything at all: no panic, and a refusal is an invalid_client with a description.
        if let Err(malformed) = basic::parse(&raw) {
            prop_assert!(!malformed.0.is_empty());
        }
        match basic::parse(&basic_header(&id, &secret)) {
            Ok(Authorization::Basic { id: got_id, secret: got_secret }) => {
                prop_assert_eq!(got_id, id);
                prop_assert_eq!(got_secret.expose(), secret.as_str());
            }
            Ok(Authorization::OtherScheme) => prop_assert!(false, "Basic read as another scheme"),
            Err(_) => prop_assert!(id.is_empty() || secret.is_empty()),
        }
    }
}
