//! What a reload's change of keys breaks elsewhere, said at once: a dropped signer's tokens,
//! a new `alg`, a signer the resource servers have not fetched yet.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{Live, Snapshot};

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
