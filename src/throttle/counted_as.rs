//! The address a source's failures are counted under: an IPv6 one as its /64 (but a NAT64 one
//! as its IPv4 address).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

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
#[path = "counted_as_tests.rs"]
mod tests;
