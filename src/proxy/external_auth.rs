//! The external-auth phase (`auth-url`): before a request is forwarded, a
//! sub-request carrying its headers, without its body, asks the auth service;
//! as ingress-nginx's `auth_request` location sends it. A 2xx lets the
//! request through with the `auth-response-headers` copied onto it; 401 and
//! 403 go back to the client (a 401 becomes a redirect with `auth-signin`);
//! anything else, a timeout or an unreachable service answers 500.
//!
//! `NAME.NAMESPACE.svc[.cluster.local]` is resolved to the Service's
//! ClusterIP from the cache, so the edge node needs no cluster DNS; other
//! names go through the system resolver.

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use ureq::config::AutoHeaderValue;
use ureq::http;
use ureq::Agent;

use super::headers::HeaderName;
use crate::kube::objects::SmolStr;
use super::ProxyConfig;
use crate::annotations::external_auth::{authority, signin_location, url_for_log, AuthCheck, Variables};
use crate::bounded_lru::BoundedLru;
use crate::kube::objects::ObjectKey;
use crate::prometheus::{self, Type};
use crate::store::Snapshot;

/// Answers kept by `auth-cache-key`, across all Ingresses.
const CACHE_CAPACITY: usize = 16_384;

/// Longest expanded cache key kept; longer keys are not cached.
const MAX_CACHE_KEY: usize = 8 * 1024;

/// Most bytes of an auth answer's body read (and dropped) so its
/// connection can be reused; a longer body closes the connection.
const MAX_DRAINED_BODY: u64 = 64 * 1024;

/// What the auth service decided, as the proxy applies it.
pub(crate) enum AuthVerdict {
    /// Forward, with `copied` replacing those headers on the upstream
    /// request (`None`: the auth service did not send it, so the client's
    /// copy is removed too), and the auth service's Set-Cookie values added
    /// to the response (nginx's `add_header Set-Cookie $auth_cookie`).
    Pass { copied: Vec<(String, Option<String>)>, set_cookies: Vec<String> },
    /// Answer the client here.
    Answer { status: u16, text: &'static str, headers: Vec<(&'static str, String)> },
}

/// The auth client, with its cache of answers.
pub(crate) struct AuthClient {
    agent: Agent,
    cache: Mutex<BoundedLru<String, Cached>>,
}

#[derive(Clone)]
struct Cached {
    answer: Answer,
    until: Instant,
}

/// The part of an auth service's answer the verdict is made of.
#[derive(Clone)]
struct Answer {
    status: u16,
    /// The `auth-response-headers` it sent, in annotation order.
    copied: Vec<(String, Option<String>)>,
    www_authenticate: Option<String>,
    set_cookies: Vec<String>,
}

static ALLOWED: AtomicU64 = AtomicU64::new(0);
static DENIED: AtomicU64 = AtomicU64::new(0);
static FAILED: AtomicU64 = AtomicU64::new(0);
static CACHE_HITS: AtomicU64 = AtomicU64::new(0);

/// The request the sub-request is made from.
pub(crate) struct Original<'a> {
    pub vars: Variables<'a>,
    pub method: &'a str,
    /// The headers as they go upstream (hop-by-hop removed, X-Forwarded-* set).
    pub upstream_headers: &'a [(HeaderName, SmolStr)],
    pub ingress: &'a ObjectKey,
}

impl AuthClient {
    pub fn new(config: &ProxyConfig) -> AuthClient {
        let agent_config = Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(AutoHeaderValue::None)
            .accept(AutoHeaderValue::None)
            .proxy(None)
            .no_delay(true)
            .max_idle_connections(64)
            .max_idle_connections_per_host(32)
            .timeout_connect(Some(config.connect_timeout))
            .timeout_recv_response(Some(config.response_timeout))
            .timeout_per_read(Some(config.read_timeout))
            .timeout_per_write(Some(config.read_timeout))
            .build();
        AuthClient { agent: agent_config.into(), cache: Mutex::new(BoundedLru::new(CACHE_CAPACITY)) }
    }

