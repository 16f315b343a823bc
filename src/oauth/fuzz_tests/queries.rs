//! [`TokenQuery::parse`], the introspection (RFC 7662) and revocation (RFC 7009) bodies: JSON and
//! form, content types, `Authorization` headers, sizes (`token` up to 4096 bytes, the hint up to
//! 64). The properties of the parent module.

use proptest::prelude::*;

use super::{
    Vocabulary, assert_rfc_error, authorization, basic_header, body, config, content_type,
    encode_fields, field_name, field_value, text,
};
use crate::oauth::token_query::FIELDS;
use crate::oauth::{OAuthError, TokenQuery};

const QUERY: Vocabulary = Vocabulary {
    fields: &FIELDS,
    word: "access_token",
};

/// A query parse ends in a malformed request or a malformed Basic header, nothing else.
const QUERY_ERRORS: [&str; 2] = ["invalid_request", "invalid_client"];

/// The fields of a query: mostly the ones it needs (so that some parse), with values of any
/// size, then others, repeats included.
fn query_fields() -> impl Strategy<Value = Vec<(String, String)>> {
    let needed = |weight, name: &'static str, value: BoxedStrategy<String>| {
        prop::option::weighted(weight, value.prop_map(move |v| (name.to_owned(), v)))
    };
    let client_id = prop_oneof!["[ -~]{1,40}", field_value(QUERY)].boxed();
    (
        needed(0.8, "token", field_value(QUERY).boxed()),
        needed(0.7, "client_id", client_id),
        needed(0.7, "client_secret", field_value(QUERY).boxed()),
        needed(0.3, "token_type_hint", field_value(QUERY).boxed()),
        prop::collection::vec((field_name(QUERY), field_value(QUERY)), 0..3),
    )
        .prop_map(|(token, id, secret, hint, others)| {
            [token, id, secret, hint]
                .into_iter()
                .flatten()
                .chain(others)
                .collect()
        })
}

/// A query that must be accepted: any non-control values within the limits.
#[derive(Debug, Clone)]
struct WellFormed {
    json: bool,
    basic: bool,
    camel: bool,
    client_id: String,
    secret: String,
    token: String,
    hint: Option<String>,
}

fn well_formed() -> impl Strategy<Value = WellFormed> {
    // A token of ours (three base64url parts) or any text; a hint of at most 16 characters of
    // at most 4 bytes each is within the 64-byte limit.
    let token = prop_oneof![
        "[A-Za-z0-9_-]{10,400}\\.[A-Za-z0-9_-]{10,800}\\.[A-Za-z0-9_-]{10,400}",
        text(1..=200),
    ];
    let hint = prop::option::of(prop_oneof![Just("access_token".to_owned()), text(1..=16)]);
    (
        (any::<bool>(), any::<bool>(), any::<bool>()),
        // A client id is VSCHAR (RFC 6749 Appendix A.1); the secret any text.
        ("[ -~]{1,40}", text(1..=60)),
        (token, hint),
    )
        .prop_map(
            |((json, basic, camel), (client_id, secret), (token, hint))| WellFormed {
                json,
                basic,
                camel,
                client_id,
                secret,
                token,
                hint,
            },
        )
}

impl WellFormed {
    fn encode(&self) -> (&'static str, Option<String>, Vec<u8>) {
        let name =
            |snake: &'static str, camel: &'static str| if self.camel { camel } else { snake };
        let mut fields = vec![("token".to_owned(), self.token.clone())];
        if let Some(hint) = &self.hint {
            fields.push((
                name("token_type_hint", "tokenTypeHint").into(),
                hint.clone(),
            ));
        }
        let authorization = if self.basic {
            Some(basic_header(&self.client_id, &self.secret))
        } else {
            fields.push((name("client_id", "clientId").into(), self.client_id.clone()));
            fields.push((
                name("client_secret", "clientSecret").into(),
                self.secret.clone(),
            ));
            None
        };
        let (content_type, body) = encode_fields(self.json, &fields);
        (content_type, authorization, body)
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn fuzz_any_introspection_or_revocation_request_is_parsed_or_refused_with_an_rfc_error(
        content_type in content_type(),
        authorization in authorization(),
        body in body(QUERY),
    ) {
        let parsed = TokenQuery::parse(content_type.as_deref(), authorization.as_deref(), &body);
        if let Err(error) = parsed {
            assert_rfc_error(&error, &QUERY_ERRORS, &[])?;
        }
    }

    #[test]
    fn fuzz_query_fields_of_any_size_or_count_are_taken_as_sent_or_refused_with_an_rfc_error(
        json in any::<bool>(),
        fields in query_fields(),
        authorization in authorization(),
    ) {
        let (content_type, body) = encode_fields(json, &fields);
        match TokenQuery::parse(Some(content_type), authorization.as_deref(), &body) {
            Ok(query) => {
                // What was accepted is what was sent.
                let sent = |names: &[&str], value: &str| {
                    fields.iter().any(|(k, v)| names.contains(&k.as_str()) && v == value)
                };
                match query.token() {
                    Ok(token) => prop_assert!(sent(&["token"], token.expose())),
                    // None sent, or only empty ones: asked for once the client is authenticated.
                    Err(error) => prop_assert!(matches!(error, OAuthError::InvalidRequest(_))),
                }
                prop_assert!(query.client.used_basic || sent(&["client_id", "clientId"], &query.client.id));
            }
            Err(error) => {
                let values: Vec<&str> = fields
                    .iter()
                    .map(|(_, v)| v.as_str())
                    .filter(|v| *v != QUERY.word)
                    .collect();
                assert_rfc_error(&error, &QUERY_ERRORS, &values)?;
            }
        }
    }

    #[test]
    fn fuzz_every_well_formed_introspection_or_revocation_request_is_accepted_with_its_values(
        query in well_formed(),
    ) {
        let (content_type, authorization, body) = query.encode();
        let parsed = TokenQuery::parse(Some(content_type), authorization.as_deref(), &body);
        let parsed = parsed.map_err(|e| TestCaseError::fail(format!("{e}")))?;
        prop_assert_eq!(&parsed.client.id, &query.client_id);
        prop_assert_eq!(parsed.client.secret.expose(), query.secret.as_str());
        prop_assert_eq!(parsed.client.used_basic, query.basic);
        prop_assert_eq!(parsed.token().map(|t| t.expose()).ok(), Some(query.token.as_str()));
    }
}
