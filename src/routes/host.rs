//! Host normalisation (request side) and host pattern validation (Ingress side).

use super::RouteError;
use crate::kube::objects::SmolStr;

/// The longest host normalised on the stack; DNS names stop at 253 bytes, so
/// only junk Host headers take the allocating path.
const STACK_HOST_LEN: usize = 256;

/// What an Ingress rule's `host` matches.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum HostPattern {
    /// One host, lower-case.
    Exact(SmolStr),
    /// `*.parent`: exactly one label in front of `parent` (stored lower-case
    /// without the `*.`), so a lookup strips one label and probes once.
    Wildcard(SmolStr),
    /// No host in the rule: every host.
    Any,
}

impl HostPattern {
    /// The host as the inspector and logs show it (`*.example.com`, "" for any).
    pub(crate) fn display(&self) -> SmolStr {
        match self {
            HostPattern::Exact(host) => host.clone(),
            HostPattern::Wildcard(parent) => SmolStr::new(format!("*.{parent}")),
            HostPattern::Any => SmolStr::default(),
        }
    }
}

/// Strips `:port` and one trailing dot, without changing case. A bracketed
/// IPv6 literal keeps its brackets; an unbracketed one (several colons) is
/// left whole, since any split of it would be a guess.
fn strip_port_and_dot(raw: &str) -> &str {
    let host = if raw.starts_with('[') {
        match raw.find(']') {
            Some(end) => &raw[..=end],
            None => raw,
        }
    } else {
        match raw.split_once(':') {
            Some((host, port)) if !port.contains(':') => host,
            _ => raw,
        }
    };
    host.strip_suffix('.').unwrap_or(host)
}

/// The canonical form of a Host header, absolute-form authority or SNI name:
/// lower-case, without `:port` and one trailing dot.
pub fn normalize_host(raw: &str) -> String {
    strip_port_and_dot(raw).to_ascii_lowercase()
}

/// Runs `f` on the normalised host without allocating for any host up to
/// [`STACK_HOST_LEN`] bytes; most hosts are already lower-case and are
/// borrowed as they are.
pub(crate) fn with_normalized_host<R>(raw: &str, f: impl FnOnce(&str) -> R) -> R {
    let host = strip_port_and_dot(raw);
    if !host.bytes().any(|b| b.is_ascii_uppercase()) {
        return f(host);
    }
    let mut buffer = [0u8; STACK_HOST_LEN];
    match buffer.get_mut(..host.len()) {
        Some(slot) => {
            slot.copy_from_slice(host.as_bytes());
            slot.make_ascii_lowercase();
            // ASCII lower-casing keeps UTF-8 valid, so this never falls back.
            match std::str::from_utf8(slot) {
                Ok(lower) => f(lower),
                Err(_) => f(&host.to_ascii_lowercase()),
            }
        }
        None => f(&host.to_ascii_lowercase()),
    }
}

/// The parent a wildcard rule must be stored under to match `host`: the host
/// minus its first label, if that label is not empty.
pub(crate) fn wildcard_parent(host: &str) -> Option<&str> {
    match host.split_once('.') {
        Some((label, parent)) if !label.is_empty() && !parent.is_empty() => Some(parent),
        _ => None,
    }
}

fn valid_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= 63
        && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-')
}

/// Validates a rule's `host` and compiles it. Case and one trailing dot are
/// forgiven (the request side ignores both); anything else that is not a DNS
/// name, or a `*.` followed by one, is refused.
pub(crate) fn compile_host(host: Option<&str>) -> Result<HostPattern, RouteError> {
    let raw = match host {
        None | Some("") => return Ok(HostPattern::Any),
        Some(raw) => raw,
    };
    let invalid = |reason: &'static str| RouteError::InvalidHost { host: raw.to_string(), reason };
    let host = raw.strip_suffix('.').unwrap_or(raw).to_ascii_lowercase();
    if host.len() > 253 {
        return Err(invalid("it is longer than 253 characters"));
    }
    let (wildcard, name) = match host.strip_prefix("*.") {
        Some(parent) => (true, parent),
        None => (false, host.as_str()),
    };
    if !name.split('.').all(valid_label) {
        return Err(invalid("it is not a DNS name (or * followed by one) of letters, digits and -"));
    }
    Ok(if wildcard { HostPattern::Wildcard(SmolStr::new(name)) } else { HostPattern::Exact(SmolStr::new(name)) })
}