    /// Asks the auth service about `original` (or its cached answer).
    pub fn check(&self, auth: &AuthCheck, original: &Original<'_>, snapshot: &Snapshot) -> AuthVerdict {
        let cache_key = auth.cache.as_ref().map(|cache| format!("{}|{}|{}", original.ingress, auth.url, original.vars.expand(&cache.key)));
        let cache_key = cache_key.filter(|key| key.len() <= MAX_CACHE_KEY);
        let cached = cache_key.as_ref().and_then(|key| {
            let mut table = self.cache.lock().ok()?;
            let entry = table.peek_mut(key)?.clone();
            if entry.until > Instant::now() {
                return Some(entry.answer);
            }
            table.remove(key);
            None
        });
        let answer = match cached {
            Some(answer) => {
                CACHE_HITS.fetch_add(1, Ordering::Relaxed);
                Ok(answer)
            }
            None => {
                let asked = self.ask(auth, original, snapshot);
                if let (Ok(answer), Some(key), Some(cache)) = (&asked, cache_key, &auth.cache) {
                    if let (Some(keep), Ok(mut table)) = (cache.keep_for(answer.status), self.cache.lock()) {
                        *table.get_or_insert_with(&key, || Cached { answer: answer.clone(), until: Instant::now() }) = Cached { answer: answer.clone(), until: Instant::now() + keep };
                    }
                }
                asked
            }
        };
        let answer = match answer {
            Ok(answer) => answer,
            Err(why) => {
                log::warn!("ingress {}: auth-url {}: {why}; answering 500", original.ingress, url_for_log(&auth.url));
                FAILED.fetch_add(1, Ordering::Relaxed);
                return AuthVerdict::Answer { status: 500, text: "authentication service unavailable", headers: Vec::new() };
            }
        };
        match answer.status {
            200..=299 => {
                ALLOWED.fetch_add(1, Ordering::Relaxed);
                AuthVerdict::Pass { copied: answer.copied, set_cookies: answer.set_cookies }
            }
            401 if auth.signin.is_some() => {
                DENIED.fetch_add(1, Ordering::Relaxed);
                let signin = auth.signin.as_deref().unwrap_or_default();
                let location = signin_location(signin, &auth.signin_redirect_param, &original.vars);
                AuthVerdict::Answer { status: 302, text: "sign in", headers: vec![("location", location)] }
            }
            status @ (401 | 403) => {
                DENIED.fetch_add(1, Ordering::Relaxed);
                let headers = answer.www_authenticate.filter(|_| status == 401).map(|v| vec![("www-authenticate", v)]).unwrap_or_default();
                AuthVerdict::Answer { status, text: if status == 401 { "unauthorized" } else { "forbidden" }, headers }
            }
            status => {
                log::warn!("ingress {}: auth-url {} answered {status}; answering 500", original.ingress, url_for_log(&auth.url));
                FAILED.fetch_add(1, Ordering::Relaxed);
                AuthVerdict::Answer { status: 500, text: "authentication failed", headers: Vec::new() }
            }
        }
    }

