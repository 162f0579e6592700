//! Route compilation and lookup.
//!
//! `compile` turns a cache snapshot into an immutable [`RouteTable`];
//! `RouteTable::lookup` is the per-request hot path: pure, lock-free, and its
//! cost does not grow with the number of hosts.
//!
//! - [`class`]: which Ingresses are ours.
//! - `host`, `path`: normalisation, validation and matching.
//! - `backend`: Service and EndpointSlice resolution.
//! - `age`: the order in which rival claims win.
//! - `compile`: merging served Ingresses into a table, one host at a time, oldest first.
//! - `incremental`: recompiling only the hosts a change touched.
//! - `table`: the lookup; `host_map`: the host → routes map it probes.
//!
//! # Choices the Ingress spec leaves open
//!
//! - A `?` in the path passed to `lookup` ends the path: the query never
//!   takes part in matching, even if a caller forgets to strip it.
//! - `ImplementationSpecific` matches as `Prefix`; a `Prefix` and an
//!   `ImplementationSpecific` path, or `Prefix` `/foo` and `/foo/`, match the
//!   same requests and are therefore one claim: the older Ingress wins.
//! - Ingresses without `creationTimestamp` count as oldest; ties go by
//!   namespace, then name.
//! - Only an IngressClass with our `spec.controller` can make classless
//!   Ingresses ours through `is-default-class`.
//! - An empty `ingressClassName` counts as none.
//! - `--upstream-mode cluster-ip` with a headless Service (ClusterIP `None`)
//!   falls back to the Service's ready endpoints.
//! - An ExternalName Service without a matching port uses the Ingress's port
//!   number as is (such Services often list no ports).
//! - `ingressd.io/ssl-redirect`: a TLS entry without hosts covers every rule
//!   of its Ingress, rules without a host included; the default backend never
//!   redirects.

pub mod class;

mod age;
mod backend;
mod compile;
mod host;
mod host_map;
mod incremental;
mod path;
mod table;
#[cfg(test)]
mod tests;

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use crate::annotations::canary::CanaryRule;
use crate::annotations::policy::Policy;
use crate::annotations::rewrite::RewriteTarget;
use crate::kube::objects::{ObjectKey, SmolStr};
use crate::store::Snapshot;

pub use compile::{compile, compile_served};
pub use crate::hostname::normalize_host;
pub use path::compile_path_regex;
pub use incremental::{Changes, RouteCompiler};
pub use table::RouteTable;

/// Where routed traffic goes: Service endpoints (the default) or the ClusterIP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum UpstreamMode {
    #[default]
    Endpoints,
    ClusterIp,
}

/// A Service port as an Ingress backend names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PortRef {
    Number(i32),
    Name(String),
}

impl std::fmt::Display for PortRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PortRef::Number(n) => write!(f, "{n}"),
            PortRef::Name(name) => f.write_str(name),
        }
    }
}

/// The flags that decide which Ingresses are ours and where they send traffic.
#[derive(Debug, Clone, Default)]
pub struct RouteConfig {
    pub ingress_class: String,
    pub controller_name: String,
    pub watch_ingress_without_class: bool,
    /// `--default-backend-service NAMESPACE/NAME:PORT`.
    pub default_backend_service: Option<(ObjectKey, PortRef)>,
    pub upstream_mode: UpstreamMode,
}

/// One `host:port` to connect to, already formatted for a URI authority
/// (`10.1.2.3:8080`, `[fd00::1]:8080`, `db.example.com:5432`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub authority: SmolStr,
    /// The authority parsed once, when the route table is compiled, not on
    /// every request's upstream URI; `None` if it is not a valid one (its
    /// requests are refused as not representable upstream).
    pub uri_authority: Option<ureq::http::uri::Authority>,
}

impl Upstream {
    pub fn new(authority: SmolStr) -> Upstream {
        let uri_authority = ureq::http::uri::Authority::try_from(authority.as_str()).ok();
        Upstream { authority, uri_authority }
    }
}

/// What a matched route forwards to.
#[derive(Debug, Clone)]
pub enum Backend {
    /// Ready upstreams; empty means "answer 503". Shared by every route to
    /// the same Service port that one compile resolved.
    Upstreams(Arc<[Upstream]>),
    /// The backend cannot be resolved (missing Service or port, resource
    /// backend); answer 503. The reason was logged when the table was compiled.
    Unavailable(String),
}

