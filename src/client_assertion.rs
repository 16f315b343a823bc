//! `private_key_jwt` client authentication (RFC 7523 §2.2 and §3, OpenID Connect Core §9): a
//! client registered with public keys (`jwks_file`) signs a short-lived JWT instead of sending
//! a secret. [`verify`] checks the signature and the claims without Redis; [`Assertions`]
//! then spends the assertion's `jti` in Redis, so that one assertion authenticates once. Only
//! an assertion that passed every other check reaches Redis: a flood of bad ones costs a
//! signature verification each and no Redis call.

use std::sync::Arc;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;

use crate::clients::Client;
use crate::clients::jwks::{ClientKeys, NoKey, algorithm_name};
use crate::clock::unix_now;
use crate::config::{AssertionAudience, MAX_LEEWAY_SECS};
use crate::live::Snapshot;
use crate::metrics::{Metrics, RedisOp};
use crate::oauth::{OAuthError, Sensitive};
use crate::routes::paths::TOKEN_PATH;
use crate::slots::Slots;
use crate::store::Store;

/// The longest an assertion may live, `exp` past now (plus leeway): the single-use marker is
/// kept that long, and an assertion is meant for one request now, not a credential to store.
/// authlib's default lifetime is 3600 s (openid-client's 60 s), so its clients pass.
pub const MAX_LIFETIME_SECS: u64 = 3600;
/// The longest `jti` accepted, in characters.
const MAX_JTI: usize = 256;

/// Why an assertion was refused: for the client's log line (never the assertion, nor a claim
/// the client chose); the client itself gets `authentication_failed` whatever the reason.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refusal {
    /// Never logged as such: the caller says so of an unregistered id its own way.
    #[error("no client has this id")]
    Unregistered,
    #[error("the client is disabled")]
    Disabled,
    #[error("the client is registered with a secret, not a jwks_file")]
    NoKeys,
    #[error("its header is unreadable, or its alg is no JWS algorithm (alg none never passes)")]
    Header,
    #[error("its header has `crit`, which no extension here understands (RFC 7515 §4.1.11)")]
    Critical,
    #[error("its header has no kid and the client's jwks_file holds several keys")]
    KidNeeded,
    #[error("unknown kid: no key of the client's jwks_file has it")]
    UnknownKid,
    #[error("alg {0} is not one that its key allows")]
    Algorithm(&'static str),
    #[error("bad signature")]
    Signature,
    #[error("its claims are not readable JSON of the JWT claim types")]
    Claims,
    #[error("iss is not the client id")]
    Issuer,
    #[error("sub is not the client id (RFC 7523 §3: iss and sub are both the client)")]
    Subject,
    #[error(
        "wrong audience: aud names neither token.issuer nor this endpoint's URL (or the token \
         endpoint's)"
    )]
    Audience,
    #[error(
        "wrong audience: aud is not token.issuer alone, as a string (token.assertion_audience \
         is \"issuer\")"
    )]
    AudienceNotIssuer,
    #[error("no exp")]
    NoExpiry,
    #[error("expired")]
    Expired,
    #[error("too long-lived: exp is more than {MAX_LIFETIME_SECS} s ahead")]
    TooLongLived,
    #[error("not yet valid: nbf or iat is in the future")]
    NotYetValid,
    #[error("no jti, or one longer than {MAX_JTI} characters")]
    Jti,
    #[error("replayed jti: the assertion was used before")]
    Replayed,
}

/// What an assertion may name in `aud` (RFC 7523 §3: the authorization server): our issuer,
/// the token endpoint's URL, or the URL of the endpoint called, as Keycloak accepts; with
/// `token.assertion_audience = "issuer"`, the issuer alone.
pub struct Audiences<'a> {
    pub rule: AssertionAudience,
    pub issuer: &'a str,
    /// `discovery.base_url`, without a trailing slash.
    pub base: &'a str,
    /// The path of the endpoint called.
    pub endpoint: &'static str,
}

impl Audiences<'_> {
    fn accepts(&self, aud: &str) -> bool {
        aud == self.issuer
            || aud
                .strip_prefix(self.base)
                .is_some_and(|path| path == TOKEN_PATH || path == self.endpoint)
    }
}

