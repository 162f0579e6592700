//! Header rewriting between the client and the upstream, both directions.
//!
//! Pure functions over header lists so every rule is table-tested without a
//! socket. Framing headers (Content-Length, Transfer-Encoding) never pass
//! through here: each hop frames its own message, and the forwarder sets them
//! from what it actually sends.

use std::borrow::Cow;
use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, SocketAddr};

use smol_str::ToSmolStr;

use super::digits::{decimal, DigitBuffer};
use crate::cidr::Cidr;
use crate::kube::objects::SmolStr;

/// What the proxy knows about the client connection a request arrived on.
#[derive(Debug, Clone, Copy)]
pub struct ClientOrigin<'a> {
    /// The connection's client: the PROXY protocol address with
    /// `--use-proxy-protocol`, else the direct peer of the TCP connection.
    pub peer: Option<IpAddr>,
    /// The request came over TLS.
    pub secure: bool,
    /// The port of the listener the request arrived on, for X-Forwarded-Port.
    pub listener_port: u16,
    pub trusted_proxies: &'a [Cidr],
}

impl ClientOrigin<'_> {
    /// Whether the direct peer may speak for the original client through X-Forwarded-*.
    fn peer_is_trusted(&self) -> bool {
        self.peer.is_some_and(|ip| self.is_trusted(ip))
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|cidr| cidr.contains(ip))
    }
}

/// A lower-case header name: borrowed for the names the proxy knows, so the
/// common ones cost no allocation per request.
pub type HeaderName = Cow<'static, str>;

/// The header section of the request sent upstream. Values are `SmolStr`s:
/// short ones (addresses, ports, most hosts) are kept inline without an
/// allocation, and a long one (a generated request ID) is shared, not
/// copied, by the access log's copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamRequestHeaders {
    /// Lower-case names, in client order, then the forwarding headers.
    pub headers: Vec<(HeaderName, SmolStr)>,
    /// The client's X-Request-ID, or the one generated for it.
    pub request_id: SmolStr,
    /// The client asked for a protocol upgrade (`Connection: upgrade` plus `Upgrade`).
    pub upgrade: bool,
    /// The client address, found in the same walk as X-Real-IP: the peer, or
    /// from `--trusted-proxies` the first untrusted X-Forwarded-For hop;
    /// `None` when that hop is not an address.
    pub client_address: Option<IpAddr>,
}

/// Headers a proxy consumes rather than forwards (RFC 9110 7.6.1), plus the
/// framing headers each hop sets for itself. Names compare case-insensitively,
/// so no lower-cased copy is made.
/// The length and first letter pick the one candidate a name can be, so most
/// headers are refused without a comparison (every request and response
/// header passes here).
fn is_hop_by_hop(name: &[u8]) -> bool {
    let Some(&first) = name.first() else { return false };
    let candidate: &[u8] = match (name.len(), first | 0x20) {
        (2, b't') => b"te",
        (7, b't') => b"trailer",
        (7, b'u') => b"upgrade",
        (10, b'c') => b"connection",
        (10, b'k') => b"keep-alive",
        (14, b'c') => b"content-length",
        (17, b't') => b"transfer-encoding",
        (_, b'p') => return name.get(..6).is_some_and(|prefix| same_name(prefix, b"proxy-")),
        _ => return false,
    };
    same_name(name, candidate)
}

/// Whether the header name `name` is `lower` but for ASCII case, where
/// `lower` holds only lower-case letters and `-`. Setting bit 5 lower-cases
/// a letter and keeps `-`; the only other byte it maps onto those is CR,
/// onto `-`, and no header name holds one (tiny_http refuses whitespace in
/// a name, httparse anything but a token). Folded without an early exit
/// so the compiler compares many bytes at a time: `eq_ignore_ascii_case`
/// lower-cases both sides byte by byte, and every header passes here.
fn same_name(name: &[u8], lower: &[u8]) -> bool {
    name.len() == lower.len() && name.iter().zip(lower).fold(0, |differ, (&n, &l)| differ | ((n | 0x20) ^ l)) == 0
}

