//! The objects the watchers report, kept by kind: [`Store`] applies watch
//! events, and each [`Snapshot`] it hands out stays unchanged once shared.
//!
//! Below both `routes` and `tls` (which read snapshots) and `cache` (which
//! owns the store), so none of them import each other for it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::kube::objects::{EndpointSlice, Ingress, IngressClass, KubeObject, ObjectKey, Secret, Service};
use crate::kube::{Event, Kind, Object};

/// Every watched object, by kind, at one instant.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    pub ingresses: BTreeMap<ObjectKey, Arc<Ingress>>,
    pub ingress_classes: BTreeMap<ObjectKey, Arc<IngressClass>>,
    pub services: BTreeMap<ObjectKey, Arc<Service>>,
    pub endpoint_slices: BTreeMap<ObjectKey, Arc<EndpointSlice>>,
    pub secrets: BTreeMap<ObjectKey, Arc<Secret>>,
}

/// Applies watcher events to the objects. Pure: the cache thread owns one.
#[derive(Debug, Default)]
pub struct Store {
    snapshot: Arc<Snapshot>,
    synced: BTreeSet<Kind>,
}

/// Inserts or removes one object in the map of its kind.
fn place(snapshot: &mut Snapshot, object: Object, present: bool) {
    fn put<T: KubeObject>(map: &mut BTreeMap<ObjectKey, Arc<T>>, object: T, present: bool) {
        let key = object.metadata().key();
        if present {
            map.insert(key, Arc::new(object));
        } else {
            map.remove(&key);
        }
    }
    match object {
        Object::Ingress(o) => put(&mut snapshot.ingresses, o, present),
        Object::IngressClass(o) => put(&mut snapshot.ingress_classes, o, present),
        Object::Service(o) => put(&mut snapshot.services, o, present),
        Object::EndpointSlice(o) => put(&mut snapshot.endpoint_slices, o, present),
        Object::Secret(o) => put(&mut snapshot.secrets, o, present),
    }
}

fn clear(snapshot: &mut Snapshot, kind: Kind) {
    match kind {
        Kind::Ingress => snapshot.ingresses.clear(),
        Kind::IngressClass => snapshot.ingress_classes.clear(),
        Kind::Service => snapshot.services.clear(),
        Kind::EndpointSlice => snapshot.endpoint_slices.clear(),
        Kind::Secret => snapshot.secrets.clear(),
    }
}

impl Store {
    /// Applies one event. A `Replace` swaps the kind's whole set in one step,
    /// so objects the new list lacks disappear and no reader ever sees a
    /// half-filled kind (readers only see snapshots published after `apply`).
    pub fn apply(&mut self, event: Event) {
        let snapshot = Arc::make_mut(&mut self.snapshot);
        match event {
            Event::Upsert(object) => place(snapshot, object, true),
            Event::Delete(object) => place(snapshot, object, false),
            Event::Replace(kind, objects) => {
                clear(snapshot, kind);
                for object in objects {
                    if object.kind() == kind {
                        place(snapshot, object, true);
                    } else {
                        log::error!("a {} list carried a {} object; ignored", kind.name(), object.kind().name());
                    }
                }
                self.synced.insert(kind);
            }
        }
    }

    /// True once every kind has completed its first list.
    pub fn synced(&self) -> bool {
        Kind::ALL.iter().all(|k| self.synced.contains(k))
    }

    /// The kinds whose first list has not arrived yet, in `Kind::ALL` order.
    pub fn waiting(&self) -> Vec<Kind> {
        Kind::ALL.into_iter().filter(|k| !self.synced.contains(k)).collect()
    }

    pub fn snapshot(&self) -> &Arc<Snapshot> {
        &self.snapshot
    }
}

impl Snapshot {
    /// Object count per kind, for metrics.
    pub fn count(&self, kind: Kind) -> usize {
        match kind {
            Kind::Ingress => self.ingresses.len(),
            Kind::IngressClass => self.ingress_classes.len(),
            Kind::Service => self.services.len(),
            Kind::EndpointSlice => self.endpoint_slices.len(),
            Kind::Secret => self.secrets.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::objects::{Ingress, ObjectMeta, Service};

    fn ingress(ns: &str, name: &str) -> Object {
        Object::Ingress(Ingress {
            metadata: ObjectMeta { namespace: ns.into(), name: name.into(), ..Default::default() },
            ..Default::default()
        })
    }

    fn service(ns: &str, name: &str) -> Object {
        Object::Service(Service {
            metadata: ObjectMeta { namespace: ns.into(), name: name.into(), ..Default::default() },
            ..Default::default()
        })
    }

    fn names(store: &Store) -> Vec<String> {
        store.snapshot().ingresses.keys().map(|k| k.to_string()).collect()
    }

    #[test]
    fn upsert_and_delete() {
        let mut store = Store::default();
        store.apply(Event::Upsert(ingress("a", "one")));
        store.apply(Event::Upsert(ingress("a", "one")));
        store.apply(Event::Upsert(ingress("b", "two")));
        assert_eq!(names(&store), ["a/one", "b/two"]);
        store.apply(Event::Delete(ingress("a", "one")));
        assert_eq!(names(&store), ["b/two"]);
        store.apply(Event::Delete(ingress("x", "absent")));
        assert_eq!(names(&store), ["b/two"]);
    }

    #[test]
    fn replace_drops_what_the_new_list_lacks_and_leaves_other_kinds() {
        let mut store = Store::default();
        store.apply(Event::Upsert(ingress("a", "stale")));
        store.apply(Event::Upsert(ingress("a", "kept")));
        store.apply(Event::Upsert(service("a", "svc")));
        store.apply(Event::Replace(Kind::Ingress, vec![ingress("a", "kept"), ingress("a", "new")]));
        assert_eq!(names(&store), ["a/kept", "a/new"]);
        assert_eq!(store.snapshot().services.len(), 1);
        store.apply(Event::Replace(Kind::Ingress, vec![]));
        assert!(names(&store).is_empty());
    }

    #[test]
    fn replace_ignores_objects_of_another_kind() {
        let mut store = Store::default();
        store.apply(Event::Replace(Kind::Ingress, vec![service("a", "svc"), ingress("a", "i")]));
        assert_eq!(names(&store), ["a/i"]);
        assert!(store.snapshot().services.is_empty());
    }

    #[test]
    fn synced_after_every_kind_listed_once() {
        let mut store = Store::default();
        for kind in Kind::ALL {
            assert!(!store.synced());
            store.apply(Event::Replace(kind, vec![]));
        }
        assert!(store.synced());
    }

    #[test]
    fn published_snapshots_are_not_mutated_by_later_events() {
        let mut store = Store::default();
        store.apply(Event::Upsert(ingress("a", "one")));
        let published = Arc::clone(store.snapshot());
        store.apply(Event::Replace(Kind::Ingress, vec![]));
        assert_eq!(published.ingresses.len(), 1);
        assert!(store.snapshot().ingresses.is_empty());
    }
}
