//! The compiled table and the per-request lookup.
//!
//! Hosts are kept in [`HostMap`]s of `Arc`ed per-host route lists: a new
//! generation that recompiled a few hosts shares every other host with the
//! one before, and a published table is never changed.

use std::sync::Arc;

use super::age::Age;
use super::host::HostPattern;
use super::host_map::HostMap;
use crate::hostname::{wildcard_parent, with_normalized_host};
use super::path::{strip_query, PathMatcher};
use super::{Conflict, Route};
use crate::kube::objects::ObjectKey;

/// One route with the matcher that selects it.
#[derive(Debug)]
pub(crate) struct PathRoute {
    pub(crate) matcher: PathMatcher,
    pub(crate) route: Route,
}

/// One host's routes, sorted longest path first, `Exact` before `Prefix` at
/// equal length, so the first match is the right one; and the claims on it
/// that lost to an older Ingress.
#[derive(Debug, Default)]
pub(crate) struct HostRoutes {
    pub(crate) routes: Vec<PathRoute>,
    pub(crate) conflicts: Vec<(Age, Conflict)>,
    /// Paths left out because their regex did not compile (logged).
    pub(crate) invalid_regex: usize,
}

impl HostRoutes {
    /// The round-robin position of this host's route on `matcher` from the
    /// same Ingress to the same backend, to carry over into a recompiled route.
    pub(crate) fn position_of(
        &self,
        matcher: &PathMatcher,
        ingress: &ObjectKey,
        resolved: &super::backend::ResolvedBackend,
    ) -> Option<Arc<std::sync::atomic::AtomicUsize>> {
        self.routes
            .iter()
            .find(|r| r.matcher == *matcher && r.route.ingress == *ingress && r.route.service == resolved.service && r.route.service_port == resolved.service_port)
            .map(|r| Arc::clone(&r.route.next_upstream))
    }

    /// The same for the canary of the route on `matcher`.
    pub(crate) fn canary_position_of(
        &self,
        matcher: &PathMatcher,
        ingress: &ObjectKey,
        resolved: &super::backend::ResolvedBackend,
    ) -> Option<Arc<std::sync::atomic::AtomicUsize>> {
        let canary = self.routes.iter().filter(|r| r.matcher == *matcher).find_map(|r| r.route.canary.as_ref())?;
        let route = &canary.route;
        (route.ingress == *ingress && route.service == resolved.service && route.service_port == resolved.service_port).then(|| Arc::clone(&route.next_upstream))
    }
}

/// The compiled, immutable routing table.
#[derive(Debug, Default, Clone)]
pub struct RouteTable {
    /// By lower-case host.
    pub(crate) exact: HostMap<Arc<HostRoutes>>,
    /// By the parent domain of `*.parent`.
    pub(crate) wildcard: HostMap<Arc<HostRoutes>>,
    /// Rules without a host.
    pub(crate) any_host: Arc<HostRoutes>,
    pub(crate) default_backend: Option<Arc<Route>>,
    /// Ingresses whose `defaultBackend` lost to an older one.
    pub(crate) default_conflicts: Vec<(Age, Conflict)>,
}

fn first_match<'t>(routes: &'t [PathRoute], path: &str) -> Option<&'t Route> {
    routes.iter().find(|r| r.matcher.matches(path)).map(|r| &r.route)
}

impl RouteTable {
    /// `host` is the raw Host header value (any case, optional `:port` and
    /// trailing dot); `path` excludes the query string (anything from a `?`
    /// on is ignored if it does not).
    ///
    /// The most specific host pattern with a matching path wins: exact host,
    /// then wildcard, then rules without host, then the default backend.
    pub fn lookup(&self, host: &str, path: &str) -> Option<&Route> {
        let path = strip_query(path);
        with_normalized_host(host, |host| {
            self.exact
                .get(host)
                .and_then(|host| first_match(&host.routes, path))
                .or_else(|| {
                    let routes = self.wildcard.get(wildcard_parent(host)?)?;
                    first_match(&routes.routes, path)
                })
                .or_else(|| first_match(&self.any_host.routes, path))
                .or(self.default_backend.as_deref())
        })
    }

    /// A host's routes in service, if it has any.
    pub(crate) fn host(&self, host: &HostPattern) -> Option<&Arc<HostRoutes>> {
        match host {
            HostPattern::Exact(name) => self.exact.get(name),
            HostPattern::Wildcard(parent) => self.wildcard.get(parent),
            HostPattern::Any => Some(&self.any_host),
        }
    }

    /// Replaces a host's routes; a host left without routes or conflicts is removed.
    pub(crate) fn set_host(&mut self, host: HostPattern, routes: HostRoutes) {
        let empty = routes.routes.is_empty() && routes.conflicts.is_empty() && routes.invalid_regex == 0;
        match host {
            HostPattern::Exact(name) if empty => self.exact.remove(&name),
            HostPattern::Exact(name) => self.exact.insert(name, Arc::new(routes)),
            HostPattern::Wildcard(parent) if empty => self.wildcard.remove(&parent),
            HostPattern::Wildcard(parent) => self.wildcard.insert(parent, Arc::new(routes)),
            HostPattern::Any => self.any_host = Arc::new(routes),
        }
    }

    fn hosts(&self) -> impl Iterator<Item = &Arc<HostRoutes>> {
        self.exact.values().chain(self.wildcard.values()).chain(std::iter::once(&self.any_host))
    }

    /// The number of routes (host, path) in the table, default backend included.
    pub fn len(&self) -> usize {
        self.hosts().map(|h| h.routes.len()).sum::<usize>() + usize::from(self.default_backend.is_some())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every route for the inspector, by host then in match order (rules
    /// without host last but one, the default backend last).
    pub fn routes(&self) -> Vec<&Route> {
        let mut hosts: Vec<&Arc<HostRoutes>> = self.exact.values().chain(self.wildcard.values()).filter(|h| !h.routes.is_empty()).collect();
        hosts.sort_by(|a, b| host_of(&a.routes).cmp(host_of(&b.routes)));
        hosts
            .into_iter()
            .chain(std::iter::once(&self.any_host))
            .flat_map(|host| host.routes.iter().map(|r| &r.route))
            .chain(self.default_backend.as_deref())
            .collect()
    }

    /// Claims that lost to an older Ingress: the loser oldest first, then by
    /// host and path.
    pub fn conflicts(&self) -> Vec<Conflict> {
        let mut all: Vec<&(Age, Conflict)> = self.hosts().flat_map(|h| h.conflicts.iter()).chain(&self.default_conflicts).collect();
        all.sort_by(|(a_age, a), (b_age, b)| (a_age, &a.host, &a.path).cmp(&(b_age, &b.host, &b.path)));
        all.into_iter().map(|(_, conflict)| conflict.clone()).collect()
    }

    /// Paths left out because their regex did not compile.
    pub fn invalid_regex_paths(&self) -> usize {
        self.hosts().map(|h| h.invalid_regex).sum()
    }

    /// The route for requests no rule matches.
    pub fn default_backend(&self) -> Option<&Route> {
        self.default_backend.as_deref()
    }
}

fn host_of(routes: &[PathRoute]) -> &str {
    routes.first().map(|r| r.route.host.as_str()).unwrap_or("")
}
