//! What an Ingress's annotations ask of each request, decided once per
//! compile. A route carries a policy only when its Ingress set one of these
//! annotations, so a plain Ingress costs the request path nothing.
//!
//! Each value is parsed by a pure function with ingress-nginx's rules, and a
//! bad value is reported and left out: the Ingress then behaves as if the
//! annotation were absent (ingressd's defaults, not nginx's).

use crate::kube::objects::{Ingress, ObjectKey, Secret, StringMap};
use std::sync::Arc;
use std::time::Duration;

use super::backend_tls::BackendProtocol;
use super::balance::Balance;
use super::basic_auth::{self, BasicAuth};

use super::cors::{parse_bool, Cors};
use super::source_range::SourceRanges;
use super::external_auth::ExternalAuth;
use super::limits::RateLimits;
use super::value;

/// Per-request behaviour from annotations.
///
/// Each Ingress with any annotation has one, so the large and rarer
/// families are boxed: a Policy holding only `proxy-body-size` was 696
/// bytes, 7 MiB at 10,000 Ingresses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// `app-root`: a request for exactly `/` answers 302 to this path.
    pub app_root: Option<String>,
    /// `temporal-redirect` or `permanent-redirect`: every request answers
    /// with this code and URL instead of reaching the backend.
    pub redirect: Option<Redirect>,
    /// `proxy-body-size` in bytes; 0 means no limit. `None` keeps `--max-body-size`.
    pub max_body_size: Option<u64>,
    /// `upstream-vhost`: the Host header the backend receives instead of the client's.
    pub upstream_vhost: Option<String>,
    /// `x-forwarded-prefix`: sent to the backend as `X-Forwarded-Prefix`.
    pub forwarded_prefix: Option<String>,
    /// `enable-cors` and the `cors-*` settings.
    pub cors: Option<Box<Cors>>,
    /// `proxy-connect-timeout`, `proxy-read-timeout`, `proxy-send-timeout`.
    pub timeouts: Option<Box<UpstreamTimeouts>>,
    /// `service-upstream: "true"`: traffic goes to the Service's ClusterIP
    /// (kube-proxy balances), not to the endpoints.
    pub service_upstream: bool,
    /// Set only on the route ingressd adds for `from-to-www-redirect`: the
    /// host (`www.` added or removed) every request is redirected to.
    pub www_redirect: Option<String>,
    /// `affinity`, `upstream-hash-by`, `proxy-next-upstream-tries`.
    pub balance: Option<Box<Balance>>,
    /// `backend-protocol` other than plain HTTP, with the `proxy-ssl-*` settings.
    pub backend_protocol: Option<Box<BackendProtocol>>,
    /// `allowlist-source-range` (`whitelist-source-range`) and
    /// `denylist-source-range`; a bad list refuses every client.
    pub source_ranges: Option<Box<SourceRanges>>,
    /// `auth-type: basic` and its Secret, compiled.
    pub basic_auth: Option<Box<BasicAuth>>,
    /// `auth-url` and its companions.
    pub external_auth: Option<ExternalAuth>,
    /// `limit-rps`, `limit-rpm`, `limit-connections` and their allowlist.
    pub limits: Option<Box<RateLimits>>,
}

/// Upstream timeouts an Ingress sets; each `None` keeps the command line's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpstreamTimeouts {
    pub connect: Option<Duration>,
    /// Waiting for the response head, and between two reads of the body.
    pub read: Option<Duration>,
    /// Between two writes of the request body.
    pub send: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    pub code: u16,
    pub url: String,
}

