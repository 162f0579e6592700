//! The objects the watchers report, kept by kind: [`Store`] applies watch
//! events, and each [`Snapshot`] it hands out stays unchanged once shared.
//!
//! Below both `routes` and `tls` (which read snapshots) and `cache` (which
//! owns the store), so none of them import each other for it.
//!
//! The maps are persistent (`imbl::OrdMap`, B-trees whose nodes are shared
//! between versions): publishing a snapshot and then changing one object
//! copies a path of a few nodes, not the whole kind, so a change costs
//! O(log n) however many objects there are.

use std::collections::BTreeSet;
use std::ops::Deref;
use std::sync::Arc;

use imbl::OrdMap;

use crate::kube::objects::{EndpointSlice, ObjectKey, Secret};
use crate::kube::{Event, Kind, Object, Objects};

/// Every watched object, by kind, at one instant: the maps of [`Objects`]
/// (read through `Deref`: `snapshot.ingresses`), and the indexes the store
/// keeps beside them.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    /// Private so that every change goes through [`Snapshot::insert`] and
    /// [`Snapshot::remove`], which keep the slice index below up to date.
    objects: Objects,
    /// Secrets of any type that an annotation names, each from a watch of
    /// its own (see [`crate::kube::named_secrets`]).
    named_secrets: OrdMap<ObjectKey, Arc<Secret>>,
    /// EndpointSlice keys by the key of the Service they belong to (their
    /// `kubernetes.io/service-name` label), kept up to date by the store.
    slices_by_service: OrdMap<ObjectKey, Vec<ObjectKey>>,
}

impl Deref for Snapshot {
    type Target = Objects;

    fn deref(&self) -> &Objects {
        &self.objects
    }
}

/// Applies watcher events to the objects. Pure: the cache thread owns one.
#[derive(Debug, Default)]
pub struct Store {
    snapshot: Arc<Snapshot>,
    synced: BTreeSet<Kind>,
    /// Named Secrets whose watch has answered at least once (present or absent).
    named_heard: BTreeSet<ObjectKey>,
}

impl Store {
    /// Applies one event. A `Replace` swaps the kind's whole set in one step,
    /// so objects the new list lacks disappear and no reader ever sees a
    /// half-filled kind (readers only see snapshots published after `apply`).
    pub fn apply(&mut self, event: Event) {
        let snapshot = Arc::make_mut(&mut self.snapshot);
        match event {
            Event::Upsert(object) => snapshot.insert(object),
            Event::Delete(object) => snapshot.remove(object.kind(), &object.metadata().key()),
            Event::Replace(kind, objects) => {
                snapshot.objects.clear(kind);
                if kind == Kind::EndpointSlice {
                    snapshot.slices_by_service.clear();
                }
                for object in objects {
                    if object.kind() == kind {
                        snapshot.insert(object);
                    } else {
                        log::error!("a {} list carried a {} object; ignored", kind.name(), object.kind().name());
                    }
                }
                self.synced.insert(kind);
            }
            Event::NamedSecret(key, Some(secret)) => {
                self.named_heard.insert(key.clone());
                drop(snapshot.named_secrets.insert(key, Arc::new(secret)));
            }
            Event::NamedSecret(key, None) => {
                drop(snapshot.named_secrets.remove(&key));
                self.named_heard.insert(key);
            }
        }
    }

    /// True once every kind has completed its first list.
    pub fn synced(&self) -> bool {
        Kind::ALL.iter().all(|k| self.synced.contains(k))
    }

    /// The named Secrets among `wanted` whose watch has not answered yet.
    pub fn named_unheard<'w>(&self, wanted: &'w BTreeSet<ObjectKey>) -> Vec<&'w ObjectKey> {
        wanted.iter().filter(|key| !self.named_heard.contains(*key)).collect()
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
    /// Adds or replaces an object, as [`Store::apply`] does for an
    /// upsert (also for tests and tools that build a snapshot by hand).
    pub fn insert(&mut self, object: Object) {
        if let Object::EndpointSlice(slice) = &object {
            let key = slice.metadata.key();
            self.unindex_slice(&key);
            self.index_slice(slice, key);
        }
        self.objects.insert(object);
    }

    /// Removes the object of `kind` with `key`, if there is one.
    pub fn remove(&mut self, kind: Kind, key: &ObjectKey) {
        if kind == Kind::EndpointSlice {
            self.unindex_slice(key);
        }
        self.objects.remove(kind, key);
    }

    /// The Secret `key`, whether it is a TLS Secret or one an annotation names.
    pub fn secret(&self, key: &ObjectKey) -> Option<&Arc<Secret>> {
        self.secrets.get(key).or_else(|| self.named_secrets.get(key))
    }

    /// The EndpointSlices of the Service `service` (namespace and name).
    pub fn slices_of(&self, service: &ObjectKey) -> impl Iterator<Item = &Arc<EndpointSlice>> {
        let keys = self.slices_by_service.get(service).map(Vec::as_slice).unwrap_or_default();
        keys.iter().filter_map(|key| self.endpoint_slices.get(key))
    }

    fn index_slice(&mut self, slice: &EndpointSlice, key: ObjectKey) {
        if let Some(service) = slice.service_name() {
            let service = ObjectKey::new(&slice.metadata.namespace, service);
            let keys = self.slices_by_service.entry(service).or_default();
            if !keys.contains(&key) {
                // Most Services have one slice: no room for four.
                keys.reserve_exact(1);
                keys.push(key);
                keys.sort();
            }
        }
    }

    /// Takes the slice `key` as stored now out of the index.
    fn unindex_slice(&mut self, key: &ObjectKey) {
        let Some(slice) = self.objects.endpoint_slices.get(key).cloned() else { return };
        if let Some(service) = slice.service_name() {
            let service = ObjectKey::new(&slice.metadata.namespace, service);
            if let Some(keys) = self.slices_by_service.get_mut(&service) {
                keys.retain(|k| k != key);
                if keys.is_empty() {
                    self.slices_by_service.remove(&service);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::objects::{Ingress, ObjectMeta, Secret, Service};

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
    fn named_secrets_survive_a_relist_of_tls_secrets() {
        let secret = |name: &str, type_: &str| Secret {
            metadata: ObjectMeta { namespace: "a".into(), name: name.into(), ..Default::default() },
            type_: type_.into(),
            ..Default::default()
        };
        let mut store = Store::default();
        let creds = ObjectKey::new("a", "creds");
        store.apply(Event::NamedSecret(creds.clone(), Some(secret("creds", "Opaque"))));
        store.apply(Event::Replace(Kind::Secret, vec![Object::Secret(secret("tls", "kubernetes.io/tls"))]));
        assert_eq!(store.snapshot().secret(&creds).map(|s| s.type_.as_str()), Some("Opaque"));
        assert!(store.snapshot().secret(&ObjectKey::new("a", "tls")).is_some());
        store.apply(Event::NamedSecret(creds.clone(), None));
        assert!(store.snapshot().secret(&creds).is_none());
        assert_eq!(store.snapshot().count(Kind::Secret), 1, "the metric counts the TLS Secrets' watch only");
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