/// The lower-case form of a client header name. The common names are kept
/// without a copy; the length and first letter pick the one such name a
/// header can be, so each name costs at most one comparison.
fn lower_name(name: &str) -> HeaderName {
    let bytes = name.as_bytes();
    let Some(&first) = bytes.first() else { return Cow::Owned(String::new()) };
    let candidate = match (bytes.len(), first | 0x20) {
        (4, b'h') => "host",
        (6, b'a') => "accept",
        (6, b'c') => "cookie",
        (6, b'o') => "origin",
        (6, b'p') => "pragma",
        (7, b'r') => "referer",
        (10, b'u') => "user-agent",
        (12, b'c') => "content-type",
        (12, b'x') => "x-request-id",
        (13, b'a') => "authorization",
        (13, b'c') => "cache-control",
        (13, b'i') => "if-none-match",
        (15, b'a') if bytes[7] | 0x20 == b'e' => "accept-encoding",
        (15, b'a') => "accept-language",
        (17, b'i') => "if-modified-since",
        _ => "",
    };
    if candidate.eq_ignore_ascii_case(name) {
        Cow::Borrowed(candidate)
    } else {
        Cow::Owned(name.to_ascii_lowercase())
    }
}

/// Forwarding headers the proxy sets itself; client copies are trusted only
/// from `--trusted-proxies`. The length picks the one candidate, as for
/// [`lower_name`], since every client header is checked.
fn is_forwarding(name: &str) -> bool {
    let candidate = match name.len() {
        9 => "x-real-ip",
        15 => "x-forwarded-for",
        16 if name.as_bytes()[12] | 0x20 == b'h' => "x-forwarded-host",
        16 => "x-forwarded-port",
        17 => "x-forwarded-proto",
        _ => return false,
    };
    candidate.eq_ignore_ascii_case(name)
}

/// The tokens of every Connection header, trimmed, as bytes: scanned in
/// place, no copies and no UTF-8 check.
fn connection_tokens<'h, N: AsRef<[u8]>>(headers: impl Iterator<Item = (N, &'h [u8])>) -> impl Iterator<Item = &'h [u8]> {
    headers
        .filter(|(name, _)| same_name(name.as_ref(), b"connection"))
        .flat_map(|(_, value)| value.split(|&byte| byte == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|token| !token.is_empty())
}

/// Whether a Connection header lists `token` (case-insensitively): each of
/// its tokens names another hop-by-hop header.
fn connection_lists<'h, N: AsRef<[u8]>>(headers: impl Iterator<Item = (N, &'h [u8])>, token: &[u8]) -> bool {
    connection_tokens(headers).any(|listed| listed.eq_ignore_ascii_case(token))
}

/// Whether a Connection header lists a header that must be dropped with it.
/// `keep-alive`, the usual one, names a header that is hop-by-hop anyway, so
/// a message with only that spares the per-header search of its Connection list.
fn connection_lists_headers<'h, N: AsRef<[u8]>>(headers: impl Iterator<Item = (N, &'h [u8])>) -> bool {
    connection_tokens(headers).any(|listed| !listed.eq_ignore_ascii_case(b"keep-alive"))
}

/// Every value of a header joined with ", ", as RFC 9110 5.3 allows for list
/// headers; a single short value stays inline.
fn joined<'h>(headers: &[(&'h str, &'h str)], lower_name: &str) -> Option<SmolStr> {
    let mut values = headers.iter().filter(|(name, _)| name.eq_ignore_ascii_case(lower_name)).map(|(_, v)| v.trim());
    let first = values.next()?;
    let Some(second) = values.next() else { return Some(SmolStr::new(first)) };
    let mut joined = format!("{first}, {second}");
    for value in values {
        joined.push_str(", ");
        joined.push_str(value);
    }
    Some(joined.into())
}

/// The original client seen through a chain of trusted proxies: walking the
/// X-Forwarded-For chain from the right (nearest hop first), the first address
/// that is not a trusted proxy; when every hop is trusted, the leftmost.
fn real_client_address(chain: &[&str], side: &ClientOrigin) -> Option<SmolStr> {
    for hop in chain.iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) if side.is_trusted(ip) => continue,
            _ => return Some(SmolStr::new(hop)),
        }
    }
    chain.first().map(SmolStr::new)
}

/// An X-Forwarded-For hop as an address; some proxies append a port.
fn hop_address(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>().ok().or_else(|| hop.parse::<SocketAddr>().ok().map(|addr| addr.ip()))
}

