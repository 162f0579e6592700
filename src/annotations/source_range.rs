//! The address lists: `allowlist-source-range` (and its older name
//! `whitelist-source-range`) and `denylist-source-range`, read as
//! ingress-nginx reads them: comma-separated CIDRs or single addresses, IPv4
//! and IPv6, each trimmed.
//!
//! They protect services, so they fail closed: a list ingress-nginx would
//! refuse (an entry that is no address or network, an empty entry, an empty
//! value) does not drop the list, it makes every path of the Ingress answer
//! 403 until it is fixed.

use std::net::IpAddr;

use super::value;
use crate::cidr::Cidr;
use crate::kube::objects::StringMap;

/// What an Ingress's address lists decide for each client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceRanges {
    /// A client inside `deny` is refused; with an `allow` list, so is a
    /// client outside it. Deny wins, as in ingress-nginx's template, whose
    /// `deny` lines come before the `allow` lines.
    Lists { allow: Option<Vec<Cidr>>, deny: Vec<Cidr> },
    /// A list could not be read: every client is refused. `annotation` is
    /// the name as written (without prefix).
    Invalid { annotation: &'static str, why: String },
}

impl SourceRanges {
    /// Whether `client` may pass. An unknown client address (an
    /// X-Forwarded-For hop from a trusted proxy that is no address) is
    /// outside every list and is refused.
    pub fn admits(&self, client: Option<IpAddr>) -> bool {
        match (self, client) {
            (SourceRanges::Invalid { .. }, _) | (SourceRanges::Lists { .. }, None) => false,
            (SourceRanges::Lists { allow, deny }, Some(ip)) => {
                !deny.iter().any(|cidr| cidr.contains(ip)) && allow.as_ref().is_none_or(|allow| allow.iter().any(|cidr| cidr.contains(ip)))
            }
        }
    }

    /// The lists `annotations` set, `None` when they set neither. The newer
    /// `allowlist-source-range` wins over `whitelist-source-range` unless it
    /// is empty, as ingress-nginx's alias lookup does.
    pub fn from_annotations(annotations: &StringMap) -> Option<SourceRanges> {
        let allow = [ALLOWLIST, WHITELIST]
            .into_iter()
            .filter_map(|name| Some((name, value(annotations, name)?)))
            .reduce(|chosen, alias| if chosen.1.is_empty() { alias } else { chosen });
        let deny = value(annotations, DENYLIST).map(|text| (DENYLIST, text));
        if allow.is_none() && deny.is_none() {
            return None;
        }
        let read = |list: Option<(&'static str, &str)>| -> Result<Option<Vec<Cidr>>, SourceRanges> {
            list.map(|(annotation, text)| parse_list(text).map_err(|why| SourceRanges::Invalid { annotation, why })).transpose()
        };
        Some(match (read(allow), read(deny)) {
            (Err(invalid), _) | (_, Err(invalid)) => invalid,
            (Ok(allow), Ok(deny)) => SourceRanges::Lists { allow, deny: deny.unwrap_or_default() },
        })
    }
}

const ALLOWLIST: &str = "allowlist-source-range";
const WHITELIST: &str = "whitelist-source-range";
const DENYLIST: &str = "denylist-source-range";

