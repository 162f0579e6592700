//! The compiled table and the per-request lookup.

use std::collections::HashMap;

use super::host::{wildcard_parent, with_normalized_host};
use super::path::{strip_query, PathMatcher};
use super::{Conflict, Route};

/// One route with the matcher that selects it.
#[derive(Debug)]
pub(crate) struct PathRoute {
    pub(crate) matcher: PathMatcher,
    pub(crate) route: Route,
}

/// The compiled, immutable routing table.
///
/// Every host's routes are sorted longest path first, `Exact` before `Prefix`
/// at equal length, so the first match is the right one.
#[derive(Debug, Default)]
pub struct RouteTable {
    /// By lower-case host.
    pub(crate) exact: HashMap<String, Vec<PathRoute>>,
    /// By the parent domain of `*.parent`.
    pub(crate) wildcard: HashMap<String, Vec<PathRoute>>,
    /// Rules without a host.
    pub(crate) any_host: Vec<PathRoute>,
    pub(crate) default_backend: Option<Route>,
    pub(crate) conflicts: Vec<Conflict>,
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
                .and_then(|routes| first_match(routes, path))
                .or_else(|| {
                    let routes = self.wildcard.get(wildcard_parent(host)?)?;
                    first_match(routes, path)
                })
                .or_else(|| first_match(&self.any_host, path))
                .or(self.default_backend.as_ref())
        })
    }

    /// The number of routes (host, path) in the table, default backend included.
    pub fn len(&self) -> usize {
        self.exact.values().chain(self.wildcard.values()).map(Vec::len).sum::<usize>()
            + self.any_host.len()
            + usize::from(self.default_backend.is_some())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every route for the inspector, by host then in match order (rules
    /// without host last but one, the default backend last).
    pub fn routes(&self) -> Vec<&Route> {
        let mut hosts: Vec<&Vec<PathRoute>> = self.exact.values().chain(self.wildcard.values()).collect();
        hosts.sort_by(|a, b| host_of(a).cmp(host_of(b)));
        hosts
            .into_iter()
            .chain(std::iter::once(&self.any_host))
            .flat_map(|routes| routes.iter().map(|r| &r.route))
            .chain(self.default_backend.as_ref())
            .collect()
    }

    /// Claims that lost to an older Ingress, in the order compile met them.
    pub fn conflicts(&self) -> &[Conflict] {
        &self.conflicts
    }

    /// The route for requests no rule matches.
    pub fn default_backend(&self) -> Option<&Route> {
        self.default_backend.as_ref()
    }
}

fn host_of(routes: &[PathRoute]) -> &str {
    routes.first().map(|r| r.route.host.as_str()).unwrap_or("")
}
