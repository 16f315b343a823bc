//! Where a failure comes from: the peer, or the hop that trusted proxies forwarded for; and
//! the warnings for a proxy that names no address, or a forwarder that is not trusted. The
//! networks are in `network.rs`, the address a source counts as in `counted_as.rs`.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;

use super::Throttle;
use super::counted_as::counted_as;
use super::network::{Network, is_trusted};

/// Why a request has no source address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unnamed {
    /// The connection has no peer address (not a TCP one).
    NoPeer,
    /// A trusted proxy sent no `X-Forwarded-For`: its own request (a health check), or one
    /// from a proxy that names no client.
    NoForwardedFor { proxy: IpAddr },
    /// A hop behind a trusted proxy (`proxy`, the hop right of it) is not an address.
    NotAnAddress { proxy: IpAddr },
}

impl Unnamed {
    /// Said where failures are counted (`Throttle::source`), at most once a second each: the
    /// access log asks for nearly every request (all but `/healthz` and `/readyz`).
    pub(super) fn warn(self) {
        match self {
            Self::NoPeer => {}
            Self::NoForwardedFor { proxy } => crate::warn_every_second!(
                "throttle: a request from a trusted proxy ({proxy}) without X-Forwarded-For; \
                 such requests are throttled by client id only"
            ),
            Self::NotAnAddress { proxy } => crate::warn_every_second!(
                "throttle: an X-Forwarded-For hop behind a trusted proxy ({proxy}) is not an \
                 address; such requests are throttled by client id only"
            ),
        }
    }
}

impl Throttle {
    /// The address a request's failures are counted under: an IPv6 one by its /64.
    pub fn source(&self, peer: Option<IpAddr>, forwarded_for: Option<&str>) -> Option<IpAddr> {
        if forwarded_for.is_some() {
            self.warn_of_an_untrusted_forwarder(peer);
        }
        match source_address(peer, forwarded_for, &self.trusted) {
            Ok(source) => Some(counted_as(source)),
            Err(unnamed) => {
                if self.enabled {
                    unnamed.warn();
                }
                None
            }
        }
    }

    /// Once per process: a peer sends `X-Forwarded-For` but is not a trusted proxy. Behind a
    /// load balancer left out of `throttle.trusted_proxies`, every caller counts as the
    /// balancer, and anyone's wrong guesses block a client id for all of them.
    fn warn_of_an_untrusted_forwarder(&self, peer: Option<IpAddr>) {
        let Some(peer) = peer.map(|p| p.to_canonical()) else {
            return;
        };
        if !self.enabled
            || self.warned_untrusted.load(Ordering::Relaxed)
            || is_trusted(&self.trusted, peer)
            || self.warned_untrusted.swap(true, Ordering::Relaxed)
        {
            return;
        }
        log::warn!(
            "throttle: {peer} sends X-Forwarded-For but is not in throttle.trusted_proxies, so \
             failed client authentications through it count against {peer} itself: if it is \
             your load balancer, anyone's wrong secrets will block a client id for every caller \
             behind it; list it there (said once)"
        );
    }
}

/// The address failures are counted under: the peer, or what trusted proxies say it forwarded
/// (the right-most hop that is not a trusted proxy). None ([`Unnamed`]) when a trusted proxy
/// names no address: its failures then count against the client id only, never against the
/// proxy (which would block everyone behind it). Says nothing itself: see [`Unnamed::warn`].
pub fn source_address(
    peer: Option<IpAddr>,
    forwarded_for: Option<&str>,
    trusted: &[Network],
) -> Result<IpAddr, Unnamed> {
    let peer = peer.ok_or(Unnamed::NoPeer)?.to_canonical();
    if !is_trusted(trusted, peer) {
        return Ok(peer);
    }
    // Counted against the proxy, N failures would block every caller behind it.
    let forwarded_for = forwarded_for.ok_or(Unnamed::NoForwardedFor { proxy: peer })?;
    let mut source = peer;
    for hop in forwarded_for.rsplit(',') {
        let proxy = source;
        source = hop_address(hop.trim())
            .ok_or(Unnamed::NotAnAddress { proxy })?
            .to_canonical();
        if !is_trusted(trusted, source) {
            break;
        }
    }
    Ok(source)
}

/// One `X-Forwarded-For` hop: an address, or one with a port as some proxies write it
/// (`203.0.113.7:51234`, `[2001:db8::7]:443`, `[2001:db8::7]`).
fn hop_address(hop: &str) -> Option<IpAddr> {
    hop.parse()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| hop.strip_prefix('[')?.strip_suffix(']')?.parse().ok())
}

#[cfg(test)]
#[path = "source_tests.rs"]
mod tests;
