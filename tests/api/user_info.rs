//! User info (`GET /identity/sso/oauth2/user`): the profile of the code record, only the
//! fields the token's scopes allow, and RFC 6750 answers for anything else.

use serde_json::json;
use sso_token::startup::USERINFO_PATH;
use sso_token::userinfo::Profile;

use crate::helpers::{APP, Answer, code_record, spawn_app, unix_now};
use crate::resource::{Planted, Record};

#[tokio::test]
async fn user_info_shows_only_the_fields_the_scopes_allow() {
    let app = spawn_app().await;
    let cases = [
        (vec!["user:basic"], vec!["id", "username", "name", "avatar"]),
        (vec!["user:contract"], vec!["id", "email", "mobile"]),
        (
            vec!["user:contract", "user:basic"],
            vec!["id", "username", "name", "avatar", "email", "mobile"],
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
            "id": record.account_id, "username": record.username, "name": "Zhang San",
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
async fn profile_fields_the_record_lacks_are_null() {
    let app = spawn_app().await;
    let mut record = code_record(&APP);
    record.scope = vec!["user:basic".into(), "user:contract".into()];
    record.profile.email = Some("only@example.com".into());
    let token = app.token_of(&APP, &record).await;

    let answer = app.user_info(&token).await;

    assert_eq!(
        answer.json,
        json!({"id": record.account_id, "username": record.username, "name": null,
               "avatar": null, "email": "only@example.com", "mobile": null})
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
            record: Record::AsIssued,
        })
        .await;

    let answer = app.user_info(&token).await;

    assert_eq!(answer.status, 403, "{}", answer.text);
    assert_eq!(answer.error(), "insufficient_scope");
    assert!(
        answer
            .header("www-authenticate")
            .is_some_and(|c| c.contains(r#"error="insufficient_scope""#)),
        "{:?}",
        answer.headers
    );
}

#[tokio::test]
async fn requests_without_a_usable_bearer_token_get_rfc6750_answers() {
    let app = spawn_app().await;
    let get = |auth: Option<&'static str>| {
        let mut request = app.http.get(app.url(USERINFO_PATH));
        if let Some(auth) = auth {
            request = request.header("Authorization", auth);
        }
        async move { Answer::of(request.send().await.expect("sent")).await }
    };
    let cases = [
        (
            None,
            401,
            "invalid_request",
            Some(r#"Bearer realm="sso-token""#),
        ),
        (
            Some("Basic YXBwOnNlY3JldA=="),
            401,
            "invalid_request",
            Some(r#"Bearer realm="sso-token""#),
        ),
        (Some("Bearer a b"), 400, "invalid_request", None),
        (
            Some("Bearer eyJhbGciOiJub25lIn0.e30."),
            401,
            "invalid_token",
            Some(r#"Bearer realm="sso-token", error="invalid_token""#),
        ),
    ];
    for (auth, status, error, challenge) in cases {
        let answer = get(auth).await;
        assert_eq!((answer.status, answer.error()), (status, error), "{auth:?}");
        answer.assert_error_shape(&format!("{auth:?}"));
        if challenge.is_some() {
            assert_eq!(answer.header("www-authenticate"), challenge, "{auth:?}");
        }
    }
}
