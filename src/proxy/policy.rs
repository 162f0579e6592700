//! The policy phase, between route and forward: what the route's Ingress
//! annotations decide about one request. Either ingressd answers it itself
//! (a CORS preflight, a redirect) or it goes upstream with its headers
//! rewritten and with headers to set on the response. Routes of Ingresses
//! without such annotations carry no policy and skip this phase.

use std::net::IpAddr;

use super::headers::HeaderName;
use crate::annotations::policy::Policy;
use crate::kube::objects::SmolStr;

/// What the policy phase decided.
pub(super) enum Decision {
    /// Answer here with this status, reason text and headers.
    Answer { status: u16, text: &'static str, headers: Vec<(&'static str, String)> },
    /// Send upstream; set these headers on the response (replacing the backend's).
    Forward { response_headers: Vec<(&'static str, String)> },
}

/// The request as the policy sees it.
pub(super) struct Asked<'a> {
    /// The request context's client address (`ClientRequest::address`).
    pub client: Option<IpAddr>,
    pub method: &'a str,
    pub origin: Option<&'a str>,
    pub secure: bool,
    /// The Host as the client sent it, port included.
    pub host: &'a str,
    pub path_and_query: &'a str,
}

/// Applies `policy`. The address lists come first: a refused client gets
/// 403 and nothing else, stricter than ingress-nginx, whose redirects and
/// CORS preflight answers (`return` in nginx's rewrite phase) run before its
/// access phase. Then in ingress-nginx's order: a CORS preflight is answered
/// before any redirect (its location block returns first), then `app-root`
/// and the Ingress-wide redirect; otherwise the upstream headers are
/// rewritten (`upstream-vhost`, `x-forwarded-prefix`).
pub(super) fn decide(policy: &Policy, asked: &Asked<'_>, upstream_headers: &mut Vec<(HeaderName, SmolStr)>) -> Decision {
    if policy.source_ranges.as_ref().is_some_and(|ranges| !ranges.admits(asked.client)) {
        return Decision::Answer { status: 403, text: "forbidden", headers: Vec::new() };
    }
    let cors_headers = policy.cors.as_ref().and_then(|cors| cors.response_headers(asked.origin)).unwrap_or_default();
    if !cors_headers.is_empty() && asked.method == "OPTIONS" {
        return Decision::Answer { status: 204, text: "", headers: cors_headers };
    }
    let scheme = if asked.secure { "https" } else { "http" };
    if let Some((status, location)) = policy.redirect_for(scheme, asked.host, asked.path_and_query) {
        return Decision::Answer { status, text: "redirecting", headers: vec![("location", location)] };
    }
    for (name, value) in [("host", &policy.upstream_vhost), ("x-forwarded-prefix", &policy.forwarded_prefix)] {
        if let Some(value) = value {
            upstream_headers.retain(|(existing, _)| existing != name);
            upstream_headers.push((name.into(), SmolStr::new(value)));
        }
    }
    Decision::Forward { response_headers: cors_headers }
}
