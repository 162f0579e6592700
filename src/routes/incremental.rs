//! Keeping a [`RouteTable`] up to date change by change.
//!
//! A host's routes depend only on the served Ingresses with rules on it and
//! on the Services those name, so the compiler keeps three indexes: host →
//! Ingresses (oldest first), Service → Ingresses naming it, Ingress → its
//! hosts and Services. An Ingress change recompiles the hosts it had and
//! has; a Service or EndpointSlice change resolves again only the backends
//! of the routes to that Service (their matchers, order and conflicts stay
//! as they are); nothing else is looked at. Every other host
//! keeps its `Arc` (and with it the round-robin position of its routes), and
//! the new table shares them with the one in service. An IngressClass change
//! or a relist (which may have changed anything) compiles everything.
//!
//! Incremental equals full: the property test in `tests.rs` applies random
//! event sequences both ways and compares the tables.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use crate::annotations::canary::is_canary;
use crate::annotations::secrets::named_secrets;
use crate::kube::objects::{Ingress, ObjectKey};
use crate::store::Snapshot;

use super::age::Age;
use super::backend::BackendResolver;
use super::class::ClassSelector;
use super::compile::{compile_one_host, compile_served, default_backend, rule_hosts, www_counterpart, www_redirect_routes};
use super::host::HostPattern;
use super::table::{HostRoutes, PathRoute, RouteTable};
use super::{mode_override, served_ingresses, Canary, Route, RouteConfig, UpstreamMode};

/// What a batch of events touched, collected by the cache thread.
#[derive(Debug, Default, Clone)]
pub struct Changes {
    /// Anything may have changed (a relist, an IngressClass): compile all.
    pub everything: bool,
    pub ingresses: BTreeSet<ObjectKey>,
    /// Services changed themselves or in their EndpointSlices.
    pub services: BTreeSet<ObjectKey>,
    /// Secrets that changed: TLS ones for certificates, and those an
    /// annotation names for the routes of the Ingresses that name them.
    pub secrets: BTreeSet<ObjectKey>,
}

impl Changes {
    /// Whether the route table may differ.
    pub fn touches_routes(&self) -> bool {
        self.everything || !self.ingresses.is_empty() || !self.services.is_empty() || !self.secrets.is_empty()
    }
}

/// What the compiler remembers of one served Ingress.
#[derive(Debug, Clone)]
struct Served {
    age: Age,
    hosts: Vec<HostPattern>,
    services: Vec<ObjectKey>,
    /// What its annotations name (see [`crate::annotations::secrets`]).
    secrets: Vec<ObjectKey>,
    has_default: bool,
    /// TLS entries, or client-certificate annotations (`auth-tls-secret`):
    /// either way the handshake settings depend on it.
    has_tls: bool,
}

impl Served {
    fn of(ingress: &Ingress) -> Served {
        let namespace = &ingress.metadata.namespace;
        let mut services: Vec<ObjectKey> = ingress
            .spec
            .rules
            .iter()
            .filter_map(|rule| rule.http.as_ref())
            .flat_map(|http| &http.paths)
            .map(|path| &path.backend)
            .chain(&ingress.spec.default_backend)
            .filter_map(|backend| backend.service.as_ref())
            .map(|service| ObjectKey::new(namespace, &service.name))
            .collect();
        services.sort();
        services.dedup();
        Served {
            age: Age::of(ingress),
            hosts: rule_hosts(ingress),
            services,
            secrets: named_secrets(ingress),
            // A canary's defaultBackend claims nothing.
            has_default: ingress.spec.default_backend.is_some() && !is_canary(&ingress.metadata.annotations),
            has_tls: !ingress.spec.tls.is_empty() || crate::annotations::value(&ingress.metadata.annotations, "auth-tls-secret").is_some(),
        }
    }
}

/// The route table and the indexes that let it change by parts.
#[derive(Debug, Default)]
pub struct RouteCompiler {
    config: RouteConfig,
    table: RouteTable,
    served: HashMap<ObjectKey, Served>,
    /// Sorted vectors, not sets: nearly every host and Service has one
    /// Ingress, and a one-element B-tree node costs over 500 bytes.
    by_host: HashMap<HostPattern, Vec<Age>>,
    by_service: HashMap<ObjectKey, Vec<ObjectKey>>,
    /// Served Ingresses by the Secrets their annotations name.
    by_secret: HashMap<ObjectKey, Vec<ObjectKey>>,
    /// Served Ingresses with a `defaultBackend`, oldest first.
    with_default: BTreeSet<Age>,
    /// Served Ingresses with TLS entries or client-certificate annotations,
    /// oldest first: all certificates and client-certificate settings need.
    with_tls: BTreeSet<Age>,
}