impl Policy {
    /// The policy of `ingress`: its annotations, and the Secrets they name
    /// looked up with `secret` (the snapshot being compiled).
    pub fn for_ingress<'s>(ingress: &Ingress, secret: impl Fn(&ObjectKey) -> Option<&'s Arc<Secret>>) -> (Option<Policy>, Vec<String>) {
        let annotations = &ingress.metadata.annotations;
        let (policy, mut problems) = Policy::from_annotations(annotations);
        let basic_auth = basic_auth::from_annotations(annotations, &ingress.metadata.namespace, secret, &mut problems);
        if basic_auth.is_none() {
            return (policy, problems);
        }
        (Some(Policy { basic_auth: basic_auth.map(Box::new), ..policy.unwrap_or_default() }), problems)
    }

    /// The policy `annotations` ask for (`None` when they ask for nothing),
    /// and a description of every value that had to be left out.
    pub fn from_annotations(annotations: &StringMap) -> (Option<Policy>, Vec<String>) {
        let mut problems = Vec::new();
        let mut policy = Policy::default();
        if let Some(root) = value(annotations, "app-root") {
            match parse_app_root(root) {
                Ok(root) => policy.app_root = Some(root),
                Err(why) => problems.push(format!("app-root {root:?} ignored: {why}")),
            }
        }
        policy.redirect = redirect(annotations, &mut problems);
        if let Some(size) = value(annotations, "proxy-body-size") {
            match parse_size(size) {
                Some(bytes) => policy.max_body_size = Some(bytes),
                None => problems.push(format!("proxy-body-size {size:?} ignored: not an nginx size (digits, then k, m or g); --max-body-size applies")),
            }
        }
        for (name, slot, check) in [
            ("upstream-vhost", &mut policy.upstream_vhost, check_host as fn(&str) -> Result<(), &'static str>),
            ("x-forwarded-prefix", &mut policy.forwarded_prefix, check_header_value),
        ] {
            if let Some(text) = value(annotations, name) {
                match check(text) {
                    Ok(()) => *slot = Some(text.to_string()),
                    Err(why) => problems.push(format!("{name} {text:?} ignored: {why}")),
                }
            }
        }
        policy.cors = Cors::from_annotations(annotations, &mut problems).map(Box::new);
        if let Some(text) = value(annotations, "service-upstream") {
            match parse_bool(text) {
                Some(on) => policy.service_upstream = on,
                None => problems.push(format!("service-upstream {text:?} is not a boolean; --upstream-mode applies")),
            }
        }
        if let Some(text) = value(annotations, "from-to-www-redirect").filter(|t| parse_bool(t).is_none()) {
            problems.push(format!("from-to-www-redirect {text:?} is not a boolean; no redirect"));
        }
        let mut timeouts = UpstreamTimeouts::default();
        for (name, slot) in [("proxy-connect-timeout", &mut timeouts.connect), ("proxy-read-timeout", &mut timeouts.read), ("proxy-send-timeout", &mut timeouts.send)] {
            if let Some(text) = value(annotations, name) {
                match text.trim().parse::<u64>() {
                    Ok(seconds) if seconds > 0 => *slot = Some(Duration::from_secs(seconds)),
                    _ => problems.push(format!("{name} {text:?} ignored: not a whole number of seconds above 0; the command line's timeout applies")),
                }
            }
        }
        policy.timeouts = (timeouts != UpstreamTimeouts::default()).then(|| Box::new(timeouts));
        policy.balance = Balance::from_annotations(annotations, &mut problems).map(Box::new);
        policy.backend_protocol = BackendProtocol::from_annotations(annotations, &mut problems).map(Box::new);
        policy.source_ranges = SourceRanges::from_annotations(annotations).map(Box::new);
        if let Some(SourceRanges::Invalid { annotation, why }) = policy.source_ranges.as_deref() {
            problems.push(format!("{annotation} is invalid ({why}): every path of this Ingress answers 403 until it is fixed"));
        }
        policy.external_auth = ExternalAuth::from_annotations(annotations, &mut problems);
        policy.limits = RateLimits::from_annotations(annotations, &mut problems).map(Box::new);
        let asked = policy != Policy::default();
        (asked.then_some(policy), problems)
    }

    /// The redirect this policy answers `path_and_query` with, if any:
    /// `app-root` for `/`, then the Ingress-wide redirect (ingress-nginx
    /// applies the server's app-root before the location's `return`).
    /// `http_host` is the Host as the client sent it, port included, as
    /// nginx's `$http_host`.
    pub fn redirect_for(&self, scheme: &str, http_host: &str, path_and_query: &str) -> Option<(u16, String)> {
        if let Some(to) = &self.www_redirect {
            return Some(www_redirect(scheme, http_host, to, path_and_query));
        }
        let path = path_and_query.split('?').next().unwrap_or(path_and_query);
        if let Some(root) = self.app_root.as_deref().filter(|_| path == "/") {
            return Some((302, format!("{scheme}://{http_host}{root}")));
        }
        self.redirect.as_ref().map(|r| (r.code, expand(&r.url, scheme, &host_of(http_host), path_and_query)))
    }
}

