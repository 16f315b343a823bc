//! What resource servers and clients ask about issued tokens: introspection (RFC 7662),
//! revocation (RFC 7009) and user info. A token is active when its signature verifies with a key
//! we publish, it has not expired (give or take `token.leeway_secs`), its client is still
//! registered and enabled, and its `jti` record is still in Redis (one GET).

use std::sync::Arc;

use serde::Serialize;

use crate::client_auth::Caller;
use crate::clock::unix_now;
use crate::live::{Live, Snapshot};
use crate::metrics::{Metrics, RedisOp, Revocation};
use crate::oauth::{OAuthError, TokenQuery};
use crate::slots::Slots;
use crate::store::{Store, StoreError, TokenRecord};
use crate::tokens::AccessClaims;
use crate::userinfo::{self, UserInfo};

/// Answers questions about tokens; shares the snapshot, the store and, for which Redis calls
/// may go while Redis fails, the slots with the exchange.
pub struct Inspector {
    pub live: Arc<Live>,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub slots: Arc<Slots>,
}

/// A token that passed every check.
#[derive(Debug)]
pub struct ActiveToken {
    pub claims: AccessClaims,
    pub record: TokenRecord,
}

/// RFC 7662 §2.2: `{"active": false}`, or `active: true` with the token's details.
#[derive(Debug, Serialize)]
pub struct Introspection {
    pub active: bool,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub details: Option<Details>,
}

#[derive(Debug, Serialize)]
pub struct Details {
    pub sub: String,
    pub username: String,
    pub account_id: String,
    pub client_id: String,
    /// Space-separated, as RFC 7662 §2.2 says.
    pub scope: String,
    pub exp: u64,
    pub iat: u64,
    pub iss: String,
    pub aud: String,
    pub jti: String,
    pub token_type: &'static str,
}

impl Introspection {
    const INACTIVE: Self = Self {
        active: false,
        details: None,
    };
}

impl Inspector {
    /// RFC 7662, for an authenticated caller (`client_auth`). The caller sees the details of its
    /// own tokens and of tokens whose `aud` is its client id (a resource server registered as a
    /// client); any other token is inactive to it, and Redis is not asked, so its liveness is
    /// not revealed either.
    pub async fn introspect(
        &self,
        caller: &Caller,
        query: &TokenQuery,
    ) -> Result<Introspection, OAuthError> {
        let (snapshot, caller) = (caller.snapshot(), caller.client());
        let Some(claims) = current_claims(snapshot, query.token()?.expose()) else {
            return Ok(Introspection::INACTIVE);
        };
        if claims.client_id != caller.id && claims.aud != caller.id {
            return Ok(Introspection::INACTIVE);
        }
        let Some(ActiveToken { claims, record }) = self.with_record(claims).await? else {
            return Ok(Introspection::INACTIVE);
        };
        Ok(Introspection {
            active: true,
            details: Some(Details {
                scope: claims.scope.join(" "),
                username: record.grant.username,
                account_id: claims.sub.clone(),
                sub: claims.sub,
                client_id: claims.client_id,
                exp: claims.exp,
                iat: claims.iat,
                iss: claims.iss,
                aud: claims.aud,
                jti: claims.jti,
                token_type: "bearer",
            }),
        })
    }

    /// RFC 7009, for an authenticated caller (`client_auth`). A client revokes its own tokens
    /// only: another client's current token is refused with `unauthorized_client` (§2.1).
    /// Anything that is not a token of ours, and any expired token, is as good as revoked
    /// already (200). `token_type_hint` is ignored (§2.1 allows it): a hint that does
    /// not find the token must widen the search to every type, and access tokens are our only one.
    pub async fn revoke(&self, caller: &Caller, query: &TokenQuery) -> Result<(), OAuthError> {
        let (snapshot, caller) = (caller.snapshot(), caller.client());
        let Ok(claims) = snapshot.keys.verifier().verify(query.token()?.expose()) else {
            return Ok(());
        };
        if claims.client_id != caller.id {
            return match current(snapshot, claims) {
                Some(_) => Err(OAuthError::UnauthorizedClient(
                    "a client may revoke only the tokens issued to it".into(),
                )),
                None => Ok(()),
            };
        }
        if claims.expired(unix_now(), snapshot.token.leeway_secs) {
            // Its record expired with it: nothing is left to delete, so no Redis is needed.
            return Ok(());
        }
        let revoke = self.store.revoke_token(&claims.jti, &caller.id);
        let deleted = self
            .on_record(&claims.jti, RedisOp::DeleteToken, revoke)
            .await?;
        if deleted {
            self.metrics.token_revoked(Revocation::Request);
        }
        Ok(())
    }