/// Whether a TLS entry's host covers a rule's host: equal, or a TLS wildcard
/// covering one label (which also covers the same wildcard in the rule).
pub(crate) fn tls_host_covers(tls_host: &HostPattern, rule_host: &HostPattern) -> bool {
    match (tls_host, rule_host) {
        (HostPattern::Wildcard(parent), HostPattern::Exact(host)) => wildcard_parent(host) == Some(parent.as_str()),
        (HostPattern::Any, _) | (_, HostPattern::Any) => false,
        (tls, rule) => tls == rule,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normalized(raw: &str) -> String {
        with_normalized_host(raw, str::to_string)
    }

    #[test]
    fn request_hosts_normalise() {
        for (raw, expected) in [
            ("foo.example.com", "foo.example.com"),
            ("Foo.Example.COM", "foo.example.com"),
            ("foo.example.com:8080", "foo.example.com"),
            ("foo.example.com.", "foo.example.com"),
            ("FOO.example.com.:443", "foo.example.com"),
            ("foo.example.com..", "foo.example.com."),
            ("[::1]:80", "[::1]"),
            ("[::1]", "[::1]"),
            ("[FD00::1]:8080", "[fd00::1]"),
            ("[::1", "[::1"),
            ("::1", "::1"),
            ("", ""),
            (":80", ""),
            (".", ""),
        ] {
            assert_eq!(normalized(raw), expected, "{raw:?}");
            assert_eq!(normalize_host(raw), expected, "{raw:?}");
        }
        let long = "A".repeat(1000);
        assert_eq!(normalized(&long), "a".repeat(1000));
        assert_eq!(normalized("É.example.com"), "É.example.com");
    }

    #[test]
    fn rule_hosts_validate() {
        assert_eq!(compile_host(None).ok(), Some(HostPattern::Any));
        assert_eq!(compile_host(Some("")).ok(), Some(HostPattern::Any));
        assert_eq!(compile_host(Some("Foo.Example.com")).ok(), Some(HostPattern::Exact("foo.example.com".into())));
        assert_eq!(compile_host(Some("*.example.com")).ok(), Some(HostPattern::Wildcard("example.com".into())));
        for bad in ["foo.com:80", "foo bar.com", "*", "*.", "a.*.com", "*foo.com", "foo*.com", "**.com", "a..b", "-a.com", "[::1]", "10.0.0.1:80"] {
            assert!(compile_host(Some(bad)).is_err(), "{bad:?} should be invalid");
        }
    }

    #[test]
    fn wildcard_parent_strips_one_nonempty_label() {
        assert_eq!(wildcard_parent("bar.foo.com"), Some("foo.com"));
        assert_eq!(wildcard_parent("foo"), None);
        assert_eq!(wildcard_parent(".foo.com"), None);
        assert_eq!(wildcard_parent("foo."), None);
    }

    #[test]
    fn tls_hosts_cover_rule_hosts() {
        let exact = |h: &str| HostPattern::Exact(h.into());
        let wild = |h: &str| HostPattern::Wildcard(h.into());
        assert!(tls_host_covers(&exact("a.com"), &exact("a.com")));
        assert!(!tls_host_covers(&exact("a.com"), &exact("b.com")));
        assert!(tls_host_covers(&wild("foo.com"), &exact("bar.foo.com")));
        assert!(!tls_host_covers(&wild("foo.com"), &exact("a.bar.foo.com")));
        assert!(!tls_host_covers(&wild("foo.com"), &exact("foo.com")));
        assert!(tls_host_covers(&wild("foo.com"), &wild("foo.com")));
        assert!(!tls_host_covers(&exact("bar.foo.com"), &wild("foo.com")));
    }
}
