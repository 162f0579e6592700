//! The Kubernetes API client: objects, the HTTP client, list-then-watch.
//!
//! Watchers turn the API's list and watch responses into [`Event`]s on a
//! crossbeam channel; the cache thread is their only consumer.
//!
//! ```text
//! client::ApiClient (one ureq Agent, token, CA) <-- watcher::spawn, one thread per Kind
//!     list pages (list.rs) -> Event::Replace, then watch lines (watch_line.rs) -> Upsert/Delete
//!     failures -> backoff.rs; counters -> metrics::WatchMetrics (rendered at /metrics)
//! ```
//!
//! Startup: `ApiClient::new(&cfg.apiserver, &cfg.ca_file, &cfg.token_file)?` in an
//! `Arc`, one `WatchMetrics` in an `Arc`, then `watcher::spawn` for each of
//! [`Kind::ALL`] with `cfg.watch_namespace`. Setting the stop flag ends a watcher
//! between requests; one blocked in a watch read ends at that read's timeout.

pub mod backoff;
pub mod client;
mod error;
pub mod list;
pub mod metrics;
pub mod objects;
pub mod probe;
pub mod token;
pub mod watch_line;
pub mod watcher;

pub use error::Error;

use objects::{EndpointSlice, Ingress, IngressClass, ObjectMeta, Secret, Service};

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

impl Object {
    pub fn kind(&self) -> Kind {
        match self {
            Object::Ingress(_) => Kind::Ingress,
            Object::IngressClass(_) => Kind::IngressClass,
            Object::Service(_) => Kind::Service,
            Object::EndpointSlice(_) => Kind::EndpointSlice,
            Object::Secret(_) => Kind::Secret,
        }
    }

    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            Object::Ingress(o) => &o.metadata,
            Object::IngressClass(o) => &o.metadata,
            Object::Service(o) => &o.metadata,
            Object::EndpointSlice(o) => &o.metadata,
            Object::Secret(o) => &o.metadata,
        }
    }
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
