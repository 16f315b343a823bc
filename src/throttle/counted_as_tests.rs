use super::*;

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
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
