//! Route compilation and lookup.
//!
//! `compile` turns a cache snapshot into an immutable [`RouteTable`];
//! `RouteTable::lookup` is the per-request hot path: pure, lock-free, and its
//! cost does not grow with the number of hosts.

use std::sync::atomic::AtomicUsize;

use crate::cache::Snapshot;
use crate::kube::objects::ObjectKey;

/// Where routed traffic goes: Service endpoints (the default) or the ClusterIP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UpstreamMode {
    #[default]
    Endpoints,
    ClusterIp,
}

/// A Service port as an Ingress backend names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortRef {
    Number(i32),
    Name(String),
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
    pub authority: String,
}

/// What a matched route forwards to.
#[derive(Debug)]
pub enum Backend {
    /// Ready upstreams; empty means "answer 503".
    Upstreams(Vec<Upstream>),
    /// The backend cannot be resolved (missing Service or port, resource
    /// backend); answer 503. The reason was logged when the table was compiled.
    Unavailable(String),
}

/// The result of a lookup.
#[derive(Debug)]
pub struct Route {
    /// The Ingress this route came from (for metrics, logs and the inspector).
    pub ingress: ObjectKey,
    pub service: String,
    /// The Service port as the Ingress named it, for display.
    pub service_port: String,
    pub backend: Backend,
    /// Plain-HTTP requests to this route answer 308 to https
    /// (`ingressd.io/ssl-redirect: "true"` on a TLS host).
    pub ssl_redirect: bool,
    /// Round-robin position, shared by every worker.
    pub next_upstream: AtomicUsize,
}

/// The compiled, immutable routing table.
#[derive(Debug, Default)]
pub struct RouteTable {}

impl RouteTable {
    /// `host` is the raw Host header value (any case, optional `:port` and
    /// trailing dot); `path` excludes the query string.
    pub fn lookup(&self, _host: &str, _path: &str) -> Option<&Route> {
        None
    }

    /// The number of routes (host, path) in the table, default backend included.
    pub fn len(&self) -> usize {
        0
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Ingresses this controller serves, by the class rules of the Ingress spec.
pub fn served_ingresses<'a>(
    snapshot: &'a Snapshot,
    _config: &RouteConfig,
) -> Vec<&'a crate::kube::objects::Ingress> {
    snapshot.ingresses.values().map(|i| i.as_ref()).collect()
}

/// Compiles a snapshot; problems are logged once per compile.
pub fn compile(_snapshot: &Snapshot, _config: &RouteConfig) -> RouteTable {
    RouteTable::default()
}