/// Builds the upstream request's headers from the client's: drops hop-by-hop
/// and framing headers and Expect (the proxy answers 100-continue itself),
/// keeps Host verbatim, and sets X-Forwarded-*, X-Real-IP and X-Request-ID.
pub fn upstream_request_headers(
    client_headers: &[(&str, &str)],
    side: &ClientOrigin,
    new_request_id: impl FnOnce() -> SmolStr,
) -> UpstreamRequestHeaders {
    let client_bytes = || client_headers.iter().map(|(n, v)| (*n, v.as_bytes()));
    let lists_headers = connection_lists_headers(client_bytes());
    // An upgrade needs `Connection: upgrade`, which sets `lists_headers`.
    let upgrade_value = if lists_headers { joined(client_headers, "upgrade") } else { None };
    let upgrade = upgrade_value.is_some() && lists_headers && connection_lists(client_bytes(), b"upgrade");
    let trusted = side.peer_is_trusted();

    let mut headers = Vec::with_capacity(client_headers.len() + 6);
    let mut request_id = None;
    // The kept Host headers, so X-Forwarded-Host needs no second walk for them.
    let mut hosts = 0;
    let mut host = None;
    for (name, value) in client_headers {
        // Dropped headers are recognised before a lower-cased name is made for them.
        if is_hop_by_hop(name.as_bytes())
            || name.eq_ignore_ascii_case("expect")
            || is_forwarding(name)
            || (lists_headers && connection_lists(client_bytes(), name.as_bytes()))
        {
            continue;
        }
        let lower = lower_name(name);
        let value = SmolStr::new(value);
        if lower == "x-request-id" {
            if request_id.is_some() {
                continue;
            }
            request_id = Some(value.clone());
        } else if lower == "host" {
            hosts += 1;
            host = Some(value.clone());
        }
        headers.push((lower, value));
    }
    if let (true, Some(protocol)) = (upgrade, upgrade_value) {
        headers.push(("connection".into(), SmolStr::new_static("upgrade")));
        headers.push(("upgrade".into(), protocol));
    }

    let incoming = |name: &str| if trusted { joined(client_headers, name) } else { None };
    // An IPv4 address fits inline: no allocation for it or its copies below.
    let peer = side.peer.map(|ip| remembered(&LAST_ADDRESS, ip, address_text));
    let (forwarded_for, real_ip) = if trusted {
        let incoming_for = incoming("x-forwarded-for");
        let mut chain: Vec<&str> =
            incoming_for.as_deref().map(|v| v.split(',').map(str::trim).filter(|h| !h.is_empty()).collect()).unwrap_or_default();
        if let Some(peer) = &peer {
            chain.push(peer);
        }
        let forwarded_for = (!chain.is_empty()).then(|| SmolStr::from(chain.join(", ")));
        (forwarded_for, real_client_address(&chain, side))
    } else {
        // Untrusted: the chain is the peer alone.
        (peer.clone(), peer)
    };
    if let Some(forwarded_for) = forwarded_for {
        headers.push(("x-forwarded-for".into(), forwarded_for));
    }
    let client_address = if trusted { real_ip.as_deref().and_then(hop_address) } else { side.peer };
    if let Some(real_ip) = real_ip {
        headers.push(("x-real-ip".into(), real_ip));
    }
    // Host is never dropped unless a Connection header lists it, so without
    // such a list one kept Host is every Host; joined, it is that value trimmed.
    let host = || match host {
        Some(host) if !lists_headers && hosts == 1 && host.trim().len() == host.len() => Some(host),
        None if !lists_headers => None,
        _ => joined(client_headers, "host"),
    };
    if let Some(forwarded_host) = incoming("x-forwarded-host").or_else(host) {
        headers.push(("x-forwarded-host".into(), forwarded_host));
    }
    let proto = if side.secure { "https" } else { "http" };
    headers.push(("x-forwarded-proto".into(), incoming("x-forwarded-proto").unwrap_or_else(|| SmolStr::new_static(proto))));
    headers.push((
        "x-forwarded-port".into(),
        incoming("x-forwarded-port").unwrap_or_else(|| remembered(&LAST_PORT, side.listener_port, port_text)),
    ));
    let request_id = match request_id {
        Some(id) => id,
        None => {
            let id = new_request_id();
            headers.push(("x-request-id".into(), id.clone()));
            id
        }
    };
    UpstreamRequestHeaders { headers, request_id, upgrade, client_address }
}

