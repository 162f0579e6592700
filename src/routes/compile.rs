//! Merging every served Ingress into one [`RouteTable`].
//!
//! Cost is linear in the number of objects: Services and EndpointSlices are
//! indexed once, each path is one hash probe for its claim, and each host's
//! routes are sorted once.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;

use crate::cache::Snapshot;
use crate::kube::objects::{Ingress, ObjectKey};

use super::backend::{BackendResolver, ResolvedBackend};
use super::host::{compile_host, tls_host_covers, HostPattern};
use super::path::{compile_path, parse_path_type, MatchKind};
use super::table::{PathRoute, RouteTable};
use super::{served_ingresses, Conflict, PathType, Route, RouteConfig};

/// Opts an Ingress's TLS hosts into redirecting plain HTTP to HTTPS.
pub const SSL_REDIRECT_ANNOTATION: &str = "ingressd.io/ssl-redirect";

/// What two Ingresses must both name to conflict. `Prefix` `/foo` and `/foo/`
/// are one claim, as are `Prefix` and `ImplementationSpecific` on one path:
/// they match the same requests.
type ClaimKey = (HostPattern, String, MatchKind);

/// Compiles a snapshot; problems are logged once per compile.
pub fn compile(snapshot: &Snapshot, config: &RouteConfig) -> RouteTable {
    let served = served_ingresses(snapshot, config);
    let mut resolver = BackendResolver::new(snapshot, config.upstream_mode);
    let mut claims: HashMap<ClaimKey, ObjectKey> = HashMap::new();
    let mut by_host: HashMap<HostPattern, Vec<PathRoute>> = HashMap::new();
    let mut conflicts = Vec::new();

    for ingress in &served {
        add_rules(ingress, &mut resolver, &mut claims, &mut by_host, &mut conflicts);
    }
    let default_backend = default_backend(&served, config, &mut resolver, &mut conflicts);

    let mut table = RouteTable { default_backend, conflicts, ..RouteTable::default() };
    for (host, mut routes) in by_host {
        // Stable: at equal precedence the claim order (oldest first) stays.
        routes.sort_by_key(|r| r.matcher.precedence());
        match host {
            HostPattern::Exact(host) => {
                table.exact.insert(host, routes);
            }
            HostPattern::Wildcard(parent) => {
                table.wildcard.insert(parent, routes);
            }
            HostPattern::Any => table.any_host = routes,
        }
    }
    table
}

fn add_rules(
    ingress: &Ingress,
    resolver: &mut BackendResolver<'_>,
    claims: &mut HashMap<ClaimKey, ObjectKey>,
    by_host: &mut HashMap<HostPattern, Vec<PathRoute>>,
    conflicts: &mut Vec<Conflict>,
) {
    let key = ingress.metadata.key();
    let redirect = ssl_redirect_hosts(ingress);
    for rule in &ingress.spec.rules {
        let host = match compile_host(rule.host.as_deref()) {
            Ok(host) => host,
            Err(error) => {
                log::warn!("ingress {key}: rule skipped: {error}");
                continue;
            }
        };
        let Some(http) = &rule.http else { continue };
        for path in &http.paths {
            let compiled = parse_path_type(path.path_type.as_deref())
                .and_then(|path_type| Ok((path_type, compile_path(path.path.as_deref(), path_type)?)));
            let (path_type, matcher) = match compiled {
                Ok(compiled) => compiled,
                Err(error) => {
                    log::warn!("ingress {key}: path skipped: {error}");
                    continue;
                }
            };
            let written = path.path.as_deref().filter(|p| !p.is_empty()).unwrap_or("/").to_string();
            match claims.entry((host.clone(), matcher.pattern.clone(), matcher.kind)) {
                Entry::Occupied(winner) => {
                    let conflict = Conflict {
                        host: host.display(),
                        path: written,
                        path_type: Some(path_type),
                        winner: winner.get().clone(),
                        loser: key.clone(),
                    };
                    log::warn!(
                        "ingress {}: {} {} on host {:?} is already claimed by the older ingress {}; ignored",
                        conflict.loser,
                        path_type.as_str(),
                        conflict.path,
                        conflict.host,
                        conflict.winner
                    );
                    conflicts.push(conflict);
                    continue;
                }
                Entry::Vacant(claim) => {
                    claim.insert(key.clone());
                }
            }
            let resolved = resolver.resolve(&key.namespace, &path.backend, &key);
            let ssl_redirect = redirect.as_ref().is_some_and(|r| r.covers(&host));
            let route = route(&key, resolved, ssl_redirect, host.display(), written, Some(path_type));
            by_host.entry(host.clone()).or_default().push(PathRoute { matcher, route });
        }
    }
}

fn route(
    ingress: &ObjectKey,
    resolved: ResolvedBackend,
    ssl_redirect: bool,
    host: String,
    path: String,
    path_type: Option<PathType>,
) -> Route {
    Route {
        ingress: ingress.clone(),
        service: resolved.service,
        service_port: resolved.service_port,
        backend: resolved.backend,
        ssl_redirect,
        next_upstream: AtomicUsize::new(0),
        host,
        path,
        path_type,
    }
}

/// The TLS hosts of an Ingress that asked for redirects.
struct RedirectHosts {
    /// A TLS entry without hosts covers every rule host of its Ingress,
    /// including rules without a host.
    all: bool,
    hosts: Vec<HostPattern>,
}

impl RedirectHosts {
    fn covers(&self, rule_host: &HostPattern) -> bool {
        self.all || self.hosts.iter().any(|tls| tls_host_covers(tls, rule_host))
    }
}

fn ssl_redirect_hosts(ingress: &Ingress) -> Option<RedirectHosts> {
    if ingress.metadata.annotations.get(SSL_REDIRECT_ANNOTATION).map(String::as_str) != Some("true") {
        return None;
    }
    let all = ingress.spec.tls.iter().any(|tls| tls.hosts.is_empty());
    // An invalid TLS host cannot match a valid rule host; the tls module reports it.
    let hosts = ingress.spec.tls.iter().flat_map(|tls| &tls.hosts).filter_map(|h| compile_host(Some(h)).ok()).collect();
    Some(RedirectHosts { all, hosts })
}

/// The oldest Ingress's `spec.defaultBackend`, else `--default-backend-service`.
fn default_backend(
    served: &[&Ingress],
    config: &RouteConfig,
    resolver: &mut BackendResolver<'_>,
    conflicts: &mut Vec<Conflict>,
) -> Option<Route> {
    let mut with_default = served.iter().filter_map(|i| Some((i.metadata.key(), i.spec.default_backend.as_ref()?)));
    if let Some((winner, backend)) = with_default.next() {
        for (loser, _) in with_default {
            log::warn!("ingress {loser}: defaultBackend ignored: the older ingress {winner} sets one");
            conflicts.push(Conflict { host: String::new(), path: String::new(), path_type: None, winner: winner.clone(), loser });
        }
        let resolved = resolver.resolve(&winner.namespace, backend, &winner);
        return Some(route(&winner, resolved, false, String::new(), String::new(), None));
    }
    let (service, port) = config.default_backend_service.as_ref()?;
    let flag = ObjectKey::default();
    let backend = resolver.resolve_service(&service.namespace, &service.name, port.clone(), &flag);
    let resolved = ResolvedBackend { service: service.name.clone(), service_port: port.to_string(), backend };
    Some(route(&flag, resolved, false, String::new(), String::new(), None))
}
