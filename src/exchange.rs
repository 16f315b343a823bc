//! The authorization-code exchange, in the order that keeps it safe: authenticate the client
//! (a wrong secret burns no code), take the code atomically, check it, sign.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::clients::{Client, Registry};
use crate::config::TokenSettings;
use crate::grant::{self, Grant};
use crate::oauth::{OAuthError, TokenRequest};
use crate::store::{Store, Taken};
use crate::tokens::{Claims, Minter};

/// What a successful exchange hands back to the client.
#[derive(Debug)]
pub struct Issued {
    pub access_token: String,
    pub expires_in: u64,
    pub grant: Grant,
}

/// Everything the exchange needs, built once at start-up.
pub struct Exchange {
    pub registry: Arc<Registry>,
    pub store: Store,
    pub minter: Minter,
    pub settings: TokenSettings,
}

impl Exchange {
    pub async fn exchange(&self, request: &TokenRequest) -> Result<Issued, OAuthError> {
        let client = self.registry.authenticate(&request.client).await?;
        if !client.allows_grant("authorization_code") {
            return Err(OAuthError::UnauthorizedClient(
                "this client may not use the authorization_code grant".into(),
            ));
        }
        let code = request.code.expose();
        let jti = (self.store)
            .new_jti(code)
            .map_err(|e| OAuthError::Internal(Box::new(e)))?;
        let iat = unix_now();
        let exp = iat + self.settings.expires_in;
        let head = record_head(&jti, &client.id, iat, exp);
        let taken = self
            .store
            .take_code(code, &jti, self.settings.expires_in, &head)
            .await
            .map_err(OAuthError::Unavailable)?;
        let record = match taken {
            Taken::Fresh { record } => record,
            Taken::Unknown => {
                return Err(OAuthError::invalid_grant(
                    "the authorization code is invalid, expired or already used",
                ));
            }
            Taken::Replayed { jti: issued } => {
                return Err(self.revoke_replayed(&client, &issued).await);
            }
        };
        let outcome = grant::check(&record, &client, request, &self.settings.scope_separator)
            .and_then(|grant| self.sign(&client, grant, &jti, iat, exp));
        if outcome.is_err() {
            // The code stays spent (it may be compromised); the token record must not outlive it.
            if let Err(e) = self.store.delete_token(&jti).await {
                log::warn!(
                    "client {}: could not delete an unused token record: {e}",
                    client.id
                );
            }
        }
        outcome
    }

    fn sign(
        &self,
        client: &Client,
        grant: Grant,
        jti: &str,
        iat: u64,
        exp: u64,
    ) -> Result<Issued, OAuthError> {
        let aud = client.audience_or(&self.settings.audience);
        let claims = Claims {
            sub: &grant.account_id,
            aud,
            scope: &grant.scopes,
            iss: &self.settings.issuer,
            exp,
            iat,
            jti,
            client_id: &client.id,
        };
        let access_token = self
            .minter
            .mint(&claims)
            .map_err(|e| OAuthError::Internal(Box::new(e)))?;
        Ok(Issued {
            access_token,
            expires_in: self.settings.expires_in,
            grant,
        })
    }

    /// RFC 6749 §4.1.2: a code used twice revokes the token issued for it. If the revocation
    /// cannot be written, the client gets a 503 and the marker stays for the next attempt.
    async fn revoke_replayed(&self, client: &Client, issued: &str) -> OAuthError {
        match self.store.delete_token(issued).await {
            Ok(_) => {
                log::warn!(
                    "client {}: authorization code replayed; its token is revoked",
                    client.id
                );
                OAuthError::invalid_grant(
                    "the authorization code was already used; the token issued for it is revoked",
                )
            }
            Err(e) => OAuthError::Unavailable(e),
        }
    }
}

/// The start of the token record's JSON; the exchange script appends the code record and `}`,
/// so the record holds what introspection needs without a second round trip.
fn record_head(jti: &str, client_id: &str, iat: u64, exp: u64) -> String {
    let client_id = serde_json::Value::from(client_id);
    format!(r#"{{"jti":"{jti}","client_id":{client_id},"iat":{iat},"exp":{exp},"grant":"#)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_head_plus_a_code_record_is_one_json_object() {
        let head = record_head("abc", "app \"x\"", 10, 20);
        let record = format!(r#"{head}{{"username":"u"}}}}"#);
        let value: serde_json::Value = serde_json::from_str(&record).unwrap();
        assert_eq!(value["client_id"], "app \"x\"");
        assert_eq!(value["exp"], 20);
        assert_eq!(value["grant"]["username"], "u");
    }
}
