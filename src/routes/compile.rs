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

use crate::annotations::canary::{is_canary, CanaryRule};
use crate::annotations::rewrite::PathOptions;
use crate::annotations::policy::asks_www_redirect;
use crate::annotations::{self, backend_tls::BackendProtocol, policy::Policy};
use crate::kube::objects::{Ingress, IngressBackend, ObjectKey, SmolStr};
use crate::tls::{self, upstream::BackendTls};
use crate::store::Snapshot;

use super::age::Age;
use super::backend::{BackendResolver, ResolvedBackend};
use super::host::{compile_host, tls_host_covers, HostPattern};
use super::path::{compile_path, compile_regex_path, parse_path_type, PathMatcher};
use super::table::{HostRoutes, PathRoute, RouteTable};
use super::{mode_override, served_ingresses, Canary, Conflict, PathType, Rewrite, Route, RouteConfig, RouteError};

/// One path of one served Ingress, before its host's mode is known and
/// conflicts are settled.
struct Candidate<'a> {
    /// As written; compiled once the host's mode (plain or regex) is known.
    path: Option<&'a str>,
    path_type: PathType,
    /// The path as written, "/" when an ImplementationSpecific path was left out.
    written: &'a str,
    backend: &'a IngressBackend,
    ssl_redirect: bool,
    /// What the Ingress's annotations ask of each request; shared by its routes.
    policy: Option<Arc<Policy>>,
    /// `use-regex` and `rewrite-target`; shared by the Ingress's paths.
    options: Arc<PathOptions>,
    /// Set for a canary Ingress: its paths shadow others' instead of claiming.
    canary: Option<Arc<CanaryRule>>,
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
    add_www_redirects(served, &mut table);
    let (default_backend, conflicts) = default_backend(served.iter().copied().filter(|i| !is_canary(&i.metadata.annotations)), config, &mut resolver, None);
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
    candidates: Vec<Candidate<'a>>,
    ingresses: &[&'a Ingress],
    resolver: &mut BackendResolver<'a>,
    previous: Option<&HostRoutes>,
) -> HostRoutes {
    let (canaries, candidates): (Vec<Candidate<'a>>, Vec<Candidate<'a>>) = candidates.into_iter().partition(|c| c.canary.is_some());
    // ingress-nginx's rule: one Ingress asking for regex paths (or rewriting)
    // turns every path of the host into a regex.
    let regex_mode = candidates.iter().any(|c| c.options.regex_for(c.written));
    let mut invalid_regex = 0;
    let mut compiled: Vec<(PathMatcher, Candidate<'a>)> = Vec::with_capacity(candidates.len());
    for candidate in candidates {
        let matcher = if regex_mode { compile_regex_path(candidate.path, candidate.path_type) } else { compile_path(candidate.path, candidate.path_type) };
        match matcher {
            Ok(matcher) => compiled.push((matcher, candidate)),
            Err(error) => {
                invalid_regex += usize::from(matches!(error, RouteError::InvalidRegex { .. }));
                log::warn!("ingress {}: path skipped: {error}", candidate.ingress.metadata.key());
            }
        }
    }
    // Match order first, then rivals adjacent with the oldest in front.
    compiled.sort_by(|(a_matcher, a), (b_matcher, b)| a_matcher.match_order(b_matcher).then(a.age_rank.cmp(&b.age_rank)));
    let display = host.display();
    let mut routes: Vec<PathRoute> = Vec::with_capacity(compiled.len());
    let mut conflicts = Vec::new();
    for (matcher, candidate) in compiled {
        // The previous route is the oldest claim on the same path, if any.
        if let Some(winner) = routes.last().filter(|w| w.matcher == matcher) {
            let conflict = Conflict {
                host: display.to_string(),
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
        let carried = previous.and_then(|p| p.position_of(&matcher, &key, &resolved));
        let rewrite = match (&matcher.regex, candidate.options.rewrite_for(candidate.written)) {
            (Some(regex), Some(target)) => Some(Arc::new(Rewrite { regex: Arc::clone(&regex.0), target: target.clone() })),
            _ => None,
        };
        let upstream_tls = upstream_tls(candidate.policy.as_deref(), &key, &resolved.service, resolver.snapshot());
        let route = Route {
            upstream_tls,
            policy: candidate.policy,
            rewrite,
            ..route(key, resolved, candidate.ssl_redirect, display.clone(), SmolStr::new(candidate.written), Some(candidate.path_type), carried)
        };
        routes.push(PathRoute { matcher, route });
    }
    for candidate in canaries {
        add_canary(candidate, &mut routes, &mut conflicts, &display, ingresses, resolver, previous);
    }
    HostRoutes { routes, conflicts, invalid_regex }
}

/// Attaches a canary Ingress's path to the route with the same path and
/// `pathType` (ingress-nginx's `mergeAlternativeBackends`): the oldest canary
/// per host+path is used, a younger one is a conflict; a canary without a
/// main route, or to the main route's own Service, is ignored.
fn add_canary<'a>(
    candidate: Candidate<'a>,
    routes: &mut [PathRoute],
    conflicts: &mut Vec<(Age, Conflict)>,
    display: &str,
    ingresses: &[&'a Ingress],
    resolver: &mut BackendResolver<'a>,
    previous: Option<&HostRoutes>,
) {
    let key = candidate.ingress.metadata.key();
    let Some(rule) = candidate.canary else { return };
    let Some(main) = routes.iter_mut().find(|r| r.route.path == candidate.written && r.route.path_type == Some(candidate.path_type)) else {
        log::warn!(
            "ingress {key}: canary {} {} on host {display:?} ignored: no other Ingress serves that host and path",
            candidate.path_type.as_str(),
            candidate.written
        );
        return;
    };
    if let Some(existing) = &main.route.canary {
        let conflict = Conflict {
            host: display.to_string(),
            path: candidate.written.to_string(),
            path_type: Some(candidate.path_type),
            winner: existing.route.ingress.clone(),
            loser: key,
        };
        log::warn!(
            "ingress {}: canary {} on host {:?} ignored: the older canary ingress {} already shadows it (one canary per host and path)",
            conflict.loser,
            conflict.path,
            conflict.host,
            conflict.winner
        );
        conflicts.push((Age::of(ingresses[candidate.age_rank]), conflict));
        return;
    }
    let mode = mode_override(main.route.policy.as_deref());
    let resolved = resolver.resolve(&candidate.ingress.metadata.namespace, candidate.backend, &key, mode);
    if resolved.service == main.route.service && key.namespace == main.route.ingress.namespace {
        log::warn!("ingress {key}: canary {} on host {display:?} ignored: it names the main route's own service {}", candidate.written, resolved.service);
        return;
    }
    let carried = previous.and_then(|p| p.canary_position_of(&main.matcher, &key, &resolved));
    let canary_route = Route {
        canary: None,
        ..route(key, resolved, main.route.ssl_redirect, main.route.host.clone(), main.route.path.clone(), main.route.path_type, carried)
    };
    let canary_route = Route { policy: main.route.policy.clone(), rewrite: main.route.rewrite.clone(), ..canary_route };
    main.route.canary = Some(Arc::new(Canary { rule, route: canary_route }));
}

/// `from-to-www-redirect`'s other host for a rule host: `www.` removed or
/// added (exact hosts only). A host is the other host of at most one rule
/// host: the one `www_counterpart` of it gives back.
pub(crate) fn www_counterpart(host: &HostPattern) -> Option<HostPattern> {
    let HostPattern::Exact(name) = host else { return None };
    let other = match name.strip_prefix("www.") {
        Some("") => return None,
        Some(bare) => SmolStr::new(bare),
        None => SmolStr::new(format!("www.{name}")),
    };
    Some(HostPattern::Exact(other))
}

/// The routes of `from`, a host no served Ingress has rules on, when an
/// Ingress on its counterpart (`to_ingresses`, oldest first) asks for
/// `from-to-www-redirect`: one route redirecting every request, from the
/// oldest such Ingress (canaries ask for nothing).
pub(crate) fn www_redirect_routes(from: &HostPattern, to_ingresses: &[&Ingress]) -> Option<HostRoutes> {
    let to = www_counterpart(from)?;
    if www_counterpart(&to).as_ref() != Some(from) {
        return None;
    }
    let HostPattern::Exact(to_name) = &to else { return None };
    let asking = to_ingresses.iter().find(|i| asks_www_redirect(&i.metadata.annotations) && !is_canary(&i.metadata.annotations))?;
    let matcher = compile_path(Some("/"), PathType::Prefix).ok()?;
    let policy = Policy { www_redirect: Some(to_name.to_string()), ..Policy::default() };
    let resolved = ResolvedBackend {
        service: SmolStr::default(),
        service_port: SmolStr::default(),
        port: None,
        backend: super::Backend::Unavailable(format!("from-to-www-redirect to {to_name}")),
    };
    let route = Route {
        policy: Some(Arc::new(policy)),
        ..route(asking.metadata.key(), resolved, false, from.display(), SmolStr::new_static("/"), Some(PathType::Prefix), None)
    };
    Some(HostRoutes { routes: vec![PathRoute { matcher, route }], ..HostRoutes::default() })
}

/// Adds the `from-to-www-redirect` hosts of a full compile.
fn add_www_redirects(served: &[&Ingress], table: &mut RouteTable) {
    let mut by_host: HashMap<HostPattern, Vec<&Ingress>> = HashMap::new();
    for ingress in served {
        for host in rule_hosts(ingress) {
            by_host.entry(host).or_default().push(ingress);
        }
    }
    for (to, ingresses) in &by_host {
        let Some(from) = www_counterpart(to).filter(|from| !by_host.contains_key(from)) else { continue };
        if let Some(routes) = www_redirect_routes(&from, ingresses) {
            table.set_host(from, routes);
        }
    }
}

/// The TLS settings of a route whose Ingress asks for `backend-protocol: HTTPS`.
fn upstream_tls(policy: Option<&Policy>, ingress: &ObjectKey, service: &str, snapshot: &Snapshot) -> Option<Arc<BackendTls>> {
    let Some(BackendProtocol::Https(ssl)) = policy.and_then(|p| p.backend_protocol.as_deref()) else { return None };
    let secrets = |key: &ObjectKey| snapshot.secret(key).cloned();
    let resolved = tls::upstream::resolve(ssl, &ingress.namespace, service, &secrets);
    if let Err(why) = &resolved.config {
        log::warn!("ingress {ingress}: TLS to service {service} unusable, its requests answer 502: {why}");
    }
    Some(Arc::new(resolved))
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
    let annotations = &ingress.metadata.annotations;
    let (policy, mut problems) = Policy::for_ingress(ingress, |key| snapshot.secret(key));
    let (options, more) = PathOptions::from_annotations(annotations);
    problems.extend(more);
    let (canary, more) = CanaryRule::from_annotations(annotations);
    problems.extend(more);
    for problem in problems {
        log::warn!("ingress {}: {problem}", ingress.metadata.key());
    }
    let policy = policy.map(Arc::new);
    let options = Arc::new(options);
    let canary = canary.map(Arc::new);
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
            match parse_path_type(path.path_type.as_deref()) {
                Ok(path_type) => candidates.push(Candidate {
                    path: path.path.as_deref(),
                    path_type,
                    written: path.path.as_deref().filter(|p| !p.is_empty()).unwrap_or("/"),
                    backend: &path.backend,
                    ssl_redirect,
                    policy: policy.clone(),
                    options: Arc::clone(&options),
                    canary: canary.clone(),
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
    host: SmolStr,
    path: SmolStr,
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
        upstream_tls: None,
        next_upstream: next_upstream.unwrap_or_default(),
        host,
        path,
        path_type,
        rewrite: None,
        canary: None,
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
        return (Some(Arc::new(route(winner, resolved, false, SmolStr::default(), SmolStr::default(), None, next))), conflicts);
    }
    let Some((service, port)) = config.default_backend_service.as_ref() else { return (None, Vec::new()) };
    let flag = ObjectKey::default();
    let backend = resolver.resolve_service(&service.namespace, &service.name, port.clone(), &flag, None);
    let resolved = ResolvedBackend { service: service.name.clone(), service_port: SmolStr::new(port.to_string()), port: Some(port.clone()), backend };
    let next = carried(&resolved);
    (Some(Arc::new(route(flag, resolved, false, SmolStr::default(), SmolStr::default(), None, next))), Vec::new())
}
