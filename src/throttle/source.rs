//! Where a failure comes from: the peer, or the hop that trusted proxies forwarded for, an IPv6
//! address as its /64 (but a NAT64 one as its IPv4 address).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::Ordering;

use super::Throttle;

/// A network given as `address` or `address/prefix-length`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    address: IpAddr,
    prefix: u8,
}

impl Network {
    pub fn parse(text: &str) -> Option<Self> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address.parse().ok()?, prefix.parse().ok()?),
            None => {
                let address: IpAddr = text.parse().ok()?;
                (address, if address.is_ipv4() { 32 } else { 128 })
            }
        };
        let bits = if address.is_ipv4() { 32 } else { 128 };
        if prefix > bits {
            return None;
        }
        // `::ffff:10.0.0.5` (how a dual-stack listener shows an IPv4 peer) is that IPv4
        // address: `contains` compares peers in their canonical form, so the network must be
        // in it too.
        match address.to_canonical() {
            IpAddr::V4(v4) if address.is_ipv6() && prefix >= 96 => Some(Self {
                address: IpAddr::V4(v4),
                prefix: prefix - 96,
            }),
            _ => Some(Self { address, prefix }),
        }
    }

    /// Whether this is a whole address family (`0.0.0.0/0`, `::/0`).
    pub fn is_everything(&self) -> bool {
        self.prefix == 0
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let (net, ip, bits) = match (self.address, ip.to_canonical()) {
            (IpAddr::V4(n), IpAddr::V4(i)) => {
                (u128::from(n.to_bits()), u128::from(i.to_bits()), 32)
            }
            (IpAddr::V6(n), IpAddr::V6(i)) => (n.to_bits(), i.to_bits(), 128),
            _ => return false,
        };
        let shift = bits - u32::from(self.prefix);
        shift >= bits || net >> shift == ip >> shift
    }
}

/// Whether `ip` is one of the trusted proxies.
pub(super) fn is_trusted(trusted: &[Network], ip: IpAddr) -> bool {
    trusted.iter().any(|n| n.contains(ip))
}

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

/// An IPv6 address counts as its /64 network: a host is routinely given a whole /64 (SLAAC,
/// privacy addresses), so one address alone would let it pick a fresh one for every guess. An
/// address that carries an IPv4 client's (see [`embedded_ipv4`]) counts as that IPv4 address.
pub(super) fn counted_as(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match embedded_ipv4(v6) {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((v6.to_bits() & !u128::from(u64::MAX)).into()),
        },
        v4 => v4,
    }
}

