//! Merging served Ingresses into a [`RouteTable`], one host at a time.
//!
//! A host's routes depend only on the Ingresses with rules on that host, on
//! their age order, and on the Services they name; so a full compile groups
//! every path by host and compiles each host, and an incremental update
//! ([`super::incremental`]) recompiles only the hosts a change touched, with
//! the same per-host function. Within a host, candidates are sorted once so
//! rival claims sit side by side, and only winners resolve their backend.

use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use crate::annotations::{self, policy::Policy};
use crate::kube::objects::{Ingress, IngressBackend, ObjectKey};
use crate::store::Snapshot;

use super::backend::{BackendResolver, ResolvedBackend};
use super::host::{compile_host, tls_host_covers, HostPattern};
use super::path::{compile_path, parse_path_type, PathMatcher};
use super::table::{HostRoutes, PathRoute, RouteTable};
use super::{mode_override, served_ingresses, Conflict, PathType, Route, RouteConfig};

/// An Ingress's place in the order in which claims win: creationTimestamp
/// (missing counts as oldest), then namespace, then name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Age {
    created: String,
    pub(crate) key: ObjectKey,
}

impl Age {
    pub(crate) fn of(ingress: &Ingress) -> Age {
        Age { created: ingress.metadata.creation_timestamp.clone(), key: ingress.metadata.key() }
    }
}

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
    /// What the Ingress's annotations ask of each request; shared by its routes.
    policy: Option<Arc<Policy>>,
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
        add_candidates(snapshot, ingress, age_rank, None, &mut by_host);
    }
    let mut table = RouteTable::default();
    for (host, candidates) in by_host {
        let routes = compile_host_routes(&host, candidates, served, &mut resolver, None);
        table.set_host(host, routes);
    }
    let (default_backend, conflicts) = default_backend(served.iter().copied(), config, &mut resolver, None);
    table.default_backend = default_backend;
    table.default_conflicts = conflicts;
    table
}

/// Compiles one host from the served Ingresses with rules on it, oldest
/// first (`ingresses` may hold others; only their rules on `host` count).
/// `previous` is the host's routes in service, whose per-route state (the
/// round-robin position) carries over to routes to the same backend.
pub(crate) fn compile_one_host<'a>(
    host: &HostPattern,
    ingresses: &[&'a Ingress],
    resolver: &mut BackendResolver<'a>,
    previous: Option<&HostRoutes>,
) -> HostRoutes {
    let mut by_host: HashMap<HostPattern, Vec<Candidate<'a>>> = HashMap::new();
    for (age_rank, ingress) in ingresses.iter().enumerate() {
        add_candidates(resolver.snapshot(), ingress, age_rank, Some(host), &mut by_host);
    }
    let candidates = by_host.remove(host).unwrap_or_default();
    compile_host_routes(host, candidates, ingresses, resolver, previous)
}

fn compile_host_routes<'a>(
    host: &HostPattern,
    mut candidates: Vec<Candidate<'a>>,
    ingresses: &[&'a Ingress],
    resolver: &mut BackendResolver<'a>,
    previous: Option<&HostRoutes>,
) -> HostRoutes {
    // Match order first, then rivals adjacent with the oldest in front.
    candidates.sort_by(|a, b| {
        (a.matcher.precedence(), &a.matcher.pattern, a.age_rank).cmp(&(b.matcher.precedence(), &b.matcher.pattern, b.age_rank))
    });
    let display = host.display();
    let mut routes: Vec<PathRoute> = Vec::with_capacity(candidates.len());
    let mut conflicts = Vec::new();
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
            log_conflict(&conflict);
            conflicts.push((Age::of(ingresses[candidate.age_rank]), conflict));
            continue;
        }
        let key = candidate.ingress.metadata.key();
        let mode = mode_override(candidate.policy.as_deref());
        let resolved = resolver.resolve(&candidate.ingress.metadata.namespace, candidate.backend, &key, mode);
        let carried = previous.and_then(|p| p.position_of(&candidate.matcher, &key, &resolved));
        let route = Route {
            policy: candidate.policy,
            ..route(key, resolved, candidate.ssl_redirect, display.clone(), candidate.written.to_string(), Some(candidate.path_type), carried)
        };
        routes.push(PathRoute { matcher: candidate.matcher, route });
    }
    HostRoutes { routes, conflicts }
}

