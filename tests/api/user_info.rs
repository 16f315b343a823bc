//! User info (`GET` or `POST /identity/sso/oauth2/user`): the profile of the code record, only
//! the fields the token's scopes allow, and RFC 6750 answers for anything else.

use serde_json::json;
use sso_token::userinfo::Profile;

use crate::helpers::{APP, Answer, code_record, spawn_app, spawn_app_with, unix_now};
use crate::resource::Planted;

/// The path as README lists it, not the crate's constant: a path the code moved must fail here.
const USER_INFO: &str = "/identity/sso/oauth2/user";

#[tokio::test]
async fn user_info_shows_only_the_fields_the_scopes_allow() {
    // Each case's scopes alone: the shipped base scope would add `user:basic` to the second.
    let app = spawn_app_with(|s| s.token.base_scopes.clear()).await;
    let cases = [
        (
            vec!["user:basic"],
            vec!["sub", "id", "username", "name", "avatar"],
        ),
        (vec!["user:contract"], vec!["sub", "id", "email", "mobile"]),
        (
            vec!["user:contract", "user:basic"],
            vec!["sub", "id", "username", "name", "avatar", "email", "mobile"],
        ),
    ];
    for (scopes, fields) in cases {
        let mut record = code_record(&APP);
        record.scope = scopes.iter().map(|s| (*s).to_owned()).collect();
        record.profile = Profile {
            name: Some("Zhang San".into()),
            avatar: Some("https://cdn.example/zs.png".into()),
            email: Some("zs@example.com".into()),
            mobile: Some("13800000000".into()),
        };
        let token = app.token_of(&APP, &record).await;

        let answer = app.user_info(&token).await;

        assert_eq!(answer.status, 200, "{scopes:?}: {}", answer.text);
        assert_eq!(answer.header("cache-control"), Some("no-store"));
        let every = json!({
            "sub": record.account_id, "id": record.account_id, "username": record.username,
            "name": "Zhang San",
            "avatar": "https://cdn.example/zs.png", "email": "zs@example.com",
            "mobile": "13800000000",
        });
        let expected: serde_json::Map<_, _> = fields
            .iter()
            .map(|f| ((*f).to_owned(), every[*f].clone()))
            .collect();
        assert_eq!(answer.json, json!(expected), "{scopes:?}");
    }
}

#[tokio::test]
async fn profile_fields_the_record_lacks_are_left_out() {
    let app = spawn_app().await;
    let mut record = code_record(&APP);
    record.scope = vec!["user:basic".into(), "user:contract".into()];
    record.profile.email = Some("only@example.com".into());
    let token = app.token_of(&APP, &record).await;

    let answer = app.user_info(&token).await;

    assert_eq!(
        answer.json,
        json!({"sub": record.account_id, "id": record.account_id,
               "username": record.username, "email": "only@example.com"})
    );
}

