//! The balancing step of the upstream phase: which endpoint a request tries
//! first, for routes whose Ingress asks for cookie affinity or
//! `upstream-hash-by` (every other route takes the next round-robin slot
//! and never comes here).
//!
//! Every replica of ingressd must send a request to the same endpoint, so
//! nothing here depends on a per-process random seed or on state: the sticky
//! cookie's value is a digest of the endpoint's address, and hashing picks
//! by rendezvous (highest random weight) over the ready endpoints, which is
//! consistent (an endpoint leaving moves only its own keys) and needs no
//! ring to build or keep across generations. Both cost one short hash per
//! ready endpoint per request, on these routes only.
//!
//! The digest is FNV-1a with MurmurHash3's 64-bit finaliser, both fixed,
//! published algorithms: the values are not secrets (a client may pick any
//! endpoint by sending its cookie, as with ingress-nginx), so a keyed or
//! cryptographic hash buys nothing, and a crate would add a dependency for
//! ten lines.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use super::holddown::DEFAULT_TRIES;
use crate::annotations::balance::{Affinity, HashKey, HashPart, Selection};
use crate::routes::{Route, Upstream};

/// Where a request starts among a route's endpoints and how far it may go.
pub(super) struct Plan<'r> {
    /// The index of the endpoint to try first (before hold-downs reorder).
    pub first: usize,
    /// How many endpoints may be tried after connect failures.
    pub tries: usize,
    /// The route's cookie affinity, with the endpoint the request's cookie
    /// named (`None`: no valid cookie, so the response sets one).
    pub affinity: Option<(&'r Affinity, Option<usize>)>,
}

impl Plan<'_> {
    /// The `Set-Cookie` value to answer with once `used` (an index into the
    /// upstreams) answered: when the request had no valid cookie, or with
    /// `session-cookie-change-on-failure` when its endpoint failed.
    pub(super) fn cookie_for(&self, used: usize, upstreams: &[Upstream], route_path: &str, secure: bool) -> Option<String> {
        let (affinity, stuck) = self.affinity?;
        let renew = match stuck {
            None => true,
            Some(stuck) => affinity.change_on_failure && stuck != used,
        };
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        renew.then(|| set_cookie(affinity, &upstreams[used], route_path, secure, now))
    }
}

/// The plan for one request to `route`. Routes without balancing
/// annotations take the next round-robin slot, as before, and `inputs` is
/// never called for them.
pub(super) fn plan<'r, 'i>(route: &'r Route, upstreams: &[Upstream], inputs: impl FnOnce() -> Inputs<'i>) -> Plan<'r> {
    let round_robin = || route.next_upstream.fetch_add(1, Ordering::Relaxed);
    let Some(balance) = route.policy.as_ref().and_then(|p| p.balance.as_ref()) else {
        return Plan { first: round_robin(), tries: DEFAULT_TRIES, affinity: None };
    };
    let tries = balance.tries.unwrap_or(DEFAULT_TRIES);
    let (choice, affinity) = match &balance.selection {
        None => (Choice::Unstuck, None),
        Some(Selection::Cookie(affinity)) => (sticky(affinity, upstreams, &inputs()), Some(affinity)),
        Some(Selection::Hash(key)) => (hashed(key, upstreams, &inputs()), None),
    };
    let first = match choice {
        Choice::Sticky(index) | Choice::Hashed(index) => index,
        Choice::Unstuck => round_robin(),
    };
    let stuck = match choice {
        Choice::Sticky(index) => Some(index),
        _ => None,
    };
    Plan { first, tries, affinity: affinity.map(|a| (a, stuck)) }
}

/// The request values hashing and affinity read.
pub(super) struct Inputs<'a> {
    pub headers: tiny_http::RequestHeaders<'a>,
    /// The request target as sent: path and query.
    pub request_uri: &'a str,
    pub client: Option<SocketAddr>,
    /// The Host as routed, port included.
    pub host: &'a str,
}

/// The endpoint a request tries first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Choice {
    /// The endpoint the request's sticky cookie names, still ready.
    Sticky(usize),
    /// The endpoint its hash picks.
    Hashed(usize),
    /// No cookie, or one naming no ready endpoint: round robin, and a new cookie.
    Unstuck,
}

/// A fixed 64-bit hash of `parts` fed one after another.
#[derive(Debug, Clone, Copy)]
struct StableHash(u64);

