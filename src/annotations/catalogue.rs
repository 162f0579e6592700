//! Every annotation of ingress-nginx's final release (controller v1.15.1), and
//! what ingressd does with it. This table is the one source for the README's
//! annotation table, the warnings about ignored annotations, the route
//! inspector and the migration check: a row changes here when behaviour
//! changes, and everything that reports on annotations follows.

/// What ingressd does with one annotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// Applied with the semantics ingress-nginx documents.
    Honoured,
    /// Accepted and without effect; the text says why, and what happens instead.
    Ignored(&'static str),
    /// Never applied, whatever its value; the text says why.
    Refused(&'static str),
}

impl Support {
    pub fn label(&self) -> &'static str {
        match self {
            Support::Honoured => "honoured",
            Support::Ignored(_) => "ignored",
            Support::Refused(_) => "refused",
        }
    }

    pub fn reason(&self) -> Option<&'static str> {
        match self {
            Support::Honoured => None,
            Support::Ignored(why) | Support::Refused(why) => Some(why),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// The name after the prefix, e.g. `rewrite-target`.
    pub name: &'static str,
    pub support: Support,
}

const SNIPPET: Support = Support::Refused(
    "raw nginx configuration is never applied: snippets were ingress-nginx's most exploited surface (CVE-2025-1974 and others)",
);
const NOT_YET: Support = Support::Ignored("not implemented yet; ingressd behaves as if it were absent");
const NO_BUFFERING: Support =
    Support::Ignored("ingressd streams bodies both ways in bounded memory and has no nginx buffers to size");
const NGINX_MODULE: Support = Support::Ignored("needs an nginx module ingressd does not have");
const TLS_SETTINGS: Support =
    Support::Ignored("ingressd's TLS versions and cipher suites are rustls's safe defaults, the same for every host");

macro_rules! catalogue {
    ($($name:literal => $support:expr,)*) => {
        /// Sorted by name, so lookups can search it and the README lists it in order.
        pub const CATALOGUE: &[Entry] = &[$(Entry { name: $name, support: $support },)*];
    };
}

catalogue! {
    "affinity" => NOT_YET,
    "affinity-canary-behavior" => NOT_YET,
    "affinity-mode" => NOT_YET,
    "allowlist-source-range" => NOT_YET,
    "app-root" => Support::Honoured,
    "auth-always-set-cookie" => Support::Ignored("the Set-Cookie of an auth-url 2xx answer is always added to the response, whatever its status, as this annotation set to \"true\" does"),
    "auth-cache-duration" => Support::Honoured,
    "auth-cache-key" => Support::Honoured,
    "auth-keepalive" => Support::Ignored("auth sub-requests use ingressd's own pooled client"),
    "auth-keepalive-requests" => Support::Ignored("auth sub-requests use ingressd's own pooled client"),
    "auth-keepalive-share-vars" => Support::Ignored("auth sub-requests use ingressd's own pooled client"),
    "auth-keepalive-timeout" => Support::Ignored("auth sub-requests use ingressd's own pooled client"),
    "auth-method" => Support::Honoured,
    "auth-proxy-set-headers" => NOT_YET,
    "auth-realm" => NOT_YET,
    "auth-request-redirect" => Support::Honoured,
    "auth-response-headers" => Support::Honoured,
    "auth-secret" => NOT_YET,
    "auth-secret-type" => NOT_YET,
    "auth-signin" => Support::Honoured,
    "auth-signin-redirect-param" => Support::Honoured,
    "auth-snippet" => SNIPPET,
    "auth-tls-error-page" => NOT_YET,
    "auth-tls-match-cn" => NOT_YET,
    "auth-tls-pass-certificate-to-upstream" => NOT_YET,
    "auth-tls-secret" => NOT_YET,
    "auth-tls-verify-client" => NOT_YET,
    "auth-tls-verify-depth" => NOT_YET,
    "auth-type" => NOT_YET,
    "auth-url" => Support::Honoured,
    "backend-protocol" => NOT_YET,
    "canary" => NOT_YET,
    "canary-by-cookie" => NOT_YET,
    "canary-by-header" => NOT_YET,
    "canary-by-header-pattern" => NOT_YET,
    "canary-by-header-value" => NOT_YET,
    "canary-weight" => NOT_YET,
    "canary-weight-total" => NOT_YET,
    "client-body-buffer-size" => NO_BUFFERING,
    "configuration-snippet" => SNIPPET,
    "connection-proxy-header" => Support::Ignored("ingressd manages upstream keep-alive itself and never forwards Connection"),
    "cors-allow-credentials" => Support::Honoured,
    "cors-allow-headers" => Support::Honoured,
    "cors-allow-methods" => Support::Honoured,
    "cors-allow-origin" => Support::Honoured,
    "cors-expose-headers" => Support::Honoured,
    "cors-max-age" => Support::Honoured,
    "custom-headers" => NOT_YET,
    "custom-http-errors" => NOT_YET,
    "default-backend" => NOT_YET,
    "denylist-source-range" => NOT_YET,
    "disable-proxy-intercept-errors" => NOT_YET,
    "enable-access-log" => Support::Ignored("access logging is set for the whole node with --access-log"),
    "enable-cors" => Support::Honoured,
    "enable-global-auth" => Support::Ignored("ingressd has no global external auth to opt out of"),
    "enable-modsecurity" => NGINX_MODULE,
    "enable-opentelemetry" => NGINX_MODULE,
    "enable-owasp-core-rules" => NGINX_MODULE,
    "enable-rewrite-log" => Support::Ignored("nginx's rewrite log has no counterpart; the access log shows the forwarded path"),
    "fastcgi-index" => Support::Ignored("FastCGI backends are out of scope"),
    "fastcgi-params-configmap" => Support::Ignored("FastCGI backends are out of scope"),
    "force-ssl-redirect" => Support::Honoured,
    "from-to-www-redirect" => NOT_YET,
    "http2-push-preload" => Support::Ignored("HTTP/2 server push is obsolete: browsers removed it"),
    "limit-allowlist" => Support::Honoured,
    "limit-burst-multiplier" => Support::Honoured,
    "limit-connections" => Support::Honoured,
    "limit-rate" => NOT_YET,
    "limit-rate-after" => NOT_YET,
    "limit-rpm" => Support::Honoured,
    "limit-rps" => Support::Honoured,
    "limit-whitelist" => Support::Honoured,
    "load-balance" => NOT_YET,
    "mirror-host" => NOT_YET,
    "mirror-request-body" => NOT_YET,
    "mirror-target" => NOT_YET,
    "modsecurity-snippet" => SNIPPET,
    "modsecurity-transaction-id" => NGINX_MODULE,
    "opentelemetry-operation-name" => NGINX_MODULE,
    "opentelemetry-trust-incoming-span" => NGINX_MODULE,
    "permanent-redirect" => Support::Honoured,
    "permanent-redirect-code" => Support::Honoured,
    "preserve-trailing-slash" => NOT_YET,
    "proxy-body-size" => Support::Honoured,
    "proxy-buffer-size" => NO_BUFFERING,
    "proxy-buffering" => NO_BUFFERING,
    "proxy-buffers-number" => NO_BUFFERING,
    "proxy-busy-buffers-size" => NO_BUFFERING,
    "proxy-connect-timeout" => Support::Honoured,
    "proxy-cookie-domain" => NOT_YET,
    "proxy-cookie-path" => NOT_YET,
    "proxy-http-version" => Support::Ignored("ingressd always speaks HTTP/1.1 to backends"),
    "proxy-max-temp-file-size" => NO_BUFFERING,
    "proxy-next-upstream" => NOT_YET,
    "proxy-next-upstream-timeout" => NOT_YET,
    "proxy-next-upstream-tries" => NOT_YET,
    "proxy-read-timeout" => Support::Honoured,
    "proxy-redirect-from" => NOT_YET,
    "proxy-redirect-to" => NOT_YET,
    "proxy-request-buffering" => NO_BUFFERING,
    "proxy-send-timeout" => Support::Honoured,
    "proxy-ssl-ciphers" => TLS_SETTINGS,
    "proxy-ssl-name" => NOT_YET,
    "proxy-ssl-protocols" => TLS_SETTINGS,
    "proxy-ssl-secret" => NOT_YET,
    "proxy-ssl-server-name" => NOT_YET,
    "proxy-ssl-verify" => NOT_YET,
    "proxy-ssl-verify-depth" => NOT_YET,
    "relative-redirects" => NOT_YET,
    "rewrite-target" => NOT_YET,
    "satisfy" => NOT_YET,
    "server-alias" => NOT_YET,
    "server-snippet" => SNIPPET,
    "service-upstream" => Support::Honoured,
    "session-cookie-change-on-failure" => NOT_YET,
    "session-cookie-conditional-samesite-none" => NOT_YET,
    "session-cookie-domain" => NOT_YET,
    "session-cookie-expires" => NOT_YET,
    "session-cookie-max-age" => NOT_YET,
    "session-cookie-name" => NOT_YET,
    "session-cookie-path" => NOT_YET,
    "session-cookie-samesite" => NOT_YET,
    "session-cookie-secure" => NOT_YET,
    "ssl-ciphers" => TLS_SETTINGS,
    "ssl-passthrough" => Support::Ignored("TLS is always terminated by ingressd; passthrough needs a separate L4 listener"),
    "ssl-prefer-server-ciphers" => TLS_SETTINGS,
    "ssl-redirect" => Support::Honoured,
    "stream-snippet" => SNIPPET,
    "temporal-redirect" => Support::Honoured,
    "temporal-redirect-code" => Support::Honoured,
    "upstream-hash-by" => NOT_YET,
    "upstream-hash-by-subset" => NOT_YET,
    "upstream-hash-by-subset-size" => NOT_YET,
    "upstream-vhost" => Support::Honoured,
    "use-port-in-redirects" => NOT_YET,
    "use-regex" => NOT_YET,
    "whitelist-source-range" => NOT_YET,
    "x-forwarded-prefix" => Support::Honoured,
}

/// The row for a name (without prefix); `None` for a name ingress-nginx never had.
pub fn entry(name: &str) -> Option<&'static Entry> {
    CATALOGUE.binary_search_by(|e| e.name.cmp(name)).ok().map(|i| &CATALOGUE[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_and_unique_so_lookups_find_every_row() {
        assert!(CATALOGUE.windows(2).all(|w| w[0].name < w[1].name), "the catalogue must stay sorted by name");
        for e in CATALOGUE {
            assert_eq!(entry(e.name), Some(e));
        }
        assert_eq!(entry("no-such-annotation"), None);
    }

    #[test]
    fn every_snippet_is_refused() {
        let snippets: Vec<&str> = CATALOGUE.iter().filter(|e| e.name.ends_with("-snippet")).map(|e| e.name).collect();
        assert_eq!(snippets.len(), 5, "{snippets:?}");
        for name in snippets {
            assert!(matches!(entry(name).map(|e| e.support), Some(Support::Refused(_))), "{name}");
        }
    }

    #[test]
    fn only_what_ingressd_applies_is_honoured() {
        let honoured: Vec<&str> = CATALOGUE.iter().filter(|e| e.support == Support::Honoured).map(|e| e.name).collect();
        assert_eq!(
            honoured,
            [
                "app-root",
                "auth-cache-duration",
                "auth-cache-key",
                "auth-method",
                "auth-request-redirect",
                "auth-response-headers",
                "auth-signin",
                "auth-signin-redirect-param",
                "auth-url",
                "cors-allow-credentials",
                "cors-allow-headers",
                "cors-allow-methods",
                "cors-allow-origin",
                "cors-expose-headers",
                "cors-max-age",
                "enable-cors",
                "force-ssl-redirect",
                "limit-allowlist",
                "limit-burst-multiplier",
                "limit-connections",
                "limit-rpm",
                "limit-rps",
                "limit-whitelist",
                "permanent-redirect",
                "permanent-redirect-code",
                "proxy-body-size",
                "proxy-connect-timeout",
                "proxy-read-timeout",
                "proxy-send-timeout",
                "service-upstream",
                "ssl-redirect",
                "temporal-redirect",
                "temporal-redirect-code",
                "upstream-vhost",
                "x-forwarded-prefix"
            ]
        );
    }
}
