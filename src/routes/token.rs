//! `POST /identity/sso/oauth2/access_token`.

use actix_web::http::header::ContentType;
use actix_web::{HttpRequest, HttpResponse, web};

use super::authenticate_request;
use super::http::{
    BodyLimit, client_authorization, content_type, no_store, read_body, refuse_fields_in_query,
};
use super::paths::TOKEN_PATH;
use crate::client_auth::ClientAuth;
use crate::clients::Client;
use crate::exchange::{Exchange, Issued};
use crate::oauth::request::FIELDS as TOKEN_FIELDS;
use crate::oauth::{OAuthError, TokenRequest};

pub async fn access_token(
    request: HttpRequest,
    payload: web::Payload,
    exchange: web::Data<Exchange>,
    auth: web::Data<ClientAuth>,
    limit: web::Data<BodyLimit>,
) -> Result<HttpResponse, OAuthError> {
    let body = read_body(&request, payload, **limit).await?;
    refuse_fields_in_query(&request, &TOKEN_FIELDS)?;
    let token_request = TokenRequest::parse(
        content_type(&request)?,
        client_authorization(&request)?,
        &body,
    )?;
    let caller = authenticate_request(&request, &auth, &token_request.client, TOKEN_PATH).await?;
    let issued = exchange
        .exchange(&caller, &token_request)
        .await
        .inspect_err(|refused| log_refusal(caller.client(), refused))?;
    render(&issued)
}

/// Why an authenticated client's code was refused (a redirect URI that does not match, a PKCE
/// verifier, a code of another client's), for the operator it calls: the access log has only
/// the status. The descriptions quote no code, secret or token.
fn log_refusal(client: &Client, refused: &OAuthError) {
    if matches!(
        refused,
        OAuthError::InvalidGrant(_)
            | OAuthError::InvalidScope(_)
            | OAuthError::UnauthorizedClient(_)
    ) {
        client.log_token_refusal(refused);
    }
}

fn render(issued: &Issued) -> Result<HttpResponse, OAuthError> {
    let body = response_json(issued).map_err(OAuthError::internal)?;
    Ok(no_store(HttpResponse::Ok())
        .insert_header(ContentType::json())
        .body(body))
}

/// The seed document's response, field for field: `username`, `token_type`, `expires_in`,
/// `access_token`, `scope`, `account_id`. Written field by field rather than derived: the
/// token is most of the bytes, and a compact JWS (base64url and dots) needs no JSON escaping,
/// so it is copied instead of scanned byte by byte.
fn response_json(issued: &Issued) -> serde_json::Result<Vec<u8>> {
    let (grant, token) = (&issued.grant, issued.access_token.expose());
    debug_assert!(
        token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    );
    let mut out = Vec::with_capacity(
        128 + token.len() + grant.username.len() + issued.scope.len() + grant.account_id.len(),
    );
    out.extend_from_slice(br#"{"username":"#);
    serde_json::to_writer(&mut out, &grant.username)?;
    out.extend_from_slice(br#","token_type":"bearer","expires_in":"#);
    serde_json::to_writer(&mut out, &issued.expires_in)?;
    out.extend_from_slice(br#","access_token":""#);
    out.extend_from_slice(token.as_bytes());
    out.extend_from_slice(br#"","scope":"#);
    serde_json::to_writer(&mut out, &issued.scope)?;
    out.extend_from_slice(br#","account_id":"#);
    serde_json::to_writer(&mut out, &grant.account_id)?;
    out.push(b'}');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grant::Grant;
    use crate::oauth::Sensitive;

    #[test]
    fn the_response_is_the_seed_json_with_escaped_fields() {
        let issued = Issued {
            access_token: Sensitive::new("eyJh.eyJz-_.c2ln"),
            expires_in: 1800,
            grant: Grant {
                username: "zhang \"s\"\n".into(),
                account_id: "8cneYRM97jU0pqVpJWY".into(),
                scopes: vec!["user:basic".into(), "é".into()],
            },
            scope: "user:basic é".into(),
        };
        let body = response_json(&issued).unwrap();
        let expected = serde_json::json!({
            "username": "zhang \"s\"\n",
            "token_type": "bearer",
            "expires_in": 1800,
            "access_token": "eyJh.eyJz-_.c2ln",
            "scope": "user:basic é",
            "account_id": "8cneYRM97jU0pqVpJWY",
        });
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
            expected
        );
        let keys: Vec<String> =
            serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&body)
                .unwrap()
                .keys()
                .cloned()
                .collect();
        assert_eq!(keys.len(), 6);
        assert!(
            String::from_utf8(body)
                .unwrap()
                .starts_with(r#"{"username":"zhang \"s\"\n","token_type""#)
        );
    }
}