    /// The sub-request itself.
    fn ask(&self, auth: &AuthCheck, original: &Original<'_>, snapshot: &Snapshot) -> Result<Answer, String> {
        let url = original.vars.expand(&auth.url);
        let target = resolve(&url, snapshot)?;
        let method = auth.method.as_deref().unwrap_or("GET");
        let mut builder = http::Request::builder().method(method).uri(&target.uri);
        let vars = &original.vars;
        let set: Vec<(&str, String)> = [
            Some(("host", target.host_header.clone())),
            Some(("x-original-url", format!("{}://{}{}", vars.scheme, vars.http_host, vars.request_uri))),
            Some(("x-original-method", original.method.to_string())),
            Some(("x-sent-from", "nginx-ingress-controller".to_string())),
            Some(("x-auth-request-redirect", auth.request_redirect.as_deref().map_or_else(|| vars.request_uri.to_string(), |r| vars.expand(r)))),
            auth.method.as_ref().map(|_| ("x-original-uri", vars.request_uri.to_string())),
            auth.method.as_ref().map(|_| ("x-scheme", vars.scheme.to_string())),
        ]
        .into_iter()
        .flatten()
        .collect();
        for (name, value) in original.upstream_headers {
            // An upgrade is the forwarded request's business, not the auth service's.
            let hop = matches!(name.as_ref(), "connection" | "upgrade");
            if !hop && !set.iter().any(|(own, _)| *own == name.as_ref()) {
                builder = builder.header(name.as_ref(), value.as_str());
            }
        }
        for (name, value) in &set {
            builder = builder.header(*name, value.as_str());
        }
        if !matches!(method, "GET" | "HEAD") {
            // No body goes to the auth service; without a length ureq would announce a chunked one.
            builder = builder.header("content-length", "0");
        }
        let request = builder.body(()).map_err(|e| format!("cannot build the request: {e}"))?;
        let response = self.agent.run(request).map_err(|e| format!("unreachable: {}", loggable(&e)))?;
        let status = response.status().as_u16();
        let header = |name: &str| {
            let values: Vec<&str> = response.headers().get_all(name).iter().filter_map(|v| v.to_str().ok()).collect();
            (!values.is_empty()).then(|| values.join(", "))
        };
        let copied = auth.response_headers.iter().map(|name| (name.clone(), header(name))).collect();
        let www_authenticate = header("www-authenticate");
        let set_cookies = response.headers().get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).map(str::to_string).collect();
        let mut body = response.into_body().into_reader().take(MAX_DRAINED_BODY);
        let _ = std::io::copy(&mut body, &mut std::io::sink());
        Ok(Answer { status, copied, www_authenticate, set_cookies })
    }
}

/// A failed sub-request as it may be logged. The URL it was sent to holds
/// the request's own values once its variables are filled in (`$args`,
/// `$http_authorization`, cookies), so it is never part of the message, and
/// the errors that quote a URI give only their kind.
fn loggable(err: &ureq::Error) -> String {
    match err {
        ureq::Error::BadUri(_) | ureq::Error::RequireHttpsOnly(_) => "not a valid URL once its variables are filled in".to_string(),
        other => other.to_string(),
    }
}

/// Where a sub-request goes, and the Host it names.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    uri: String,
    host_header: String,
}

/// Resolves a cluster Service name in `url` to its ClusterIP from the
/// cache; any other host is left to the system resolver.
fn resolve(url: &str, snapshot: &Snapshot) -> Result<Target, String> {
    let rest = url.get(7..).filter(|_| url.get(..7).is_some_and(|s| s.eq_ignore_ascii_case("http://"))).ok_or("not an http URL")?;
    let authority = authority(rest);
    let path = &rest[authority.len()..];
    let path = path.split('#').next().unwrap_or("");
    let path = if path.is_empty() || path.starts_with('?') { format!("/{path}") } else { path.to_string() };
    if authority.is_empty() || authority.contains('@') {
        return Err("the URL, once its variables are filled in, has no host or has user information".to_string());
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, _)) if !host.ends_with(']') && host.contains(':') => (authority, None),
        Some((host, port)) => (host, Some(port.parse::<u16>().map_err(|_| "the URL, once its variables are filled in, has a bad port".to_string())?)),
        None => (authority, None),
    };
    let lower = host.to_ascii_lowercase();
    let service = lower.strip_suffix(".svc.cluster.local").or_else(|| lower.strip_suffix(".svc")).and_then(|s| s.split_once('.'));
    let Some((name, namespace)) = service.filter(|(name, namespace)| !name.is_empty() && !namespace.is_empty() && !namespace.contains('.')) else {
        return Ok(Target { uri: format!("http://{authority}{path}"), host_header: authority.to_string() });
    };
    let key = ObjectKey::new(namespace, name);
    let found = snapshot.services.get(&key).ok_or_else(|| format!("Service {key} not found"))?;
    let ip = found.spec.cluster_ip.as_deref().filter(|ip| !ip.is_empty() && *ip != "None").ok_or_else(|| format!("Service {key} has no ClusterIP"))?;
    let ip: std::net::IpAddr = ip.parse().map_err(|_| format!("Service {key} has an unparsable ClusterIP {ip:?}"))?;
    let address = std::net::SocketAddr::new(ip, port.unwrap_or(80));
    Ok(Target { uri: format!("http://{address}{path}"), host_header: authority.to_string() })
}

