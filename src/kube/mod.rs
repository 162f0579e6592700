//! The Kubernetes API client: objects, the HTTP client, list-then-watch.
//!
//! Watchers turn the API's list and watch responses into [`Event`]s on a
//! crossbeam channel; the cache thread is their only consumer.

pub mod objects;

use objects::{EndpointSlice, Ingress, IngressClass, Secret, Service};

/// The kinds ingressd watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Ingress,
    IngressClass,
    Service,
    EndpointSlice,
    Secret,
}

impl Kind {
    pub const ALL: [Kind; 5] = [Kind::Ingress, Kind::IngressClass, Kind::Service, Kind::EndpointSlice, Kind::Secret];

    /// The name used in metrics and logs.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Ingress => "ingress",
            Kind::IngressClass => "ingressclass",
            Kind::Service => "service",
            Kind::EndpointSlice => "endpointslice",
            Kind::Secret => "secret",
        }
    }
}

/// One decoded object of any watched kind.
#[derive(Debug, Clone)]
pub enum Object {
    Ingress(Ingress),
    IngressClass(IngressClass),
    Service(Service),
    EndpointSlice(EndpointSlice),
    Secret(Secret),
}

/// What a watcher tells the cache.
#[derive(Debug)]
pub enum Event {
    /// ADDED or MODIFIED.
    Upsert(Object),
    /// DELETED (the object as last seen).
    Delete(Object),
    /// A complete list: the kind's objects become exactly these, in one step.
    /// The first one for a kind marks that kind synced.
    Replace(Kind, Vec<Object>),
}