thread_local! {
    static LAST_ADDRESS: Cell<Option<(IpAddr, SmolStr)>> = const { Cell::new(None) };
    static LAST_PORT: Cell<Option<(u16, SmolStr)>> = const { Cell::new(None) };
}

/// The text of `key`, reused from this thread's last request when the key is
/// the same: a keep-alive connection's requests all have the same peer and
/// listener, and writing the digits and checking them as UTF-8 cost more
/// than the rest of the forwarding headers.
fn remembered<K: Copy + PartialEq + 'static>(
    last: &'static std::thread::LocalKey<Cell<Option<(K, SmolStr)>>>,
    key: K,
    text: fn(K) -> SmolStr,
) -> SmolStr {
    last.with(|last| {
        let text = match last.take() {
            Some((cached, cached_text)) if cached == key => cached_text,
            _ => text(key),
        };
        last.set(Some((key, text.clone())));
        text
    })
}

/// An address as text. IPv4, every request's case, is written by hand:
/// `core::fmt` costs about ten times as much for the same digits.
fn address_text(ip: IpAddr) -> SmolStr {
    let IpAddr::V4(v4) = ip else { return ip.to_smolstr() };
    let mut text = [0u8; 15];
    let mut len = 0;
    let mut digits = DigitBuffer::default();
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            text[len] = b'.';
            len += 1;
        }
        let octet = decimal(octet.into(), &mut digits);
        text[len..len + octet.len()].copy_from_slice(octet);
        len += octet.len();
    }
    SmolStr::new(std::str::from_utf8(&text[..len]).unwrap_or_default())
}

/// A port as decimal text, without `core::fmt`.
fn port_text(port: u16) -> SmolStr {
    let mut digits = DigitBuffer::default();
    SmolStr::new(std::str::from_utf8(decimal(port.into(), &mut digits)).unwrap_or_default())
}