/// A comma-separated list of networks (`10.0.0.0/8`, `2001:db8::/32`) and
/// single addresses (`192.0.2.1`, `::1`), each trimmed. Host bits in a
/// network are dropped as Go's `net.ParseCIDR` drops them. Every entry must
/// read, and there must be one at least.
pub fn parse_list(text: &str) -> Result<Vec<Cidr>, String> {
    if text.trim().is_empty() {
        return Err("the list is empty".into());
    }
    text.split(',')
        .map(|entry| {
            let entry = entry.trim();
            Cidr::parse(entry).ok_or_else(|| format!("{entry:?} is neither an IP address nor a network in CIDR notation"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().expect("address"))
    }

    fn map(pairs: &[(&str, &str)]) -> StringMap {
        crate::annotations::nginx_annotations(pairs)
    }

    /// The documentation's examples and the edges Go's parser draws.
    #[test]
    fn lists_as_ingress_nginx_reads_them() {
        let good: &[(&str, usize)] = &[
            ("10.0.0.0/24,172.10.0.1", 2),
            ("18.0.0.0/8, 56.0.0.0/8", 2),
            ("1.1.1.1/24", 1),
            ("192.0.2.3/32", 1),
            ("2001:db8::/32, ::1", 2),
            (" 10.0.0.1 ", 1),
            ("0.0.0.0/0,::/0", 2),
            ("::ffff:10.0.0.0/104", 1),
            ("10.0.0.0/08", 1),
        ];
        for (text, count) in good {
            assert_eq!(parse_list(text).map(|list| list.len()), Ok(*count), "{text:?}");
        }
        let bad = [
            "",
            "  ",
            "10.0.0.0/24,",
            ",10.0.0.0/24",
            "10.0.0.0/33",
            "2001:db8::/129",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "10.0.0.0/ 8",
            "10.0.0.0/8/8",
            "10.0.0",
            "010.0.0.1",
            "example.com",
            "10.0.0.0/24 10.1.0.0/24",
            "fe80::1%eth0",
            "*",
        ];
        for text in bad {
            assert!(parse_list(text).is_err(), "{text:?} should be refused");
        }
    }

    #[test]
    fn deny_wins_and_an_allow_list_refuses_everyone_else() {
        let ranges = SourceRanges::from_annotations(&map(&[
            ("allowlist-source-range", "10.0.0.0/8, 2001:db8::/32"),
            ("denylist-source-range", "10.1.0.0/16,10.2.3.4"),
        ]))
        .expect("lists");
        let cases = [
            ("10.9.9.9", true),
            ("10.1.2.3", false),
            ("10.2.3.4", false),
            ("10.2.3.5", true),
            ("192.0.2.1", false),
            ("2001:db8::1", true),
            ("2001:db9::1", false),
            ("::ffff:10.9.9.9", true),
            ("::ffff:10.1.0.1", false),
        ];
        for (client, admitted) in cases {
            assert_eq!(ranges.admits(ip(client)), admitted, "{client}");
        }
        assert!(!ranges.admits(None), "an unknown client is outside every list");

        let mapped = SourceRanges::from_annotations(&map(&[("allowlist-source-range", "::ffff:10.0.0.0/104")])).expect("lists");
        assert!(mapped.admits(ip("10.9.9.9")) && mapped.admits(ip("::ffff:10.9.9.9")), "an IPv4-mapped network covers IPv4 clients");
        assert!(!mapped.admits(ip("11.0.0.1")));

        let deny_only = SourceRanges::from_annotations(&map(&[("denylist-source-range", "192.0.2.0/24")])).expect("lists");
        assert!(deny_only.admits(ip("198.51.100.1")));
        assert!(!deny_only.admits(ip("192.0.2.77")));
    }

    #[test]
    fn names_and_their_precedence() {
        let allowed = |pairs: &[(&str, &str)], client: &str| SourceRanges::from_annotations(&map(pairs)).map(|r| r.admits(ip(client)));
        assert_eq!(allowed(&[], "10.0.0.1"), None, "no list, no check");
        assert_eq!(allowed(&[("whitelist-source-range", "10.0.0.0/8")], "10.0.0.1"), Some(true));
        assert_eq!(allowed(&[("whitelist-source-range", "10.0.0.0/8")], "11.0.0.1"), Some(false));
        let both = [("allowlist-source-range", "11.0.0.0/8"), ("whitelist-source-range", "10.0.0.0/8")];
        assert_eq!(allowed(&both, "11.0.0.1"), Some(true), "allowlist-source-range wins");
        assert_eq!(allowed(&both, "10.0.0.1"), Some(false));
        let empty_new_name = [("allowlist-source-range", ""), ("whitelist-source-range", "10.0.0.0/8")];
        assert_eq!(allowed(&empty_new_name, "10.0.0.1"), Some(true), "an empty allowlist-source-range falls back to the old name");
        let ingressd_first: StringMap =
            [("nginx.ingress.kubernetes.io/allowlist-source-range", "10.0.0.0/8"), ("ingressd.io/allowlist-source-range", "11.0.0.0/8")]
                .into_iter()
                .collect();
        assert_eq!(SourceRanges::from_annotations(&ingressd_first).map(|r| r.admits(ip("11.0.0.1"))), Some(true));
    }

    #[test]
    fn a_bad_list_fails_closed() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("allowlist-source-range", "10.0.0.0/8,10.0.0.0/33")], "allowlist-source-range"),
            (&[("whitelist-source-range", "office")], "whitelist-source-range"),
            (&[("allowlist-source-range", "")], "allowlist-source-range"),
            (&[("denylist-source-range", "10.0.0.0/8,")], "denylist-source-range"),
            (&[("allowlist-source-range", "10.0.0.0/8"), ("denylist-source-range", "bad")], "denylist-source-range"),
        ];
        for (pairs, annotation) in cases {
            let ranges = SourceRanges::from_annotations(&map(pairs)).expect("a decision");
            assert!(matches!(&ranges, SourceRanges::Invalid { annotation: a, .. } if a == annotation), "{pairs:?}: {ranges:?}");
            for client in ["10.0.0.1", "192.0.2.1", "2001:db8::1"] {
                assert!(!ranges.admits(ip(client)), "{pairs:?} admitted {client}");
            }
        }
    }
}
