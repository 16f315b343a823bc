//! The authorization-code exchange, in the order that keeps it safe: authenticate the client
//! (a wrong secret burns no code: the exchange takes a [`Caller`], which only
//! `ClientAuth::authenticate` makes), take the code atomically, check it, sign.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, SemaphorePermit};

use crate::client_auth::Caller;
use crate::clients::Client;
use crate::clock::unix_now;
use crate::grant::{self, CodeRules, Grant};
use crate::live::Snapshot;
use crate::metrics::{Metrics, RedisOp, Revocation};
use crate::oauth::{OAuthError, Sensitive, TokenRequest};
use crate::store::{Store, StoreError, Taken, write_record_start};
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

/// Bounds how many exchanges are between taking their code and answering at once
/// (`server.exchange_slots` per worker). A Redis reply is read when its worker gets to it: with
/// 1,000 exchanges in flight on one worker each signing RS256 (~0.3–1 ms), a reply waited up to
/// a second behind the others' signatures, past `redis.timeout_ms`, and the client got a 503
/// for a code Redis had in fact spent. An exchange takes its slot before it touches Redis, so
/// one that cannot get a slot in `server.slot_wait_ms` gets a 503 with its code untouched.
///
/// While Redis fails (the last exchange's call failed), an exchange that finds every slot
/// taken gets its 503 at once, and a failure sends those already waiting away too: the slots
/// are then held by calls waiting out `redis.timeout_ms`, and queueing behind them would turn
/// an outage into waits of `slot_wait_ms` (10 s) instead of a prompt 503. So too once a stop's
/// grace has begun ([`Slots::stop_queueing`]): an exchange that got its slot late in the grace
/// could have its code spent and its answer cut off when the grace ends.
pub struct Slots {
    semaphore: Semaphore,
    wait: Duration,
    redis_failing: AtomicBool,
    stopping: AtomicBool,
    /// Wakes the exchanges waiting for a slot when either flag is set.
    give_up: Notify,
}

impl Slots {
    pub fn new(count: usize, wait: Duration) -> Self {
        Self {
            semaphore: Semaphore::new(count.min(Semaphore::MAX_PERMITS)),
            wait,
            redis_failing: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            give_up: Notify::new(),
        }
    }

    /// From the start of a stop's grace on, no exchange waits for a slot (see [`Slots`]).
    pub fn stop_queueing(&self) {
        self.stopping.store(true, Ordering::Relaxed);
        self.give_up.notify_waiters();
    }

    fn queue_closed(&self) -> bool {
        self.redis_failing.load(Ordering::Relaxed) || self.stopping.load(Ordering::Relaxed)
    }

    async fn enter(&self) -> Result<SemaphorePermit<'_>, OAuthError> {
        if let Ok(permit) = self.semaphore.try_acquire() {
            return Ok(permit);
        }
        // Created before the flags are read, so setting one from now on wakes it.
        let give_up = self.give_up.notified();
        if self.queue_closed() {
            return Err(OAuthError::Busy);
        }
        tokio::select! {
            waited = tokio::time::timeout(self.wait, self.semaphore.acquire()) => match waited {
                // A slot freed by a call that failed goes to the next in line, not to Redis.
                Ok(Ok(_)) if self.queue_closed() => Err(OAuthError::Busy),
                Ok(Ok(permit)) => Ok(permit),
                // Timed out (the semaphore is never closed).
                _ => Err(OAuthError::Busy),
            },
            () = give_up => Err(OAuthError::Busy),
        }
    }

    /// Records how the exchange's Redis call went (see [`Slots`]).
    fn redis_answered(&self, ok: bool) {
        if ok {
            // Read first: a store on every exchange would bounce the line between workers.
            if self.redis_failing.load(Ordering::Relaxed) {
                self.redis_failing.store(false, Ordering::Relaxed);
            }
        } else {
            self.redis_failing.store(true, Ordering::Relaxed);
            self.give_up.notify_waiters();
        }
    }
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
        if !client.allows_grant("authorization_code") {
            return Err(OAuthError::UnauthorizedClient(
                "this client may not use the authorization_code grant".into(),
            ));
        }
        let _slot = self.slots.enter().await?;
        let code = request.code.expose();
        let jti = self.store.new_jti(code).map_err(OAuthError::internal)?;
        let iat = unix_now();
        let exp = iat + settings.expires_in;
        let head = record_head(&jti, &client.id, iat, exp);
        let taken = self
            .metrics
            .redis(
                RedisOp::Exchange,
                self.store.take_code(code, &jti, settings.expires_in, &head),
            )
            .await;
        self.slots.redis_answered(taken.is_ok());
        let record = match taken.map_err(OAuthError::Unavailable)? {
            Taken::Fresh { record } => record,
            Taken::Unknown => {
                return Err(OAuthError::invalid_grant(
                    "the authorization code is invalid, expired or already used",
                ));
            }
            Taken::Replayed { jti: issued } => {
                self.metrics.replay_detected();
                // Boxed, as the clean-up below: rare paths, whose futures would otherwise be
                // part of every exchange's.
                return Err(Box::pin(self.revoke_replayed(client, &issued)).await);
            }
        };
        let outcome = grant::check(&record, client, request, CodeRules::new(settings, iat))
            .and_then(|grant| sign(snapshot, client, grant, &jti, iat, exp));
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
            .redis(RedisOp::DeleteToken, self.store.delete_token(jti))
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
            .redis(
                RedisOp::DeleteToken,
                self.store.revoke_token(issued, &client.id),
            )
            .await;
        match revoked {
            // The token went to another client, or its record went between the script and here
            // (it expired, or was revoked or cleaned up meanwhile): nothing of this client's to
            // revoke, and nothing to say about one.
            Ok(false) => {
                log::warn!(
                    "client {}: spent authorization code presented again; no token of this \
                     client's revoked",
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

/// The start of the token record's JSON; the exchange script appends the code record and `}`,
/// so the record holds what introspection needs without a second round trip. It starts with
/// `{"jti":"<jti>"`, which the scripts match (see `store`).
fn record_head(jti: &str, client_id: &str, iat: u64, exp: u64) -> Vec<u8> {
    use std::io::Write;
    let mut head = Vec::with_capacity(72 + jti.len() + client_id.len());
    write_record_start(&mut head, jti, Some(client_id));
    // Writing to a Vec cannot fail: nothing to report.
    let _ = write!(head, r#","iat":{iat},"exp":{exp},"grant":"#);
    head
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_head_plus_a_code_record_is_one_json_object() {
        let mut record = record_head("abc", r#"app "x" \y"#, 10, 20);
        record.extend_from_slice(br#"{"username":"u"}}"#);
        let value: serde_json::Value = serde_json::from_slice(&record).unwrap();
        assert_eq!(value["jti"], "abc");
        assert!(
            record.starts_with(br#"{"jti":"abc""#),
            "the scripts match this start"
        );
        assert_eq!(value["client_id"], r#"app "x" \y"#);
        assert_eq!(value["exp"], 20);
        assert_eq!(value["grant"]["username"], "u");
    }

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
