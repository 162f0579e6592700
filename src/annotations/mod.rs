//! Ingress annotations: ingress-nginx's `nginx.ingress.kubernetes.io/*` names
//! and ingressd's own `ingressd.io/*` spelling of the same names.
//!
//! Ingresses written for ingress-nginx must keep working unchanged, so both
//! prefixes are read for every name; when an Ingress sets both, the
//! `ingressd.io/` value wins, which lets an operator override a migrated
//! Ingress without deleting what ingress-nginx read. [`catalogue`] says what
//! ingressd does with each name.

pub mod canary;
pub mod backend_tls;
pub mod balance;
pub mod basic_auth;
pub mod catalogue;
pub mod client_cert;
pub mod cors;
pub mod htpasswd;
pub mod external_auth;
pub mod limits;
pub mod policy;
pub mod rewrite;
pub mod source_range;
pub mod secrets;

use std::collections::BTreeMap;

use catalogue::{entry, Support, CATALOGUE};

use crate::kube::objects::StringMap;

pub const NGINX_PREFIX: &str = "nginx.ingress.kubernetes.io/";
pub const INGRESSD_PREFIX: &str = "ingressd.io/";

/// The most a regular expression from an Ingress (a regex path, a canary
/// header pattern, `auth-tls-match-cn`) may compile to: an Ingress must not
/// be able to make the cache thread build a huge automaton (the regex
/// crate's default is 10 MiB).
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// The value an Ingress gives `name` (without prefix), `ingressd.io/` first.
pub fn value<'a>(annotations: &'a StringMap, name: &str) -> Option<&'a str> {
    let under = |prefix: &str| annotations.get(&format!("{prefix}{name}"));
    under(INGRESSD_PREFIX).or_else(|| under(NGINX_PREFIX))
}

/// An annotation map as ingress-nginx Ingresses carry it: each name under
/// `nginx.ingress.kubernetes.io/`; what the parsers' table tests feed them.
/// Annotation names and values, as table tests write them.
#[cfg(test)]
pub(crate) type Pairs = [(&'static str, &'static str)];

#[cfg(test)]
pub(crate) fn nginx_annotations(pairs: &[(&str, &str)]) -> StringMap {
    pairs.iter().map(|(k, v)| (format!("{NGINX_PREFIX}{k}"), v.to_string())).collect()
}

const UNKNOWN: &str = "not an ingress-nginx annotation ingressd knows; check the spelling";

/// What ingressd does with an annotation key; `None` for keys under neither
/// prefix, which are not ingressd's to judge. A name ingress-nginx never had
/// is ignored (most likely a typo).
pub fn support(key: &str) -> Option<Support> {
    let name = key.strip_prefix(NGINX_PREFIX).or_else(|| key.strip_prefix(INGRESSD_PREFIX))?;
    Some(entry(name).map_or(Support::Ignored(UNKNOWN), |e| e.support))
}

/// Every annotation under either prefix that ingressd does not apply, in key order.
pub fn unapplied(annotations: &StringMap) -> Vec<(&str, Support)> {
    annotations
        .keys()
        .filter_map(|key| Some((key, support(key)?)))
        .filter(|(_, support)| *support != Support::Honoured)
        .collect()
}

/// The unapplied annotations an Ingress gained or changed between two
/// versions (`old` is `None` for a new Ingress): what deserves a warning.
/// Unchanged ones were warned about when they appeared.
pub fn newly_unapplied<'a>(old: Option<&StringMap>, new: &'a StringMap) -> Vec<(&'a str, Support)> {
    unapplied(new)
        .into_iter()
        .filter(|(key, _)| old.and_then(|old| old.get(key)) != new.get(key))
        .collect()
}

/// How many Ingresses carry each unapplied annotation: the start-up summary,
/// one line per annotation rather than one per Ingress.
pub fn summary<'a>(ingresses: impl Iterator<Item = &'a StringMap>) -> BTreeMap<&'a str, (usize, Support)> {
    let mut counts: BTreeMap<&str, (usize, Support)> = BTreeMap::new();
    for annotations in ingresses {
        for (key, support) in unapplied(annotations) {
            counts.entry(key).or_insert((0, support)).0 += 1;
        }
    }
    counts
}