/// An assertion whose signature and claims passed: what its single use is recorded by.
#[derive(Debug)]
pub struct Checked {
    pub jti: String,
    /// Its `exp`, in whole seconds (rounded up).
    pub exp: u64,
}

#[derive(Deserialize)]
struct Claims {
    iss: Option<String>,
    sub: Option<String>,
    aud: Option<Audience>,
    /// NumericDate (RFC 7519 §2) may have a fraction.
    exp: Option<f64>,
    nbf: Option<f64>,
    iat: Option<f64>,
    jti: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

/// Checks `assertion` as `client_id`'s, signed with one of `keys`, at `now` (Unix seconds)
/// give or take `leeway` seconds. No Redis: the `jti` is spent by [`Assertions::check`].
pub fn verify(
    assertion: &str,
    client_id: &str,
    keys: &ClientKeys,
    audiences: &Audiences<'_>,
    now: u64,
    leeway: u64,
) -> Result<Checked, Refusal> {
    let header = jsonwebtoken::decode_header(assertion).map_err(|_| Refusal::Header)?;
    if header.crit.is_some() {
        return Err(Refusal::Critical);
    }
    let key = keys.choose(header.kid.as_deref()).map_err(|e| match e {
        NoKey::UnknownKid => Refusal::UnknownKid,
        NoKey::KidNeeded => Refusal::KidNeeded,
    })?;
    if !key.allows(header.alg) {
        return Err(Refusal::Algorithm(algorithm_name(header.alg)));
    }
    // jsonwebtoken verifies the signature before it reads the claims: JSON and UTF-8 errors
    // are the claims'; a base64url error may be the signature's (tampered, the likelier) or,
    // after a signature that verified, the payload's, and is logged as the signature's.
    let claims = jsonwebtoken::decode::<Claims>(assertion, key.decoding(), &validation(header.alg))
        .map_err(|e| match e.kind() {
            ErrorKind::Json(_) | ErrorKind::Utf8(_) => Refusal::Claims,
            _ => Refusal::Signature,
        })?
        .claims;
    check_claims(claims, client_id, audiences, now, leeway)
}

/// Signature only: every claim is checked by [`check_claims`], which says which one failed.
fn validation(alg: Algorithm) -> Validation {
    let mut validation = Validation::new(alg);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation
}

fn check_claims(
    claims: Claims,
    client_id: &str,
    audiences: &Audiences<'_>,
    now: u64,
    leeway: u64,
) -> Result<Checked, Refusal> {
    if claims.iss.as_deref() != Some(client_id) {
        return Err(Refusal::Issuer);
    }
    if claims.sub.as_deref() != Some(client_id) {
        return Err(Refusal::Subject);
    }
    let audience_ok = match (audiences.rule, &claims.aud) {
        (_, None) => false,
        (AssertionAudience::Issuer, Some(Audience::One(aud))) => aud == audiences.issuer,
        (AssertionAudience::Issuer, Some(Audience::Many(_))) => false,
        (AssertionAudience::Any, Some(Audience::One(aud))) => audiences.accepts(aud),
        (AssertionAudience::Any, Some(Audience::Many(auds))) => {
            auds.iter().any(|aud| audiences.accepts(aud))
        }
    };
    if !audience_ok {
        return Err(match audiences.rule {
            AssertionAudience::Any => Refusal::Audience,
            AssertionAudience::Issuer => Refusal::AudienceNotIssuer,
        });
    }
    let (now, leeway) = (now as f64, leeway as f64);
    let exp = claims.exp.ok_or(Refusal::NoExpiry)?;
    if exp + leeway < now {
        return Err(Refusal::Expired);
    }
    if exp > now + (MAX_LIFETIME_SECS as f64) + leeway {
        return Err(Refusal::TooLongLived);
    }
    if [claims.nbf, claims.iat]
        .into_iter()
        .flatten()
        .any(|t| t > now + leeway)
    {
        return Err(Refusal::NotYetValid);
    }
    let jti = claims
        .jti
        .filter(|jti| !jti.is_empty() && jti.chars().count() <= MAX_JTI)
        .ok_or(Refusal::Jti)?;
    // Within [now - leeway, now + MAX_LIFETIME_SECS + leeway]: a plain number of seconds.
    let exp = exp.ceil() as u64;
    Ok(Checked { jti, exp })
}

/// How an assertion's check ended, short of passing.
pub enum Failure {
    /// A failed authentication, counted as a wrong secret is; the reason is for the log.
    Refused(Refusal),
    /// Redis could not say whether the `jti` was spent (503), or no random nonce was had.
    Error(OAuthError),
}

/// The assertions' check against the registry and Redis; `client_auth`'s, for every endpoint.
pub struct Assertions {
    pub store: Store,
    pub slots: Arc<Slots>,
    pub metrics: Arc<Metrics>,
}

impl Assertions {
    /// The client `client_id` when `assertion` is its own, valid, and used for the first time,
    /// at the endpoint whose path is `endpoint`.
    pub async fn check(
        &self,
        snapshot: &Snapshot,
        client_id: &str,
        assertion: &Sensitive,
        endpoint: &'static str,
    ) -> Result<Arc<Client>, Failure> {
        let Some(client) = snapshot.registry.get(client_id) else {
            // The caller logs an unregistered id its own way; the reason is never shown.
            return Err(Failure::Refused(Refusal::Unregistered));
        };
        if !client.enabled {
            return Err(Failure::Refused(Refusal::Disabled));
        }
        let keys = client.keys().ok_or(Failure::Refused(Refusal::NoKeys))?;
        let audiences = Audiences {
            rule: snapshot.token.assertion_audience,
            issuer: &snapshot.token.issuer,
            base: snapshot.discovery.base(),
            endpoint,
        };
        let leeway = snapshot.token.leeway_secs;
        let checked = verify(
            assertion.expose(),
            &client.id,
            keys,
            &audiences,
            unix_now(),
            leeway,
        )
        .map_err(Failure::Refused)?;
        match self.spend(&client.id, &checked).await {
            Ok(true) => Ok(Arc::clone(client)),
            Ok(false) => Err(Failure::Refused(Refusal::Replayed)),
            Err(e) => Err(Failure::Error(e)),
        }
    }

