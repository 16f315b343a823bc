//! Helpers for the endpoints around the token: exchange a code for a token, introspect, revoke,
//! user info, and "planted" tokens (signed with the test key and recorded in Redis directly,
//! for times and scopes the exchange would not produce).

use deadpool_redis::redis;
use serde_json::{Value, json};
use sso_token::issue_code::NewCode;
use sso_token::routes::paths::{INTROSPECT_PATH, JWKS_PATH, REVOKE_PATH, USERINFO_PATH};
use sso_token::tokens::{Claims, Minter, random_id};

use crate::helpers::{Answer, ISSUER, TestApp, TestClient, basic_auth, code_record, signing_key};

impl TestApp {
    /// Exchanges `record` (written as a fresh code) and returns the access token.
    pub async fn token_of(&self, client: &TestClient, record: &NewCode) -> String {
        let code = self.write_code(record).await;
        self.token_from(client, &code).await
    }

    /// Exchanges `code`, which must succeed, and returns the access token.
    pub async fn token_from(&self, client: &TestClient, code: &str) -> String {
        let answer = Answer::of(self.exchange(client, code).await).await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        answer.json["access_token"]
            .as_str()
            .expect("an access token")
            .to_owned()
    }

    /// A token for `client` with the default record.
    pub async fn token_for(&self, client: &TestClient) -> String {
        self.token_of(client, &code_record(client)).await
    }

    /// RFC 7662 as most libraries send it: a form body, credentials in HTTP Basic.
    pub async fn introspect(&self, client: &TestClient, token: &str) -> Answer {
        let response = self
            .http
            .post(self.url(INTROSPECT_PATH))
            .header("Authorization", basic_auth(client.id, client.secret))
            .form(&[("token", token)])
            .send()
            .await
            .expect("introspection sent");
        Answer::of(response).await
    }

    /// RFC 7009 with a form body and HTTP Basic; `hint` is the `token_type_hint`.
    pub async fn revoke(&self, client: &TestClient, token: &str, hint: Option<&str>) -> Answer {
        let mut form = vec![("token", token)];
        form.extend(hint.map(|hint| ("token_type_hint", hint)));
        let response = self
            .http
            .post(self.url(REVOKE_PATH))
            .header("Authorization", basic_auth(client.id, client.secret))
            .form(&form)
            .send()
            .await
            .expect("revocation sent");
        Answer::of(response).await
    }

    /// `GET` user info with `Authorization: Bearer <token>`.
    pub async fn user_info(&self, token: &str) -> Answer {
        let response = self
            .http
            .get(self.url(USERINFO_PATH))
            .bearer_auth(token)
            .send()
            .await
            .expect("user info sent");
        Answer::of(response).await
    }

    /// The JWKS document, fetched over HTTP.
    pub async fn jwks(&self) -> Value {
        let answer = Answer::of(
            self.http
                .get(self.url(JWKS_PATH))
                .send()
                .await
                .expect("sent"),
        )
        .await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        answer.json
    }

    /// Whether introspection by `client` says `active: true`.
    pub async fn is_active(&self, client: &TestClient, token: &str) -> bool {
        let answer = self.introspect(client, token).await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        match answer.json["active"].as_bool() {
            Some(active) => active,
            None => panic!("no boolean `active`: {}", answer.text),
        }
    }

    /// A token of `client` signed with the test key, valid from `iat` to `exp`, whose record is
    /// written to Redis (unless `recorded` is false) the way the exchange writes it.
    pub async fn plant_token(&self, planted: &Planted<'_>) -> String {
        let jti = random_id().expect("jti");
        let scope: Vec<String> = planted.scopes.iter().map(|s| (*s).to_owned()).collect();
        let token = Minter::new(signing_key(), "access_token")
            .expect("minter")
            .mint(&Claims {
                sub: "acct-planted",
                aud: planted.client.id,
                scope: &scope,
                iss: ISSUER,
                exp: planted.exp,
                iat: planted.iat,
                jti: &jti,
                client_id: planted.client.id,
            })
            .expect("minted");
        if planted.recorded {
            let rest = json!({
                "client_id": planted.client.id, "iat": planted.iat, "exp": planted.exp,
                "grant": {"client_id": planted.client.id, "redirect_uri": planted.client.redirect_uri,
                          "username": "planted", "account_id": "acct-planted", "scope": scope},
            });
            // `jti` first, as the exchange writes it: revocation matches the record's start.
            let record = format!(r#"{{"jti":{},{}"#, json!(jti), &rest.to_string()[1..]);
            let key = self.store.token_key(&jti);
            let _: () = self
                .query(redis::cmd("SET").arg(key).arg(record).arg("EX").arg(600))
                .await;
        }
        token
    }
}

/// What `plant_token` signs and records.
pub struct Planted<'a> {
    pub client: &'a TestClient,
    pub scopes: &'a [&'a str],
    pub iat: u64,
    pub exp: u64,
    pub recorded: bool,
}