impl RouteCompiler {
    /// Compiles everything from `snapshot`.
    pub fn new(snapshot: &Snapshot, config: &RouteConfig) -> RouteCompiler {
        let served = served_ingresses(snapshot, config);
        let mut compiler = RouteCompiler { config: config.clone(), table: compile_served(snapshot, &served, config), ..Default::default() };
        for ingress in served {
            compiler.index(ingress.metadata.key(), Served::of(ingress));
        }
        compiler
    }

    /// Whether the Ingress `key` is ours, as of the last update.
    pub fn serves(&self, key: &ObjectKey) -> bool {
        self.served.contains_key(key)
    }

    /// The Secrets that served Ingresses' annotations name: the ones
    /// ingressd must follow besides the TLS Secrets.
    pub fn named_secrets(&self) -> impl Iterator<Item = &ObjectKey> {
        self.by_secret.keys()
    }

    /// The table in service; cloning it is cheap and shares every host.
    pub fn table(&self) -> &RouteTable {
        &self.table
    }

    /// Served Ingresses with TLS entries or client-certificate annotations,
    /// oldest first: what certificates and client-certificate settings are
    /// compiled from (the others claim no host for either).
    pub fn tls_ingresses<'s>(&self, snapshot: &'s Snapshot) -> Vec<&'s Ingress> {
        self.with_tls.iter().filter_map(|age| snapshot.ingresses.get(&age.key)).map(|i| i.as_ref()).collect()
    }

    /// Brings the table up to `snapshot`, which differs from the last one by
    /// `changes`; returns whether an Ingress with TLS entries (before or
    /// after the change) was among them, so certificates need compiling.
    pub fn update(&mut self, snapshot: &Snapshot, changes: &Changes) -> bool {
        if changes.everything {
            *self = RouteCompiler::new(snapshot, &self.config);
            return true;
        }
        let mut tls_changed = false;
        let mut dirty: HashSet<HostPattern> = HashSet::new();
        let mut default_dirty = !changes.services.is_empty();
        let config = self.config.clone();
        let selector = ClassSelector::new(snapshot, &config);
        for key in &changes.ingresses {
            if let Some(old) = self.unindex(key) {
                default_dirty |= old.has_default;
                tls_changed |= old.has_tls;
                dirty.extend(old.hosts);
            }
            if let Some(ingress) = snapshot.ingresses.get(key).filter(|i| selector.serves(i)) {
                let served = Served::of(ingress);
                default_dirty |= served.has_default;
                tls_changed |= served.has_tls;
                dirty.extend(served.hosts.iter().cloned());
                self.index(key.clone(), served);
            }
        }
        // A named Secret compiles into the policies of its Ingresses' routes.
        for secret in &changes.secrets {
            for ingress in self.by_secret.get(secret).into_iter().flatten() {
                let served = &self.served[ingress];
                default_dirty |= served.has_default;
                dirty.extend(served.hosts.iter().cloned());
            }
        }
        // Hosts whose paths did not change but whose Services did only need
        // those backends resolved again.
        let mut rebind: HashSet<HostPattern> = HashSet::new();
        for service in &changes.services {
            for ingress in self.by_service.get(service).into_iter().flatten() {
                rebind.extend(self.served[ingress].hosts.iter().filter(|h| !dirty.contains(*h)).cloned());
            }
        }
        for host in rebind {
            if let Some(previous) = self.table.host(&host).cloned() {
                self.table.set_host(host, rebind_backends(&previous, snapshot, &changes.services, config.upstream_mode));
            }
        }

        // A host's `from-to-www-redirect` counterpart gains or loses its
        // redirect with it.
        let counterparts: Vec<HostPattern> = dirty.iter().filter_map(www_counterpart).collect();
        dirty.extend(counterparts);
        let mut resolver = BackendResolver::new(snapshot, config.upstream_mode);
        let ingresses_on = |host: &HostPattern| -> Vec<&Ingress> {
            self.by_host.get(host).into_iter().flatten().filter_map(|age| snapshot.ingresses.get(&age.key)).map(|i| i.as_ref()).collect()
        };
        let mut compiled = Vec::with_capacity(dirty.len());
        for host in dirty {
            let ingresses = ingresses_on(&host);
            let routes = if ingresses.is_empty() {
                let to = www_counterpart(&host);
                to.and_then(|to| www_redirect_routes(&host, &ingresses_on(&to))).unwrap_or_default()
            } else {
                let previous = self.table.host(&host).cloned();
                compile_one_host(&host, &ingresses, &mut resolver, previous.as_deref())
            };
            compiled.push((host, routes));
        }
        for (host, routes) in compiled {
            self.table.set_host(host, routes);
        }
        if default_dirty {
            let with_default = self.with_default.iter().filter_map(|age| snapshot.ingresses.get(&age.key)).map(|i| i.as_ref());
            let previous = self.table.default_backend.clone();
            let (route, conflicts) = default_backend(with_default, &config, &mut resolver, previous.as_deref());
            self.table.default_backend = route;
            self.table.default_conflicts = conflicts;
        }
        tls_changed
    }

    fn index(&mut self, key: ObjectKey, served: Served) {
        for host in &served.hosts {
            insert_sorted(self.by_host.entry(host.clone()).or_default(), served.age.clone());
        }
        for service in &served.services {
            insert_sorted(self.by_service.entry(service.clone()).or_default(), key.clone());
        }
        for secret in &served.secrets {
            insert_sorted(self.by_secret.entry(secret.clone()).or_default(), key.clone());
        }
        if served.has_default {
            self.with_default.insert(served.age.clone());
        }
        if served.has_tls {
            self.with_tls.insert(served.age.clone());
        }
        self.served.insert(key, served);
    }

    fn unindex(&mut self, key: &ObjectKey) -> Option<Served> {
        let served = self.served.remove(key)?;
        for host in &served.hosts {
            if let Some(ages) = self.by_host.get_mut(host) {
                ages.retain(|age| *age != served.age);
                if ages.is_empty() {
                    self.by_host.remove(host);
                }
            }
        }
        for service in &served.services {
            remove_user(&mut self.by_service, service, key);
        }
        for secret in &served.secrets {
            remove_user(&mut self.by_secret, secret, key);
        }
        self.with_default.remove(&served.age);
        self.with_tls.remove(&served.age);
        Some(served)
    }
}