/// The IPv4 client inside an IPv6 address that carries one, as `to_canonical` finds the one
/// inside `::ffff:0:0/96`:
/// - RFC 6052's well-known NAT64 prefix `64:ff9b::/96` (a NAT64 or SIIT translator): as a /64,
///   every IPv4 client of the translator would share one counter, and one could block them all.
///   Network-specific prefixes cannot be told from native IPv6 and count as /64s.
/// - 6to4, `2002::/16` (RFC 3056): an IPv4 host's own /48, 65,536 /64s to guess from.
/// - Teredo, `2001::/32` (RFC 4380): the client's IPv4 address, inverted, in the last 32 bits;
///   the /64 holds the relay's address and a port the client picks.
fn embedded_ipv4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    match v6.octets() {
        [0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0, a, b, c, d]
        | [0x20, 0x02, a, b, c, d, ..] => Some(Ipv4Addr::new(a, b, c, d)),
        [0x20, 0x01, 0, 0, .., a, b, c, d] => Some(Ipv4Addr::new(!a, !b, !c, !d)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn nets(list: &[&str]) -> Vec<Network> {
        list.iter().map(|n| Network::parse(n).unwrap()).collect()
    }

    #[test]
    fn networks_match_by_prefix_and_family() {
        let lan = Network::parse("10.1.0.0/16").unwrap();
        assert!(lan.contains(ip("10.1.200.3")));
        assert!(!lan.contains(ip("10.2.0.1")));
        assert!(lan.contains(ip("::ffff:10.1.0.9")), "IPv4-mapped IPv6");
        assert!(Network::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(Network::parse("fd00::/8").unwrap().contains(ip("fd12::1")));
        assert!(!Network::parse("fd00::/8").unwrap().contains(ip("10.0.0.1")));
        assert!(
            Network::parse("192.168.1.7")
                .unwrap()
                .contains(ip("192.168.1.7"))
        );
        // A proxy written IPv4-mapped is its IPv4 address, and matches it in either form.
        for mapped in ["::ffff:10.0.0.5", "::ffff:10.0.0.0/120"] {
            let proxy = Network::parse(mapped).unwrap();
            assert!(proxy.contains(ip("10.0.0.5")), "{mapped}");
            assert!(proxy.contains(ip("::ffff:10.0.0.5")), "{mapped}");
            assert!(!proxy.contains(ip("10.0.1.5")), "{mapped}");
        }
        // Shorter than the mapped range's /96: an IPv6 network, which no IPv4 peer is in.
        let wider = Network::parse("::ffff:0:0/95").unwrap();
        assert!(!wider.contains(ip("10.0.0.5")));
        assert!(wider.contains(ip("::fffe:1:2")));
        for bad in ["10.0.0.0/33", "fd00::/129", "proxy", "10.0.0.0/x", ""] {
            assert_eq!(Network::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn ipv6_counts_as_its_64_but_nat64_6to4_and_teredo_as_the_ipv4_address_inside() {
        assert_eq!(counted_as(ip("2001:db8:1:2:a::1")), ip("2001:db8:1:2::"));
        assert_eq!(counted_as(ip("203.0.113.7")), ip("203.0.113.7"));
        // RFC 6052's well-known prefix: each IPv4 client behind the translator on its own.
        assert_eq!(counted_as(ip("64:ff9b::198.51.100.7")), ip("198.51.100.7"));
        assert_eq!(counted_as(ip("64:ff9b::c633:6408")), ip("198.51.100.8"));
        // Outside the /96 (64:ff9b:1::/48 is RFC 8215's local-use prefix): a /64 as any.
        assert_eq!(counted_as(ip("64:ff9b:1::c633:6407")), ip("64:ff9b:1::"));
        // 6to4: the /48 of 203.0.113.7, whichever of its /64s.
        assert_eq!(counted_as(ip("2002:cb00:7107:1::1")), ip("203.0.113.7"));
        assert_eq!(counted_as(ip("2002:cb00:7107:ffff::9")), ip("203.0.113.7"));
        // Teredo: 203.0.113.7 inverted in the last 32 bits, whatever relay and port.
        assert_eq!(
            counted_as(ip("2001:0:4136:e378:8000:63bf:34ff:8ef8")),
            ip("203.0.113.7")
        );
        assert_eq!(
            counted_as(ip("2001:0:c633:6401:0:1234:34ff:8ef8")),
            ip("203.0.113.7")
        );
        // Neighbours of those prefixes are native IPv6.
        assert_eq!(counted_as(ip("2001:1::1")), ip("2001:1::"));
        assert_eq!(
            counted_as(ip("2003:cb00:7107:1::1")),
            ip("2003:cb00:7107:1::")
        );
    }

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_proxy() {
        let trusted = nets(&["10.0.0.0/8"]);
        let xff = Some("203.0.113.9, 198.51.100.7, 10.0.0.2");
        // Not from a trusted proxy: the header is the client's own claim.
        assert_eq!(
            source_address(Some(ip("198.51.100.1")), xff, &trusted),
            Ok(ip("198.51.100.1"))
        );
        // From a trusted proxy: the right-most hop that is not a trusted proxy.
        assert_eq!(
            source_address(Some(ip("10.0.0.1")), xff, &trusted),
            Ok(ip("198.51.100.7"))
        );
        // No header: no address, never the proxy's (whose block would cover all behind it).
        assert_eq!(
            source_address(Some(ip("10.0.0.1")), None, &trusted),
            Err(Unnamed::NoForwardedFor {
                proxy: ip("10.0.0.1")
            })
        );
        assert_eq!(
            source_address(Some(ip("198.51.100.1")), None, &trusted),
            Ok(ip("198.51.100.1"))
        );
        // Garbage where the client's address should be: no address, never the proxy's.
        for garbage in ["1.2.3.4, junk, 10.0.0.3", "", "198.51.100.7, ", "\u{FFFD}"] {
            assert_eq!(
                source_address(Some(ip("10.0.0.1")), Some(garbage), &trusted),
                Err(Unnamed::NotAnAddress {
                    proxy: ip(if garbage.contains("10.0.0.3") {
                        "10.0.0.3"
                    } else {
                        "10.0.0.1"
                    })
                }),
                "{garbage:?}"
            );
        }
        // Garbage the client sent, left of what the proxy appended, is not read.
        assert_eq!(
            source_address(
                Some(ip("10.0.0.1")),
                Some("\u{FFFD}, 198.51.100.7"),
                &trusted
            ),
            Ok(ip("198.51.100.7"))
        );
        // Hops with a port, as some proxies write them.
        for (hop, address) in [
            ("198.51.100.7:51234", "198.51.100.7"),
            ("[2001:db8::7]:443", "2001:db8::7"),
            ("[2001:db8::7]", "2001:db8::7"),
            ("2001:db8::7", "2001:db8::7"),
        ] {
            assert_eq!(
                source_address(Some(ip("10.0.0.1")), Some(hop), &trusted),
                Ok(ip(address)),
                "{hop}"
            );
        }
        assert_eq!(source_address(None, xff, &trusted), Err(Unnamed::NoPeer));
    }

    /// Property tests ("fuzzing"): `X-Forwarded-For` is the caller's to write, all but the hops
    /// the trusted proxies append. `PROPTEST_CASES=1000000 cargo test --release --lib fuzz_`.
    mod fuzz {
        use proptest::prelude::*;

        use super::*;
        use crate::oauth::fuzz_tests::{config, text};

        const TRUSTED: [&str; 2] = ["10.0.0.0/8", "fd00::/8"];

        /// An address outside [`TRUSTED`], in either family, as a hop may write it.
        fn client() -> impl Strategy<Value = (IpAddr, String)> {
            prop_oneof![
                any::<u32>()
                    .prop_map(|bits| Ipv4Addr::from_bits(bits | 0x8000_0000))
                    .prop_flat_map(|v4| {
                        let texts = vec![v4.to_string(), format!("{v4}:51234")];
                        (Just(IpAddr::V4(v4)), prop::sample::select(texts))
                    }),
                any::<u128>()
                    .prop_map(|bits| Ipv6Addr::from_bits((bits >> 3) | (0b001 << 125)))
                    .prop_flat_map(|v6| {
                        let texts = vec![v6.to_string(), format!("[{v6}]:443"), format!("[{v6}]")];
                        (Just(IpAddr::V6(v6)), prop::sample::select(texts))
                    }),
            ]
        }

        /// A trusted proxy's address.
        fn proxy() -> impl Strategy<Value = IpAddr> {
            prop_oneof![
                any::<u32>()
                    .prop_map(|bits| IpAddr::V4(Ipv4Addr::from_bits(0x0a00_0000 | (bits >> 8)))),
                any::<u128>()
                    .prop_map(|bits| IpAddr::V6(Ipv6Addr::from_bits((0xfd << 120) | (bits >> 8)))),
            ]
        }

        proptest! {
            #![proptest_config(config())]

            #[test]
            fn fuzz_the_hops_left_of_what_trusted_proxies_appended_are_never_read(
                written in text(0..=60),
                (client, as_written) in client(),
                hops in prop::collection::vec(proxy(), 0..3),
                peer in proxy(),
                stranger in client(),
            ) {
                let trusted = nets(&TRUSTED);
                // The first proxy appends the address it saw, the others theirs.
                let mut header = format!("{written},{as_written}");
                for hop in &hops {
                    header.push_str(&format!(", {hop}"));
                }
                prop_assert_eq!(source_address(Some(peer), Some(&header), &trusted), Ok(client));
                // From a peer that is no trusted proxy, the header is not read at all.
                prop_assert_eq!(
                    source_address(Some(stranger.0), Some(&header), &trusted),
                    Ok(stranger.0.to_canonical())
                );
            }

            #[test]
            fn fuzz_a_network_holds_the_addresses_that_share_its_prefix(
                a in any::<u32>(),
                b in any::<u32>(),
                prefix in 0..=32u8,
            ) {
                let (a, b) = (Ipv4Addr::from_bits(a), Ipv4Addr::from_bits(b));
                let shared = u32::from(prefix) <= (a.to_bits() ^ b.to_bits()).leading_zeros();
                for network in [format!("{a}/{prefix}"), format!("::ffff:{a}/{}", u16::from(prefix) + 96)] {
                    let Some(network) = Network::parse(&network) else {
                        return Err(TestCaseError::fail(format!("{network} does not parse")));
                    };
                    prop_assert!(network.contains(IpAddr::V4(a)));
                    prop_assert_eq!(network.contains(IpAddr::V4(b)), shared);
                    prop_assert_eq!(network.contains(IpAddr::V6(b.to_ipv6_mapped())), shared);
                }
            }

            #[test]
            fn fuzz_an_ipv6_network_holds_the_addresses_that_share_its_prefix(
                a in any::<u128>(),
                b in any::<u128>(),
                prefix in 0..=128u8,
            ) {
                // Not in `::ffff:0:0/96`, which holds IPv4 addresses (the test above).
                let (a, b) = (Ipv6Addr::from_bits(a | 1 << 127), Ipv6Addr::from_bits(b));
                let shared = u32::from(prefix) <= (a.to_bits() ^ b.to_bits()).leading_zeros();
                let Some(network) = Network::parse(&format!("{a}/{prefix}")) else {
                    return Err(TestCaseError::fail(format!("{a}/{prefix} does not parse")));
                };
                prop_assert!(network.contains(IpAddr::V6(a)));
                // An IPv6 network holds no IPv4 address, not even `::/0`.
                let expected = shared && !b.to_canonical().is_ipv4();
                prop_assert_eq!(network.contains(IpAddr::V6(b)), expected);
            }
        }
    }
}