fn log_conflict(conflict: &Conflict) {
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

/// The host patterns of an Ingress's valid rules, each once.
pub(crate) fn rule_hosts(ingress: &Ingress) -> Vec<HostPattern> {
    let mut hosts: Vec<HostPattern> = Vec::new();
    for rule in &ingress.spec.rules {
        if let Ok(host) = compile_host(rule.host.as_deref()) {
            if !hosts.contains(&host) {
                hosts.push(host);
            }
        }
    }
    hosts
}

/// Adds the candidates of every rule of `ingress`, or only of those on
/// `only` (skipped rules are then not logged again: they were when their own
/// host compiled, or they have no host at all to compile).
fn add_candidates<'a>(snapshot: &Snapshot, ingress: &'a Ingress, age_rank: usize, only: Option<&HostPattern>, by_host: &mut HashMap<HostPattern, Vec<Candidate<'a>>>) {
    let redirect = ssl_redirect_hosts(ingress);
    let (policy, problems) = Policy::for_ingress(ingress, |key| snapshot.secret(key));
    for problem in problems {
        log::warn!("ingress {}: {problem}", ingress.metadata.key());
    }
    let policy = policy.map(Arc::new);
    for rule in &ingress.spec.rules {
        let host = match compile_host(rule.host.as_deref()) {
            Ok(host) => host,
            Err(error) => {
                if only.is_none() {
                    log::warn!("ingress {}: rule skipped: {error}", ingress.metadata.key());
                }
                continue;
            }
        };
        if only.is_some_and(|only| *only != host) {
            continue;
        }
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
                    policy: policy.clone(),
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
    next_upstream: Option<Arc<AtomicUsize>>,
) -> Route {
    Route {
        ingress,
        service: resolved.service,
        service_port: resolved.service_port,
        port: resolved.port,
        backend: resolved.backend,
        ssl_redirect,
        policy: None,
        next_upstream: next_upstream.unwrap_or_default(),
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

/// `ssl-redirect: "true"` redirects the Ingress's TLS hosts;
/// `force-ssl-redirect: "true"` redirects every host of it, TLS entry or not.
fn ssl_redirect_hosts(ingress: &Ingress) -> Option<RedirectHosts> {
    let asked = |name| annotations::value(&ingress.metadata.annotations, name) == Some("true");
    if asked("force-ssl-redirect") {
        return Some(RedirectHosts { all: true, hosts: Vec::new() });
    }
    if !asked("ssl-redirect") {
        return None;
    }
    let all = ingress.spec.tls.iter().any(|tls| tls.hosts.is_empty());
    // An invalid TLS host cannot match a valid rule host; the tls module reports it.
    let hosts = ingress.spec.tls.iter().flat_map(|tls| &tls.hosts).filter_map(|h| compile_host(Some(h)).ok()).collect();
    Some(RedirectHosts { all, hosts })
}

/// The oldest Ingress's `spec.defaultBackend` (of `with_default`, oldest
/// first; Ingresses without one are skipped), else
/// `--default-backend-service`; with the claims that lost.
pub(crate) fn default_backend<'a>(
    with_default: impl Iterator<Item = &'a Ingress>,
    config: &'a RouteConfig,
    resolver: &mut BackendResolver<'a>,
    previous: Option<&Route>,
) -> (Option<Arc<Route>>, Vec<(Age, Conflict)>) {
    let mut with_default = with_default.filter_map(|i| Some((i, i.spec.default_backend.as_ref()?)));
    let carried = |resolved: &ResolvedBackend| {
        previous.filter(|p| p.service == resolved.service && p.service_port == resolved.service_port).map(|p| Arc::clone(&p.next_upstream))
    };
    if let Some((ingress, backend)) = with_default.next() {
        let winner = ingress.metadata.key();
        let mut conflicts = Vec::new();
        for (loser, _) in with_default {
            let conflict = Conflict { host: String::new(), path: String::new(), path_type: None, winner: winner.clone(), loser: loser.metadata.key() };
            log_conflict(&conflict);
            conflicts.push((Age::of(loser), conflict));
        }
        let resolved = resolver.resolve(&ingress.metadata.namespace, backend, &winner, None);
        let next = carried(&resolved);
        return (Some(Arc::new(route(winner, resolved, false, String::new(), String::new(), None, next))), conflicts);
    }
    let Some((service, port)) = config.default_backend_service.as_ref() else { return (None, Vec::new()) };
    let flag = ObjectKey::default();
    let backend = resolver.resolve_service(&service.namespace, &service.name, port.clone(), &flag, None);
    let resolved = ResolvedBackend { service: service.name.clone(), service_port: port.to_string(), port: Some(port.clone()), backend };
    let next = carried(&resolved);
    (Some(Arc::new(route(flag, resolved, false, String::new(), String::new(), None, next))), Vec::new())
}
