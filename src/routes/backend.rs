//! Resolving an Ingress backend to upstream addresses through Services and
//! EndpointSlices.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use crate::store::Snapshot;
use crate::kube::objects::{IngressBackend, ObjectKey, ServicePort, SmolStr};

use super::{Backend, PortRef, RouteError, Upstream, UpstreamMode};

/// A backend as a route carries it.
pub(crate) struct ResolvedBackend {
    pub(crate) service: SmolStr,
    pub(crate) service_port: SmolStr,
    pub(crate) port: Option<PortRef>,
    pub(crate) backend: Backend,
}

/// Resolves backends through the snapshot's maps and its slice index (no
/// per-compile index, so resolving one backend costs O(log n)), remembering
/// every resolution made so far: many routes share a backend, and a broken
/// backend is logged once per compile rather than once per route.
pub(crate) struct BackendResolver<'a> {
    snapshot: &'a Snapshot,
    mode: UpstreamMode,
    resolved: HashMap<ServicePortKey<'a>, Result<Arc<[Upstream]>, RouteError>>,
}

/// A Service port as one compile resolves it: namespace, name, port, mode.
type ServicePortKey<'a> = (&'a str, &'a str, PortRef, UpstreamMode);

impl<'a> BackendResolver<'a> {
    pub(crate) fn new(snapshot: &'a Snapshot, mode: UpstreamMode) -> BackendResolver<'a> {
        BackendResolver { snapshot, mode, resolved: HashMap::new() }
    }

    /// The snapshot backends resolve against, which also holds the Secrets
    /// that policies compile in.
    pub(crate) fn snapshot(&self) -> &'a Snapshot {
        self.snapshot
    }

    /// Resolves an Ingress backend in `namespace` (the Ingress's own);
    /// `mode` is the Ingress's own where it sets one.
    pub(crate) fn resolve(&mut self, namespace: &'a str, backend: &'a IngressBackend, ingress: &ObjectKey, mode: Option<UpstreamMode>) -> ResolvedBackend {
        let Some(service) = &backend.service else {
            let error = if backend.resource.is_some() { RouteError::ResourceBackend } else { RouteError::NoBackend };
            log::warn!("ingress {ingress}: backend unavailable: {error}");
            return ResolvedBackend { service: SmolStr::default(), service_port: SmolStr::default(), port: None, backend: Backend::Unavailable(error.to_string()) };
        };
        let port = match (service.port.number, &service.port.name) {
            (Some(number), _) => Some(PortRef::Number(number)),
            (None, Some(name)) if !name.is_empty() => Some(PortRef::Name(name.to_string())),
            _ => None,
        };
        let service_port = port.as_ref().map(|p| SmolStr::new(p.to_string())).unwrap_or_default();
        let backend = match port.clone() {
            Some(port) => self.resolve_service(namespace, &service.name, port, ingress, mode),
            None => {
                let error = RouteError::NoServicePort { service: ObjectKey::new(namespace, &service.name) };
                log::warn!("ingress {ingress}: backend unavailable: {error}");
                Backend::Unavailable(error.to_string())
            }
        };
        ResolvedBackend { service: service.name.clone(), service_port, port, backend }
    }

    /// Resolves a Service port directly, as `--default-backend-service` names one.
    pub(crate) fn resolve_service(&mut self, namespace: &'a str, name: &'a str, port: PortRef, ingress: &ObjectKey, mode: Option<UpstreamMode>) -> Backend {
        let key = (namespace, name, port, mode.unwrap_or(self.mode));
        if let Some(known) = self.resolved.get(&key) {
            return to_backend(known);
        }
        let result = self.upstreams(namespace, name, &key.2, key.3).map(Arc::from);
        if let Err(error) = &result {
            log::warn!("ingress {ingress}: backend unavailable: {error}");
        }
        let backend = to_backend(&result);
        self.resolved.insert(key, result);
        backend
    }

    fn upstreams(&self, namespace: &str, name: &str, port: &PortRef, mode: UpstreamMode) -> Result<Vec<Upstream>, RouteError> {
        let key = || ObjectKey::new(namespace, name);
        let service = self.snapshot.services.get(&key()).ok_or_else(|| RouteError::ServiceNotFound { service: key() })?;
        let service_port = service.spec.ports.iter().find(|p| match port {
            PortRef::Number(n) => p.port == *n,
            PortRef::Name(wanted) => p.name.as_deref() == Some(wanted.as_str()),
        });
        if service.spec.type_.as_deref() == Some("ExternalName") {
            let external = service.spec.external_name.as_deref().filter(|n| !n.is_empty());
            let external = external.ok_or_else(|| RouteError::NoExternalName { service: key() })?;
            // ExternalName Services often list no ports: a numbered port is then taken as is.
            let number = match (service_port, port) {
                (Some(p), _) => p.port,
                (None, PortRef::Number(n)) => *n,
                (None, PortRef::Name(_)) => return Err(RouteError::PortNotFound { service: key(), port: port.clone() }),
            };
            return Ok(vec![authority(external, number)]);
        }
        let service_port = service_port.ok_or_else(|| RouteError::PortNotFound { service: key(), port: port.clone() })?;
        if mode == UpstreamMode::ClusterIp {
            // A headless Service has no ClusterIP to send to; its endpoints are the next best thing.
            if let Some(ip) = service.spec.cluster_ip.as_deref().filter(|ip| !ip.is_empty() && *ip != "None") {
                return Ok(vec![authority(ip, service_port.port)]);
            }
        }
        Ok(self.ready_endpoints(&key(), service_port))
    }

    /// The ready endpoint addresses of a Service port, deduplicated and sorted
    /// so that an unchanged set compiles to the same round-robin order.
    fn ready_endpoints(&self, service: &ObjectKey, service_port: &ServicePort) -> Vec<Upstream> {
        let port_name = service_port.name.as_deref().unwrap_or("");
        let mut upstreams = Vec::new();
        for slice in self.snapshot.slices_of(service) {
            let Some(port) = slice.ports.iter().find(|p| p.name.as_deref().unwrap_or("") == port_name).and_then(|p| p.port)
            else {
                continue;
            };
            for endpoint in slice.endpoints.iter().filter(|e| e.conditions.ready != Some(false)) {
                upstreams.extend(endpoint.addresses.iter().map(|address| authority(address, port)));
            }
        }
        upstreams.sort_by(|a, b| a.authority.cmp(&b.authority));
        upstreams.dedup();
        upstreams
    }
}

fn to_backend(result: &Result<Arc<[Upstream]>, RouteError>) -> Backend {
    match result {
        Ok(upstreams) => Backend::Upstreams(Arc::clone(upstreams)),
        Err(error) => Backend::Unavailable(error.to_string()),
    }
}

/// `host:port`, with an IPv6 address in brackets.
fn authority(host: &str, port: i32) -> Upstream {
    let authority = match host.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => format!("[{v6}]:{port}"),
        _ => format!("{host}:{port}"),
    };
    Upstream::new(SmolStr::new(authority))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorities_bracket_ipv6() {
        assert_eq!(authority("10.0.0.1", 80).authority, "10.0.0.1:80");
        assert_eq!(authority("fd00::1", 8080).authority, "[fd00::1]:8080");
        assert_eq!(authority("db.example.com", 5432).authority, "db.example.com:5432");
    }
}