    /// Records the assertion's `jti` for as long as any replica would accept it again
    /// ([`marker_ttl_ms`]); `false` when it was recorded already. With a turn at its shard, as
    /// introspection's calls take one (`Slots::call`): while Redis does not answer there, one
    /// call at a time tries it and the others get a 503 at once.
    async fn spend(&self, client_id: &str, checked: &Checked) -> Result<bool, OAuthError> {
        let key = self.store.assertion_key(client_id, &checked.jti);
        let nonce = crate::tokens::random_id().map_err(OAuthError::internal)?;
        let ttl_ms = marker_ttl_ms(checked.exp, unix_now());
        let mut turn = self.slots.call(self.store.key_cluster_slot(&key))?;
        let spend = self.store.spend_assertion(&key, &nonce, ttl_ms);
        let answer = self.metrics.time_redis(RedisOp::Assertion, spend).await;
        turn.redis_answered(answer.as_ref().map(|_| ()));
        answer.map_err(|e| OAuthError::Unavailable(RedisOp::Assertion, e))
    }
}

/// How long an assertion's single-use marker must live from `now` (this replica's clock, whole
/// seconds): past the last moment any replica accepts the assertion, `exp` plus the leeway,
/// whatever leeway a reload sets meanwhile ([`MAX_LEEWAY_SECS`]), plus the second that
/// [`unix_now`] drops. Relative to when Redis receives it, so that a Redis clock set apart from
/// this replica's does not shorten it (a Redis clock stepped forward later, or a failover to a
/// node whose clock is ahead, still does: Redis keeps the expiry as a time); a replica whose
/// clock runs behind this one's by less than `MAX_LEEWAY_SECS` less the leeway is covered too.
/// The marker once ended at `exp` plus the leeway, by Redis's clock: in the second before a
/// replica stopped accepting the assertion, it could be used any number of times.
pub fn marker_ttl_ms(exp: u64, now: u64) -> u64 {
    let secs = exp.saturating_add(MAX_LEEWAY_SECS + 1).saturating_sub(now);
    // Redis refuses a TTL of 0; an assertion that old was refused before this.
    secs.max(1).saturating_mul(1000)
}

#[cfg(test)]
#[path = "client_assertion_tests.rs"]
mod tests;