/// The upstream response's headers minus hop-by-hop and framing headers.
/// `keep_upgrade` keeps `Upgrade` for a 101 answer, whose Connection the
/// tunnel writes itself. `upstream_headers` gives the headers afresh for each
/// walk (the Connection header is looked up in them), so nothing is collected.
pub fn downstream_response_headers<'h, N, I>(
    upstream_headers: impl Fn() -> I,
    keep_upgrade: bool,
) -> impl Iterator<Item = (N, &'h [u8])>
where
    N: AsRef<[u8]>,
    I: Iterator<Item = (N, &'h [u8])>,
{
    let lists_headers = connection_lists_headers(upstream_headers());
    upstream_headers().filter(move |(name, _)| {
        let name = name.as_ref();
        if keep_upgrade && name.eq_ignore_ascii_case(b"upgrade") {
            return true;
        }
        let listed = || lists_headers && connection_lists(upstream_headers(), name);
        !(is_hop_by_hop(name) || listed())
    })
}

/// Whether the client connection ends after this exchange: HTTP/1.1 unless
/// `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`.
pub fn client_wants_close(http_minor_version: u8, client_headers: &[(&str, &str)]) -> bool {
    let tokens = || client_headers.iter().map(|(n, v)| (*n, v.as_bytes()));
    if connection_lists(tokens(), b"close") {
        return true;
    }
    http_minor_version == 0 && !connection_lists(tokens(), b"keep-alive")
}

thread_local! {
    static REQUEST_ID_STATE: Cell<u64> = Cell::new(RandomState::new().build_hasher().finish() | 1);
}

/// 16 random bytes as 32 hex digits, like ingress-nginx's `$req_id`.
///
/// A per-thread splitmix64 seeded from the std hasher's random keys: unique
/// and unpredictable enough for correlation IDs, with no lock and no syscall.
/// The digits are written on the stack; the one allocation is the shared
/// string that the upstream header and the access log both hold.
pub fn new_request_id() -> SmolStr {
    REQUEST_ID_STATE.with(|state| {
        let next = || {
            let mut z = state.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
            state.set(z);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        let mut digits = [0u8; 32];
        for half in digits.chunks_exact_mut(16) {
            half.copy_from_slice(&hex_digits(next()));
        }
        SmolStr::new(std::str::from_utf8(&digits).unwrap_or_default())
    })
}

/// `value` as 16 lower-case hex digits, most significant first, all at
/// once in a `u128`: a digit at a time, with a table load each, cost about
/// twice as much.
fn hex_digits(value: u64) -> [u8; 16] {
    const ONES: u128 = u128::MAX / 0xff;
    // Each byte of `value` to its own 16-bit lane, then each nibble to its own byte.
    let mut x = u128::from(value);
    x = (x | (x << 32)) & 0x0000_0000_ffff_ffff_0000_0000_ffff_ffff;
    x = (x | (x << 16)) & 0x0000_ffff_0000_ffff_0000_ffff_0000_ffff;
    x = (x | (x << 8)) & 0x00ff_00ff_00ff_00ff_00ff_00ff_00ff_00ff;
    x = (x | (x << 4)) & (ONES * 0x0f);
    // A nibble of 10 or more carries into bit 4 when 6 is added; its digit is
    // past '9' by the gap from ':' to 'a'.
    let letters = ((x + ONES * 6) >> 4) & ONES;
    (x + ONES * u128::from(b'0') + letters * u128::from(b'a' - b'0' - 10)).to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_ports_are_written_as_std_writes_them() {
        for ip in ["0.0.0.0", "10.0.0.9", "127.0.0.1", "192.168.100.200", "255.255.255.255", "1.20.100.9", "::1", "fd00::1:2"] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(address_text(ip), ip.to_string());
        }
        for port in [0, 7, 80, 443, 8080, 10000, 65535] {
            assert_eq!(port_text(port), port.to_string());
        }
    }

    #[test]
    fn remembered_texts_follow_the_key() {
        for ip in ["10.0.0.9", "10.0.0.9", "::1", "10.0.0.9", "192.0.2.1", "192.0.2.1"] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(remembered(&LAST_ADDRESS, ip, address_text), ip.to_string());
        }
        for port in [80, 80, 443, 80, 8080] {
            assert_eq!(remembered(&LAST_PORT, port, port_text), port.to_string());
        }
    }

    fn side<'a>(peer: &str, secure: bool, trusted: &'a [Cidr]) -> ClientOrigin<'a> {
        ClientOrigin { peer: Some(peer.parse().unwrap()), secure, listener_port: 8080, trusted_proxies: trusted }
    }

    fn rewrite(client: &[(&str, &str)], side: &ClientOrigin) -> UpstreamRequestHeaders {
        upstream_request_headers(client, side, || "generated".into())
    }

    fn get<'a>(head: &'a UpstreamRequestHeaders, name: &str) -> Vec<&'a str> {
        head.headers.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str()).collect()
    }

    #[test]
    fn same_name_is_eq_ignore_ascii_case_for_header_names() {
        let lowers: [&[u8]; 5] = [b"connection", b"proxy-", b"set-cookie", b"te", b"transfer-encoding"];
        let names: [&[u8]; 12] =
            [b"Connection", b"CONNECTION", b"connectioN", b"connectiom", b"Proxy-", b"proxy_", b"PROXY-", b"Set-Cookie", b"set-cookiE", b"TE", b"tf", b"Transfer-Encoding"];
        for lower in lowers {
            for name in names {
                assert_eq!(same_name(name, lower), name.eq_ignore_ascii_case(lower), "{:?} {:?}", String::from_utf8_lossy(name), String::from_utf8_lossy(lower));
            }
            // Every token byte in every position.
            for at in 0..lower.len() {
                for b in (0..=255u8).filter(|b| b.is_ascii_graphic()) {
                    let mut name = lower.to_vec();
                    name[at] = b;
                    assert_eq!(same_name(&name, lower), name.eq_ignore_ascii_case(lower), "{b} at {at}");
                }
            }
        }
    }

    #[test]
    fn hop_by_hop_names_match_in_any_case_and_nothing_else_does() {
        for name in ["te", "TE", "trailer", "Upgrade", "connection", "Keep-Alive", "content-length", "Transfer-Encoding", "proxy-authorization", "Proxy-Connection"] {
            assert!(is_hop_by_hop(name.as_bytes()), "{name}");
        }
        for name in ["", "t", "tf", "trailers", "upgrades", "xpgrade", "connectiom", "keep-alivf", "content-lengtx", "transfer-encodinf", "proxy", "x-proxy-id", "host", "accept", "tpgrade", "upgradf", "tonnection", "konnection", "Ke", "pe", "content-typ"] {
            assert!(!is_hop_by_hop(name.as_bytes()), "{name}");
        }
    }

    const COMMON_NAMES: &[&str] = &[
        "host",
        "user-agent",
        "accept",
        "accept-encoding",
        "accept-language",
        "authorization",
        "cache-control",
        "content-type",
        "cookie",
        "if-modified-since",
        "if-none-match",
        "origin",
        "pragma",
        "referer",
        "x-request-id",
    ];
    const FORWARDING: &[&str] = &["x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "x-forwarded-port", "x-real-ip"];

    /// Every name in several casings, each with one byte changed at every
    /// position, one byte longer and one shorter.
    fn names_and_near_misses(names: &[&str]) -> Vec<String> {
        let mut all = vec![String::new(), "a".into(), "x".into(), "x-forwarded-".into(), "accept-".into()];
        for name in names {
            let title: String = name.split('-').map(|part| part[..1].to_uppercase() + &part[1..]).collect::<Vec<_>>().join("-");
            for cased in [name.to_string(), name.to_uppercase(), title] {
                for i in 0..cased.len() {
                    for replacement in ['z', '-', 'E', 'R', 'o'] {
                        let mut miss = cased.clone();
                        miss.replace_range(i..i + 1, &replacement.to_string());
                        all.push(miss);
                    }
                }
                all.push(format!("{cased}s"));
                all.push(cased[..cased.len() - 1].to_string());
                all.push(cased);
            }
        }
        all
    }

    #[test]
    fn lower_names_borrow_exactly_the_common_names() {
        for name in names_and_near_misses(COMMON_NAMES) {
            let expected = COMMON_NAMES.iter().find(|common| common.eq_ignore_ascii_case(&name));
            let lower = lower_name(&name);
            assert_eq!(lower, name.to_ascii_lowercase(), "{name}");
            match (expected, &lower) {
                (Some(common), Cow::Borrowed(borrowed)) => assert_eq!(common, borrowed, "{name}"),
                (None, Cow::Owned(_)) => {}
                _ => panic!("{name}: expected {expected:?}, got {lower:?}"),
            }
        }
    }

    #[test]
    fn forwarding_names_match_in_any_case_and_nothing_else_does() {
        for name in names_and_near_misses(FORWARDING).iter().chain(&names_and_near_misses(COMMON_NAMES)) {
            let expected = FORWARDING.iter().any(|forwarding| forwarding.eq_ignore_ascii_case(name));
            assert_eq!(is_forwarding(name), expected, "{name}");
        }
    }

    #[test]
    fn forwarded_host_is_every_host_joined_and_trimmed() {
        type Headers<'a> = &'a [(&'a str, &'a str)];
        let cases: &[(Headers, Option<&str>)] = &[
            (&[], None),
            (&[("Host", "a.example")], Some("a.example")),
            (&[("host", " a.example ")], Some("a.example")),
            (&[("Host", "a.example"), ("HOST", "b.example")], Some("a.example, b.example")),
            (&[("Host", "a.example"), ("Connection", "host")], Some("a.example")),
            (&[("Connection", "keep-alive"), ("Host", "a.example"), ("Host", "b")], Some("a.example, b")),
            (&[("Connection", "x-other"), ("Host", "\ta\t")], Some("a")),
        ];
        for (client, expected) in cases {
            let head = rewrite(client, &side("10.0.0.9", false, &[]));
            let forwarded: Vec<&str> = expected.iter().copied().collect();
            assert_eq!(get(&head, "x-forwarded-host"), forwarded, "{client:?}");
        }
    }

    #[test]
    fn hop_by_hop_headers_are_dropped() {
        let client = [
            ("Host", "Example.COM:8080"),
            ("Connection", "keep-alive, X-Secret"),
            ("X-Secret", "1"),
            ("Keep-Alive", "timeout=5"),
            ("Proxy-Authorization", "Basic x"),
            ("Proxy-Connection", "keep-alive"),
            ("TE", "trailers"),
            ("Trailer", "X-Sum"),
            ("Transfer-Encoding", "chunked"),
            ("Content-Length", "5"),
            ("Upgrade", "websocket"),
            ("Expect", "100-continue"),
            ("Accept", "text/html"),
            ("Cookie", "a=1"),
            ("Cookie", "b=2"),
        ];
        let head = rewrite(&client, &side("10.0.0.9", false, &[]));
        let names: Vec<&str> = head.headers.iter().map(|(n, _)| n.as_ref()).collect();
        assert_eq!(
            names,
            [
                "host",
                "accept",
                "cookie",
                "cookie",
                "x-forwarded-for",
                "x-real-ip",
                "x-forwarded-host",
                "x-forwarded-proto",
                "x-forwarded-port",
                "x-request-id"
            ]
        );
        assert_eq!(get(&head, "host"), ["Example.COM:8080"], "Host verbatim");
        assert_eq!(get(&head, "cookie"), ["a=1", "b=2"], "repeated headers kept in order");
        assert!(!head.upgrade, "Upgrade without Connection: upgrade is no upgrade");
    }

    #[test]
    fn upgrade_keeps_connection_and_upgrade() {
        let client = [("Host", "h"), ("Connection", "Upgrade"), ("Upgrade", "websocket"), ("Sec-WebSocket-Key", "k")];
        let head = rewrite(&client, &side("10.0.0.9", false, &[]));
        assert!(head.upgrade);
        assert_eq!(get(&head, "connection"), ["upgrade"]);
        assert_eq!(get(&head, "upgrade"), ["websocket"]);
        assert_eq!(get(&head, "sec-websocket-key"), ["k"]);
    }

    #[test]
    fn forwarding_headers_from_untrusted_clients_are_replaced() {
        let client = [
            ("Host", "app.example"),
            ("X-Forwarded-For", "1.2.3.4"),
            ("X-Forwarded-Host", "evil"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Port", "1"),
            ("X-Real-IP", "1.2.3.4"),
        ];
        let head = rewrite(&client, &side("10.0.0.9", false, &[]));
        assert_eq!(get(&head, "x-forwarded-for"), ["10.0.0.9"]);
        assert_eq!(get(&head, "x-real-ip"), ["10.0.0.9"]);
        assert_eq!(get(&head, "x-forwarded-host"), ["app.example"]);
        assert_eq!(get(&head, "x-forwarded-proto"), ["http"]);
        assert_eq!(get(&head, "x-forwarded-port"), ["8080"]);
    }

    #[test]
    fn forwarding_headers_from_trusted_proxies_are_extended() {
        let trusted = [Cidr::parse("10.0.0.0/8").unwrap()];
        let client = [
            ("Host", "app.example"),
            ("X-Forwarded-For", "203.0.113.7, 10.1.1.1"),
            ("X-Forwarded-For", "10.2.2.2"),
            ("X-Forwarded-Host", "public.example"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Port", "443"),
        ];
        let head = rewrite(&client, &side("10.0.0.9", false, &trusted));
        assert_eq!(get(&head, "x-forwarded-for"), ["203.0.113.7, 10.1.1.1, 10.2.2.2, 10.0.0.9"]);
        assert_eq!(get(&head, "x-real-ip"), ["203.0.113.7"], "first untrusted hop from the right");
        assert_eq!(get(&head, "x-forwarded-host"), ["public.example"]);
        assert_eq!(get(&head, "x-forwarded-proto"), ["https"]);
        assert_eq!(get(&head, "x-forwarded-port"), ["443"]);
    }

    #[test]
    fn real_ip_table() {
        let trusted = [Cidr::parse("10.0.0.0/8").unwrap()];
        let cases: &[(&str, Option<&str>, &str, Option<&str>)] = &[
            // (peer, incoming X-Forwarded-For, expected X-Real-IP, expected client address)
            ("10.0.0.9", None, "10.0.0.9", Some("10.0.0.9")),
            ("10.0.0.9", Some("10.1.1.1"), "10.1.1.1", Some("10.1.1.1")),
            ("10.0.0.9", Some("198.51.100.1, 203.0.113.7"), "203.0.113.7", Some("203.0.113.7")),
            ("10.0.0.9", Some("garbage, 10.1.1.1"), "garbage", None),
            ("10.0.0.9", Some("203.0.113.7:4711"), "203.0.113.7:4711", Some("203.0.113.7")),
            ("10.0.0.9", Some("[2001:db8::7]:4711"), "[2001:db8::7]:4711", Some("2001:db8::7")),
            ("192.0.2.1", Some("203.0.113.7"), "192.0.2.1", Some("192.0.2.1")),
        ];
        for (peer, xff, expected, client_address) in cases {
            let mut client = vec![("Host", "h")];
            if let Some(xff) = xff {
                client.push(("X-Forwarded-For", xff));
            }
            let head = rewrite(&client, &side(peer, false, &trusted));
            assert_eq!(get(&head, "x-real-ip"), [*expected], "peer {peer} xff {xff:?}");
            assert_eq!(head.client_address, client_address.map(|a| a.parse().unwrap()), "peer {peer} xff {xff:?}");
        }
    }

    #[test]
    fn proto_and_port_follow_the_listener() {
        let head = rewrite(&[("Host", "h")], &ClientOrigin { listener_port: 443, ..side("192.0.2.1", true, &[]) });
        assert_eq!(get(&head, "x-forwarded-proto"), ["https"]);
        assert_eq!(get(&head, "x-forwarded-port"), ["443"]);
    }

    #[test]
    fn request_id_kept_or_generated() {
        let head = rewrite(&[("Host", "h"), ("X-Request-Id", "abc")], &side("192.0.2.1", false, &[]));
        assert_eq!(head.request_id, "abc");
        assert_eq!(get(&head, "x-request-id"), ["abc"]);
        let head = rewrite(&[("Host", "h")], &side("192.0.2.1", false, &[]));
        assert_eq!(head.request_id, "generated");
        assert_eq!(get(&head, "x-request-id"), ["generated"]);
    }

    #[test]
    fn hex_digits_are_written_as_std_writes_them() {
        let mut values = vec![0, 1, 9, 10, 15, 16, 0xa0, 0x9f, u64::MAX, u64::MAX - 1, 0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210];
        values.extend((0..64).map(|shift| 1u64 << shift));
        values.extend((0..16).map(|nibble| 0x1111_1111_1111_1111 * nibble));
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..1000 {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            values.push(seed);
        }
        for value in values {
            assert_eq!(hex_digits(value), format!("{value:016x}").as_bytes(), "{value:#x}");
        }
    }

    #[test]
    fn generated_request_ids_are_hex_and_distinct() {
        let a = new_request_id();
        let b = new_request_id();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn response_hop_by_hop_headers_are_dropped() {
        let upstream: Vec<(&str, &[u8])> = vec![
            ("content-type", b"text/plain"),
            ("connection", b"close, x-internal"),
            ("x-internal", b"1"),
            ("keep-alive", b"timeout=5"),
            ("transfer-encoding", b"chunked"),
            ("content-length", b"12"),
            ("proxy-authenticate", b"Basic"),
            ("upgrade", b"websocket"),
            ("set-cookie", b"a=1"),
            ("set-cookie", b"b=2"),
        ];
        let kept: Vec<_> = downstream_response_headers(|| upstream.iter().copied(), false).collect();
        assert_eq!(
            kept,
            vec![("content-type", &b"text/plain"[..]), ("set-cookie", &b"a=1"[..]), ("set-cookie", &b"b=2"[..])]
        );
        let kept: Vec<_> = downstream_response_headers(|| upstream.iter().copied(), true).collect();
        assert!(kept.contains(&("upgrade", &b"websocket"[..])));
    }

    #[test]
    fn client_close_table() {
        type Case<'a> = (u8, &'a [(&'a str, &'a str)], bool);
        let cases: &[Case] = &[
            (1, &[], false),
            (1, &[("Connection", "close")], true),
            (1, &[("Connection", "Keep-Alive, Close")], true),
            (0, &[], true),
            (0, &[("Connection", "keep-alive")], false),
        ];
        for (minor, headers, expected) in cases {
            assert_eq!(client_wants_close(*minor, headers), *expected, "HTTP/1.{minor} {headers:?}");
        }
    }
}