/// An Ingress path's `pathType`, kept as written for the inspector.
/// `ImplementationSpecific` matches as `Prefix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PathType {
    Exact,
    Prefix,
    ImplementationSpecific,
}

impl PathType {
    pub fn as_str(self) -> &'static str {
        match self {
            PathType::Exact => "Exact",
            PathType::Prefix => "Prefix",
            PathType::ImplementationSpecific => "ImplementationSpecific",
        }
    }
}

/// The upstream mode an Ingress's policy sets over `--upstream-mode`:
/// `service-upstream: "true"` sends its traffic to the ClusterIP.
pub(crate) fn mode_override(policy: Option<&Policy>) -> Option<UpstreamMode> {
    policy.filter(|p| p.service_upstream).map(|_| UpstreamMode::ClusterIp)
}

/// The result of a lookup.
#[derive(Debug, Clone)]
pub struct Route {
    /// The Ingress this route came from (for metrics, logs and the inspector);
    /// empty for the `--default-backend-service` route.
    pub ingress: ObjectKey,
    pub service: SmolStr,
    /// The Service port as the Ingress named it, for display.
    pub service_port: SmolStr,
    /// The same port as resolved, when the backend names a Service and a
    /// port: an endpoint change re-resolves it without compiling the route.
    pub(crate) port: Option<PortRef>,
    pub backend: Backend,
    /// Plain-HTTP requests to this route answer 308 to https
    /// (`ingressd.io/ssl-redirect: "true"` on a TLS host).
    pub ssl_redirect: bool,
    /// Redirects and limits the Ingress's annotations ask for; `None` (no
    /// cost on the request path) when it asks for none.
    pub policy: Option<Arc<Policy>>,
    /// TLS to the backends (`backend-protocol: HTTPS`); `None` for plain HTTP.
    pub upstream_tls: Option<Arc<crate::tls::upstream::BackendTls>>,
    /// Round-robin position, shared by every worker, and carried over to the
    /// next generation's route to the same backend.
    pub next_upstream: Arc<AtomicUsize>,
    /// The rule's host as matched: lower-case, `*.example.com` for a
    /// wildcard, "" for a rule without host and for the default backend.
    pub host: SmolStr,
    /// The path as the Ingress wrote it ("/" when an ImplementationSpecific
    /// path was left out); "" for the default backend.
    pub path: SmolStr,
    /// None for the default backend.
    pub path_type: Option<PathType>,
    /// `rewrite-target` on a host in regex mode: the path the backend receives.
    pub rewrite: Option<Arc<Rewrite>>,
    /// The canary Ingress shadowing this route, if one does.
    pub canary: Option<Arc<Canary>>,
}

/// `rewrite-target` for one regex path.
#[derive(Debug)]
pub struct Rewrite {
    /// The route's own path pattern, whose groups `$1`…`$9` refer to.
    pub(crate) regex: Arc<regex::Regex>,
    pub(crate) target: RewriteTarget,
}

impl Rewrite {
    /// The path and query sent upstream for a request to this route; `None`
    /// if `path` does not match the route's pattern (it always does for a
    /// request the route was looked up for). Only rewriting routes pay for
    /// the capture groups.
    pub fn apply(&self, path: &str, query: Option<&str>) -> Option<String> {
        let captures = self.regex.captures(path)?;
        Some(self.target.expand(&captures, query))
    }

    pub fn target(&self) -> &str {
        self.target.as_str()
    }
}

/// A canary Ingress on a route's host and path (`canary: "true"`): when its
/// rule says so, a request goes to its backend instead. Everything else
/// (policy, redirects, rewrite) is the main Ingress's, as in ingress-nginx.
#[derive(Debug)]
pub struct Canary {
    pub rule: Arc<CanaryRule>,
    /// The main route with the canary Ingress's backend.
    pub route: Route,
}

impl Route {
    /// Whether this is the default backend rather than a rule.
    pub fn is_default_backend(&self) -> bool {
        self.path_type.is_none()
    }

    /// The largest request body this route accepts (0: no limit):
    /// `proxy-body-size` when the Ingress sets it, else `default`.
    pub fn max_body_size(&self, default: u64) -> u64 {
        self.policy.as_ref().and_then(|p| p.max_body_size).unwrap_or(default)
    }

