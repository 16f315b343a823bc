//! What a reload's change of keys breaks elsewhere, said at once: a dropped signer's tokens,
//! a new `alg`, a signer the resource servers have not fetched yet.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{Live, Snapshot};

/// The keys this process's reloads published, for as long as a JWKS it served before may
/// still be cached without them. The keys it started with are not among them: published for
/// a time a restart cannot know.
pub(super) struct Published {
    /// The latest time until which a JWKS this process served so far may be cached: each
    /// snapshot served its own until it was replaced, for its own `discovery.max_age_secs`.
    cached_until: Instant,
    /// The keys a reload published that a cached JWKS may still lack.
    recent: Vec<Recent>,
}

/// A key a reload published.
struct Recent {
    kid: String,
    /// When the reload published it.
    at: Instant,
    /// Until when a JWKS without it may be cached: [`Published::cached_until`] as that
    /// reload found it.
    cached_until: Instant,
}

impl Published {
    /// At start: nothing served yet, nothing published by a reload.
    pub(super) fn new() -> Self {
        Self {
            cached_until: Instant::now(),
            recent: Vec::new(),
        }
    }
}

impl Live {
    /// Tokens of a key that signed until now, or until less than their lifetime ago, stop
    /// verifying when a reload drops it: right for a compromised key, a mistake in a rotation
    /// (README: it stays in `token.verify_keys` until its tokens expire); then introspection
    /// calls them inactive and revocation finds nothing to revoke here, while replicas not yet
    /// reloaded still accept them. Said loudly, since only the operator knows which it is.
    pub(super) fn warn_of_dropped_signers(&self, running: &Snapshot, next: &Snapshot) {
        let now = Instant::now();
        let signer = running.keys.minter().key().kid();
        let next_signer = next.keys.minter().key().kid();
        let drops =
            |kid: &str| running.keys.verifier().knows(kid) && !next.keys.verifier().knows(kid);
        let mut retired = self.retired.lock().unwrap_or_else(|p| p.into_inner());
        // A key that signs again, or signed until now, gets a fresh deadline below.
        retired.retain(|(kid, deadline)| *deadline > now && kid != signer && kid != next_signer);
        for (kid, deadline) in retired.iter().filter(|(kid, _)| drops(kid)) {
            log::warn!(
                "this reload drops key {kid}, which signed tokens less than their lifetime ago: \
                 those of the next {} s no longer verify (inactive, not revocable) wherever it \
                 is applied. Intended for a compromised key only; otherwise keep the key in \
                 token.verify_keys until they expire (README, Key rotation)",
                deadline.saturating_duration_since(now).as_secs() + 1
            );
        }
        if signer == next_signer {
            (self.signer_lifetime).fetch_max(next.token_lifetime(), Ordering::Relaxed);
            return;
        }
        // Its tokens live until the deadline of the longest-lived settings they were issued
        // under.
        let lifetime = (self.signer_lifetime).swap(next.token_lifetime(), Ordering::Relaxed);
        let lifetime = lifetime.max(running.token_lifetime());
        retired.push((signer.to_owned(), now + Duration::from_secs(lifetime)));
        if drops(signer) {
            log::warn!(
                "this reload drops key {signer}, which signed tokens until now: those of the last \
                 {lifetime} s no longer verify (inactive, not revocable) wherever it is applied. \
                 Intended for a compromised key only; otherwise keep the key in \
                 token.verify_keys until they expire (README, Key rotation)"
            );
        }
    }

    /// A new signer that a reload published less than a cached JWKS's lifetime ago: resource
    /// servers that fetched the JWKS just before still lack it, as for a signer never
    /// published, until theirs expires. That lifetime is the longest `discovery.max_age_secs`
    /// of the snapshots that served a JWKS without it, not only the last one's: a reload that
    /// shortens the setting leaves the copies cached before with their own. Also remembers
    /// the keys this reload publishes, and forgets those it drops or that every cache now
    /// holds.
    pub(super) fn warn_of_a_signer_published_too_recently(
        &self,
        running: &Snapshot,
        next: &Snapshot,
    ) {
        let now = Instant::now();
        let mut published = self.published.lock().unwrap_or_else(|p| p.into_inner());
        let served = now + Duration::from_secs(running.discovery.max_age_secs);
        published.cached_until = published.cached_until.max(served);
        let (signer, next_signer) = (
            running.keys.minter().key().kid(),
            next.keys.minter().key().kid(),
        );
        let still_lacked = |key: &&Recent| key.kid == next_signer && key.cached_until > now;
        if signer != next_signer
            && let Some(key) = published.recent.iter().find(still_lacked)
        {
            log::warn!(
                "this reload makes key {next_signer} the signer, which this replica published \
                 only {} s ago: resource servers whose cached JWKS (up to \
                 discovery.max_age_secs) lacks it reject its tokens for up to {} s more. Unless \
                 that is intended (a compromised signer), make key {signer} the signer again, \
                 and this one once discovery.max_age_secs has passed since every replica \
                 published it (README, Key rotation)",
                now.saturating_duration_since(key.at).as_secs(),
                key.cached_until.saturating_duration_since(now).as_secs() + 1
            );
        }
        let verifier = next.keys.verifier();
        (published.recent).retain(|key| key.cached_until > now && verifier.knows(&key.kid));
        let cached_until = published.cached_until;
        for kid in verifier.kids() {
            if !running.keys.verifier().knows(kid) {
                (published.recent).push(Recent {
                    kid: kid.to_owned(),
                    at: now,
                    cached_until,
                });
            }
        }
    }
}

/// The tokens' `alg` follows the signing key's type, so making a key of another type the signer
/// changes what every resource server and client must accept (the seed's tokens are RS256); one
/// pinned to the old algorithm rejects every new token. Said at once, since nothing else fails.
pub(super) fn warn_of_a_new_algorithm(running: &Snapshot, next: &Snapshot) {
    let (signer, next_signer) = (running.keys.minter().key(), next.keys.minter().key());
    let (was, is) = (signer.algorithm().name(), next_signer.algorithm().name());
    if was != is {
        log::warn!(
            "this reload changes the tokens' alg from {was} (key {}) to {is} (key {}): resource \
             servers and clients that accept only {was} reject every token signed from now on; \
             rotate to a key of the same type unless all of them accept {is} (README, Key \
             rotation)",
            signer.kid(),
            next_signer.kid()
        );
    }
}

/// A new signer that the running JWKS did not list: resource servers whose cached JWKS (kept
/// up to `discovery.max_age_secs`) lacks its `kid` reject its tokens until they fetch it again.
/// The README's rotation publishes a key as verify-only first; said at once, since only the
/// resource servers fail.
pub(super) fn warn_of_an_unpublished_signer(running: &Snapshot, next: &Snapshot) {
    let next_signer = next.keys.minter().key().kid();
    if next_signer != running.keys.minter().key().kid()
        && !running.keys.verifier().knows(next_signer)
    {
        log::warn!(
            "this reload makes key {next_signer} the signer, which this replica did not publish \
             before: resource servers whose cached JWKS (up to discovery.max_age_secs, {} s) \
             lacks it reject its tokens until they fetch it again. Unless that is intended (a \
             compromised signer), publish a new key in token.verify_keys on every replica \
             first and wait (README, Key rotation)",
            running.discovery.max_age_secs
        );
    }
}
