//! Ingress annotations: ingress-nginx's `nginx.ingress.kubernetes.io/*` names
//! and ingressd's own `ingressd.io/*` spelling of the same names.
//!
//! Ingresses written for ingress-nginx must keep working unchanged, so both
//! prefixes are read for every name; when an Ingress sets both, the
//! `ingressd.io/` value wins, which lets an operator override a migrated
//! Ingress without deleting what ingress-nginx read. [`catalogue`] says what
//! ingressd does with each name.

pub mod catalogue;
pub mod cors;
pub mod external_auth;
pub mod limits;
pub mod policy;
pub mod secrets;

use std::collections::BTreeMap;

use catalogue::{entry, Support, CATALOGUE};

use crate::kube::objects::StringMap;

pub const NGINX_PREFIX: &str = "nginx.ingress.kubernetes.io/";
pub const INGRESSD_PREFIX: &str = "ingressd.io/";

/// The value an Ingress gives `name` (without prefix), `ingressd.io/` first.
pub fn value<'a>(annotations: &'a StringMap, name: &str) -> Option<&'a str> {
    let under = |prefix: &str| annotations.get(&format!("{prefix}{name}"));
    under(INGRESSD_PREFIX).or_else(|| under(NGINX_PREFIX))
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
            ("service-upstream", _) => "`\"true\"` sends the Ingress's traffic to the Service's ClusterIP (a headless Service falls back to its endpoints)",
            ("auth-url", _) => {
                "http only for now (https answers 503); `NAME.NAMESPACE.svc[.cluster.local]` is the Service's ClusterIP from the cache, without DNS; a 2xx forwards, 401 and 403 reach the client, anything else or no answer in time gives 500; an unreadable value answers 503"
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
        let cases: &[(&[(&str, &str)], Option<&str>)] = &[
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
