//! Merging every served Ingress into one [`RouteTable`].
//!
//! Cost is linear in the number of objects (plus sorting each host's paths):
//! Services and EndpointSlices are indexed once, every path becomes a
//! candidate under its host, each host's candidates are sorted once so that
//! rival claims sit side by side, and only winners resolve their backend.

use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;

use crate::annotations;
use crate::store::Snapshot;
use crate::kube::objects::{Ingress, IngressBackend, ObjectKey};

use super::backend::{BackendResolver, ResolvedBackend};
use super::host::{compile_host, tls_host_covers, HostPattern};
use super::path::{compile_path, parse_path_type, PathMatcher};
use super::table::{PathRoute, RouteTable};
use super::{served_ingresses, Conflict, PathType, Route, RouteConfig};

/// One valid path of one served Ingress, before conflicts are settled.
struct Candidate<'a> {
    /// Equal matchers are one claim: `Prefix` `/foo` and `/foo/`, or `Prefix`
    /// and `ImplementationSpecific` on one path, match the same requests.
    matcher: PathMatcher,
    path_type: PathType,
    /// The path as written, "/" when an ImplementationSpecific path was left out.
    written: &'a str,
    backend: &'a IngressBackend,
    ssl_redirect: bool,
    ingress: &'a Ingress,
    /// The Ingress's position oldest-first: the lower claim wins.
    age_rank: usize,
}

/// Compiles a snapshot; problems are logged once per compile.
pub fn compile(snapshot: &Snapshot, config: &RouteConfig) -> RouteTable {
    compile_served(snapshot, &served_ingresses(snapshot, config), config)
}

/// Compiles the Ingresses already chosen by [`served_ingresses`] (oldest
/// first), for a caller that needs that list for certificates too.
pub fn compile_served(snapshot: &Snapshot, served: &[&Ingress], config: &RouteConfig) -> RouteTable {
    let mut resolver = BackendResolver::new(snapshot, config.upstream_mode);
    let mut by_host: HashMap<HostPattern, Vec<Candidate<'_>>> = HashMap::new();
    for (age_rank, ingress) in served.iter().enumerate() {
        add_candidates(ingress, age_rank, &mut by_host);
    }

    let mut table = RouteTable::default();
    let mut conflicts: Vec<(usize, Conflict)> = Vec::new();
    for (host, mut candidates) in by_host {
        // Match order first, then rivals adjacent with the oldest in front.
        candidates.sort_by(|a, b| {
            (a.matcher.precedence(), &a.matcher.pattern, a.age_rank).cmp(&(b.matcher.precedence(), &b.matcher.pattern, b.age_rank))
        });
        let display = host.display();
        let mut routes: Vec<PathRoute> = Vec::with_capacity(candidates.len());
        for candidate in candidates {
            // The previous route is the oldest claim on the same path, if any.
            if let Some(winner) = routes.last().filter(|w| w.matcher == candidate.matcher) {
                let conflict = Conflict {
                    host: display.clone(),
                    path: candidate.written.to_string(),
                    path_type: Some(candidate.path_type),
                    winner: winner.route.ingress.clone(),
                    loser: candidate.ingress.metadata.key(),
                };
                conflicts.push((candidate.age_rank, conflict));
                continue;
            }
            let key = candidate.ingress.metadata.key();
            let resolved = resolver.resolve(&candidate.ingress.metadata.namespace, candidate.backend, &key);
            let route = route(key, resolved, candidate.ssl_redirect, display.clone(), candidate.written.to_string(), Some(candidate.path_type));
            routes.push(PathRoute { matcher: candidate.matcher, route });
        }
        if routes.is_empty() {
            continue;
        }
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

    table.default_backend = default_backend(served, config, &mut resolver, &mut conflicts);
    conflicts.sort_by(|(a_rank, a), (b_rank, b)| (a_rank, &a.host, &a.path).cmp(&(b_rank, &b.host, &b.path)));
    table.conflicts = conflicts.into_iter().map(|(_, conflict)| conflict).collect();
    for conflict in &table.conflicts {
        match conflict.path_type {
            Some(path_type) => log::warn!(
                "ingress {}: {} {} on host {:?} is already claimed by the older ingress {}; ignored",
                conflict.loser,
                path_type.as_str(),
                conflict.path,
                conflict.host,
                conflict.winner
            ),
            None => log::warn!("ingress {}: defaultBackend ignored: the older ingress {} sets one", conflict.loser, conflict.winner),
        }
    }
    table
}

fn add_candidates<'a>(ingress: &'a Ingress, age_rank: usize, by_host: &mut HashMap<HostPattern, Vec<Candidate<'a>>>) {
    let redirect = ssl_redirect_hosts(ingress);
    for rule in &ingress.spec.rules {
        let host = match compile_host(rule.host.as_deref()) {
            Ok(host) => host,
            Err(error) => {
                log::warn!("ingress {}: rule skipped: {error}", ingress.metadata.key());
                continue;
            }
        };
        let Some(http) = &rule.http else { continue };
        let ssl_redirect = redirect.as_ref().is_some_and(|r| r.covers(&host));
        let candidates = by_host.entry(host).or_default();
        for path in &http.paths {
            let compiled = parse_path_type(path.path_type.as_deref())
                .and_then(|path_type| Ok((path_type, compile_path(path.path.as_deref(), path_type)?)));
            match compiled {
                Ok((path_type, matcher)) => candidates.push(Candidate {
                    matcher,
                    path_type,
                    written: path.path.as_deref().filter(|p| !p.is_empty()).unwrap_or("/"),
                    backend: &path.backend,
                    ssl_redirect,
                    ingress,
                    age_rank,
                }),
                Err(error) => log::warn!("ingress {}: path skipped: {error}", ingress.metadata.key()),
            }
        }
    }
}

