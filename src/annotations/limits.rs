//! `limit-rps`, `limit-rpm`, `limit-connections`, `limit-burst-multiplier`
//! and `limit-allowlist` (`limit-whitelist`): per-client limits, read as
//! ingress-nginx reads them. A limit protects the backend, not a secret, so
//! a value that does not parse is left out with a warning: a typo must not
//! turn into every client being refused.

use crate::cidr::Cidr;
use crate::kube::objects::StringMap;

use super::value;

/// ingress-nginx's default `limit-burst-multiplier`.
pub const DEFAULT_BURST_MULTIPLIER: u32 = 5;

/// The limits an Ingress sets on each client address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimits {
    /// Requests per second, with a burst of `rps * burst_multiplier`.
    pub rps: Option<u32>,
    /// Requests per minute, with a burst of `rpm * burst_multiplier`.
    pub rpm: Option<u32>,
    /// Requests in flight at once.
    pub connections: Option<u32>,
    pub burst_multiplier: u32,
    /// Client addresses no limit applies to.
    pub allowlist: Vec<Cidr>,
}

impl RateLimits {
    /// The limits `annotations` set (`None` when they set none, or none
    /// that parses); every value left out is described in `problems`.
    pub fn from_annotations(annotations: &StringMap, problems: &mut Vec<String>) -> Option<RateLimits> {
        let mut limit = |name: &str| {
            let text = value(annotations, name)?;
            match text.trim().parse::<u32>() {
                Ok(0) => None,
                Ok(n) => Some(n),
                Err(_) => {
                    problems.push(format!("{name} {text:?} ignored: not a whole number; the Ingress has no such limit"));
                    None
                }
            }
        };
        let (rps, rpm, connections) = (limit("limit-rps"), limit("limit-rpm"), limit("limit-connections"));
        let burst_multiplier = match value(annotations, "limit-burst-multiplier") {
            None => DEFAULT_BURST_MULTIPLIER,
            Some(text) => match text.trim().parse::<u32>() {
                Ok(n) if n > 0 => n,
                _ => {
                    problems.push(format!("limit-burst-multiplier {text:?} ignored: not a whole number above 0; {DEFAULT_BURST_MULTIPLIER} applies"));
                    DEFAULT_BURST_MULTIPLIER
                }
            },
        };
        let list = value(annotations, "limit-allowlist").or_else(|| value(annotations, "limit-whitelist")).unwrap_or("");
        let mut allowlist = Vec::new();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            match Cidr::parse(entry) {
                Some(cidr) => allowlist.push(cidr),
                None => problems.push(format!("limit-allowlist entry {entry:?} ignored: not an address or CIDR; those clients are limited")),
            }
        }
        if rps.is_none() && rpm.is_none() && connections.is_none() {
            return None;
        }
        Some(RateLimits { rps, rpm, connections, burst_multiplier, allowlist })
    }

    /// Whether `client` is exempt from every limit.
    pub fn exempts(&self, client: std::net::IpAddr) -> bool {
        self.allowlist.iter().any(|cidr| cidr.contains(client))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> StringMap {
        crate::annotations::nginx_annotations(pairs)
    }

    #[test]
    fn limits_as_ingress_nginx_reads_them() {
        type Case<'a> = (&'a [(&'a str, &'a str)], Option<(Option<u32>, Option<u32>, Option<u32>, u32, usize)>, usize);
        let cases: &[Case] = &[
            (&[], None, 0),
            (&[("limit-rps", "5")], Some((Some(5), None, None, 5, 0)), 0),
            (&[("limit-rpm", "300"), ("limit-burst-multiplier", "2")], Some((None, Some(300), None, 2, 0)), 0),
            (&[("limit-connections", "10"), ("limit-whitelist", "10.0.0.0/8, 192.168.1.1")], Some((None, None, Some(10), 5, 2)), 0),
            (&[("limit-rps", "1"), ("limit-allowlist", "::1/128"), ("limit-whitelist", "10.0.0.0/8,1.1.1.1")], Some((Some(1), None, None, 5, 1)), 0),
            (&[("limit-rps", "0")], None, 0),
            (&[("limit-rps", "ten")], None, 1),
            (&[("limit-rps", "-1"), ("limit-rpm", "60")], Some((None, Some(60), None, 5, 0)), 1),
            (&[("limit-rps", "3"), ("limit-burst-multiplier", "0")], Some((Some(3), None, None, 5, 0)), 1),
            (&[("limit-rps", "3"), ("limit-whitelist", "10.0.0.0/33,10.1.0.0/16")], Some((Some(3), None, None, 5, 1)), 1),
            (&[("limit-whitelist", "10.0.0.0/8")], None, 0),
        ];
        for (pairs, expected, problem_count) in cases {
            let mut problems = Vec::new();
            let limits = RateLimits::from_annotations(&map(pairs), &mut problems);
            let got = limits.map(|l| (l.rps, l.rpm, l.connections, l.burst_multiplier, l.allowlist.len()));
            assert_eq!(got, *expected, "{pairs:?}");
            assert_eq!(problems.len(), *problem_count, "{pairs:?}: {problems:?}");
        }
    }

    #[test]
    fn the_allowlist_exempts_v4_and_v6_clients() {
        let mut problems = Vec::new();
        let limits = RateLimits::from_annotations(&map(&[("limit-rps", "1"), ("limit-allowlist", "10.0.0.0/8,fd00::/8")]), &mut problems).expect("limits");
        for (client, exempt) in [("10.1.2.3", true), ("11.0.0.1", false), ("fd00::5", true), ("fe80::1", false), ("::ffff:10.0.0.9", true)] {
            assert_eq!(limits.exempts(client.parse().expect("address")), exempt, "{client}");
        }
    }
}
