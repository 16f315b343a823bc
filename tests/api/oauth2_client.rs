//! A standard OAuth 2.0 client library (the `oauth2` crate) exchanges a code with us: form body,
//! HTTP Basic with RFC 6749 §2.3.1 encoding, PKCE.

use std::borrow::Cow;

use oauth2::basic::BasicClient;
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, PkceCodeChallenge, RedirectUrl,
    TokenResponse, TokenUrl,
};

use crate::helpers::{ENCODED, ISSUER, code_record, http_client, spawn_app, verify_token};

#[tokio::test]
async fn the_oauth2_crate_exchanges_a_code_with_basic_auth_and_pkce() {
    let app = spawn_app().await;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut record = code_record(&ENCODED);
    record.code_challenge = Some(challenge.as_str().to_owned());
    record.code_challenge_method = Some(challenge.method().as_str().to_owned());
    let code = app.write_code(&record).await;
    let client = BasicClient::new(ClientId::new(ENCODED.id.into()))
        .set_client_secret(ClientSecret::new(ENCODED.secret.into()))
        .set_auth_uri(AuthUrl::new("https://sso.example/authorize".into()).unwrap())
        .set_token_uri(TokenUrl::new(app.token_url()).unwrap())
        .set_auth_type(AuthType::BasicAuth);
    let redirect = RedirectUrl::new(ENCODED.redirect_uri.into()).unwrap();

    let response = client
        .exchange_code(AuthorizationCode::new(code.clone()))
        .set_redirect_uri(Cow::Borrowed(&redirect))
        .set_pkce_verifier(verifier)
        .request_async(&http_client())
        .await
        .unwrap_or_else(|e| panic!("the library's exchange failed: {e:?}"));

    assert_eq!(
        response.token_type(),
        &oauth2::basic::BasicTokenType::Bearer
    );
    assert_eq!(response.expires_in().map(|d| d.as_secs()), Some(1800));
    let claims = verify_token(response.access_token().secret(), ENCODED.id, ISSUER).claims;
    assert_eq!(claims["sub"], record.account_id.as_str());
    assert_eq!(claims["client_id"], ENCODED.id);
    assert!(!app.code_exists(&code).await);
}
