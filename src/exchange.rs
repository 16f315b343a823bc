//! The authorization-code exchange, in the order that keeps it safe: authenticate the client
//! (a wrong secret burns no code), take the code atomically, check it, sign.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::clients::Client;
use crate::grant::{self, Grant};
use crate::live::{Live, Snapshot};
use crate::metrics::{Metrics, RedisOp, Revocation};
use crate::oauth::{OAuthError, TokenRequest};
use crate::store::{Store, Taken};
use crate::throttle::Throttle;
use crate::tokens::Claims;

/// What a successful exchange hands back to the client.
#[derive(Debug)]
pub struct Issued {
    pub access_token: String,
    pub expires_in: u64,
    pub grant: Grant,
    /// The granted scopes joined by `token.scope_separator`.
    pub scope: String,
}

/// Everything the exchange needs: the reloadable clients, keys and settings, and Redis.
pub struct Exchange {
    pub live: Arc<Live>,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub throttle: Throttle,
}

impl Exchange {
    /// One snapshot for the whole exchange: a reload in the middle changes nothing for it.
    /// `source` is the address failed authentications are counted under (see `throttle`).
    pub async fn exchange(
        &self,
        request: &TokenRequest,
        source: Option<IpAddr>,
    ) -> Result<Issued, OAuthError> {
        let snapshot = self.live.load();
        let settings = &snapshot.token;
        self.throttle.admit(source).await?;
        let client = match snapshot.registry.authenticate(&request.client).await {
            Ok(client) => client,
            Err(failure @ OAuthError::InvalidClient { .. }) => {
                self.metrics.auth_failed();
                let id = &request.client.id;
                return Err(self.throttle.failed(id, source, failure).await);
            }
            Err(other) => return Err(other),
        };
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
        let exp = iat + settings.expires_in;
        let head = record_head(&jti, &client.id, iat, exp);
        let taken = self
            .metrics
            .redis(
                RedisOp::Exchange,
                self.store.take_code(code, &jti, settings.expires_in, &head),
            )
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
                self.metrics.replay_detected();
                return Err(self.revoke_replayed(&client, &issued).await);
            }
        };
        let outcome = grant::check(&record, &client, request, &settings.scope_separator)
            .and_then(|grant| sign(&snapshot, &client, grant, &jti, iat, exp));
        if outcome.is_ok() {
            self.metrics.token_issued();
        } else {
            // The code stays spent (it may be compromised); the token record must not outlive it.
            if let Err(e) = self.delete_token(&jti).await {
                log::warn!(
                    "client {}: could not delete an unused token record: {e}",
                    client.id
                );
            }
        }
        outcome
    }

    async fn delete_token(&self, jti: &str) -> Result<bool, crate::store::StoreError> {
        self.metrics
            .redis(RedisOp::DeleteToken, self.store.delete_token(jti))
            .await
    }

    /// Deletes a token record for good: acknowledged by replicas with `redis.replica_acks`.
    async fn revoke_token(&self, jti: &str) -> Result<bool, crate::store::StoreError> {
        self.metrics
            .redis(RedisOp::DeleteToken, self.store.revoke_token(jti))
            .await
    }

    /// RFC 6749 §4.1.2: a code used twice revokes the token issued for it. If the revocation
    /// cannot be written, the client gets a 503 and the marker stays for the next attempt.
    async fn revoke_replayed(&self, client: &Client, issued: &str) -> OAuthError {
        match self.revoke_token(issued).await {
            // No record: the first exchange failed its checks (or its token expired or was
            // revoked), so there is nothing to revoke and nothing to say about one.
            Ok(false) => {
                log::warn!(
                    "client {}: spent authorization code presented again",
                    client.id
                );
                OAuthError::invalid_grant("the authorization code was already used")
            }
            Ok(true) => {
                self.metrics.token_revoked(Revocation::Replay);
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

fn sign(
    snapshot: &Snapshot,
    client: &Client,
    grant: Grant,
    jti: &str,
    iat: u64,
    exp: u64,
) -> Result<Issued, OAuthError> {
    let settings = &snapshot.token;
    let claims = Claims {
        sub: &grant.account_id,
        aud: client.audience_or(&settings.audience),
        scope: &grant.scopes,
        iss: &settings.issuer,
        exp,
        iat,
        jti,
        client_id: &client.id,
    };
    let access_token = snapshot
        .keys
        .minter()
        .mint(&claims)
        .map_err(|e| OAuthError::Internal(Box::new(e)))?;
    Ok(Issued {
        access_token,
        expires_in: settings.expires_in,
        scope: grant.scopes.join(&settings.scope_separator),
        grant,
    })
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
