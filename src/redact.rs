//! Safe-to-log forms of error messages and URLs: what went wrong and where, never the value it
//! went wrong with. Parsers quote what they choke on (serde: `invalid type: string "…"`; toml
//! even prints the whole offending line), and that value may be a client secret, a code, a
//! user's data or a password in a URL.

/// serde's message without the value it may quote: `invalid type: integer `123`, expected a
/// string` becomes `invalid type: integer, expected a string`; names of fields (`missing field
/// `id``) stay, they come from our types or are keys, not values. An unknown field is a key
/// the file or body has, which may be anything (a secret written where its key belongs): named
/// only when it is a word of our fields' alphabet.
pub fn serde_message(message: &str) -> String {
    if let Some(rest) = message.strip_prefix("unknown field `")
        && let Some((name, after)) = rest.split_once('`')
        && !((1..=64).contains(&name.len()) && is_field_name(name))
    {
        return format!("unknown field{after}");
    }
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(prefix) {
            // `<what was found>, expected <what we wanted>`; only the first part holds a value,
            // and the value may itself contain ", expected ", hence the last one.
            return match rest.rsplit_once(", expected ") {
                Some((found, expected)) => {
                    let kind = found.split(['`', '"', '\'']).next().unwrap_or("").trim();
                    format!("{prefix}{kind}, expected {expected}")
                }
                None => prefix.trim_end_matches([':', ' ']).to_owned(),
            };
        }
    }
    if message.starts_with("unknown variant ") {
        return match message.rsplit_once(", expected ") {
            Some((_, expected)) => format!("unknown variant, expected {expected}"),
            None => "unknown variant".to_owned(),
        };
    }
    without_double_quoted(message)
}

/// Letters, digits and `_`: the alphabet our settings and fields are named with. A name of
/// another is a key someone wrote, which may be a value in the wrong place.
pub(crate) fn is_field_name(name: &str) -> bool {
    name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Replaces every `"…"` with `"…"` (a quoted string is a value); backticks stay (names), and
/// so does a quote that is one (toml's ``expected `"` ``).
fn without_double_quoted(message: &str) -> String {
    const NAMED_QUOTE: &str = "`\"`";
    if message.contains(NAMED_QUOTE) {
        let parts: Vec<String> = message
            .split(NAMED_QUOTE)
            .map(without_double_quoted)
            .collect();
        return parts.join(NAMED_QUOTE);
    }
    let mut out = String::with_capacity(message.len());
    let mut parts = message.split('"');
    out.push_str(parts.next().unwrap_or(""));
    let mut inside = false;
    for part in parts {
        inside = !inside;
        out.push('"');
        out.push_str(if inside { "…" } else { part });
    }
    out
}

/// A serde_json error as its class (syntax, data, end of input), serde's message without values
/// and the position: `data error: invalid type: integer, expected a string at line 1, column 9`.
pub fn json_error(error: &serde_json::Error) -> String {
    use serde_json::error::Category;

    let class = match error.classify() {
        Category::Io => "I/O error",
        Category::Syntax => "syntax error",
        Category::Data => "data error",
        Category::Eof => "unexpected end",
    };
    let message = error.to_string();
    // serde_json's Display appends the position to the message.
    let position = format!(" at line {} column {}", error.line(), error.column());
    let message = message.strip_suffix(&position).unwrap_or(&message);
    format!(
        "{class}: {} at line {}, column {}",
        serde_message(message),
        error.line(),
        error.column()
    )
}

/// A toml error as its message without values and its line and column in `text` when known;
/// never toml's own Display, which prints the offending line of the file.
pub fn toml_error(error: &toml::de::Error, text: Option<&str>) -> String {
    let message = serde_message(error.message().trim_end());
    match error.span().zip(text) {
        Some((span, text)) => {
            let (line, column) = line_and_column(text, span.start);
            format!("line {line}, column {column}: {message}")
        }
        None => message,
    }
}

/// One-based line and column (in characters) of byte `offset` in `text`.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = before.matches('\n').count() + 1;
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// A Redis error (or a pool's, which may hold one) without the arguments Redis quotes back:
/// `ERR unknown command 'EVALSHA', with args beginning with: '<sha>' '2' 'sso:code:<the code>'
/// …` (a Sentinel's port given as `redis.url`, a renamed command) would put a live code in the
/// log, and an unknown `HELLO 3 AUTH <user> <password>` the password. On one line: the redis
/// crate's parse errors (something else answering on the port) run over several, which split
/// a log line.
pub fn redis_error(error: &dyn std::fmt::Display) -> String {
    let text = error.to_string();
    let text = match text.contains(['\n', '\r']) {
        true => text.split_whitespace().collect::<Vec<_>>().join(" "),
        false => text,
    };
    match text.find("with args beginning with") {
        Some(at) => format!(
            "{} (arguments not shown)",
            text[..at].trim_end_matches([' ', ','])
        ),
        None => text,
    }
}

/// A Redis URL with its password masked: `redis://user:***@host:6379/0`. The user part is what
/// comes before the last `@` of the authority, as URL parsers read it; without a `:` it is
/// masked whole, since some write the password there. `pass=` and `password=` query parameters
/// (the unix-socket forms) are masked too. A URL with an `@` past its authority (a `/`, `?` or
/// `#` in a password) is not what it seems: nothing of it after the scheme is shown; nor of one
/// with a control character, which URL parsers drop (`pa<TAB>ss=` is `pass=` to the redis crate).
pub fn redis_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "***".to_owned();
    };
    let (authority, after) = rest.split_at(rest.find(['/', '?', '#']).unwrap_or(rest.len()));
    if after.contains('@') || url.contains(char::is_control) {
        return format!("{scheme}://***");
    }
    let mut shown = format!("{scheme}://");
    match authority.rfind('@') {
        Some(at) => {
            match authority[..at].split_once(':') {
                Some((user, _)) => shown.push_str(&format!("{user}:***@")),
                None => shown.push_str("***@"),
            }
            shown.push_str(&authority[at + 1..]);
        }
        None => shown.push_str(authority),
    }
    let (path, query) = match after.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (after, None),
    };
    shown.push_str(path);
    if let Some(query) = query {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if is_password_key(key) => format!("{key}=***"),
                _ => pair.to_owned(),
            })
            .collect();
        shown.push('?');
        shown.push_str(&pairs.join("&"));
    }
    shown
}

/// The redis crate reads the unix-socket parameters percent-decoded: `pa%73s` is `pass` to it.
fn is_password_key(key: &str) -> bool {
    let key = percent_encoding::percent_decode_str(key).decode_utf8_lossy();
    key == "pass" || key == "password"
}

#[cfg(test)]
#[path = "redact_tests.rs"]
mod tests;