    /// This route, or its canary's when the canary rule takes the request;
    /// `headers` gives the request's headers. A route without canary pays
    /// one branch; the weighted draw neither allocates nor locks.
    pub fn for_request<'r, 'h, I>(&'r self, headers: impl Fn() -> I) -> &'r Route
    where
        I: Iterator<Item = (&'h str, &'h str)>,
    {
        match &self.canary {
            Some(canary) if canary.rule.wants_canary(headers, crate::annotations::canary::roll) => &canary.route,
            _ => self,
        }
    }

    /// The number of ready upstreams (0 for an unavailable backend).
    pub fn ready_upstreams(&self) -> usize {
        match &self.backend {
            Backend::Upstreams(upstreams) => upstreams.len(),
            Backend::Unavailable(_) => 0,
        }
    }
}

/// A claim that lost to an older Ingress; compile logs each once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// Host as in [`Route::host`]; "" for the default backend.
    pub host: String,
    /// The loser's path as written; "" for the default backend.
    pub path: String,
    /// None when the default backend was contested.
    pub path_type: Option<PathType>,
    /// The Ingress whose route is served.
    pub winner: ObjectKey,
    /// The Ingress whose claim is ignored.
    pub loser: ObjectKey,
}

/// Why part of an Ingress is not routed; each is logged once per compile with
/// the Ingress's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    /// A rule's host is not a DNS name or a leading-`*.` wildcard; the rule is skipped.
    InvalidHost { host: String, reason: &'static str },
    /// A path is not absolute or contains what the API server refuses; the path is skipped.
    InvalidPath { path: String, reason: &'static str },
    /// A path of a host in regex mode is not a regular expression ingressd
    /// can compile (or is too large); the path is skipped.
    InvalidRegex { path: String, error: String },
    /// networking.k8s.io/v1 requires `pathType`; the path is skipped.
    MissingPathType,
    /// A `pathType` other than Exact, Prefix or ImplementationSpecific; the path is skipped.
    UnknownPathType(String),
    /// The backend names a Service that does not exist in the Ingress's namespace.
    ServiceNotFound { service: ObjectKey },
    /// The Service exists but has no port with that number or name.
    PortNotFound { service: ObjectKey, port: PortRef },
    /// The backend names a Service without a port number or name.
    NoServicePort { service: ObjectKey },
    /// An ExternalName Service without `externalName`.
    NoExternalName { service: ObjectKey },
    /// `resource` backends (other API objects) are not supported.
    ResourceBackend,
    /// The backend names neither a Service nor a resource.
    NoBackend,
}

impl std::fmt::Display for RouteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RouteError::InvalidHost { host, reason } => write!(f, "invalid host {host:?}: {reason}"),
            RouteError::InvalidPath { path, reason } => write!(f, "invalid path {path:?}: {reason}"),
            RouteError::InvalidRegex { path, error } => write!(f, "invalid regex path {path:?} (use-regex or rewrite-target on this host): {error}"),
            RouteError::MissingPathType => f.write_str("pathType is missing"),
            RouteError::UnknownPathType(t) => write!(f, "unknown pathType {t:?}"),
            RouteError::ServiceNotFound { service } => write!(f, "service {service} not found"),
            RouteError::PortNotFound { service, port } => write!(f, "service {service} has no port {port}"),
            RouteError::NoServicePort { service } => write!(f, "backend service {service} names no port"),
            RouteError::NoExternalName { service } => write!(f, "ExternalName service {service} has no externalName"),
            RouteError::ResourceBackend => f.write_str("resource backends are not supported"),
            RouteError::NoBackend => f.write_str("the backend names no service"),
        }
    }
}

impl std::error::Error for RouteError {}

/// Ingresses this controller serves, by the class rules of the Ingress spec,
/// oldest first (the order in which their claims win).
pub fn served_ingresses<'a>(snapshot: &'a Snapshot, config: &RouteConfig) -> Vec<&'a crate::kube::objects::Ingress> {
    let selector = class::ClassSelector::new(snapshot, config);
    let mut served: Vec<_> = snapshot.ingresses.values().map(|i| i.as_ref()).filter(|i| selector.serves(i)).collect();
    served.sort_by(|a, b| {
        (&a.metadata.creation_timestamp, &a.metadata.namespace, &a.metadata.name).cmp(&(
            &b.metadata.creation_timestamp,
            &b.metadata.namespace,
            &b.metadata.name,
        ))
    });
    served
}