    /// The active token of a resource request (user info), or `invalid_token`.
    pub async fn bearer(&self, token: &str) -> Result<ActiveToken, OAuthError> {
        let claims =
            current_claims(&self.live.snapshot(), token).ok_or(OAuthError::InvalidToken)?;
        self.with_record(claims)
            .await?
            .ok_or(OAuthError::InvalidToken)
    }

    /// `call` on the record of `jti`, with a turn at its shard ([`Slots::call`]): while Redis
    /// does not answer for the shard, one such call at a time tries it; a failure is a 503.
    async fn on_record<T>(
        &self,
        jti: &str,
        op: RedisOp,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, OAuthError> {
        let mut turn = self.slots.call(self.store.token_cluster_slot(jti))?;
        let answer = self.metrics.time_redis(op, call).await;
        turn.redis_answered(answer.as_ref().map(|_| ()));
        answer.map_err(|e| OAuthError::Unavailable(op, e))
    }

    /// Adds the token record, if Redis still has it and it belongs to these claims; an unreadable
    /// record is logged and counts as none.
    async fn with_record(&self, claims: AccessClaims) -> Result<Option<ActiveToken>, OAuthError> {
        let read = self.store.get_token(&claims.jti);
        let record = match self.on_record(&claims.jti, RedisOp::GetToken, read).await? {
            Ok(Some(record)) => record,
            Ok(None) => return Ok(None),
            Err(unreadable) => {
                log::warn!(
                    "token record of client {} is unreadable: {unreadable}",
                    claims.client_id
                );
                return Ok(None);
            }
        };
        // The record's key comes from the code, its `jti` from the exchange: a record that a later
        // exchange of the same code value wrote (an authorize service reused it) names another.
        let matches = record.jti == claims.jti
            && record.client_id == claims.client_id
            && record.grant.account_id == claims.sub;
        Ok(matches.then_some(ActiveToken { claims, record }))
    }
}

impl ActiveToken {
    /// The user, with the fields the token's scopes allow; `insufficient_scope` if none.
    pub fn user_info(&self) -> Result<UserInfo<'_>, OAuthError> {
        let grant = &self.record.grant;
        userinfo::disclose(
            &self.claims.sub,
            &grant.username,
            &grant.profile,
            &self.claims.scope,
        )
        .ok_or_else(|| OAuthError::InsufficientScope {
            // The challenge names the scope that shows the user; `user:contract` alone would do
            // too, for its own fields, as the description says.
            scope: userinfo::BASIC,
            description: format!(
                "user info needs scope {} or {}",
                userinfo::BASIC,
                userinfo::CONTRACT
            )
            .into(),
        })
    }
}

/// The claims of a token that verifies and is current.
fn current_claims(snapshot: &Snapshot, token: &str) -> Option<AccessClaims> {
    current(snapshot, snapshot.keys.verifier().verify(token).ok()?)
}

/// Verified claims that have not expired and whose client is still registered and enabled.
fn current(snapshot: &Snapshot, claims: AccessClaims) -> Option<AccessClaims> {
    let client_ok = snapshot
        .registry
        .get(&claims.client_id)
        .is_some_and(|client| client.enabled);
    (client_ok && !claims.expired(unix_now(), snapshot.token.leeway_secs)).then_some(claims)
}
