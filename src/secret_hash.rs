//! Stored client secrets and their verification.
//!
//! Secrets are stored hashed. Client secrets are high-entropy random strings, so a single
//! SHA-256 (`sha256:<hex>`) is enough and keeps authentication cheap; Argon2id PHC strings are
//! accepted for operators who want them, and a successful Argon2 verification is remembered (as
//! the SHA-256 of the secret) so that a busy client pays Argon2 once, not per request.

use std::collections::HashMap;
use std::num::NonZero;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use subtle::ConstantTimeEq;
use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinError;

use crate::oauth::credentials::MAX_SECRET;

mod digest;

use self::digest::decode_hex;
pub(crate) use self::digest::{Digest, sha256};

/// How long a verification waits for a free Argon2 slot before its request gets a 503: long
/// enough for a burst of one client's requests to wait for the first verification (then the
/// rest find it remembered), short enough that a flood of wrong secrets queues nothing for long.
const ARGON2_WAIT: Duration = Duration::from_millis(100);

/// The largest Argon2 memory cost a stored hash may ask for: 256 MiB (ours: 19 MiB).
const ARGON2_MAX_MEMORY_KIB: u32 = 256 * 1024;

/// The most passes (`t`) a stored Argon2id hash may ask for: each wrong secret pays them, in a
/// blocking thread that no hung-up request frees. Ours is 2; libsodium's strongest preset is 4.
const ARGON2_MAX_TIME_COST: u32 = 10;

/// Bounds the Argon2 verifications that run at once, for the whole process (every snapshot
/// shares one). Each takes ~19 MiB and tens of milliseconds of a core: unbounded, a flood of
/// wrong secrets for an Argon2 client would fill tokio's blocking pool (512 threads, ~10 GiB).
/// A client id takes one slot at most: client ids are public, and a flood for one must leave
/// the other slots to the other clients. Remembered successes need no slot.
#[derive(Clone, Debug)]
pub struct Argon2Limit {
    slots: Arc<Semaphore>,
    /// One turn per client id with a verification running or waiting; idle ones are dropped.
    turns: Arc<Mutex<HashMap<String, Arc<Semaphore>>>>,
}

/// What a verification holds while Argon2 runs: its client id's turn and a slot of the pool.
/// Both are given back when it is dropped.
struct Argon2Permit {
    _client: OwnedSemaphorePermit,
    _slot: OwnedSemaphorePermit,
}

impl Argon2Limit {
    /// One slot per two CPUs (`available_parallelism`), at least one: Argon2 floods then leave
    /// at least half the cores to every other request (on a machine with two CPUs or more).
    pub fn half_the_cpus() -> Self {
        Self::new(std::thread::available_parallelism().map_or(1, NonZero::get) / 2)
    }

    /// `clients.argon2_slots`: that many slots, or with 0 [`Self::half_the_cpus`].
    pub fn configured(slots: usize) -> Self {
        match slots {
            0 => Self::half_the_cpus(),
            slots => Self::new(slots),
        }
    }

    pub fn new(slots: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(slots.max(1))),
            turns: Arc::default(),
        }
    }

    /// `client_id`'s turn, then a slot: a flood for one id queues on its own turn, not ahead
    /// of the other ids in the pool's queue.
    async fn take(&self, client_id: &str) -> Result<Argon2Permit, AcquireError> {
        let client = self.turn_of(client_id).acquire_owned().await?;
        let slot = Arc::clone(&self.slots).acquire_owned().await?;
        Ok(Argon2Permit {
            _client: client,
            _slot: slot,
        })
    }

    /// The one-permit semaphore of `client_id`. Those that no verification holds or waits for
    /// are dropped first (an idle one is as good as a new one), so the map holds only the ids
    /// in use, not every id ever flooded.
    fn turn_of(&self, client_id: &str) -> Arc<Semaphore> {
        let mut turns = self
            .turns
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if let Some(turn) = turns.get(client_id) {
            return Arc::clone(turn);
        }
        turns.retain(|_, turn| Arc::strong_count(turn) > 1);
        let turn = Arc::new(Semaphore::new(1));
        turns.insert(client_id.to_owned(), Arc::clone(&turn));
        turn
    }
}

/// Why [`SecretHash::verify`] could not say whether a secret is right. What each means for the
/// request (its HTTP answer) is the client registry's to say, not this module's.
#[derive(Debug, thiserror::Error)]
pub(crate) enum VerifyError {
    /// The client id's Argon2 turn or every Argon2 slot stayed busy for [`ARGON2_WAIT`].
    #[error("client authentication overloaded")]
    Busy,
    /// The blocking task that ran Argon2 panicked or was cancelled.
    #[error(transparent)]
    Argon2Task(JoinError),
}

