//! Parse, don't validate: the raw body and headers of a token request become a typed
//! [`TokenRequest`] or an RFC 6749 error, here and nowhere else.

use std::borrow::Cow;

use serde::Deserialize;

use super::basic::{self, Authorization};
use super::error::OAuthError;
use super::secret::Sensitive;

const MAX_CLIENT_ID: usize = 256;
/// The longest client secret a request may send (and the registry hold).
pub const MAX_SECRET: usize = 512;
const MAX_CODE: usize = 512;
const MAX_REDIRECT_URI: usize = 2048;

/// A well-formed authorization-code token request.
#[derive(Debug)]
pub struct TokenRequest {
    pub client: ClientCredentials,
    pub code: Sensitive,
    pub redirect_uri: String,
    pub code_verifier: Option<Sensitive>,
}

/// The credentials a client presented, and how.
#[derive(Debug)]
pub struct ClientCredentials {
    pub id: String,
    pub secret: Sensitive,
    /// Whether the credentials came in HTTP Basic (else in the body).
    pub used_basic: bool,
}

/// The body's fields, under their seed (snake_case) and reference-client (camelCase) names.
/// Unknown fields are ignored (RFC 6749 §3.2); a field given twice is an error.
#[derive(Deserialize, Default)]
struct RawParams<'a> {
    #[serde(borrow, default, alias = "grantType")]
    grant_type: Option<Cow<'a, str>>,
    #[serde(borrow, default, alias = "clientId")]
    client_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, alias = "clientSecret")]
    client_secret: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    code: Option<Cow<'a, str>>,
    #[serde(borrow, default, alias = "redirectUri")]
    redirect_uri: Option<Cow<'a, str>>,
    #[serde(borrow, default, alias = "codeVerifier")]
    code_verifier: Option<Cow<'a, str>>,
}

const FIELDS: [&str; 11] = [
    "grant_type",
    "grantType",
    "client_id",
    "clientId",
    "client_secret",
    "clientSecret",
    "code",
    "redirect_uri",
    "redirectUri",
    "code_verifier",
    "codeVerifier",
];

/// The body formats the endpoint accepts.
#[derive(Clone, Copy)]
enum BodyFormat {
    Json,
    Form,
}

impl TokenRequest {
    /// Builds a request from the `Content-Type` and `Authorization` headers and the body.
    pub fn parse(
        content_type: Option<&str>,
        authorization: Option<&str>,
        body: &[u8],
    ) -> Result<Self, OAuthError> {
        let params: RawParams<'_> = parse_body(content_type, body, &FIELDS)?;
        let grant_type = present(params.grant_type);
        if grant_type.is_some_and(|g| g != "authorization_code") {
            return Err(OAuthError::UnsupportedGrantType);
        }
        let client = credentials(
            authorization,
            present(params.client_id),
            present(params.client_secret),
        )?;
        let code = required(params.code, "code", MAX_CODE)?;
        if code.chars().any(char::is_control) {
            return Err(OAuthError::invalid_request(
                "code contains control characters",
            ));
        }
        let redirect_uri = required(params.redirect_uri, "redirect_uri", MAX_REDIRECT_URI)?;
        let code_verifier = present(params.code_verifier)
            .map(|v| check_verifier(&v).map(|()| Sensitive::new(v)))
            .transpose()?;
        Ok(Self {
            client,
            code: Sensitive::new(code),
            redirect_uri: redirect_uri.into_owned(),
            code_verifier,
        })
    }
}

