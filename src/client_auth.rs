//! Client authentication as the token, introspection and revocation endpoints all do it: a
//! throttled source address is refused up front, the credentials are checked against the
//! registry of one snapshot (`Registry::verify_secret`, or `client_assertion` for a client
//! assertion), and every failure is counted (metrics, throttle). One place, so that a client
//! secret cannot be guessed more cheaply at one endpoint than at another, nor an assertion
//! tried more cheaply than a secret.

use std::net::IpAddr;
use std::sync::Arc;

use arc_swap::Guard;

use crate::client_assertion::{Assertions, Failure};
use crate::clients::{Client, Verified};
use crate::live::{Live, Snapshot};
use crate::metrics::Metrics;
use crate::oauth::{ClientCredentials, OAuthError};
use crate::throttle::{Attempt, Throttle};

/// Authenticates clients; shared by every endpoint that takes client credentials.
pub struct ClientAuth {
    live: Arc<Live>,
    throttle: Throttle,
    metrics: Arc<Metrics>,
    assertions: Assertions,
}

/// An authenticated client, and the snapshot it was authenticated against: the request keeps
/// that snapshot to its end, so a reload half-way changes nothing for it. Only
/// [`ClientAuth::authenticate`] makes one, so what takes a `Caller` runs after authentication.
pub struct Caller {
    snapshot: Guard<Arc<Snapshot>>,
    client: Arc<Client>,
}

impl Caller {
    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    pub fn client(&self) -> &Arc<Client> {
        &self.client
    }
}

impl ClientAuth {
    pub fn new(
        live: Arc<Live>,
        throttle: Throttle,
        metrics: Arc<Metrics>,
        assertions: Assertions,
    ) -> Self {
        Self {
            live,
            throttle,
            metrics,
            assertions,
        }
    }

    /// The address a request's failures are counted under (see `throttle`).
    pub fn source(&self, peer: Option<IpAddr>, forwarded_for: Option<&str>) -> Option<IpAddr> {
        self.throttle.source(peer, forwarded_for)
    }

    /// The caller, or: `invalid_client` (401) for a failed authentication; 429 for a failed one
    /// once the client id has failed too often (a right secret still passes), and for any once
    /// `source` has and this client id failed from it or is unknown (see `throttle`); 503 when
    /// the throttle cannot ask Redis, or its client id's Argon2 turn or every Argon2 slot stays
    /// busy (`secret_hash::Argon2Limit`), or Redis cannot record an assertion's single use.
    /// `endpoint`: the path called, which an assertion's `aud` may name.
    pub async fn authenticate(
        &self,
        credentials: &ClientCredentials,
        source: Option<IpAddr>,
        endpoint: &'static str,
    ) -> Result<Caller, OAuthError> {
        let snapshot = self.live.snapshot();
        let attempt = Attempt {
            client_id: &credentials.id,
            registry: &snapshot.registry,
            source,
        };
        self.throttle.admit(attempt).await?;
        // Why an assertion was refused, for the client's log line.
        let mut refusal = None;
        let outcome = match &credentials.assertion {
            None => snapshot.registry.verify_secret(credentials).await,
            Some(assertion) => {
                // Boxed: its future (a signature, a Redis call) would otherwise be part of
                // every secret client's request's too.
                let check =
                    (self.assertions).check(&snapshot, &credentials.id, assertion, endpoint);
                let checked = Box::pin(check).await;
                match checked {
                    Ok(client) => Ok(Verified {
                        client,
                        with_previous_secret: false,
                    }),
                    Err(Failure::Refused(why)) => {
                        refusal = Some(why);
                        Err(OAuthError::authentication_failed())
                    }
                    Err(Failure::Error(e)) => Err(e),
                }
            }
        };
        match outcome {
            Ok(Verified {
                client,
                with_previous_secret,
            }) => {
                if with_previous_secret {
                    self.metrics.previous_secret_used();
                }
                Ok(Caller { snapshot, client })
            }
            Err(failure @ OAuthError::InvalidClient(_)) => {
                self.metrics.auth_failed();
                // Which client failed, for the operator it calls: only a registered id is
                // named (a claimed one is any text, a pasted secret included). An unknown id
                // writes a line too, and the throttle counts its failure with as many Redis
                // calls, so that the time of an answer tells no one which ids are registered.
                match (snapshot.registry.get(&credentials.id), refusal) {
                    (Some(client), Some(why)) => client.log_assertion_failure(why),
                    (Some(client), None) => client.log_auth_failure(credentials.used_basic),
                    (None, _) => {
                        crate::info_every_second!(
                            "authentication failed for an unregistered client id"
                        );
                    }
                }
                // Boxed: a rare path whose future (three Redis calls) would otherwise be part
                // of every request's.
                Err(Box::pin(self.throttle.failed(attempt, failure)).await)
            }
            Err(OAuthError::Overloaded) => {
                self.metrics.argon2_overloaded();
                Err(OAuthError::Overloaded)
            }
            Err(other) => Err(other),
        }
    }
}