/// Refuses a secret no request can present: an empty one counts as none (RFC 6749 §3.2), and
/// a request's secret is at most [`MAX_SECRET`] bytes. For `plain:` entries and `hash-secret`.
pub fn presentable(secret: &str) -> Result<(), String> {
    match secret.len() {
        0 => Err("the secret is empty, which no request can present".into()),
        n if n > MAX_SECRET => Err(format!(
            "the secret is over {MAX_SECRET} bytes, the most a request may send"
        )),
        _ => Ok(()),
    }
}

/// `Debug` names the kind only: a digest of the secret (or, for Argon2, of the last secret
/// that passed) is as good as the secret to anyone who can test guesses against it.
pub(crate) enum SecretHash {
    /// `sha256:<hex>`, or a `plain:` secret hashed at load time.
    Sha256(Digest),
    Argon2 {
        phc: String,
        /// SHA-256 of the last secret that passed Argon2.
        verified: RwLock<Option<Digest>>,
    },
}

impl std::fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Sha256(_) => "SecretHash::Sha256([redacted])",
            Self::Argon2 { .. } => "SecretHash::Argon2([redacted])",
        })
    }
}

impl SecretHash {
    pub(crate) fn parse(stored: &str) -> Result<Self, String> {
        // A request's empty secret counts as none (RFC 6749 §3.2): such a client would get
        // 401 for ever, with nothing to say why.
        let empty = || "the secret is empty, which no request can present".to_owned();
        if let Some(hex) = stored.strip_prefix("sha256:") {
            let digest = decode_hex(hex).ok_or("sha256: secret must be 64 hex digits")?;
            return match bool::from(digest.ct_eq(&sha256(""))) {
                true => Err(empty()),
                false => Ok(Self::Sha256(digest)),
            };
        }
        if let Some(plain) = stored.strip_prefix("plain:") {
            presentable(plain).map_err(|e| format!("plain: {e}"))?;
            return Ok(Self::Sha256(sha256(plain)));
        }
        if stored.starts_with("$argon2id$") {
            let hash =
                PasswordHash::new(stored).map_err(|e| format!("Argon2id PHC string: {e}"))?;
            // Every wrong secret pays the hash's own cost: a hash made elsewhere with a huge
            // one (libsodium's "sensitive" is 1 GiB) would let anyone take that much memory
            // per slot.
            let memory_kib = hash.params.get_decimal("m").unwrap_or(0);
            if memory_kib > ARGON2_MAX_MEMORY_KIB {
                return Err(format!(
                    "Argon2id memory cost m={memory_kib} KiB is over {ARGON2_MAX_MEMORY_KIB} \
                     (each wrong secret would take that much); hash the secret again with \
                     sso-token hash-secret --argon2"
                ));
            }
            let passes = hash.params.get_decimal("t").unwrap_or(0);
            if passes > ARGON2_MAX_TIME_COST {
                return Err(format!(
                    "Argon2id time cost t={passes} is over {ARGON2_MAX_TIME_COST} (each wrong \
                     secret would take that many passes); hash the secret again with \
                     sso-token hash-secret --argon2"
                ));
            }
            // A hash cut short or with parameters Argon2 refuses would verify no secret at all:
            // its client would get 401 for ever, with nothing to say why.
            if hash.salt.is_none() || hash.hash.is_none() {
                return Err("Argon2id PHC string lacks its salt or its hash (cut short?)".into());
            }
            argon2::Params::try_from(&hash)
                .map_err(|e| format!("Argon2id PHC string has invalid parameters: {e}"))?;
            return Ok(Self::Argon2 {
                phc: stored.to_owned(),
                verified: RwLock::new(None),
            });
        }
        Err("secret must be `sha256:<hex>`, an `$argon2id$` PHC string or `plain:<secret>`".into())
    }

    /// Whether `other` stores the same hash (a reload's account of what it changed); a
    /// SHA-256 digest compares in constant time, as every compare of one does.
    pub(crate) fn same_stored(&self, other: &SecretHash) -> bool {
        match (self, other) {
            (Self::Sha256(a), Self::Sha256(b)) => a.ct_eq(b).into(),
            (Self::Argon2 { phc: a, .. }, Self::Argon2 { phc: b, .. }) => a == b,
            _ => false,
        }
    }

    /// Takes over what `older` remembers when both are the same Argon2 hash: a reload that
    /// leaves a client's secret alone does not send its next request back to an Argon2 slot.
    pub(crate) fn inherit(&self, older: &SecretHash) {
        if let (
            Self::Argon2 { phc, verified },
            Self::Argon2 {
                phc: older_phc,
                verified: older_verified,
            },
        ) = (self, older)
            && phc == older_phc
        {
            let remembered = *older_verified
                .read()
                .unwrap_or_else(|poison| poison.into_inner());
            let mut mine = verified
                .write()
                .unwrap_or_else(|poison| poison.into_inner());
            if mine.is_none() {
                *mine = remembered;
            }
        }
    }

