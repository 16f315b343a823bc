use super::*;

#[test]
fn redis_urls_keep_everything_but_the_password() {
    let cases = [
        ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
        (
            "redis://user:pw@host:6379/2",
            "redis://user:***@host:6379/2",
        ),
        ("rediss://:pw@host:6380", "rediss://:***@host:6380"),
        (
            "redis://default:p@ss@10.0.0.1:7000/0",
            "redis://default:***@10.0.0.1:7000/0",
        ),
        ("redis://default:p/ss@10.0.0.1:7000/0", "redis://***"),
        ("redis://only-a-password@host", "redis://***@host"),
        (
            "redis://user:pw@host/0?protocol=resp3",
            "redis://user:***@host/0?protocol=resp3",
        ),
        (
            "unix:///run/redis.sock?db=1&pass=pw",
            "unix:///run/redis.sock?db=1&pass=***",
        ),
        (
            "redis+unix:///run/redis.sock?password=pw&user=u",
            "redis+unix:///run/redis.sock?password=***&user=u",
        ),
        // The redis crate reads the keys percent-decoded.
        ("unix:///s?pa%73s=pw", "unix:///s?pa%73s=***"),
        ("not a url pw", "***"),
    ];
    for (url, shown) in cases {
        assert_eq!(redis_url(url), shown, "{url}");
    }
}

#[test]
fn a_password_never_survives_redaction() {
    for url in [
        "redis://u:Secret1@h",
        "redis://:Secret1@h:1/0",
        "redis://Secret1@h",
        "redis://u:Sec@ret1@h",
        "unix:///s?pass=Secret1",
        "unix:///s?pass=Sec@ret1",
        "redis://u:Sec/ret1@h:1",
        "redis://u:Sec?ret1@h:1",
        "redis://u:Sec#ret1@h:1",
        "redis+unix:///s?db=0&password=Secret1",
        "unix:///s?%70assword=Secret1",
        // URL parsers drop tabs and line breaks: to the redis crate these are `pass=`.
        "redis+unix:///s?pa\tss=Secret1",
        "unix:///s?pass\n=Secret1",
        "redis://u:Secret1\r@h",
    ] {
        let shown = redis_url(url);
        assert!(
            !shown.contains("Secret1") && !shown.contains("ret1"),
            "{url}: {shown}"
        );
    }
}

#[test]
fn serde_messages_lose_the_values_they_quote() {
    let cases = [
        (
            "invalid type: integer `8675309`, expected a string",
            "invalid type: integer, expected a string",
        ),
        (
            r#"invalid type: string "hunter2", expected a sequence"#,
            "invalid type: string, expected a sequence",
        ),
        (
            r#"invalid value: string "a, expected b", expected u64"#,
            "invalid value: string, expected u64",
        ),
        (
            "unknown variant `hunter2`, expected one of `standalone`, `sentinel`, `cluster`",
            "unknown variant, expected one of `standalone`, `sentinel`, `cluster`",
        ),
        ("missing field `secret`", "missing field `secret`"),
        (
            "unknown field `secrett`, expected one of `id`, `secret`",
            "unknown field `secrett`, expected one of `id`, `secret`",
        ),
        // A key that is no field name of ours may be a value written where its key belongs.
        (
            "unknown field `plain:hunter2`, expected one of `id`, `secret`",
            "unknown field, expected one of `id`, `secret`",
        ),
        ("unknown field `hunter2-hunter2`", "unknown field"),
        (r#"oops near "hunter2" here"#, r#"oops near "…" here"#),
    ];
    for (message, shown) in cases {
        assert_eq!(serde_message(message), shown, "{message}");
    }
}

#[test]
fn json_errors_give_class_message_and_position_without_values() {
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Record {
        username: String,
    }
    let cases = [
        (
            r#"{"username": 8675309}"#,
            "data error: invalid type: integer, expected a string at line 1, column 20",
        ),
        (
            r#"{"username": "hunter2" "#,
            "unexpected end: EOF while parsing an object at line 1, column 23",
        ),
        (
            "{\"username\": \"hunter2\" x}",
            "syntax error: expected `,` or `}` at line 1, column 24",
        ),
        (
            r#"{"name": "hunter2"}"#,
            "data error: missing field `username` at line 1, column 19",
        ),
    ];
    for (text, shown) in cases {
        let error = serde_json::from_str::<Record>(text).unwrap_err();
        assert_eq!(json_error(&error), shown, "{text}");
    }
}

#[test]
fn toml_errors_give_line_column_and_message_never_the_line() {
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Entry {
        id: String,
        secret: String,
    }
    let cases = [
        // Syntax: toml's Display would print `secret = "hunter2` itself.
        ("id = \"a\"\nsecret = \"hunter2\n", 2),
        // Wrong type: serde's message would quote it.
        ("id = \"a\"\nsecret = 8675309\n", 2),
        ("id = \"a\"\n  secret = [\"hunter2\"]\n", 2),
    ];
    for (text, line) in cases {
        let error = toml::from_str::<Entry>(text).unwrap_err();
        let shown = toml_error(&error, Some(text));
        assert!(
            shown.starts_with(&format!("line {line}, column ")),
            "{shown}"
        );
        for value in ["hunter2", "8675309"] {
            assert!(!shown.contains(value), "{shown}");
        }
        assert!(!toml_error(&error, None).contains("hunter2"), "{shown}");
    }
}

#[test]
fn positions_are_one_based_and_count_characters() {
    let text = "ab\ncdé\nf";
    assert_eq!(line_and_column(text, 0), (1, 1));
    assert_eq!(line_and_column(text, 3), (2, 1));
    assert_eq!(line_and_column(text, 7), (2, 4));
    assert_eq!(line_and_column(text, 8), (3, 1));
    assert_eq!(
        line_and_column(text, 99),
        (3, 2),
        "past the end: after the last character"
    );
    assert_eq!(line_and_column(text, 6), (2, 3), "inside é: at é");
}

#[test]
fn redis_errors_are_one_line() {
    let parse = "Incompatible type - Parse error at 1\n    Unexpected `84`\n    Unexpected `72`";
    assert_eq!(
        redis_error(&parse),
        "Incompatible type - Parse error at 1 Unexpected `84` Unexpected `72`"
    );
}

#[test]
fn redis_errors_lose_the_arguments_redis_quotes() {
    let quoted = "ResponseError: unknown command 'HELLO', with args beginning with: '3' 'AUTH' \
                  'app' 'pa55word' ";
    assert_eq!(
        redis_error(&quoted),
        "ResponseError: unknown command 'HELLO' (arguments not shown)"
    );
    let plain = "ResponseError: NOSCRIPT No matching script";
    assert_eq!(redis_error(&plain), plain);
}

#[test]
fn a_quote_named_in_backticks_is_kept() {
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Entry {
        secret: String,
    }
    let text = "secret = \"hunter2\n";
    let error = toml::from_str::<Entry>(text).unwrap_err();

    let shown = toml_error(&error, Some(text));

    assert!(shown.ends_with("expected `\"`"), "{shown}");
    assert!(!shown.contains("hunter2"), "{shown}");
    // Around it, quoted values still go.
    assert_eq!(
        serde_message("expected `\"` after \"hunter2\", not `\"`"),
        "expected `\"` after \"…\", not `\"`"
    );
}
