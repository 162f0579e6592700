//! Host names as requests and TLS handshakes carry them: the canonical form
//! (lower-case, no port, no trailing dot) and the parent a wildcard covers.
//! Below both `routes` and `tls`, which match hosts the same way.

/// The longest host normalised on the stack; DNS names stop at 253 bytes, so
/// only junk Host headers take the allocating path.
const STACK_HOST_LEN: usize = 256;

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
pub fn with_normalized_host<R>(raw: &str, f: impl FnOnce(&str) -> R) -> R {
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
pub fn wildcard_parent(host: &str) -> Option<&str> {
    match host.split_once('.') {
        Some((label, parent)) if !label.is_empty() && !parent.is_empty() => Some(parent),
        _ => None,
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
    fn wildcard_parent_strips_one_nonempty_label() {
        assert_eq!(wildcard_parent("bar.foo.com"), Some("foo.com"));
        assert_eq!(wildcard_parent("foo"), None);
        assert_eq!(wildcard_parent(".foo.com"), None);
        assert_eq!(wildcard_parent("foo."), None);
    }
}