    /// Which of `hashes` (a client's secret, then its previous ones) `presented` is
    /// `client_id`'s secret for, by position; `None` for none. First the checks that cost no
    /// Argon2, of every hash (a `sha256:` digest, a secret an Argon2 hash remembers); then, if
    /// an Argon2 hash is left, one turn of the client id and one slot ([`Argon2Limit`]), the
    /// cheap checks again (the request ahead may have verified this very secret while this one
    /// waited), and Argon2 for each Argon2 hash in order, in one blocking task. So a burst on
    /// a previous secret waits for one verification, as a burst on the current one does, and a
    /// wrong secret pays one Argon2 per Argon2 hash in one turn. [`VerifyError::Busy`] unless
    /// the turn and a slot free up within [`ARGON2_WAIT`]: a request is never queued for long
    /// behind a flood.
    pub(crate) async fn position_of<'a>(
        hashes: impl Iterator<Item = &'a SecretHash> + Clone,
        client_id: &str,
        presented: &str,
        limit: &Argon2Limit,
    ) -> Result<Option<usize>, VerifyError> {
        let presented_digest = sha256(presented);
        let known = || hashes.clone().position(|h| h.known(&presented_digest));
        if let Some(position) = known() {
            return Ok(Some(position));
        }
        let argon2: Vec<(usize, String)> = (hashes.clone().enumerate())
            .filter_map(|(position, hash)| match hash {
                Self::Argon2 { phc, .. } => Some((position, phc.clone())),
                Self::Sha256(_) => None,
            })
            .collect();
        if argon2.is_empty() {
            return Ok(None);
        }
        let waiting = limit.take(client_id);
        let Ok(Ok(permit)) = tokio::time::timeout(ARGON2_WAIT, waiting).await else {
            return Err(VerifyError::Busy);
        };
        if let Some(position) = known() {
            return Ok(Some(position));
        }
        // Argon2 takes tens of milliseconds: keep it off the async workers. The permit goes
        // along, so it stays taken until Argon2 is done, even if the request is dropped
        // meanwhile (a client that hangs up frees no core).
        let secret = presented.to_owned();
        let matched = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            argon2.into_iter().find_map(|(position, phc)| {
                PasswordHash::new(&phc)
                    .is_ok_and(|hash| {
                        Argon2::default()
                            .verify_password(secret.as_bytes(), &hash)
                            .is_ok()
                    })
                    .then_some(position)
            })
        })
        .await
        .map_err(VerifyError::Argon2Task)?;
        if let Some(Self::Argon2 { verified, .. }) = matched.and_then(|at| hashes.clone().nth(at)) {
            *verified
                .write()
                .unwrap_or_else(|poison| poison.into_inner()) = Some(presented_digest);
        }
        Ok(matched)
    }

    /// Whether `presented` (its SHA-256) passes without Argon2: it is the `sha256:` digest, or
    /// the secret that last passed this Argon2 hash. Constant-time.
    fn known(&self, presented: &Digest) -> bool {
        match self {
            Self::Sha256(expected) => presented.ct_eq(expected).into(),
            Self::Argon2 { verified, .. } => remembered(verified, presented),
        }
    }

    /// Whether `presented` is `client_id`'s secret: [`SecretHash::position_of`] for this one.
    #[cfg(test)]
    pub(crate) async fn verify(
        &self,
        client_id: &str,
        presented: &str,
        limit: &Argon2Limit,
    ) -> Result<bool, VerifyError> {
        let position = Self::position_of(std::iter::once(self), client_id, presented, limit);
        Ok(position.await?.is_some())
    }
}

/// Whether `digest` is that of the secret that last passed Argon2.
fn remembered(verified: &RwLock<Option<Digest>>, digest: &Digest) -> bool {
    let cached = *verified.read().unwrap_or_else(|poison| poison.into_inner());
    cached.is_some_and(|c| bool::from(c.ct_eq(digest)))
}

/// `sha256:<hex>`: the default stored form of a client secret.
pub fn hash_secret_sha256(secret: &str) -> String {
    format!("sha256:{}", sha256(secret).hex())
}

/// An Argon2id PHC string with a random salt.
pub fn hash_secret_argon2(secret: &str) -> Result<String, argon2::password_hash::Error> {
    let mut salt = [0u8; 16];
    aws_lc_rs::rand::fill(&mut salt).map_err(|_| argon2::password_hash::Error::Crypto)?;
    Ok(Argon2::default()
        .hash_password_with_salt(secret.as_bytes(), &salt)?
        .to_string())
}

#[cfg(test)]
#[path = "secret_hash_tests.rs"]
mod tests;