/// The body as `T`, JSON or form by `Content-Type`; `fields` are the names `T` reads, so that
/// errors may name them.
pub(super) fn parse_body<'a, T: Deserialize<'a>>(
    content_type: Option<&str>,
    body: &'a [u8],
    fields: &[&'static str],
) -> Result<T, OAuthError> {
    let format = body_format(content_type)?;
    if let Some(charset) = declared_charset(content_type)
        && !charset.eq_ignore_ascii_case("utf-8")
    {
        check_ascii_in_another_charset(charset, body, format)?;
    }
    match format {
        BodyFormat::Json => parse_json(body, fields),
        BodyFormat::Form => parse_form(body, fields),
    }
}

/// Charsets that agree with UTF-8 on every ASCII character. Apache HttpClient 4 declares
/// `charset=ISO-8859-1` on every form body unless told otherwise (`UrlEncodedFormEntity`).
const ASCII_SUPERSETS: [&str; 8] = [
    "us-ascii",
    "ascii",
    "iso-8859-1",
    "iso_8859-1",
    "latin1",
    "l1",
    "windows-1252",
    "cp1252",
];

/// Both formats are UTF-8. A body declared in an ASCII superset reads the same in UTF-8 as
/// long as it is ASCII throughout, a form's percent-decoded too (`%E9`); in JSON `%` is just a
/// character (`"…?next=%C3%A9"` is ASCII). Anything else would be misread, so it is refused.
fn check_ascii_in_another_charset(
    charset: &str,
    body: &[u8],
    format: BodyFormat,
) -> Result<(), OAuthError> {
    let superset = ASCII_SUPERSETS
        .iter()
        .any(|s| charset.eq_ignore_ascii_case(s));
    let ascii = match format {
        BodyFormat::Json => body.is_ascii(),
        BodyFormat::Form => percent_encoding::percent_decode(body).all(|b| b.is_ascii()),
    };
    if superset && ascii {
        return Ok(());
    }
    Err(OAuthError::invalid_request(
        "the request body must be UTF-8 (charset=utf-8, or no charset; in an ASCII superset \
         such as ISO-8859-1, only an ASCII body is read)",
    ))
}

/// The `charset` parameter of a `Content-Type`, unquoted.
fn declared_charset(content_type: Option<&str>) -> Option<&str> {
    content_type
        .unwrap_or_default()
        .split(';')
        .skip(1)
        .find_map(|p| {
            let (name, value) = p.split_once('=')?;
            name.trim()
                .eq_ignore_ascii_case("charset")
                .then(|| value.trim().trim_matches('"'))
        })
}

/// Whether `content_type` is a form's (`application/x-www-form-urlencoded`, any parameters).
pub(super) fn is_form(content_type: Option<&str>) -> bool {
    media_type(content_type).eq_ignore_ascii_case("application/x-www-form-urlencoded")
}

/// `content_type` without its parameters.
fn media_type(content_type: Option<&str>) -> &str {
    content_type
        .unwrap_or_default()
        .split(';')
        .next()
        .map(str::trim)
        .unwrap_or_default()
}

fn body_format(content_type: Option<&str>) -> Result<BodyFormat, OAuthError> {
    if media_type(content_type).eq_ignore_ascii_case("application/json") {
        Ok(BodyFormat::Json)
    } else if is_form(content_type) {
        Ok(BodyFormat::Form)
    } else {
        Err(OAuthError::invalid_request(
            "Content-Type must be application/json or application/x-www-form-urlencoded",
        ))
    }
}

fn parse_json<'a, T: Deserialize<'a>>(
    body: &'a [u8],
    fields: &[&'static str],
) -> Result<T, OAuthError> {
    // serde's derived struct also reads a JSON array, by position: only an object will do.
    if body.trim_ascii_start().first() != Some(&b'{') {
        return Err(OAuthError::invalid_request(
            if serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok() {
                "request body must be a JSON object"
            } else {
                "request body is not valid JSON"
            },
        ));
    }
    // JSON is UTF-8 (RFC 8259 §8.1); serde_json checks only the strings it keeps.
    let text = std::str::from_utf8(body)
        .map_err(|_| OAuthError::invalid_request("request body is not valid JSON: not UTF-8"))?;
    serde_json::from_str(text)
        .map_err(|e| OAuthError::invalid_request(explain_json(body, &e, fields)))
}

/// Names what is wrong with a JSON body without quoting any value from it (serde's own messages
/// quote values, and the value might be a secret).
fn explain_json(
    body: &[u8],
    error: &serde_json::Error,
    fields: &[&'static str],
) -> Cow<'static, str> {
    if error.is_syntax() || error.is_eof() {
        // Where, never what: serde_json's own message may quote the value.
        return format!(
            "request body is not valid JSON (line {}, column {})",
            error.line(),
            error.column()
        )
        .into();
    }
    let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(body) else {
        return "request body must be a JSON object".into();
    };
    if let Some(field) = fields
        .iter()
        .find(|f| map.get(**f).is_some_and(|v| !v.is_string() && !v.is_null()))
    {
        return format!("`{field}` must be a string").into();
    }
    duplicate_field(error, fields)
        .unwrap_or_else(|| "request body has a field of the wrong type".into())
}

fn parse_form<'a, T: Deserialize<'a>>(
    body: &'a [u8],
    fields: &[&'static str],
) -> Result<T, OAuthError> {
    if !is_utf8_form(body) {
        return Err(OAuthError::invalid_request(
            "request body is not valid application/x-www-form-urlencoded UTF-8",
        ));
    }
    serde_urlencoded::from_bytes(body).map_err(|e| {
        OAuthError::invalid_request(duplicate_field(&e, fields).unwrap_or_else(|| {
            "request body is not valid application/x-www-form-urlencoded".into()
        }))
    })
}

/// serde_urlencoded replaces bytes that are not UTF-8 with U+FFFD; refuse them instead, raw or
/// percent-encoded (RFC 6749 Appendix B: UTF-8).
fn is_utf8_form(body: &[u8]) -> bool {
    std::str::from_utf8(body).is_ok_and(|text| {
        text.split(['&', '=']).all(|component| {
            percent_encoding::percent_decode_str(component)
                .decode_utf8()
                .is_ok()
        })
    })
}

/// RFC 6749 §3.2: parameters must not be included more than once. serde's message for that case
/// names the field and nothing else, so it can be passed on.
fn duplicate_field(
    error: &dyn std::fmt::Display,
    fields: &[&'static str],
) -> Option<Cow<'static, str>> {
    let message = error.to_string();
    let start = message.find("duplicate field `")?;
    let rest = &message[start + "duplicate field `".len()..];
    let field = &rest[..rest.find('`')?];
    fields
        .contains(&field)
        .then(|| format!("`{field}` is given more than once").into())
}

/// RFC 6749: a parameter sent without a value is treated as omitted.
pub(super) fn present(value: Option<Cow<'_, str>>) -> Option<Cow<'_, str>> {
    value.filter(|v| !v.is_empty())
}

pub(super) fn required<'a>(
    value: Option<Cow<'a, str>>,
    name: &'static str,
    max: usize,
) -> Result<Cow<'a, str>, OAuthError> {
    let value =
        present(value).ok_or_else(|| OAuthError::invalid_request(format!("{name} is required")))?;
    if value.len() > max {
        return Err(OAuthError::invalid_request(format!(
            "{name} is longer than {max} bytes"
        )));
    }
    Ok(value)
}

/// Client authentication: HTTP Basic or `client_id` + `client_secret` in the body, never both.
pub(super) fn credentials(
    authorization: Option<&str>,
    body_id: Option<Cow<'_, str>>,
    body_secret: Option<Cow<'_, str>>,
) -> Result<ClientCredentials, OAuthError> {
    let basic = match authorization.map(basic::parse) {
        None => None,
        Some(Ok(Authorization::Basic { id, secret })) => Some((id, secret)),
        Some(Ok(Authorization::OtherScheme)) => {
            return Err(OAuthError::InvalidClient(
                "the Authorization header must use the Basic scheme for client authentication"
                    .into(),
            ));
        }
        Some(Err(malformed)) => {
            return Err(OAuthError::InvalidClient(malformed.0.into()));
        }
    };
    let (id, secret, used_basic) = match basic {
        Some((id, secret)) => {
            if body_secret.is_some() {
                return Err(OAuthError::invalid_request(
                    "use one client authentication method: HTTP Basic or client_secret in the body, not both",
                ));
            }
            if body_id.is_some_and(|body_id| body_id != id) {
                return Err(OAuthError::invalid_request(
                    "client_id in the body differs from the one in the Authorization header",
                ));
            }
            (id, secret, true)
        }
        None => {
            // RFC 6749 §5.2: "no client authentication included" is invalid_client.
            let id = present(body_id).ok_or_else(|| {
                OAuthError::InvalidClient(
                    "client authentication is required: HTTP Basic, or client_id and \
                     client_secret in the body"
                        .into(),
                )
            })?;
            let secret = body_secret.ok_or_else(|| {
                OAuthError::InvalidClient(
                    "client_secret is required, in the body or with HTTP Basic".into(),
                )
            })?;
            (id.into_owned(), Sensitive::new(secret), false)
        }
    };
    // A wrong secret like any other (RFC 6749 §5.2; with Basic, 401 and its challenge), told
    // before any hashing: the registry holds no secret this long.
    if secret.expose().len() > MAX_SECRET {
        return Err(OAuthError::authentication_failed());
    }
    if !is_client_id(&id) {
        // Through the Authorization header it is an attempt at authentication that failed, and
        // RFC 6749 §5.2 wants a 401 with a challenge for those; in the body, a malformed field.
        return Err(if used_basic {
            OAuthError::authentication_failed()
        } else if id.len() > MAX_CLIENT_ID {
            OAuthError::invalid_request("client_id is too long")
        } else {
            OAuthError::invalid_request(
                "client_id must be printable ASCII (RFC 6749 VSCHAR: %x20-7E)",
            )
        });
    }
    Ok(ClientCredentials {
        id,
        secret,
        used_basic,
    })
}

/// RFC 6749 Appendix A.1: `client-id = *VSCHAR`, `VSCHAR = %x20-7E`. Refusing anything else at
/// the parser keeps control characters (a forged log line) from travelling any further.
pub fn is_client_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_CLIENT_ID && id.bytes().all(|b| (0x20..=0x7e).contains(&b))
}

/// RFC 7636 §4.1: 43 to 128 characters of `[A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~"`.
fn check_verifier(verifier: &str) -> Result<(), OAuthError> {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    if well_formed {
        Ok(())
    } else {
        Err(OAuthError::invalid_request(
            "code_verifier must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~ (RFC 7636)",
        ))
    }
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
