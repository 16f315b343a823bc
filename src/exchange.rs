//! The authorization-code exchange, in the order that keeps it safe: authenticate the client
//! (a wrong secret burns no code: the exchange takes a [`Caller`], which only
//! `ClientAuth::authenticate` makes), take the code atomically, check it, sign.

use std::sync::Arc;

use crate::client_auth::Caller;
use crate::clients::Client;
use crate::clock::unix_now;
use crate::grant::{self, CodeRules, Grant};
use crate::live::Snapshot;
use crate::metrics::{Metrics, RedisOp, Revocation};
use crate::oauth::{OAuthError, Sensitive, TokenRequest};
use crate::slots::Slots;
use crate::store::{Store, StoreError, Taken, record_head};
use crate::tokens::{Claims, MAX_TOKEN};

/// What a successful exchange hands back to the client.
#[derive(Debug)]
pub struct Issued {
    /// A bearer credential: `Debug` must not print it.
    pub access_token: Sensitive,
    pub expires_in: u64,
    pub grant: Grant,
    /// The granted scopes joined by `token.scope_separator`.
    pub scope: String,
}

/// Everything the exchange needs besides the authenticated caller: Redis, the metrics and the
/// slots.
pub struct Exchange {
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub slots: Arc<Slots>,
}

impl Exchange {
    /// Runs on the snapshot the caller was authenticated against (`client_auth`): a reload in
    /// the middle changes nothing for it.
    pub async fn exchange(
        &self,
        caller: &Caller,
        request: &TokenRequest,
    ) -> Result<Issued, OAuthError> {
        let (snapshot, client) = (caller.snapshot(), caller.client());
        let settings = &snapshot.token;
        if !client.may_exchange_codes() {
            return Err(OAuthError::UnauthorizedClient(
                "this client may not use the authorization_code grant".into(),
            ));
        }
        let code = request.code.expose();
        if !self.store.admits(code) {
            // No authorize service can have written it (README, the Cluster contract). Refused
            // before the slots: only an answer from Redis may tell them that its shard answers.
            return Err(unknown_code());
        }
        let hash_slot = self.store.cluster_slot(code);
        let mut slot = self.slots.enter(hash_slot).await?;
        let jti = self
            .store
            .new_jti_in(code, hash_slot)
            .map_err(OAuthError::internal)?;
        let iat = unix_now();
        let head = record_head(&jti, &client.id, iat, Claims::expiry(settings, iat));
        let mut unanswered = Unanswered::armed(self, &jti, &client.id);
        let taken = self
            .metrics
            .time_redis(
                RedisOp::Exchange,
                self.store.take_code(code, &jti, settings.expires_in, &head),
            )
            .await;
        unanswered.armed = false;
        slot.redis_answered(taken.as_ref().map(|_| ()));
        let record = match taken.map_err(|e| OAuthError::Unavailable(RedisOp::Exchange, e))? {
            Taken::Fresh { record } => record,
            Taken::Unknown => return Err(unknown_code()),
            Taken::Replayed { jti: issued } => {
                self.metrics.replay_detected();
                // Boxed, as the clean-up below: rare paths, whose futures would otherwise be
                // part of every exchange's.
                return Err(Box::pin(self.revoke_replayed(client, &issued)).await);
            }
        };
        let outcome = grant::check(&record, client, request, CodeRules::new(settings, iat))
            .and_then(|grant| sign(snapshot, client, grant, &jti, iat));
        if outcome.is_ok() {
            self.metrics.token_issued();
        } else {
            // The code stays spent (it may be compromised); the token record must not outlive it.
            if let Err(e) = Box::pin(self.delete_token(&jti)).await {
                log::warn!(
                    "client {}: could not delete an unused token record: {e}",
                    client.id
                );
            }
        }
        outcome
    }

    async fn delete_token(&self, jti: &str) -> Result<bool, StoreError> {
        self.metrics
            .time_redis(RedisOp::DeleteToken, self.store.delete_token(jti))
            .await
    }

