//! The address-list annotations (`allowlist-source-range`,
//! `denylist-source-range`) against arbitrary text: the parser never panics,
//! a list it accepts has one network per comma-separated entry, each
//! containing its own address, and the lists read from annotations admit no
//! client at all when either value is refused (fail closed).
//!
//! Run from `fuzz/` with `cargo +nightly fuzz run source_range corpus/source_range seeds/source_range`.

#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ingressd::annotations::source_range::{parse_list, SourceRanges};
use ingressd::kube::objects::StringMap;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // The first line is the allow list, the rest the deny list.
    let (allow, deny) = text.split_once('\n').unwrap_or((text, ""));
    let clients = [
        IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)),
        IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7)),
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 7)),
        IpAddr::V6(Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0x0a01, 0x0203)),
    ];
    let allow_list = parse_list(allow);
    if let Ok(list) = &allow_list {
        assert_eq!(list.len(), allow.split(',').count());
        for cidr in list {
            // A mapped network too wide to be written as IPv4 stays IPv6 and
            // matches no client (clients' mapped addresses compare as IPv4).
            let mapped = matches!(cidr.network, IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some());
            assert!(mapped || cidr.contains(cidr.network), "{cidr:?} does not contain its own address");
        }
    }
    let annotations: StringMap = [
        ("nginx.ingress.kubernetes.io/allowlist-source-range", allow),
        ("nginx.ingress.kubernetes.io/denylist-source-range", deny),
    ]
    .into_iter()
    .collect();
    let ranges = SourceRanges::from_annotations(&annotations).expect("both annotations are set");
    if allow_list.is_err() || parse_list(deny).is_err() {
        assert!(matches!(ranges, SourceRanges::Invalid { .. }));
        for client in clients {
            assert!(!ranges.admits(Some(client)), "a refused list admitted {client}");
        }
    }
    assert!(!ranges.admits(None));
});
