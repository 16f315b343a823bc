//! The networks `throttle.trusted_proxies` lists, and whether an address is in one of them.

use std::net::IpAddr;

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

#[cfg(test)]
#[path = "network_tests.rs"]
mod tests;
