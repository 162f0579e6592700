//! The first phase of a request: read what the client asked for, find its
//! route by Host and path, run the route's policy phase (`policy`), its
//! per-client limits (`limits`), its external auth (`external_auth`) and the
//! body-size check, and hand it to the forwarder or the upgrade tunnel.

use std::time::Instant;

use super::buffers::Buffers;
use super::headers::{self, ClientOrigin};
use super::request::{reply, ClientRequest, RoutedRequest};
use super::wire;
use super::external_auth::{AuthVerdict, Original};
use super::policy::{self, Asked, Decision};
use super::basic_auth::{self, Verdict};
use super::client_cert;
use super::{forward, tunnel, Outcome, Shared};
use crate::annotations::backend_tls::BackendProtocol;
use crate::annotations::external_auth::{ExternalAuth, Variables};
use crate::kube::objects::SmolStr;
use crate::routes::Backend;
use crate::tls::client_auth::ClientSession;

/// Requests under this prefix are answered over plain HTTP even when the
/// route redirects to HTTPS: ACME HTTP-01 challenges must reach the solver.
const ACME_CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

/// Client headers viewed on the stack up to this many; more are collected.
const HEADER_VIEWS: usize = 32;

/// Calls `f` with a view of the request's headers as `(name, value)` pairs,
/// kept on the stack for a usual request.
fn with_header_views<R>(request: &tiny_http::Request, f: impl FnOnce(&[(&str, &str)]) -> R) -> R {
    let headers = request.headers();
    fn view(h: tiny_http::RequestHeader<'_>) -> (&str, &str) {
        (h.field.as_str(), h.value.as_str())
    }
    if headers.len() > HEADER_VIEWS {
        return f(&headers.iter().map(view).collect::<Vec<_>>());
    }
    let mut views = [("", ""); HEADER_VIEWS];
    for (slot, header) in views.iter_mut().zip(headers) {
        *slot = view(header);
    }
    f(&views[..headers.len()])
}

/// Where a plain-HTTP request is redirected to reach the same resource over
/// HTTPS: the host as nginx's `$host` gives it, the HTTPS listener's port
/// unless it is the default, and the path and query unchanged.
fn https_location(https_port: u16, host: &str, path_and_query: &str) -> String {
    let host = crate::hostname::normalize_host(host);
    match https_port {
        443 => format!("https://{host}{path_and_query}"),
        port => format!("https://{host}:{port}{path_and_query}"),
    }
}

