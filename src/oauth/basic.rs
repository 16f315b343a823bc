//! HTTP Basic client credentials as RFC 6749 §2.3.1 defines them: the id and the secret are
//! form-urlencoded before they are joined with `:` and base64-encoded.

use std::borrow::Cow;

use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use super::secret::Sensitive;

/// Standard alphabet; padding optional because some clients leave it out.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// What an `Authorization` header carries, as far as the token endpoint cares.
#[derive(Debug)]
pub enum Authorization {
    Basic {
        id: String,
        /// Held as `Sensitive` from the moment it is decoded, so no `Debug` prints it.
        secret: Sensitive,
    },
    /// A scheme other than Basic (for example Bearer): not a client authentication method here.
    OtherScheme,
}

/// Why a Basic header could not be read; the text is safe to show to the client.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MalformedBasic(pub &'static str);

/// Parses an `Authorization` header value.
pub fn parse(header: &str) -> Result<Authorization, MalformedBasic> {
    let header = header.trim();
    if header.is_empty() {
        return Err(MalformedBasic("the Authorization header is empty"));
    }
    let scheme_end = header.find(|c: char| c.is_ascii_whitespace());
    let (scheme, rest) = header.split_at(scheme_end.unwrap_or(header.len()));
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(Authorization::OtherScheme);
    }
    // RFC 9110 §11.4: the scheme and the credentials are separated by spaces, nothing else.
    if !rest.is_empty() && !rest.starts_with(' ') {
        return Err(MalformedBasic(
            "Basic and the credentials must be separated by a space",
        ));
    }
    let decoded = LENIENT
        .decode(rest.trim())
        .map_err(|_| MalformedBasic("Basic credentials are not valid base64"))?;
    let decoded = String::from_utf8(decoded)
        .map_err(|_| MalformedBasic("Basic credentials are not valid UTF-8"))?;
    let (id, secret) = decoded.split_once(':').ok_or(MalformedBasic(
        "Basic credentials must be client_id:client_secret",
    ))?;
    let id = form_decode(id)?;
    let secret = form_decode(secret)?;
    if id.is_empty() || secret.is_empty() {
        return Err(MalformedBasic(
            "Basic credentials need a client_id and a client_secret",
        ));
    }
    Ok(Authorization::Basic {
        id,
        secret: Sensitive::new(secret),
    })
}

/// `application/x-www-form-urlencoded` decoding of one component (`+` is a space).
fn form_decode(component: &str) -> Result<String, MalformedBasic> {
    let spaced: Cow<'_, str> = if component.contains('+') {
        Cow::Owned(component.replace('+', " "))
    } else {
        Cow::Borrowed(component)
    };
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .map(Cow::into_owned)
        .map_err(|_| MalformedBasic("Basic credentials are not valid UTF-8 once decoded"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;

    fn header(raw: &str) -> String {
        format!("Basic {}", STANDARD.encode(raw))
    }

    /// The id and the exposed secret of a Basic header that parses.
    fn basic(header: &str) -> Option<(String, String)> {
        match parse(header) {
            Ok(Authorization::Basic { id, secret }) => Some((id, secret.expose().to_owned())),
            _ => None,
        }
    }

    fn pair(id: &str, secret: &str) -> Option<(String, String)> {
        Some((id.to_owned(), secret.to_owned()))
    }

    #[test]
    fn plain_credentials_are_split_at_the_first_colon() {
        assert_eq!(basic(&header("app:s3cret")), pair("app", "s3cret"));
    }

    /// Clients that do not form-encode (`oauth::BASIC_WITHOUT_ENCODING`) send a
    /// secret's `:` as it is: the first colon ends the id, which cannot hold one.
    #[test]
    fn an_unencoded_colon_stays_in_the_secret() {
        assert_eq!(basic(&header("app:s3:cr:et")), pair("app", "s3:cr:et"));
    }

    #[test]
    fn components_are_form_url_decoded() {
        // id "my app", secret "a:b%c+d" encoded as RFC 6749 §2.3.1 requires.
        let encoded = header("my+app:a%3Ab%25c%2Bd");
        assert_eq!(basic(&encoded), pair("my app", "a:b%c+d"));
    }

    #[test]
    fn scheme_is_case_insensitive_and_padding_optional() {
        let unpadded = STANDARD.encode("ab:c").trim_end_matches('=').to_owned();
        assert_eq!(basic(&format!("bAsIc {unpadded}")), pair("ab", "c"));
    }

    #[test]
    fn an_empty_header_or_one_without_a_space_after_basic_is_malformed() {
        let credentials = STANDARD.encode("app:s3cret");
        for header in ["", "  ", &format!("Basic\t{credentials}")] {
            assert!(parse(header).is_err(), "{header:?}");
        }
        assert_eq!(
            basic(&format!("Basic  {credentials}")),
            pair("app", "s3cret")
        );
    }

    #[test]
    fn other_schemes_are_reported_as_such() {
        assert!(matches!(
            parse("Bearer abc"),
            Ok(Authorization::OtherScheme)
        ));
    }

    #[test]
    fn debug_output_does_not_show_the_secret() {
        let parsed = parse(&header("app:s3cret-Hk29")).unwrap();
        let printed = format!("{parsed:?}");
        assert!(printed.contains("app"), "{printed}");
        assert!(!printed.contains("s3cret-Hk29"), "{printed}");
    }

    #[test]
    fn malformed_credentials_are_rejected() {
        for bad in [
            "Basic !!!".to_owned(),
            header("no-colon"),
            header(":secret"),
            header("id:"),
            format!("Basic {}", STANDARD.encode([0xff, b':', b'a'])),
            header("id:%ff"),
        ] {
            assert!(parse(&bad).is_err(), "{bad}");
        }
    }
}