impl StableHash {
    fn new() -> StableHash {
        StableHash(0xcbf2_9ce4_8422_2325)
    }

    fn feed(mut self, bytes: &[u8]) -> StableHash {
        for byte in bytes {
            self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
        self
    }

    fn finish(self) -> u64 {
        mix(self.0)
    }
}

/// MurmurHash3's fmix64: spreads every input bit over the whole word.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// An endpoint's address digested by a hash with a fixed seed, so the sticky
/// cookie and the consistent hash name the same endpoint on every replica
/// and after every restart.
fn endpoint_digest(upstream: &Upstream) -> u64 {
    StableHash::new().feed(upstream.authority.as_bytes()).finish()
}

/// The sticky cookie's value for an endpoint: its digest in 16 hex digits.
pub(super) fn cookie_value(upstream: &Upstream) -> String {
    format!("{:016x}", endpoint_digest(upstream))
}

/// The value of the request cookie `name` (the first, if sent twice).
fn request_cookie<'a>(headers: tiny_http::RequestHeaders<'a>, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .filter(|h| h.field.equiv("cookie"))
        .flat_map(|h| h.value.as_str().split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim().trim_matches('"'))
}

/// The first endpoint for a route with cookie affinity.
pub(super) fn sticky(affinity: &Affinity, upstreams: &[Upstream], inputs: &Inputs<'_>) -> Choice {
    let Some(value) = request_cookie(inputs.headers, &affinity.name) else { return Choice::Unstuck };
    let Ok(wanted) = u64::from_str_radix(value, 16) else { return Choice::Unstuck };
    if value.len() != 16 {
        return Choice::Unstuck;
    }
    upstreams.iter().position(|u| endpoint_digest(u) == wanted).map_or(Choice::Unstuck, Choice::Sticky)
}

/// The first endpoint for a route with `upstream-hash-by`: the ready
/// endpoint with the highest weight for the request's key.
pub(super) fn hashed(key: &HashKey, upstreams: &[Upstream], inputs: &Inputs<'_>) -> Choice {
    let key = key_hash(key, inputs);
    let best = upstreams.iter().enumerate().max_by_key(|(_, u)| (mix(key ^ endpoint_digest(u)), std::cmp::Reverse(u.authority.as_str())));
    best.map_or(Choice::Unstuck, |(index, _)| Choice::Hashed(index))
}

/// The hash of the request's value of an `upstream-hash-by` template; an
/// absent header, cookie or argument counts as empty, as in nginx.
fn key_hash(key: &HashKey, inputs: &Inputs<'_>) -> u64 {
    let mut hash = StableHash::new();
    let query = inputs.request_uri.split_once('?').map_or("", |(_, query)| query);
    for part in &key.parts {
        hash = match part {
            HashPart::Literal(text) => hash.feed(text.as_bytes()),
            HashPart::RequestUri => hash.feed(inputs.request_uri.as_bytes()),
            HashPart::RemoteAddr => {
                let mut ip = String::new();
                if let Some(client) = inputs.client {
                    let _ = write!(ip, "{}", client.ip());
                }
                hash.feed(ip.as_bytes())
            }
            HashPart::Host => crate::hostname::with_normalized_host(inputs.host, |host| hash.feed(host.as_bytes())),
            HashPart::Header(name) => {
                let found = inputs.headers.iter().find(|h| header_matches(h.field.as_str(), name));
                hash.feed(found.map_or("", |h| h.value.as_str()).as_bytes())
            }
            HashPart::Cookie(name) => hash.feed(request_cookie(inputs.headers, name).unwrap_or("").as_bytes()),
            HashPart::Arg(name) => {
                let found = query.split('&').filter_map(|pair| pair.split_once('=')).find(|(key, _)| key == name);
                hash.feed(found.map_or("", |(_, value)| value).as_bytes())
            }
        };
    }
    hash.finish()
}

/// nginx's `$http_NAME`: the header name lower-cased with `-` as `_`.
fn header_matches(field: &str, variable: &str) -> bool {
    field.len() == variable.len()
        && field.bytes().zip(variable.bytes()).all(|(f, v)| {
            let f = if f == b'-' { b'_' } else { f.to_ascii_lowercase() };
            f == v
        })
}

