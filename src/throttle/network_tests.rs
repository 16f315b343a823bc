use std::net::{Ipv4Addr, Ipv6Addr};

use super::*;

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
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

/// Property tests ("fuzzing") of the networks: `PROPTEST_CASES=1000000 cargo test --release
/// --lib fuzz_`.
mod fuzz {
    use proptest::prelude::*;

    use super::*;
    use crate::oauth::fuzz_tests::config;

    proptest! {
        #![proptest_config(config())]

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