#[tokio::test]
async fn a_token_with_neither_user_scope_gets_403_insufficient_scope() {
    let app = spawn_app().await;
    let now = unix_now();
    let token = app
        .plant_token(&Planted {
            client: &APP,
            scopes: &["openid"],
            iat: now,
            exp: now + 600,
            recorded: true,
        })
        .await;

    let answer = app.user_info(&token).await;

    assert_eq!(answer.status, 403, "{}", answer.text);
    assert_eq!(answer.error(), "insufficient_scope");
    answer.assert_error_shape("insufficient scope");
    // The scope that would do, the one that shows the user: README's challenge, word for word.
    assert_eq!(
        answer.header("www-authenticate"),
        Some(r#"Bearer realm="sso-token", error="insufficient_scope", scope="user:basic""#)
    );
}

#[tokio::test]
async fn a_request_without_credentials_gets_401_and_a_bare_challenge_without_error_code() {
    let app = spawn_app().await;
    // RFC 6750 §3.1: no authentication information, or another method than Bearer.
    for (why, header) in [
        ("no header", None),
        ("another scheme", Some("Basic YXBwOnNlY3JldA==")),
    ] {
        let mut request = app.http.get(app.url(USER_INFO));
        if let Some(header) = header {
            request = request.header("Authorization", header);
        }

        let answer = Answer::of(request.send().await.unwrap()).await;

        assert_bare_challenge(&answer, why);
        assert_eq!(answer.header("cache-control"), Some("no-store"), "{why}");
    }
}

#[tokio::test]
async fn a_malformed_authorization_header_gets_400_invalid_request_challenged() {
    let app = spawn_app().await;
    let cases: [(&str, &[&str]); 7] = [
        ("an empty header", &[""]),
        ("no token", &["Bearer"]),
        ("an empty token", &["Bearer "]),
        ("two tokens", &["Bearer abc def"]),
        ("bad characters", &["Bearer a,b"]),
        ("not a b64token", &["Bearer ==="]),
        ("two headers", &["Bearer abc", "Bearer def"]),
    ];
    for (why, headers) in cases {
        let mut request = app.http.get(app.url(USER_INFO));
        for header in headers {
            request = request.header("Authorization", *header);
        }

        let answer = Answer::of(request.send().await.expect("sent")).await;

        assert_eq!(
            (answer.status, answer.error()),
            (400, "invalid_request"),
            "{why}"
        );
        answer.assert_error_shape(why);
        assert_eq!(
            answer.header("www-authenticate"),
            Some(r#"Bearer realm="sso-token", error="invalid_request""#),
            "{why}"
        );
    }
}

/// A token that is not live, whether it never was (unsigned) or was revoked: 401
/// `invalid_token`, challenged with that error (RFC 6750 §3.1).
#[tokio::test]
async fn a_token_that_is_not_live_gets_401_invalid_token() {
    let app = spawn_app().await;
    let revoked = app.token_of(&APP, &code_record(&APP)).await;
    let revocation = app.revoke(&APP, &revoked, None).await;
    assert_eq!(revocation.status, 200, "{}", revocation.text);

    for (why, token) in [
        ("unsigned", "eyJhbGciOiJub25lIn0.e30."),
        ("revoked", revoked.as_str()),
    ] {
        let answer = app.user_info(token).await;

        assert_eq!(
            (answer.status, answer.error()),
            (401, "invalid_token"),
            "{why}: {}",
            answer.text
        );
        answer.assert_error_shape(why);
        assert_eq!(
            answer.header("www-authenticate"),
            Some(r#"Bearer realm="sso-token", error="invalid_token""#),
            "{why}"
        );
    }
}

/// OpenID Connect clients may POST (Core §5.3.1), with the token in the header or in a form body
/// (RFC 6750 §2.2, Spring's `user-info-authentication-method: form`); the answer is GET's.
#[tokio::test]
async fn a_post_gets_the_same_answer_with_the_token_in_the_header_or_a_form_body() {
    let app = spawn_app().await;
    let token = app.token_of(&APP, &code_record(&APP)).await;
    let by_get = app.user_info(&token).await;
    assert_eq!(by_get.status, 200, "{}", by_get.text);
    let url = app.url(USER_INFO);

    let in_header = app
        .http
        .post(&url)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let in_form = app
        .http
        .post(&url)
        .form(&[("access_token", &token)])
        .send()
        .await
        .unwrap();

    for (how, response) in [("header", in_header), ("form body", in_form)] {
        let answer = Answer::of(response).await;
        assert_eq!(answer.status, 200, "{how}: {}", answer.text);
        assert_eq!(answer.json, by_get.json, "{how}");
        assert_eq!(answer.header("cache-control"), Some("no-store"), "{how}");
    }
}

#[tokio::test]
async fn a_post_with_the_token_twice_or_none_is_refused_as_rfc_6750_says() {
    let app = spawn_app().await;
    let token = app.token_of(&APP, &code_record(&APP)).await;
    let url = app.url(USER_INFO);
    let form = [("access_token", token.as_str())];

    // §2: one method per request.
    let both = app
        .http
        .post(&url)
        .bearer_auth(&token)
        .form(&form)
        .send()
        .await
        .unwrap();
    let both = Answer::of(both).await;
    assert_eq!(
        (both.status, both.error()),
        (400, "invalid_request"),
        "{}",
        both.text
    );
    // A JSON body is not one of the methods: no token at all, a bare challenge (§3.1).
    let json = app
        .http
        .post(&url)
        .json(&serde_json::json!({"access_token": token}));
    let json = Answer::of(json.send().await.unwrap()).await;
    assert_eq!(json.status, 401, "{}", json.text);
    assert_eq!(
        json.header("www-authenticate"),
        Some(r#"Bearer realm="sso-token""#)
    );
}

/// README: only a form body is read for a token, so another body's `Content-Encoding` does not
/// matter; an encoded form is not decoded, and its refusal, like every `invalid_request` of a
/// resource request, carries the Bearer challenge (RFC 6750 §3).
#[tokio::test]
async fn an_encoded_body_is_ignored_unless_it_is_a_form_which_is_refused_challenged() {
    let app = spawn_app().await;
    let record = code_record(&APP);
    let token = app.token_of(&APP, &record).await;
    let post = |content_type: &'static str, body: &'static [u8]| {
        app.http
            .post(app.url(USER_INFO))
            .bearer_auth(&token)
            .header("Content-Type", content_type)
            .header("Content-Encoding", "gzip")
            .body(body)
            .send()
    };

    let json = Answer::of(post("application/json", b"\x1f\x8b\x08\x00").await.unwrap()).await;
    let form = Answer::of(
        post("application/x-www-form-urlencoded", b"\x1f\x8b\x08\x00")
            .await
            .unwrap(),
    )
    .await;

    assert_eq!(json.status, 200, "{}", json.text);
    assert_eq!(json.json["id"], record.account_id.as_str());
    assert_refused_challenged(&form);
}

/// Two `Content-Type` lines on a POST leave it unknown whether the body is a form that holds
/// the token: refused, with the Bearer challenge.
#[tokio::test]
async fn a_post_with_two_content_types_is_refused_challenged() {
    let app = spawn_app().await;
    let token = app.token_of(&APP, &code_record(&APP)).await;
    let request = app
        .http
        .post(app.url(USER_INFO))
        .header("Content-Type", "application/json")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!("access_token={token}"));

    let answer = Answer::of(request.send().await.unwrap()).await;

    assert_refused_challenged(&answer);
}

/// RFC 6750 §3.1: a malformed request gets 400 `invalid_request`, challenged with that error.
fn assert_refused_challenged(answer: &Answer) {
    assert_eq!(
        (answer.status, answer.error()),
        (400, "invalid_request"),
        "{}",
        answer.text
    );
    assert_eq!(
        answer.header("www-authenticate"),
        Some(r#"Bearer realm="sso-token", error="invalid_request""#)
    );
}

/// README: the token is never read from the query string (RFC 6750 §2.3 allows it, but a URL
/// ends up in logs and histories): a live token there is no token at all, by GET or POST.
#[tokio::test]
async fn a_token_in_the_query_string_is_not_read() {
    let app = spawn_app().await;
    let token = app.token_of(&APP, &code_record(&APP)).await;
    let url = format!("{}?access_token={token}", app.url(USER_INFO));

    for method in [reqwest::Method::GET, reqwest::Method::POST] {
        let request = app.http.request(method.clone(), &url);

        let answer = Answer::of(request.send().await.unwrap()).await;

        assert_bare_challenge(&answer, method.as_str());
    }
    // The same token where it belongs is live: the query alone was refused.
    let answer = app.user_info(&token).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
}

/// RFC 6750 §3.1: a request without a token gets 401 and the bare challenge, without an error
/// code nor other error information.
fn assert_bare_challenge(answer: &Answer, context: &str) {
    assert_eq!(answer.status, 401, "{context}: {}", answer.text);
    assert_eq!(
        answer.header("www-authenticate"),
        Some(r#"Bearer realm="sso-token""#),
        "{context}"
    );
    assert_eq!(answer.text, "", "{context}");
}

/// The reference implementation's user info took the whole `Authorization` value as the token
/// when it had no `Bearer` scheme: a compact JWS alone is taken so here too, and answers as
/// with the scheme. Anything else without a scheme still asks for Bearer credentials. Being a
/// token, it is refused together with one in a POST's body (RFC 6750 §2: one method per
/// request), where another scheme's credentials give way to the body's token.
#[tokio::test]
async fn a_token_without_the_bearer_scheme_is_taken_as_the_reference_took_it() {
    let app = spawn_app().await;
    let token = app.token_for(&APP).await;
    let with_scheme = app.user_info(&token).await;
    let ask = |authorization: String| {
        let request = app
            .http
            .get(app.url(USER_INFO))
            .header("Authorization", authorization);
        async move { Answer::of(request.send().await.expect("user info sent")).await }
    };

    let bare = ask(token.clone()).await;

    assert_eq!(bare.status, 200, "{}", bare.text);
    assert_eq!(bare.json, with_scheme.json);
    let (header, _) = token.split_once('.').unwrap();
    let not_a_jws = ask(header.to_owned()).await;
    assert_eq!(not_a_jws.status, 401, "{}", not_a_jws.text);
    assert_eq!(
        not_a_jws.header("www-authenticate"),
        Some(r#"Bearer realm="sso-token""#)
    );
    let with_body = |authorization: &str| {
        let request = app
            .http
            .post(app.url(USER_INFO))
            .header("Authorization", authorization)
            .form(&[("access_token", token.as_str())]);
        async move { Answer::of(request.send().await.expect("user info sent")).await }
    };
    let both = with_body("a.b.c").await;
    assert_eq!(
        (both.status, both.error()),
        (400, "invalid_request"),
        "{}",
        both.text
    );
    let basic_and_body = with_body("Basic ZGVtbzpzZWNyZXQ=").await;
    assert_eq!(basic_and_body.status, 200, "{}", basic_and_body.text);
    assert_eq!(basic_and_body.json, with_scheme.json);
}