/// `temporal-redirect` wins over `permanent-redirect`, as in ingress-nginx;
/// a code outside its range falls back to the default, as there too.
fn redirect(annotations: &StringMap, problems: &mut Vec<String>) -> Option<Redirect> {
    for (name, code_name, default, max) in [("temporal-redirect", "temporal-redirect-code", 302, 307), ("permanent-redirect", "permanent-redirect-code", 301, 308)] {
        let Some(url) = value(annotations, name).filter(|u| !u.is_empty()) else { continue };
        if let Err(why) = check_redirect_url(url) {
            problems.push(format!("{name} {url:?} ignored: {why}"));
            continue;
        }
        let code = match value(annotations, code_name).map(|c| (c, c.trim().parse::<u16>())) {
            None => default,
            Some((_, Ok(code))) if (300..=max).contains(&code) => code,
            Some((text, _)) => {
                problems.push(format!("{code_name} {text:?} is not a code from 300 to {max}; {default} is used"));
                default
            }
        };
        return Some(Redirect { code, url: url.to_string() });
    }
    None
}

/// An absolute http or https URL without white space or control bytes (it
/// becomes a Location header verbatim).
fn check_redirect_url(url: &str) -> Result<(), &'static str> {
    let scheme_ok = url.get(..7).is_some_and(|s| s.eq_ignore_ascii_case("http://")) || url.get(..8).is_some_and(|s| s.eq_ignore_ascii_case("https://"));
    if !scheme_ok {
        return Err("only http and https URLs redirect");
    }
    if url.bytes().any(|b| b.is_ascii_whitespace() || b.is_ascii_control()) {
        return Err("white space or control characters");
    }
    Ok(())
}

/// A Host header value: a name or address with an optional port, nothing else.
fn check_host(text: &str) -> Result<(), &'static str> {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':' | b'[' | b']');
    if text.is_empty() || !text.bytes().all(allowed) {
        return Err("not a host name with an optional port");
    }
    Ok(())
}

/// A header value sent verbatim: printable, no control bytes.
fn check_header_value(text: &str) -> Result<(), &'static str> {
    if text.is_empty() || text.bytes().any(|b| b.is_ascii_control() || !b.is_ascii()) {
        return Err("empty, or holds control or non-ASCII bytes");
    }
    Ok(())
}

/// `app-root` is a path: it must start with `/` and hold no query, white
/// space or control bytes.
fn parse_app_root(root: &str) -> Result<String, &'static str> {
    if !root.starts_with('/') || root.starts_with("//") {
        return Err("not an absolute path");
    }
    if root.bytes().any(|b| b.is_ascii_whitespace() || b.is_ascii_control() || b == b'?' || b == b'#') {
        return Err("white space, control characters, ? or #");
    }
    Ok(root.to_string())
}

/// An nginx size (`client_max_body_size`): digits, optionally followed by
/// `k`, `m` or `g` in either case (ingress-nginx also lets `b` through).
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let (digits, unit) = match text.char_indices().last()? {
        (i, c) if c.is_ascii_alphabetic() => (&text[..i], c.to_ascii_lowercase()),
        _ => (text, 'b'),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let shift = match unit {
        'b' => 0,
        'k' => 10,
        'm' => 20,
        'g' => 30,
        _ => return None,
    };
    digits.parse::<u64>().ok()?.checked_mul(1 << shift)
}

/// nginx's `$host`: the Host without its port, lower-case.
/// Whether an Ingress asks for `from-to-www-redirect`: requests for its
/// hosts with `www.` added or removed are redirected to them, unless an
/// Ingress serves that other host itself.
pub fn asks_www_redirect(annotations: &StringMap) -> bool {
    value(annotations, "from-to-www-redirect").and_then(parse_bool) == Some(true)
}

/// The HTTP redirect code ingress-nginx's `from-to-www-redirect` server answers with.
const WWW_REDIRECT_CODE: u16 = 308;

/// ingress-nginx's `ngx_srv_redirect.lua`: the scheme, the other host, the
/// port, and `$request_uri` without one trailing `/`. The port is the one the
/// client addressed (nginx's `$server_port`; the same behind a plain port
/// mapping), left out when the client named none.
fn www_redirect(scheme: &str, http_host: &str, to: &str, path_and_query: &str) -> (u16, String) {
    let port = &http_host[port_suffix_start(http_host)..];
    let uri = path_and_query.strip_suffix('/').unwrap_or(path_and_query);
    (WWW_REDIRECT_CODE, format!("{scheme}://{to}{port}{uri}"))
}

