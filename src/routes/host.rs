//! Host normalisation (request side) and host pattern validation (Ingress side).

use super::RouteError;
use crate::hostname::wildcard_parent;
use crate::kube::objects::SmolStr;

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