/// The `Set-Cookie` value that sticks a client to `upstream`, as
/// ingress-nginx writes it: `HttpOnly`, `Path` (the route's path unless
/// set), `Secure` on TLS requests or when asked, and the optional
/// attributes. `now_unix` dates `Expires`.
pub(super) fn set_cookie(affinity: &Affinity, upstream: &Upstream, route_path: &str, secure: bool, now_unix: u64) -> String {
    let path = affinity.path.as_deref().unwrap_or(if route_path.is_empty() { "/" } else { route_path });
    let mut cookie = format!("{}={}; Path={path}", affinity.name, cookie_value(upstream));
    if let Some(domain) = &affinity.domain {
        let _ = write!(cookie, "; Domain={domain}");
    }
    if let Some(seconds) = affinity.expires {
        let _ = write!(cookie, "; Expires={}", http_date(now_unix.saturating_add(seconds)));
    }
    if let Some(seconds) = affinity.max_age {
        let _ = write!(cookie, "; Max-Age={seconds}");
    }
    if secure || affinity.secure {
        cookie.push_str("; Secure");
    }
    cookie.push_str("; HttpOnly");
    if let Some(samesite) = affinity.samesite {
        let _ = write!(cookie, "; SameSite={}", samesite.as_str());
    }
    cookie
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
fn http_date(unix: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let days = (unix / 86_400) as i64;
    let in_day = unix % 86_400;
    let (year, month, day) = crate::civil::civil_from_days(days);
    format!(
        "{}, {day:02} {} {year:04} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        MONTHS[(month as usize).saturating_sub(1) % 12],
        in_day / 3600,
        in_day % 3600 / 60,
        in_day % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::annotations::balance::{parse_hash_key, SameSite};

    fn upstreams(n: usize) -> Vec<Upstream> {
        (0..n).map(|i| Upstream::new(format!("10.0.{}.{}:8080", i / 200, i % 200).into())).collect()
    }

    fn header(name: &str, value: &str) -> tiny_http::Header {
        tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("header")
    }

    fn request(headers: &[tiny_http::Header]) -> tiny_http::Request {
        headers.iter().fold(tiny_http::TestRequest::new(), |request, header| request.with_header(header.clone())).into()
    }

    fn inputs<'a>(request: &'a tiny_http::Request, uri: &'a str) -> Inputs<'a> {
        Inputs { headers: request.headers(), request_uri: uri, client: Some("192.0.2.7:5555".parse().expect("addr")), host: "Shop.example.com:8080" }
    }

    fn affinity() -> Affinity {
        Affinity::default()
    }

    #[test]
    fn cookie_values_are_fixed_digests_of_the_address() {
        // Fixed across processes and releases: a changed value would unstick every session at an upgrade.
        assert_eq!(cookie_value(&Upstream::new("10.0.0.1:8080".into())), "e8c721156ed52b14");
        let list = upstreams(5);
        let values: std::collections::HashSet<String> = list.iter().map(cookie_value).collect();
        assert_eq!(values.len(), 5);
        for (index, upstream) in list.iter().enumerate() {
            let cookie = [header("Cookie", &format!("a=1; INGRESSCOOKIE={}; b=2", cookie_value(upstream)))];
            assert_eq!(sticky(&affinity(), &list, &inputs(&request(&cookie), "/")), Choice::Sticky(index));
            // The same endpoint in a new generation's list (one endpoint gone) keeps its sessions.
            let shorter: Vec<Upstream> = list.iter().filter(|u| *u == upstream || u.authority != list[0].authority).cloned().collect();
            let expected = shorter.iter().position(|u| u == upstream).map_or(Choice::Unstuck, Choice::Sticky);
            assert_eq!(sticky(&affinity(), &shorter, &inputs(&request(&cookie), "/")), expected);
        }
        for bad in ["INGRESSCOOKIE=zz", "INGRESSCOOKIE=0000000000000000", "OTHER=1", "INGRESSCOOKIE=1"] {
            assert_eq!(sticky(&affinity(), &list, &inputs(&request(&[header("Cookie", bad)]), "/")), Choice::Unstuck, "{bad}");
        }
        assert_eq!(sticky(&affinity(), &list, &inputs(&request(&[]), "/")), Choice::Unstuck);
    }

    #[test]
    fn the_digest_is_a_fixed_function() {
        // FNV-1a of "a" is 0xaf63dc4c8601ec8c; fmix64 of that is fixed too.
        assert_eq!(StableHash::new().feed(b"a").0, 0xaf63_dc4c_8601_ec8c);
        assert_eq!(StableHash::new().feed(b"a").finish(), mix(0xaf63_dc4c_8601_ec8c));
        assert_eq!(mix(0), 0);
    }

    #[test]
    fn hashing_is_consistent_and_moves_only_the_keys_of_a_removed_endpoint() {
        let key = parse_hash_key("$request_uri").expect("key");
        let list = upstreams(10);
        let pick = |list: &[Upstream], uri: &str| match hashed(&key, list, &inputs(&request(&[]), uri)) {
            Choice::Hashed(index) => list[index].authority.clone(),
            other => panic!("{other:?}"),
        };
        let mut counts = std::collections::HashMap::new();
        let removed = list[3].clone();
        let fewer: Vec<Upstream> = list.iter().filter(|u| **u != removed).cloned().collect();
        for n in 0..2000 {
            let uri = format!("/item/{n}");
            let before = pick(&list, &uri);
            assert_eq!(before, pick(&list, &uri), "the same key picks the same endpoint");
            *counts.entry(before.clone()).or_insert(0) += 1;
            if before != removed.authority {
                assert_eq!(pick(&fewer, &uri), before, "{uri} moved though its endpoint stayed");
            }
        }
        assert_eq!(counts.len(), 10);
        assert!(counts.values().all(|&c| (100..=300).contains(&c)), "spread: {counts:?}");
    }

    #[test]
    fn hash_keys_read_the_request_like_nginx_variables() {
        let list = upstreams(50);
        let headers = [header("X-User-Id", "alice"), header("Cookie", "sid=s1; other=o"), header("x-user-id", "ignored second")];
        let value = |template: &str, headers: &[tiny_http::Header], uri: &str| key_hash(&parse_hash_key(template).expect("key"), &inputs(&request(headers), uri));
        let literal = |text: &str| StableHash::new().feed(text.as_bytes()).finish();
        assert_eq!(value("$http_x_user_id", &headers, "/"), literal("alice"));
        assert_eq!(value("$cookie_sid", &headers, "/"), literal("s1"));
        assert_eq!(value("$arg_tenant", &headers, "/p?a=1&tenant=t%201&b"), literal("t%201"));
        assert_eq!(value("$arg_missing", &headers, "/p?a=1"), literal(""));
        assert_eq!(value("$remote_addr", &headers, "/"), literal("192.0.2.7"));
        assert_eq!(value("$host$request_uri", &headers, "/x?y"), literal("shop.example.com/x?y"));
        assert_eq!(value("u-${arg_a}", &headers, "/p?a=1"), literal("u-1"));
        assert!(matches!(hashed(&parse_hash_key("$http_x_user_id").expect("key"), &list, &inputs(&request(&headers), "/")), Choice::Hashed(_)));
        assert_eq!(hashed(&parse_hash_key("$request_uri").expect("key"), &[], &inputs(&request(&headers), "/")), Choice::Unstuck);
    }

    #[test]
    fn set_cookie_carries_ingress_nginx_attributes() {
        let upstream = Upstream::new("10.0.0.1:8080".into());
        let value = cookie_value(&upstream);
        assert_eq!(set_cookie(&affinity(), &upstream, "/shop", false, 0), format!("INGRESSCOOKIE={value}; Path=/shop; HttpOnly"));
        assert_eq!(set_cookie(&affinity(), &upstream, "", true, 0), format!("INGRESSCOOKIE={value}; Path=/; Secure; HttpOnly"));
        let full = Affinity {
            name: "route".into(),
            path: Some("/app".into()),
            domain: Some("example.com".into()),
            max_age: Some(42),
            expires: Some(172_800),
            samesite: Some(SameSite::Strict),
            secure: true,
            change_on_failure: false,
        };
        assert_eq!(
            set_cookie(&full, &upstream, "/ignored", false, 784_111_777 - 172_800),
            format!("route={value}; Path=/app; Domain=example.com; Expires=Sun, 06 Nov 1994 08:49:37 GMT; Max-Age=42; Secure; HttpOnly; SameSite=Strict")
        );
    }

    #[test]
    fn http_dates() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(1_709_251_199), "Thu, 29 Feb 2024 23:59:59 GMT");
    }
}