/// Where `:PORT` starts in a Host value (its length when there is none).
fn port_suffix_start(http_host: &str) -> usize {
    match http_host.rsplit_once(':') {
        Some((name, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) && (!name.contains(':') || name.ends_with(']')) => name.len(),
        _ => http_host.len(),
    }
}

fn host_of(http_host: &str) -> String {
    http_host[..port_suffix_start(http_host)].to_ascii_lowercase()
}

/// The nginx variables a redirect URL may use, as nginx's `return` expands
/// them: `$request_uri` (path and query as sent), `$uri` (the path),
/// `$args` (the query), `$host` and `$scheme`. Anything else stays as written.
fn expand(url: &str, scheme: &str, host: &str, path_and_query: &str) -> String {
    if !url.contains('$') {
        return url.to_string();
    }
    let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
    // Longest names first, so `$uri` does not eat the start of a longer name.
    let variables = [("$request_uri", path_and_query), ("$scheme", scheme), ("$args", query), ("$host", host), ("$uri", path)];
    let mut out = String::with_capacity(url.len() + path_and_query.len());
    let mut rest = url;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        match variables.iter().find(|(name, _)| tail.starts_with(name) && !tail[name.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')) {
            Some((name, value)) => {
                out.push_str(value);
                rest = &tail[name.len()..];
            }
            None => {
                out.push('$');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> StringMap {
        crate::annotations::nginx_annotations(pairs)
    }

    #[test]
    fn sizes_as_nginx_reads_them() {
        let cases = [
            ("0", Some(0)),
            ("1000", Some(1000)),
            ("8k", Some(8 << 10)),
            ("8K", Some(8 << 10)),
            ("10m", Some(10 << 20)),
            ("1g", Some(1 << 30)),
            ("5b", Some(5)),
            (" 2m ", Some(2 << 20)),
            ("", None),
            ("m", None),
            ("1.5m", None),
            ("10mb", None),
            ("-1", None),
            ("10t", None),
            ("99999999999999999999g", None),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_size(text), expected, "{text:?}");
        }
    }

    #[test]
    fn redirects_follow_ingress_nginx_precedence_and_code_ranges() {
        // Annotations, the redirect's code and target, the problems logged.
        type Case = (&'static crate::annotations::Pairs, Option<(u16, &'static str)>, usize);
        let cases: &[Case] = &[
            (&[("permanent-redirect", "https://new.example.com")], Some((301, "https://new.example.com")), 0),
            (&[("permanent-redirect", "https://a.test"), ("permanent-redirect-code", "308")], Some((308, "https://a.test")), 0),
            (&[("permanent-redirect", "https://a.test"), ("permanent-redirect-code", "399")], Some((301, "https://a.test")), 1),
            (&[("permanent-redirect", "https://a.test"), ("permanent-redirect-code", "x")], Some((301, "https://a.test")), 1),
            (&[("temporal-redirect", "http://t.test/x")], Some((302, "http://t.test/x")), 0),
            (&[("temporal-redirect", "http://t.test"), ("temporal-redirect-code", "307")], Some((307, "http://t.test")), 0),
            (&[("temporal-redirect", "http://t.test"), ("temporal-redirect-code", "308")], Some((302, "http://t.test")), 1),
            (&[("temporal-redirect", "http://t.test"), ("permanent-redirect", "https://p.test")], Some((302, "http://t.test")), 0),
            (&[("permanent-redirect", "ftp://files.test")], None, 1),
            (&[("permanent-redirect", "/relative")], None, 1),
            (&[("permanent-redirect", "https://a.test/\r\nSet-Cookie: x")], None, 1),
            (&[("temporal-redirect", "javascript:alert(1)"), ("permanent-redirect", "https://p.test")], Some((301, "https://p.test")), 1),
            (&[("permanent-redirect", "")], None, 0),
        ];
        for (pairs, expected, problems) in cases {
            let (policy, found) = Policy::from_annotations(&map(pairs));
            let redirect = policy.and_then(|p| p.redirect).map(|r| (r.code, r.url));
            assert_eq!(redirect.as_ref().map(|(c, u)| (*c, u.as_str())), *expected, "{pairs:?}");
            assert_eq!(found.len(), *problems, "{pairs:?}: {found:?}");
        }
    }

    #[test]
    fn app_root_answers_only_the_root_and_comes_first() {
        let (policy, problems) = Policy::from_annotations(&map(&[("app-root", "/app1"), ("permanent-redirect", "https://new.test$request_uri")]));
        let policy = policy.expect("a policy");
        assert!(problems.is_empty());
        assert_eq!(policy.redirect_for("http", "shop.test", "/"), Some((302, "http://shop.test/app1".to_string())));
        assert_eq!(policy.redirect_for("http", "Shop.test:8080", "/"), Some((302, "http://Shop.test:8080/app1".to_string())), "$http_host keeps the port");
        assert_eq!(policy.redirect_for("https", "shop.test", "/?a=1"), Some((302, "https://shop.test/app1".to_string())));
        assert_eq!(policy.redirect_for("http", "shop.test", "/x?a=1"), Some((301, "https://new.test/x?a=1".to_string())));
        for bad in ["app1", "//evil.test", "/a b", "/a?b"] {
            let (policy, problems) = Policy::from_annotations(&map(&[("app-root", bad)]));
            assert_eq!((policy, problems.len()), (None, 1), "{bad:?}");
        }
    }

    #[test]
    fn www_redirects_keep_scheme_port_and_uri_without_trailing_slash() {
        let policy = Policy { www_redirect: Some("www.shop.test".into()), ..Policy::default() };
        let cases = [
            ("http", "shop.test", "/", "http://www.shop.test"),
            ("http", "shop.test", "/a/b?q=1", "http://www.shop.test/a/b?q=1"),
            ("https", "Shop.Test:8443", "/a/", "https://www.shop.test:8443/a"),
            ("http", "shop.test:", "/x", "http://www.shop.test/x"),
        ];
        for (scheme, http_host, uri, expected) in cases {
            assert_eq!(policy.redirect_for(scheme, http_host, uri), Some((308, expected.to_string())), "{scheme} {http_host} {uri}");
        }
    }

    #[test]
    fn host_drops_the_port_like_nginx() {
        for (http_host, host) in [("a.test", "a.test"), ("A.Test:8080", "a.test"), ("[::1]:443", "[::1]"), ("[::1]", "[::1]"), ("a.test:", "a.test:")] {
            assert_eq!(host_of(http_host), host, "{http_host}");
        }
    }

    #[test]
    fn redirect_urls_expand_nginx_variables_and_keep_the_rest() {
        let cases = [
            ("https://n.test$request_uri", "https://n.test/a/b?q=1"),
            ("https://n.test$uri?from=$host", "https://n.test/a/b?from=old.test"),
            ("$scheme://n.test/?$args", "http://n.test/?q=1"),
            ("https://n.test/$unknown/$", "https://n.test/$unknown/$"),
            ("https://n.test/$urix", "https://n.test/$urix"),
            ("https://n.test/plain", "https://n.test/plain"),
        ];
        for (url, expected) in cases {
            assert_eq!(expand(url, "http", "old.test", "/a/b?q=1"), expected, "{url}");
        }
    }

    #[test]
    fn upstream_vhost_and_forwarded_prefix_must_be_header_safe() {
        let cases: &[(&str, &str, bool)] = &[
            ("upstream-vhost", "internal.example.com", true),
            ("upstream-vhost", "10.0.0.1:8080", true),
            ("upstream-vhost", "a.test\r\nX-Evil: 1", false),
            ("upstream-vhost", "a b", false),
            ("upstream-vhost", "", false),
            ("x-forwarded-prefix", "/api", true),
            ("x-forwarded-prefix", "/a\nb", false),
        ];
        for (name, text, accepted) in cases {
            let (policy, problems) = Policy::from_annotations(&map(&[(name, text)]));
            let got = policy.map(|p| p.upstream_vhost.or(p.forwarded_prefix));
            assert_eq!(got, accepted.then(|| Some(text.to_string())), "{name} {text:?}");
            assert_eq!(problems.len(), usize::from(!accepted), "{name} {text:?}");
        }
    }

    #[test]
    fn timeouts_are_whole_seconds() {
        let (policy, problems) = Policy::from_annotations(&map(&[("proxy-connect-timeout", "5"), ("proxy-read-timeout", "120"), ("proxy-send-timeout", "30s")]));
        let timeouts = policy.and_then(|p| p.timeouts).expect("timeouts");
        assert_eq!(timeouts.connect, Some(Duration::from_secs(5)));
        assert_eq!(timeouts.read, Some(Duration::from_secs(120)));
        assert_eq!(timeouts.send, None, "ingress-nginx reads a number without unit");
        assert_eq!(problems.len(), 1);
        let (policy, problems) = Policy::from_annotations(&map(&[("proxy-read-timeout", "0")]));
        assert_eq!((policy, problems.len()), (None, 1));
    }

    #[test]
    fn nothing_asked_means_no_policy_and_bad_values_are_reported() {
        assert_eq!(Policy::from_annotations(&map(&[("proxy-buffering", "on")])), (None, vec![]));
        let (policy, problems) = Policy::from_annotations(&map(&[("proxy-body-size", "lots")]));
        assert_eq!(policy, None);
        assert_eq!(problems.len(), 1);
        let (policy, _) = Policy::from_annotations(&map(&[("proxy-body-size", "0")]));
        assert_eq!(policy.and_then(|p| p.max_body_size), Some(0), "0 means unlimited, and is asked for");
    }
}