    /// RFC 6749 §4.1.2: a code used twice revokes the token issued for it, when the client
    /// that presents it again is the one the token went to. Another client could not have
    /// exchanged the code (`grant::check`), so its replay says nothing of that token, and must
    /// not let it revoke another client's tokens with a code it saw. If the revocation cannot
    /// be written, the client gets a 503 and the record stays for the next attempt.
    async fn revoke_replayed(&self, client: &Client, issued: &str) -> OAuthError {
        let revoked = self
            .metrics
            .time_redis(
                RedisOp::DeleteToken,
                self.store.revoke_token(issued, &client.id),
            )
            .await;
        match revoked {
            // The token went to another client, or its record went between the script and here
            // (it expired, or was revoked or cleaned up meanwhile): nothing of this client's to
            // revoke, and nothing to say about one.
            Ok(false) => {
                client.log_foreign_replay();
                OAuthError::invalid_grant("the authorization code was already used")
            }
            Ok(true) => {
                self.metrics.token_revoked(Revocation::Replay);
                client.log_revoking_replay(issued);
                OAuthError::invalid_grant(
                    "the authorization code was already used; the token issued for it is revoked",
                )
            }
            Err(e) => OAuthError::Unavailable(RedisOp::DeleteToken, e),
        }
    }
}

/// Armed while Redis takes the code. A client that closes its connection then (a reset) has
/// its request's future dropped at that wait: the code may be spent (if the script went out)
/// and no token is made. A token record the script wrote would make the client's retry with
/// the code read as a replay, the alert of a stolen code, and revoke a token nobody holds; so
/// it is deleted, on the lane of the take (after it, on the same connection), and the deletion
/// counted and said.
struct Unanswered<'a> {
    exchange: &'a Exchange,
    jti: &'a str,
    client_id: &'a str,
    armed: bool,
}

impl<'a> Unanswered<'a> {
    fn armed(exchange: &'a Exchange, jti: &'a str, client_id: &'a str) -> Self {
        Self {
            exchange,
            jti,
            client_id,
            armed: true,
        }
    }
}

impl Drop for Unanswered<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (store, metrics) = (self.exchange.store.clone(), &self.exchange.metrics);
        let metrics = Arc::clone(metrics);
        let (jti, client_id) = (self.jti.to_owned(), self.client_id.to_owned());
        let delete = async move {
            let deleted =
                metrics.time_redis(RedisOp::DeleteToken, store.delete_token_after_take(&jti));
            match deleted.await {
                Ok(true) => {
                    metrics.exchange_abandoned();
                    crate::info_every_second!(
                        "client {client_id}: the connection closed while its code was being \
                         taken: the code is spent, no token was delivered, and the token \
                         record is deleted"
                    );
                }
                // The take never ran: nothing spent, nothing to say.
                Ok(false) => {}
                Err(e) => crate::warn_every_second!(
                    "client {client_id}: could not delete the token record of an exchange its \
                     client left: {e}"
                ),
            }
        };
        // On this worker's runtime (one thread: its lane). A runtime that is shutting down
        // drops the task unrun.
        if let Ok(worker) = tokio::runtime::Handle::try_current() {
            drop(worker.spawn(delete));
        }
    }
}

fn unknown_code() -> OAuthError {
    OAuthError::invalid_grant("the authorization code is invalid, expired or already used")
}

fn sign(
    snapshot: &Snapshot,
    client: &Client,
    grant: Grant,
    jti: &str,
    iat: u64,
) -> Result<Issued, OAuthError> {
    let settings = &snapshot.token;
    let claims = Claims::issued_to(client, settings, &grant.account_id, &grant.scopes, jti, iat);
    let access_token = snapshot
        .keys
        .minter()
        .mint(&claims)
        .map_err(OAuthError::internal)?;
    if access_token.len() > MAX_TOKEN {
        log::warn!(
            "client {}: the access token would be {} bytes, over the {MAX_TOKEN} that \
             introspection and user info read ({} scopes); refused",
            client.id,
            access_token.len(),
            grant.scopes.len()
        );
        return Err(OAuthError::invalid_grant(
            "the authorization code grants more than an access token can carry; sign in again",
        ));
    }
    Ok(Issued {
        access_token: Sensitive::new(access_token),
        expires_in: settings.expires_in,
        scope: grant.scopes.join(&settings.scope_separator),
        grant,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_of_an_issued_token_hides_the_token() {
        let issued = Issued {
            access_token: Sensitive::new("eyJhbGciOi.eyJzdWIiOi.c2lnbmF0dXJl"),
            expires_in: 1800,
            grant: Grant {
                username: "zhangs".into(),
                account_id: "8cneYRM97jU0pqVpJWY".into(),
                scopes: vec!["user:basic".into()],
            },
            scope: "user:basic".into(),
        };
        let printed = format!("{issued:?}");
        assert!(printed.contains("zhangs"), "{printed}");
        assert!(!printed.contains("c2lnbmF0dXJl"), "{printed}");
    }
}
