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
    "affinity" => Support::Honoured,
    "affinity-canary-behavior" => NOT_YET,
    "affinity-mode" => Support::Ignored("the sticky cookie names its endpoint, so a session stays there while it is ready, as ingress-nginx's `persistent`; `balanced` re-spreading after a scale-up is not done"),
    "allowlist-source-range" => Support::Honoured,
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
    "auth-realm" => Support::Honoured,
    "auth-request-redirect" => Support::Honoured,
    "auth-response-headers" => Support::Honoured,
    "auth-secret" => Support::Honoured,
    "auth-secret-type" => Support::Honoured,
    "auth-signin" => Support::Honoured,
    "auth-signin-redirect-param" => Support::Honoured,
    "auth-snippet" => SNIPPET,
    "auth-tls-error-page" => Support::Honoured,
    "auth-tls-match-cn" => Support::Honoured,
    "auth-tls-pass-certificate-to-upstream" => Support::Honoured,
    "auth-tls-secret" => Support::Honoured,
    "auth-tls-verify-client" => Support::Honoured,
    "auth-tls-verify-depth" => Support::Honoured,
    "auth-type" => Support::Honoured,
    "auth-url" => Support::Honoured,
    "backend-protocol" => Support::Honoured,
    "canary" => Support::Honoured,
    "canary-by-cookie" => Support::Honoured,
    "canary-by-header" => Support::Honoured,
    "canary-by-header-pattern" => Support::Honoured,
    "canary-by-header-value" => Support::Honoured,
    "canary-weight" => Support::Honoured,
    "canary-weight-total" => Support::Honoured,
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
    "denylist-source-range" => Support::Honoured,
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
    "from-to-www-redirect" => Support::Honoured,
    "http2-push-preload" => Support::Ignored("HTTP/2 server push is obsolete: browsers removed it"),
    "limit-allowlist" => Support::Honoured,
    "limit-burst-multiplier" => Support::Honoured,
    "limit-connections" => Support::Honoured,
    "limit-rate" => NOT_YET,
    "limit-rate-after" => NOT_YET,
    "limit-rpm" => Support::Honoured,
    "limit-rps" => Support::Honoured,
    "limit-whitelist" => Support::Honoured,
    "load-balance" => Support::Honoured,
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
    "proxy-next-upstream-tries" => Support::Honoured,
    "proxy-read-timeout" => Support::Honoured,
    "proxy-redirect-from" => NOT_YET,
    "proxy-redirect-to" => NOT_YET,
    "proxy-request-buffering" => NO_BUFFERING,
    "proxy-send-timeout" => Support::Honoured,
    "proxy-ssl-ciphers" => TLS_SETTINGS,
    "proxy-ssl-name" => Support::Honoured,
    "proxy-ssl-protocols" => TLS_SETTINGS,
    "proxy-ssl-secret" => Support::Honoured,
    "proxy-ssl-server-name" => Support::Honoured,
    "proxy-ssl-verify" => Support::Honoured,
    "proxy-ssl-verify-depth" => Support::Ignored("rustls checks the whole chain up to the CA, however deep"),
    "relative-redirects" => NOT_YET,
    "rewrite-target" => Support::Honoured,
    "satisfy" => NOT_YET,
    "server-alias" => NOT_YET,
    "server-snippet" => SNIPPET,
    "service-upstream" => Support::Honoured,
    "session-cookie-change-on-failure" => Support::Honoured,
    "session-cookie-conditional-samesite-none" => Support::Ignored("`SameSite=None` is sent to every browser as set; user agents that mishandle it are not singled out"),
    "session-cookie-domain" => Support::Honoured,
    "session-cookie-expires" => Support::Honoured,
    "session-cookie-max-age" => Support::Honoured,
    "session-cookie-name" => Support::Honoured,
    "session-cookie-path" => Support::Honoured,
    "session-cookie-samesite" => Support::Honoured,
    "session-cookie-secure" => Support::Honoured,
    "ssl-ciphers" => TLS_SETTINGS,
    "ssl-passthrough" => Support::Ignored("TLS is always terminated by ingressd; passthrough needs a separate L4 listener"),
    "ssl-prefer-server-ciphers" => TLS_SETTINGS,
    "ssl-redirect" => Support::Honoured,
    "stream-snippet" => SNIPPET,
    "temporal-redirect" => Support::Honoured,
    "temporal-redirect-code" => Support::Honoured,
    "upstream-hash-by" => Support::Honoured,
    "upstream-hash-by-subset" => Support::Ignored("subsets are not implemented: the key is hashed over all ready endpoints"),
    "upstream-hash-by-subset-size" => Support::Ignored("subsets are not implemented: the key is hashed over all ready endpoints"),
    "upstream-vhost" => Support::Honoured,
    "use-port-in-redirects" => NOT_YET,
    "use-regex" => Support::Honoured,
    "whitelist-source-range" => Support::Honoured,
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
                "affinity",
                "allowlist-source-range",
                "app-root",
                "auth-cache-duration",
                "auth-cache-key",
                "auth-method",
                "auth-realm",
                "auth-request-redirect",
                "auth-response-headers",
                "auth-secret",
                "auth-secret-type",
                "auth-signin",
                "auth-signin-redirect-param",
                "auth-tls-error-page",
                "auth-tls-match-cn",
                "auth-tls-pass-certificate-to-upstream",
                "auth-tls-secret",
                "auth-tls-verify-client",
                "auth-tls-verify-depth",
                "auth-type",
                "auth-url",
                "backend-protocol",
                "canary",
                "canary-by-cookie",
                "canary-by-header",
                "canary-by-header-pattern",
                "canary-by-header-value",
                "canary-weight",
                "canary-weight-total",
                "cors-allow-credentials",
                "cors-allow-headers",
                "cors-allow-methods",
                "cors-allow-origin",
                "cors-expose-headers",
                "cors-max-age",
                "denylist-source-range",
                "enable-cors",
                "force-ssl-redirect",
                "from-to-www-redirect",
                "limit-allowlist",
                "limit-burst-multiplier",
                "limit-connections",
                "limit-rpm",
                "limit-rps",
                "limit-whitelist",
                "load-balance",
                "permanent-redirect",
                "permanent-redirect-code",
                "proxy-body-size",
                "proxy-connect-timeout",
                "proxy-next-upstream-tries",
                "proxy-read-timeout",
                "proxy-send-timeout",
                "proxy-ssl-name",
                "proxy-ssl-secret",
                "proxy-ssl-server-name",
                "proxy-ssl-verify",
                "rewrite-target",
                "service-upstream",
                "session-cookie-change-on-failure",
                "session-cookie-domain",
                "session-cookie-expires",
                "session-cookie-max-age",
                "session-cookie-name",
                "session-cookie-path",
                "session-cookie-samesite",
                "session-cookie-secure",
                "ssl-redirect",
                "temporal-redirect",
                "temporal-redirect-code",
                "upstream-hash-by",
                "upstream-vhost",
                "use-regex",
                "whitelist-source-range",
                "x-forwarded-prefix"
            ]
        );
    }
}
