//! IPv4 and IPv6 networks in CIDR notation: `--trusted-proxies`, the PROXY
//! protocol's trusted sources, and the address lists of annotations, all
//! read by one parser so a list means the same wherever it is written.

use std::net::IpAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub network: IpAddr,
    pub prefix_len: u8,
}

impl Cidr {
    /// An address or `address/prefix`, surrounding space trimmed. The prefix
    /// is digits only (no sign, no space, at most three). Host bits inside
    /// the network are dropped as Go's `net.ParseCIDR` drops them.
    pub fn parse(text: &str) -> Option<Cidr> {
        let text = text.trim();
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = address.parse().ok()?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix_len = match prefix {
            None => max,
            Some(digits) if (1..=3).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) => {
                digits.parse::<u8>().ok().filter(|len| *len <= max)?
            }
            Some(_) => return None,
        };
        // A client's IPv4-mapped address is compared as IPv4, so a mapped
        // network is kept as the IPv4 network it covers.
        match network {
            IpAddr::V6(v6) if prefix_len >= 96 => match v6.to_ipv4_mapped() {
                Some(v4) => Some(Cidr { network: IpAddr::V4(v4), prefix_len: prefix_len - 96 }),
                None => Some(Cidr { network, prefix_len }),
            },
            _ => Some(Cidr { network, prefix_len }),
        }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.network, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix_len)).unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix_len)).unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("address")
    }

    #[test]
    fn networks_match_addresses() {
        let c = Cidr::parse("10.0.0.0/8").expect("valid");
        assert!(c.contains(ip("10.2.3.4")));
        assert!(!c.contains(ip("11.0.0.1")));
        assert!(c.contains(ip("::ffff:10.0.0.1")));
        assert!(Cidr::parse("0.0.0.0/0").expect("valid").contains(ip("1.2.3.4")));
        assert!(Cidr::parse(" 192.0.2.7 ").expect("valid").contains(ip("192.0.2.7")));
    }

    #[test]
    fn a_mapped_network_is_its_ipv4_network() {
        let c = Cidr::parse("::ffff:10.0.0.0/104").expect("valid");
        assert_eq!(c, Cidr { network: ip("10.0.0.0"), prefix_len: 8 });
        assert!(c.contains(ip("10.9.9.9")));
    }

    #[test]
    fn malformed_prefixes_are_refused() {
        for text in ["10.0.0.0/33", "10.0.0.0/+8", "10.0.0.0/ 8", "10.0.0.0/", "10.0.0.0/0008", "::/129", "10.0.0/8", "host/8"] {
            assert_eq!(Cidr::parse(text), None, "{text}");
        }
    }
}