/// The external-auth phase's series on `/metrics`.
pub fn write_metrics(out: &mut String) {
    let name = "ingressd_external_auth_total";
    prometheus::header(out, name, Type::Counter, "auth-url checks by result: allowed (2xx), denied (401/403) or failed (anything else, answered 500).");
    for (result, counter) in [("allowed", &ALLOWED), ("denied", &DENIED), ("failed", &FAILED)] {
        prometheus::sample(out, name, &[("result", result)], counter.load(Ordering::Relaxed));
    }
    prometheus::single(out, "ingressd_external_auth_cache_hits_total", Type::Counter, "auth-url checks answered from the auth-cache-key cache.", CACHE_HITS.load(Ordering::Relaxed));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::objects::Service;

    fn snapshot() -> Snapshot {
        let mut snapshot = Snapshot::default();
        for (namespace, name, ip) in [("auth", "oauth2-proxy", "10.96.0.7"), ("auth", "headless", "None"), ("v6", "auth", "fd00::7")] {
            let service: Service = serde_json::from_value(serde_json::json!({"metadata": {"namespace": namespace, "name": name}, "spec": {"clusterIP": ip}})).expect("service");
            snapshot.insert(crate::kube::Object::Service(service));
        }
        snapshot
    }

    #[test]
    fn cluster_service_names_resolve_from_the_cache() {
        let snapshot = snapshot();
        let ok = |uri: &str, host: &str| Ok(Target { uri: uri.to_string(), host_header: host.to_string() });
        let cases: &[(&str, Result<Target, String>)] = &[
            ("http://oauth2-proxy.auth.svc.cluster.local/oauth2/auth", ok("http://10.96.0.7:80/oauth2/auth", "oauth2-proxy.auth.svc.cluster.local")),
            ("http://OAuth2-Proxy.auth.svc:4180/oauth2/auth?x=1", ok("http://10.96.0.7:4180/oauth2/auth?x=1", "OAuth2-Proxy.auth.svc:4180")),
            ("http://auth.v6.svc.cluster.local:8080", ok("http://[fd00::7]:8080/", "auth.v6.svc.cluster.local:8080")),
            ("http://auth.example.com:9000/check?q#frag", ok("http://auth.example.com:9000/check?q", "auth.example.com:9000")),
            ("http://127.0.0.1:9/", ok("http://127.0.0.1:9/", "127.0.0.1:9")),
            ("http://[::1]:9?a", ok("http://[::1]:9/?a", "[::1]:9")),
            ("http://a.b.c.svc.cluster.local/", ok("http://a.b.c.svc.cluster.local/", "a.b.c.svc.cluster.local")),
            ("http://missing.auth.svc/", Err("Service auth/missing not found".to_string())),
            ("http://headless.auth.svc/", Err("Service auth/headless has no ClusterIP".to_string())),
        ];
        for (url, expected) in cases {
            assert_eq!(resolve(url, &snapshot), *expected, "{url}");
        }
        for (url, secret) in [("http://user:hunter2@evil.test/", "hunter2"), ("http://a.test:99999/?token=hunter2", "hunter2")] {
            let why = resolve(url, &snapshot).expect_err(url);
            assert!(!why.contains(secret), "a refused URL's values stay out of the log: {why}");
        }
        let bad_uri = ureq::Error::BadUri("http://a.test/?token=hunter2 is missing host".to_string());
        assert!(!loggable(&bad_uri).contains("hunter2"));
    }
}