fn route(
    ingress: ObjectKey,
    resolved: ResolvedBackend,
    ssl_redirect: bool,
    host: String,
    path: String,
    path_type: Option<PathType>,
) -> Route {
    Route {
        ingress,
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
    if annotations::value(&ingress.metadata.annotations, "ssl-redirect") != Some("true") {
        return None;
    }
    let all = ingress.spec.tls.iter().any(|tls| tls.hosts.is_empty());
    // An invalid TLS host cannot match a valid rule host; the tls module reports it.
    let hosts = ingress.spec.tls.iter().flat_map(|tls| &tls.hosts).filter_map(|h| compile_host(Some(h)).ok()).collect();
    Some(RedirectHosts { all, hosts })
}

/// The oldest Ingress's `spec.defaultBackend`, else `--default-backend-service`.
fn default_backend<'a>(
    served: &[&'a Ingress],
    config: &'a RouteConfig,
    resolver: &mut BackendResolver<'a>,
    conflicts: &mut Vec<(usize, Conflict)>,
) -> Option<Route> {
    let mut with_default = served.iter().enumerate().filter_map(|(rank, i)| Some((rank, *i, i.spec.default_backend.as_ref()?)));
    if let Some((_, ingress, backend)) = with_default.next() {
        let winner = ingress.metadata.key();
        for (rank, loser, _) in with_default {
            let loser = loser.metadata.key();
            conflicts.push((rank, Conflict { host: String::new(), path: String::new(), path_type: None, winner: winner.clone(), loser }));
        }
        let resolved = resolver.resolve(&ingress.metadata.namespace, backend, &winner);
        return Some(route(winner, resolved, false, String::new(), String::new(), None));
    }
    let (service, port) = config.default_backend_service.as_ref()?;
    let flag = ObjectKey::default();
    let backend = resolver.resolve_service(&service.namespace, &service.name, port.clone(), &flag);
    let resolved = ResolvedBackend { service: service.name.clone(), service_port: port.to_string(), backend };
    Some(route(flag, resolved, false, String::new(), String::new(), None))
}
