//! The body of a POST to our endpoints: JSON or form by `Content-Type`, UTF-8, each field at
//! most once, and errors that name a field but never quote a value (it may be a secret).

use std::borrow::Cow;
use std::collections::HashMap;

use encoding_rs::{Encoding, UTF_8};
use serde::Deserialize;
use serde::de::{IgnoredAny, MapAccess, SeqAccess};

use super::error::OAuthError;

/// The body formats the endpoint accepts.
#[derive(Clone, Copy)]
enum BodyFormat {
    Json,
    Form,
}

/// The body as `T`, JSON or form by `Content-Type`; `fields` are the names `T` reads, so that
/// errors may name them.
pub(super) fn parse_body<'a, T: Deserialize<'a>>(
    content_type: Option<&str>,
    body: &'a [u8],
    fields: &[&'static str],
) -> Result<T, OAuthError> {
    let format = body_format(content_type)?;
    if let Some(charset) = declared_charset(content_type) {
        check_charset(charset, body, format)?;
    }
    match format {
        BodyFormat::Json => parse_json(body, fields),
        BodyFormat::Form => parse_form(body, fields),
    }
}

/// Both formats are UTF-8; a `charset` is looked up among the labels of the WHATWG Encoding
/// Standard, which browsers and HTTP libraries follow (`utf8` is UTF-8). A body declared in
/// another ASCII-compatible charset reads the same in UTF-8 as long as it is ASCII
/// throughout, a form's percent-decoded too (`%E9`); in JSON `%` is just a character
/// (`"…?next=%C3%A9"` is ASCII). Apache HttpClient 4 declares `ISO-8859-1` on every form
/// (`UrlEncodedFormEntity`), and Java clients in China often `GBK`. Anything else (UTF-16, an
/// unknown label, a non-ASCII body) would be misread, so it is refused.
fn check_charset(charset: &str, body: &[u8], format: BodyFormat) -> Result<(), OAuthError> {
    let readable = match Encoding::for_label(charset.as_bytes()) {
        Some(encoding) if encoding == UTF_8 => true,
        Some(encoding) if encoding.is_ascii_compatible() => match format {
            BodyFormat::Json => body.is_ascii(),
            BodyFormat::Form => percent_encoding::percent_decode(body).all(|b| b.is_ascii()),
        },
        _ => false,
    };
    if readable {
        return Ok(());
    }
    Err(OAuthError::invalid_request(
        "the request body must be UTF-8 (charset=utf-8, or no charset; in an ASCII-compatible \
         charset such as ISO-8859-1 or GBK, only an ASCII body is read)",
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
    let body = without_bom(body);
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
        return not_json(error);
    }
    // An object (`parse_json` saw its `{`), read again to the end: the error stopped the first
    // read, and the rest may not be JSON at all.
    let map: HashMap<String, Shape> = match serde_json::from_slice(body) {
        Ok(map) => map,
        Err(later) => return not_json(&later),
    };
    if let Some(field) = fields
        .iter()
        .find(|f| map.get(**f).is_some_and(|v| *v == Shape::Other))
    {
        return format!("`{field}` must be a string").into();
    }
    duplicate_field(error, fields)
        .unwrap_or_else(|| "request body has a field of the wrong type".into())
}

/// Where, never what: serde_json's own message may quote the value.
fn not_json(error: &serde_json::Error) -> Cow<'static, str> {
    format!(
        "request body is not valid JSON (line {}, column {})",
        error.line(),
        error.column()
    )
    .into()
}

/// A JSON value as far as a field's type goes. Arrays and objects are skipped whole
/// (serde_json's `IgnoredAny` has no depth limit), where a `serde_json::Value` stops at 128
/// levels and would call a valid body with a deep value invalid.
#[derive(PartialEq, Eq)]
enum Shape {
    StringOrNull,
    Other,
}

impl<'de> Deserialize<'de> for Shape {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Shape;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_str<E>(self, _: &str) -> Result<Shape, E> {
                Ok(Shape::StringOrNull)
            }
            fn visit_unit<E>(self) -> Result<Shape, E> {
                Ok(Shape::StringOrNull)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Shape, E> {
                Ok(Shape::Other)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Shape, E> {
                Ok(Shape::Other)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Shape, E> {
                Ok(Shape::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Shape, E> {
                Ok(Shape::Other)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Shape, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Shape::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Shape, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Shape::Other)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// RFC 8259 §8.1: a parser may ignore a byte order mark, and some writers still add one
/// (.NET Framework's `Encoding.UTF8`), to a form as well: read as part of the first name, it
/// would hide that field and fail the request far from the mistake.
fn without_bom(body: &[u8]) -> &[u8] {
    body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body)
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
    // Read as a form, a JSON object is one unknown field, and the request would fail later for
    // want of its fields (401 for the client's credentials), far from the mistake. Java's
    // `HttpURLConnection` sends every body as a form unless told otherwise.
    if without_bom(body).trim_ascii_start().starts_with(b"{") {
        return Err(OAuthError::invalid_request(
            "request body is JSON but Content-Type is application/x-www-form-urlencoded: send \
             Content-Type: application/json",
        ));
    }
    serde_urlencoded::from_bytes(without_bom(body)).map_err(|e| {
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