/// Handles one request and reports what happened. `outcome` holds what is
/// known before routing (client, method, target); `buffers` are lent for
/// this request.
pub(super) fn handle(shared: &Shared, request: tiny_http::Request, outcome: Outcome, started: Instant, buffers: &mut Buffers) -> Outcome {
    let version = request.http_version();
    let http10 = version.0 == 1 && version.1 == 0;
    let secure = request.secure();
    let peer = request.remote_addr().copied();
    let config = &shared.config;
    let origin = ClientOrigin {
        peer: peer.map(|addr| addr.ip()),
        secure,
        listener_port: if secure { config.https_port } else { config.http_port },
        trusted_proxies: &config.trusted_proxies,
    };
    // The header views borrow the request; everything kept past this block is owned.
    let (mut upstream_head, client, host_header) = with_header_views(&request, |header_refs| {
        let upstream_head = headers::upstream_request_headers(header_refs, &origin, headers::new_request_id);
        let chunked = header_refs.iter().any(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding"));
        let client = ClientRequest {
            address: upstream_head.client_address,
            http10,
            close: headers::client_wants_close(version.1, header_refs),
            head_request: request.method().as_str().eq_ignore_ascii_case("HEAD"),
            unread_body: request.body_length().map_or(chunked, |n| n > 0),
        };
        let mut hosts = header_refs.iter().filter(|(n, _)| n.eq_ignore_ascii_case("host")).map(|(_, v)| v.trim());
        let host_header = match (hosts.next(), hosts.next()) {
            (_, Some(_)) => Err("more than one Host header"),
            (host, None) => Ok(host.filter(|h| !h.is_empty()).map(SmolStr::new)),
        };
        (upstream_head, client, host_header)
    });
    let mut outcome = Outcome { request_id: upstream_head.request_id.clone(), ..outcome };

    let Some(mut target) = wire::parse_target(outcome.path.clone()) else {
        log::info!("{} {:?} from {peer:?}: request target not routable", outcome.method, outcome.path);
        return reply(request, &client, outcome, started, 400, "bad request target", &[]);
    };
    outcome.host = match (target.authority.as_deref(), host_header) {
        (_, Err(why)) => return reply(request, &client, outcome, started, 400, why, &[]),
        (Some(authority), Ok(_)) => SmolStr::new(authority),
        (None, Ok(Some(host))) => host,
        (None, Ok(None)) => return reply(request, &client, outcome, started, 400, "missing Host header", &[]),
    };
    let host = outcome.host.as_str();
    if target.authority.is_some() {
        // An absolute-form target's authority replaces Host (RFC 9112 3.2.2).
        upstream_head.headers.retain(|(name, _)| name != "host");
        upstream_head.headers.insert(0, ("host".into(), outcome.host.clone()));
    }

    let generation = shared.current.load();
    let Some(route) = generation.routes.lookup(host, target.path()) else {
        return reply(request, &client, outcome, started, 404, "no route for this host and path", &[]);
    };
    let route = route.for_request(|| request.headers().iter().map(|h| (h.field.as_str(), h.value.as_str())));
    outcome.ingress = Some(route.ingress.clone());
    outcome.service = Some(route.service.clone());

    let session = request.session().and_then(|session| session.downcast_ref::<ClientSession>());
    let required = generation.client_auth.for_route_host(&route.host);
    if session.is_some() || required.is_some() {
        match client_cert::decide(secure, session, host, required) {
            client_cert::Decision::Forward(set) => {
                upstream_head.headers.retain(|(name, _)| !client_cert::HEADERS.iter().any(|h| name == *h));
                upstream_head.headers.extend(set.into_iter().map(|(name, value)| (name.into(), value.into())));
            }
            client_cert::Decision::Misdirected => {
                return reply(request, &client, outcome, started, 421, "misdirected request: open a new connection for this host", &[]);
            }
            client_cert::Decision::RequireHttps => {
                let location = https_location(config.https_port, host, &target.path_and_query);
                return reply(request, &client, outcome, started, 308, "redirecting to https", &[("location", location.as_bytes())]);
            }
            client_cert::Decision::Reject(status, text) => return reply(request, &client, outcome, started, status, text, &[]),
            client_cert::Decision::ErrorPage(page) => {
                return reply(request, &client, outcome, started, 302, "client certificate error", &[("location", page.as_bytes())]);
            }
        }
    }

    let mut response_headers = Vec::new();
    if let Some(policy) = &route.policy {
        let asked = Asked {
            client: client.address,
            method: &outcome.method,
            origin: request.headers().iter().find(|h| h.field.equiv("origin")).map(|h| h.value.as_str()),
            secure,
            host,
            path_and_query: &target.path_and_query,
        };
        match policy::decide(policy, &asked, &mut upstream_head.headers) {
            Decision::Answer { status, text, headers } => {
                let headers: Vec<(&str, &[u8])> = headers.iter().map(|(name, value)| (*name, value.as_bytes())).collect();
                return reply(request, &client, outcome, started, status, text, &headers);
            }
            Decision::Forward { response_headers: set } => response_headers = set,
        }
    }
    if route.ssl_redirect && !secure && !target.path().starts_with(ACME_CHALLENGE_PREFIX) {
        let location = https_location(config.https_port, host, &target.path_and_query);
        return reply(request, &client, outcome, started, 308, "redirecting to https", &[("location", location.as_bytes())]);
    }

    // Held until the answer is sent: `limit-connections` counts requests in flight.
    let _in_flight = match (route.policy.as_ref().and_then(|p| p.limits.as_ref()), client.address) {
        (Some(limits), Some(address)) => match shared.limiter.check(&route.ingress, address, limits) {
            Ok(mark) => mark,
            Err(limit) => {
                log::debug!("{host}{}: {address} refused by its {limit:?} limit", target.path());
                return reply(request, &client, outcome, started, 503, "too many requests", &[]);
            }
        },
        _ => None,
    };
    if let Some(auth) = route.policy.as_deref().and_then(|policy| policy.basic_auth.as_ref()) {
        let authorization = request.headers().iter().filter(|h| h.field.equiv("authorization")).map(|h| h.value.as_str());
        match basic_auth::check(auth, authorization) {
            // Consumed here: the backend never sees the password.
            Verdict::Pass => upstream_head.headers.retain(|(name, _)| name != "authorization"),
            Verdict::Challenge => {
                let challenge = basic_auth::challenge(auth);
                return reply(request, &client, outcome, started, 401, "authorization required", &[("www-authenticate", challenge.as_bytes())]);
            }
            Verdict::Unavailable => {
                log::debug!("{host}{}: basic auth of ingress {} cannot be set up (see its warning)", target.path(), route.ingress);
                return reply(request, &client, outcome, started, 503, "authentication unavailable", &[]);
            }
        }
    }
    match route.policy.as_ref().and_then(|p| p.external_auth.as_ref()) {
        None => {}
        Some(ExternalAuth::Broken(why)) => {
            log::warn!("{host}{}: ingress {}: {why}; answering 503", target.path(), route.ingress);
            return reply(request, &client, outcome, started, 503, "authentication misconfigured", &[]);
        }
        Some(ExternalAuth::Check(check)) => {
            let header_refs: Vec<(&str, &str)> = request.headers().iter().map(|h| (h.field.as_str(), h.value.as_str())).collect();
            let remote_addr = client.address.map(|a| a.to_string()).unwrap_or_default();
            let original = Original {
                vars: Variables {
                    scheme: if secure { "https" } else { "http" },
                    http_host: host,
                    request_uri: &target.path_and_query,
                    remote_addr: &remote_addr,
                    headers: &header_refs,
                },
                method: &outcome.method,
                upstream_headers: &upstream_head.headers,
                ingress: &route.ingress,
            };
            match shared.auth.check(check, &original, &generation.snapshot) {
                AuthVerdict::Pass { copied, set_cookies } => {
                    for (name, value) in copied {
                        upstream_head.headers.retain(|(existing, _)| *existing != name);
                        if let Some(value) = value {
                            upstream_head.headers.push((name.into(), value.into()));
                        }
                    }
                    response_headers.extend(set_cookies.into_iter().map(|cookie| ("set-cookie", cookie)));
                }
                AuthVerdict::Answer { status, text, headers } => {
                    let headers: Vec<(&str, &[u8])> = headers.iter().map(|(name, value)| (*name, value.as_bytes())).collect();
                    return reply(request, &client, outcome, started, status, text, &headers);
                }
            }
        }
    }

    if let Some(rewrite) = &route.rewrite {
        // Redirects above saw the path as the client sent it, as nginx's
        // `return` runs before the location's `rewrite ... break`.
        if let Some(rewritten) = rewrite.apply(target.path(), target.query()) {
            target.set_path_and_query(rewritten);
        }
    }

    let upstreams = match &route.backend {
        Backend::Upstreams(upstreams) if !upstreams.is_empty() => upstreams,
        Backend::Upstreams(_) => {
            log::warn!("{host}{}: service {} has no ready endpoints", target.path(), route.service);
            return reply(request, &client, outcome, started, 503, "no ready endpoints", &[]);
        }
        Backend::Unavailable(reason) => {
            log::warn!("{host}{}: backend unavailable: {reason}", target.path());
            return reply(request, &client, outcome, started, 503, "backend unavailable", &[]);
        }
    };

    if let Some(BackendProtocol::Unsupported(why)) = route.policy.as_ref().and_then(|p| p.backend_protocol.as_deref()) {
        log::warn!("{host}{}: backend-protocol of ingress {} not served: {why}", target.path(), route.ingress);
        return reply(request, &client, outcome, started, 502, "backend protocol not supported", &[]);
    }
    if upstream_head.upgrade && route.upstream_tls.is_some() {
        log::warn!("{host}{}: protocol upgrades to HTTPS backends are not supported yet", target.path());
        return reply(request, &client, outcome, started, 502, "upgrade to an HTTPS backend not supported", &[]);
    }
    if upstream_head.upgrade {
        let routed = RoutedRequest { client, target, upstream_head, upstreams, route, outcome, started, response_headers: Vec::new() };
        return tunnel::relay(shared, request, routed);
    }

    let declared_length = request.body_length().map(|n| n as u64);
    let max_body_size = route.max_body_size(config.max_body_size);
    if max_body_size > 0 && declared_length.is_some_and(|n| n > max_body_size) {
        log::warn!("{host}{}: request body of {declared_length:?} bytes exceeds the limit of {max_body_size}", target.path());
        let client = ClientRequest { close: true, ..client };
        return reply(request, &client, outcome, started, 413, "request body too large", &[]);
    }
    let routed = RoutedRequest { client, target, upstream_head, upstreams, route, outcome, started, response_headers };
    forward::forward(shared, request, routed, buffers)
}

#[cfg(test)]
mod tests {
    use super::https_location;

    #[test]
    fn an_https_redirect_names_the_host_without_its_port_and_the_listener_s_port_unless_default() {
        for (port, host, path, location) in [
            (443, "a.example", "/p?q=1", "https://a.example/p?q=1"),
            (443, "A.Example.:80", "/", "https://a.example/"),
            (8443, "a.example:8080", "/x", "https://a.example:8443/x"),
            (8443, "[::1]:80", "/", "https://[::1]:8443/"),
        ] {
            assert_eq!(https_location(port, host, path), location, "{host}");
        }
    }
}