/// Drops `user` from the users of `used`, and the entry once it has none.
fn remove_user(index: &mut HashMap<ObjectKey, Vec<ObjectKey>>, used: &ObjectKey, user: &ObjectKey) {
    if let Some(users) = index.get_mut(used) {
        users.retain(|k| k != user);
        if users.is_empty() {
            index.remove(used);
        }
    }
}

/// Grows by one slot at a time: nearly every list holds one item, and the
/// default growth reserves four.
fn insert_sorted<T: Ord>(items: &mut Vec<T>, item: T) {
    if let Err(at) = items.binary_search(&item) {
        items.reserve_exact(1);
        items.insert(at, item);
    }
}

/// A copy of `host` whose routes (and canaries) to a Service in `services`
/// are resolved again; the matchers, order and conflicts are kept as they
/// are, and every route keeps its round-robin position.
fn rebind_backends<'a>(host: &'a HostRoutes, snapshot: &'a Snapshot, services: &BTreeSet<ObjectKey>, mode: UpstreamMode) -> HostRoutes {
    let mut resolver = BackendResolver::new(snapshot, mode);
    let mut rebind = |old: &'a Route, mode: Option<UpstreamMode>| {
        let mut route = old.clone();
        if let Some(port) = &old.port {
            let namespace = old.ingress.namespace.as_str();
            if services.contains(&ObjectKey::new(namespace, &old.service)) {
                route.backend = resolver.resolve_service(namespace, &old.service, port.clone(), &old.ingress, mode);
            }
        }
        route
    };
    let routes = host
        .routes
        .iter()
        .map(|path_route| {
            let mode = mode_override(path_route.route.policy.as_deref());
            let mut route = rebind(&path_route.route, mode);
            if let Some(canary) = &path_route.route.canary {
                route.canary = Some(Arc::new(Canary { rule: Arc::clone(&canary.rule), route: rebind(&canary.route, mode) }));
            }
            PathRoute { matcher: path_route.matcher.clone(), route }
        })
        .collect();
    HostRoutes { routes, conflicts: host.conflicts.clone(), invalid_regex: host.invalid_regex }
}