/// The README's annotation table, rendered from the catalogue.
pub fn markdown_table() -> String {
    let mut out = String::from("| annotation | ingressd | notes |\n| --- | --- | --- |\n");
    for e in CATALOGUE {
        let note = match (e.name, e.support.reason()) {
            ("ssl-redirect", _) => {
                "redirects plain HTTP for the Ingress's TLS hosts with 308; unlike ingress-nginx, only when set to \"true\" (ingress-nginx redirects TLS hosts by default)"
            }
            ("force-ssl-redirect", _) => "redirects plain HTTP for every host of the Ingress with 308, TLS entry or not",
            ("app-root", _) => "a request for `/` answers 302 to `$scheme://$http_host` + the path",
            ("permanent-redirect" | "temporal-redirect", _) => {
                "every request answers with the URL (http or https only); `$request_uri`, `$uri`, `$args`, `$host` and `$scheme` are expanded as nginx's `return` does; temporal wins when both are set"
            }
            ("permanent-redirect-code", _) => "300 to 308; anything else gives 301",
            ("temporal-redirect-code", _) => "300 to 307; anything else gives 302",
            ("proxy-body-size", _) => "nginx size syntax (`8m`, `512k`, `1g`); `0` means no limit; a bad value keeps `--max-body-size`",
            ("upstream-vhost", _) => "the backend receives this Host header; X-Forwarded-Host keeps the client's",
            ("x-forwarded-prefix", _) => "sent to the backend as `X-Forwarded-Prefix`, replacing any the client sent",
            ("enable-cors", _) => {
                "an OPTIONS request from an allowed origin is answered 204 by ingressd; other responses get the CORS headers, replacing the backend's"
            }
            ("cors-allow-origin", _) => "`*` (default) or a comma-separated list; `https://*.example.com` matches one label; invalid entries are skipped",
            ("cors-allow-credentials" | "cors-allow-headers" | "cors-allow-methods" | "cors-expose-headers" | "cors-max-age", _) => {
                "ingress-nginx's defaults and validation; an invalid value falls back to the default"
            }
            ("proxy-connect-timeout" | "proxy-read-timeout" | "proxy-send-timeout", _) => {
                "whole seconds, as ingress-nginx reads them; read covers the response head and each body read; a bad value keeps the command line's timeout"
            }
            ("use-regex", _) => {
                "one Ingress with it makes every path of its host a regex (`rewrite-target` too): case-insensitive, anchored at the start only, longest path first; Rust regex syntax (no look-around or back-references); a path that does not compile is left out and counted in `ingressd_route_invalid_regex_paths`"
            }
            ("rewrite-target", _) => {
                "the backend receives the target with `$1`…`$9` from the path's groups; the query is kept (after the target's own); a URL target (nginx redirects) is refused"
            }
            ("from-to-www-redirect", _) => {
                "requests for the host with `www.` added or removed answer 308 to it (port kept, one trailing `/` dropped), unless an Ingress serves that host"
            }
            ("canary", _) => {
                "the Ingress shadows other Ingresses' paths with the same host, path and pathType (one canary each, the oldest) instead of claiming them; canary traffic keeps the main Ingress's other annotations"
            }
            ("canary-by-header" | "canary-by-header-value" | "canary-by-header-pattern" | "canary-by-cookie", _) => {
                "ingress-nginx's order: header (`always`/`never`, the value, or the pattern), then cookie (`always`/`never`), then weight"
            }
            ("canary-weight" | "canary-weight-total", _) => "weight out of the total (100 unless the total is above 100); a bad weight counts as 0, a bad total as 100",
            ("affinity", _) => {
                "`cookie`: the cookie names the endpoint by a fixed digest of its address, so every replica sends the session to it while it is ready; a request without a valid cookie is balanced and gets one"
            }
            ("session-cookie-name", _) => "default `INGRESSCOOKIE`",
            ("session-cookie-path", _) => "default: the Ingress path that matched",
            ("session-cookie-expires", _) => "seconds from the response, sent as an `Expires` date",
            ("session-cookie-max-age" | "session-cookie-domain" | "session-cookie-samesite", _) => "sent as the cookie attribute; `HttpOnly` is always set",
            ("session-cookie-secure", _) => "`Secure` on every response; without it, only on HTTPS requests",
            ("session-cookie-change-on-failure", _) => "`\"true\"`: a session whose endpoint refused the connection gets a cookie for the endpoint that answered",
            ("upstream-hash-by", _) => {
                "consistent (rendezvous) hashing, the same on every replica, over `$request_uri`, `$remote_addr`, `$host`, `$http_NAME`, `$cookie_NAME`, `$arg_NAME` and literal text; any other variable leaves round robin"
            }
            ("load-balance", _) => "`round_robin`; `ewma` is not implemented and balances round robin, with a warning",
            ("proxy-next-upstream-tries", _) => {
                "endpoints tried when connections are refused (default 3; `0` means up to 16); never once any of the request went out"
            }
            ("backend-protocol", _) => {
                "`HTTPS` through rustls; `HTTP` and `AUTO_HTTP` as plain HTTP; `GRPC`, `GRPCS` (HTTP/2 to backends is a later step), `AJP` and `FCGI` answer 502 with a warning; WebSocket to an HTTPS backend answers 502 for now"
            }
            ("proxy-ssl-verify", _) => {
                "`\"on\"`: the backend's certificate must chain to `proxy-ssl-secret`'s `ca.crt`; a missing Secret or CA answers 502, never unverified; an unreadable value keeps verification on"
            }
            ("proxy-ssl-secret", _) => {
                "`NAME` or `NAMESPACE/NAME` in the Ingress's own namespace (others refused); `ca.crt` for verification, `tls.crt`/`tls.key` (when present) as the client certificate"
            }
            ("proxy-ssl-name", _) => {
                "the name verified and sent as SNI; without it, `SERVICE.NAMESPACE.svc` (ingress-nginx verifies `upstream_balancer`, which no certificate carries)"
            }
            ("proxy-ssl-server-name", _) => "`\"on\"` sends SNI; off (the default) sends none",
            ("allowlist-source-range" | "whitelist-source-range", _) => {
                "403 for clients outside the comma-separated CIDRs or addresses (IPv4 and IPv6); `allowlist-` wins over `whitelist-`; a bad list makes every path of the Ingress answer 403 (fails closed)"
            }
            ("denylist-source-range", _) => {
                "403 for clients inside the list; checked before the allow list, and before redirects and CORS preflights; a bad list answers 403 to everyone"
            }
            ("auth-type", _) => "`basic`; `digest` (and any other value) answers 503, failing closed; without `auth-type` there is no authentication, as in ingress-nginx",
            ("auth-secret", _) => {
                "`name` or `namespace/name` of the Ingress's own namespace; another namespace, a missing Secret or one without a usable line answers 503"
            }
            ("auth-secret-type", _) => {
                "`auth-file` (key `auth`, htpasswd lines) or `auth-map` (one key per user); hashes: bcrypt (`$2y$`, `$2b$`, `$2a$`), `$apr1$`, `$1$`, `{SHA}`"
            }
            ("auth-tls-secret", _) => {
                "CA bundle (`ca.crt`) for the whole host, from the oldest Ingress on it that sets one; a certificate is asked for by SNI; a request whose Host is not the SNI name answers 421; a missing or unusable CA answers 403; plain HTTP gets 308 to https"
            }
            ("auth-tls-verify-client", _) => {
                "`on` (default: 400 without a valid certificate), `optional` (400 for an invalid one), `optional_no_ca`, `off`; upstreams get `ssl-client-verify`, `ssl-client-subject-dn`, `ssl-client-issuer-dn`"
            }
            ("auth-tls-verify-depth", _) => "certificates allowed between the client's and a CA of the bundle, plus one (default 1: signed directly by the CA)",
            ("auth-tls-pass-certificate-to-upstream", _) => "the client's certificate as URL-escaped PEM in `ssl-client-cert`",
            ("auth-tls-match-cn", _) => "a regular expression the subject DN (`CN=...,O=...`) must match, else 403; an invalid one answers 403 too",
            ("auth-tls-error-page", _) => "a failed verification answers 302 to this URL instead of 400",
            ("auth-realm", _) => "sent in `WWW-Authenticate: Basic realm=\"...\"` with the 401",
            ("service-upstream", _) => "`\"true\"` sends the Ingress's traffic to the Service's ClusterIP (a headless Service falls back to its endpoints)",
            ("auth-url", _) => {
                "http only for now (https answers 503); `NAME.NAMESPACE.svc[.cluster.local]` is the Service's ClusterIP from the cache, without DNS; a 2xx forwards, 401 and 403 reach the client, anything else or no answer in time gives 500; an unreadable value, or one holding `user:password@`, answers 503"
            }
            ("auth-method", _) => "GET by default; when set, X-Original-URI and X-Scheme are sent too, as ingress-nginx does",
            ("auth-response-headers", _) => {
                "copied from a 2xx answer onto the forwarded request; the client's own copy is removed even when the auth service sends none"
            }
            ("auth-request-redirect", _) => "sent as X-Auth-Request-Redirect (default: the request URI); nginx variables such as `$host` are expanded",
            ("auth-signin" | "auth-signin-redirect-param", _) => {
                "a 401 answers 302 to the sign-in URL with `rd=` (or the parameter set) the original URL, unless the URL already carries it; `$host`, `$escaped_request_uri` and similar are expanded"
            }
            ("auth-cache-key", _) => {
                "answers kept in memory (16384 at most, least recently used forgotten) by this key; `$http_*`, `$cookie_*`, `$remote_addr`, `$host`, `$request_uri`, `$uri`, `$args`, `$scheme` are expanded; an unknown variable disables the cache"
            }
            ("auth-cache-duration", _) => "`proxy_cache_valid` syntax (`200 202 401 5m`, the default; `any 1m`); a bad value keeps the default",
            ("limit-rps" | "limit-rpm", _) => {
                "per client address, nginx's `limit_req` with `burst` = limit × `limit-burst-multiplier` and `nodelay`; 503 beyond; a value that is not a whole number is ignored with a warning"
            }
            ("limit-connections", _) => "requests in flight per client address (idle keep-alive connections do not count); 503 beyond",
            ("limit-burst-multiplier", _) => "5 by default; a bad value keeps 5",
            ("limit-whitelist" | "limit-allowlist", _) => "IPv4 and IPv6 addresses and CIDRs exempt from the limits; an invalid entry is skipped with a warning",
            (_, Some(why)) => why,
            (_, None) => "",
        };
        out.push_str(&format!("| `{}` | {} | {} |\n", e.name, e.support.label(), note));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> StringMap {
        pairs.iter().copied().collect()
    }

    #[test]
    fn both_prefixes_are_read_and_ingressd_wins() {
        let cases: &[(&Pairs, Option<&str>)] = &[
            (&[], None),
            (&[("nginx.ingress.kubernetes.io/ssl-redirect", "true")], Some("true")),
            (&[("ingressd.io/ssl-redirect", "false")], Some("false")),
            (&[("nginx.ingress.kubernetes.io/ssl-redirect", "true"), ("ingressd.io/ssl-redirect", "false")], Some("false")),
            (&[("ssl-redirect", "true"), ("example.com/ssl-redirect", "true")], None),
        ];
        for (pairs, expected) in cases {
            assert_eq!(value(&map(pairs), "ssl-redirect"), *expected, "{pairs:?}");
        }
    }

    #[test]
    fn unapplied_lists_ignored_refused_and_unknown_names_under_either_prefix() {
        let annotations = map(&[
            ("nginx.ingress.kubernetes.io/ssl-redirect", "true"),
            ("nginx.ingress.kubernetes.io/configuration-snippet", "more_set_headers x;"),
            ("ingressd.io/proxy-buffering", "on"),
            ("nginx.ingress.kubernetes.io/rewrite-targt", "/"),
            ("kubernetes.io/ingress.class", "ingressd"),
        ]);
        let labels: Vec<(&str, &str)> = unapplied(&annotations).into_iter().map(|(key, support)| (key, support.label())).collect();
        assert_eq!(
            labels,
            [
                ("ingressd.io/proxy-buffering", "ignored"),
                ("nginx.ingress.kubernetes.io/configuration-snippet", "refused"),
                ("nginx.ingress.kubernetes.io/rewrite-targt", "ignored"),
            ]
        );
        assert_eq!(support("nginx.ingress.kubernetes.io/rewrite-targt"), Some(Support::Ignored(UNKNOWN)));
        assert_eq!(support("kubernetes.io/ingress.class"), None);
    }

    #[test]
    fn only_new_or_changed_unapplied_annotations_deserve_a_warning() {
        let before = map(&[("nginx.ingress.kubernetes.io/proxy-buffering", "on"), ("nginx.ingress.kubernetes.io/server-alias", "a")]);
        let after = map(&[
            ("nginx.ingress.kubernetes.io/proxy-buffering", "on"),
            ("nginx.ingress.kubernetes.io/server-alias", "b"),
            ("nginx.ingress.kubernetes.io/server-snippet", "x"),
            ("nginx.ingress.kubernetes.io/ssl-redirect", "true"),
        ]);
        let keys = |found: Vec<(&str, Support)>| found.into_iter().map(|(k, _)| k.to_string()).collect::<Vec<_>>();
        assert_eq!(keys(newly_unapplied(Some(&before), &after)), ["nginx.ingress.kubernetes.io/server-alias", "nginx.ingress.kubernetes.io/server-snippet"]);
        assert_eq!(keys(newly_unapplied(None, &before)).len(), 2, "a new Ingress warns for all it carries");
        assert!(newly_unapplied(Some(&after), &after).is_empty());

        let counted = summary([&before, &after].into_iter());
        assert_eq!(counted.get("nginx.ingress.kubernetes.io/proxy-buffering").map(|c| c.0), Some(2));
        assert_eq!(counted.get("nginx.ingress.kubernetes.io/server-snippet").map(|c| c.0), Some(1));
        assert!(!counted.contains_key("nginx.ingress.kubernetes.io/ssl-redirect"));
    }

    #[test]
    fn the_readme_table_is_the_catalogue() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README.md");
        let begin = "<!-- annotations:begin -->\n";
        let end = "<!-- annotations:end -->";
        let start = readme.find(begin).expect("README has the annotations:begin marker") + begin.len();
        let stop = readme[start..].find(end).expect("README has the annotations:end marker") + start;
        let expected = markdown_table();
        assert!(readme[start..stop] == expected, "README's annotation table is stale; it must read:\n{expected}");
    }
}
