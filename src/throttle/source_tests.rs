use std::net::{Ipv4Addr, Ipv6Addr};

use super::*;

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn nets(list: &[&str]) -> Vec<Network> {
    list.iter().map(|n| Network::parse(n).unwrap()).collect()
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
    }
}
