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
//! [`Kind::ALL`] with `cfg.watch_namespace`. Stopping ends a watcher between
//! requests and wakes it from a backoff sleep; one blocked in a watch read
//! ends at that read's timeout.
//!
//! A kind outside the cache (ingressd's own Pods, for status addresses) is
//! one more [`Resource`] row next to its decoder, watched by the same
//! [`watcher::spawn_watch`].

pub mod backoff;
pub mod client;
mod error;
pub mod list;
pub mod metrics;
pub mod named_secrets;
pub mod objects;
pub mod probe;
pub mod token;
pub mod watch_line;
pub mod watcher;

pub use error::Error;

use objects::{EndpointSlice, Ingress, IngressClass, ObjectKey, ObjectMeta, Secret, Service};

/// The kinds ingressd watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Ingress,
    IngressClass,
    Service,
    EndpointSlice,
    Secret,
}

/// How a kind is found and read on the API server: the one place that
/// says so (paths, queries, RBAC checks and decoding all follow it). `T` is
/// what its objects decode into: an [`Object`] for the cached kinds.
pub struct Resource<T: 'static = Object> {
    /// The name used in metrics and logs.
    pub name: &'static str,
    /// "" for the core group.
    pub group: &'static str,
    pub version: &'static str,
    pub plural: &'static str,
    /// Namespaced kinds honour `--watch-namespace`; the others never do.
    pub namespaced: bool,
    /// Already URL-encoded; narrows what the server sends (and what RBAC must allow us to read).
    pub field_selector: Option<&'static str>,
    /// Decode errors must not quote values (a Secret's are key material).
    pub withhold_values: bool,
    /// From the object's JSON text.
    pub decode: fn(&str) -> Result<T, serde_json::Error>,
}

/// An object a watcher follows: the watch resumes from its resourceVersion.
pub trait Versioned {
    /// Empty when the object carries none (the API always sends one).
    fn resource_version(&self) -> &str;
}

impl Versioned for Object {
    fn resource_version(&self) -> &str {
        &self.metadata().resource_version
    }
}

fn decode<T: serde::de::DeserializeOwned>(json: &str, wrap: fn(T) -> Object) -> Result<Object, serde_json::Error> {
    serde_json::from_str(json).map(wrap)
}

/// One row per kind, in the order of [`Kind::ALL`].
const RESOURCES: [Resource; 5] = [
    Resource { name: "ingress", group: "networking.k8s.io", version: "v1", plural: "ingresses", namespaced: true, field_selector: None, withhold_values: false, decode: |v| decode(v, Object::Ingress) },
    Resource { name: "ingressclass", group: "networking.k8s.io", version: "v1", plural: "ingressclasses", namespaced: false, field_selector: None, withhold_values: false, decode: |v| decode(v, Object::IngressClass) },
    Resource { name: "service", group: "", version: "v1", plural: "services", namespaced: true, field_selector: None, withhold_values: false, decode: |v| decode(v, Object::Service) },
    Resource { name: "endpointslice", group: "discovery.k8s.io", version: "v1", plural: "endpointslices", namespaced: true, field_selector: None, withhold_values: false, decode: |v| decode(v, Object::EndpointSlice) },
    // Only TLS Secrets: ingressd has no business reading others.
    Resource { name: "secret", group: "", version: "v1", plural: "secrets", namespaced: true, field_selector: Some("type%3Dkubernetes.io%2Ftls"), withhold_values: true, decode: |v| decode(v, Object::Secret) },
];

impl Kind {
    pub const ALL: [Kind; 5] = [Kind::Ingress, Kind::IngressClass, Kind::Service, Kind::EndpointSlice, Kind::Secret];

    /// Where and how this kind is read.
    pub fn resource(self) -> &'static Resource {
        &RESOURCES[self as usize]
    }

    /// The name used in metrics and logs.
    pub fn name(self) -> &'static str {
        self.resource().name
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
    /// A Secret an annotation names is now this (`None`: absent, or no
    /// longer named), whatever its type. Kept apart from the TLS Secrets'
    /// list, whose relists must not drop it.
    NamedSecret(ObjectKey, Option<Secret>),
}
