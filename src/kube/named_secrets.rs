//! The Secrets annotations name (basic-auth files, CA bundles, upstream
//! client certificates), each followed by a watch of its own with a
//! `metadata.name` field selector, as the kubelet follows the Secrets its
//! pods mount. ingressd thereby reads exactly the Secrets it was pointed at,
//! never the rest of a namespace's, and any type of Secret.
//!
//! The cache thread sends the set it wants (the served Ingresses'
//! annotations, see [`crate::annotations::secrets`]) whenever it changes;
//! this thread starts a watcher for each new name, and for each name no
//! longer wanted stops the watcher and removes the object from the cache.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};

use super::client::ApiClient;
use super::objects::{ObjectKey, Secret};
use super::watcher::{self, Change, Sink, Target};
use super::{Event, Resource, Versioned};
use crate::stop::Stop;

/// Any Secret, one name at a time (the name goes in the watcher's field selector).
pub const NAMED_SECRET: Resource<Secret> = Resource {
    name: "named-secret",
    group: "",
    version: "v1",
    plural: "secrets",
    namespaced: true,
    field_selector: None,
    withhold_values: true,
    decode: |json| serde_json::from_str(json),
};

impl Versioned for Secret {
    fn resource_version(&self) -> &str {
        &self.metadata.resource_version
    }
}

/// Which watchers to start and which to stop to go from `running` to `wanted`.
pub fn plan(running: &BTreeSet<ObjectKey>, wanted: &BTreeSet<ObjectKey>) -> (Vec<ObjectKey>, Vec<ObjectKey>) {
    (wanted.difference(running).cloned().collect(), running.difference(wanted).cloned().collect())
}

/// Open while its Secret is wanted. A stopped watcher may still be inside a
/// blocking read; closing the gate under its lock, before the removal is
/// sent, keeps anything it reads later from putting the Secret back.
type Gate = Arc<Mutex<bool>>;

struct NamedSink {
    key: ObjectKey,
    tx: Sender<Event>,
    gate: Gate,
}

impl Sink<Secret> for NamedSink {
    fn deliver(&mut self, change: Change<Secret>) -> bool {
        let secret = match change {
            Change::Replace(items) => items.into_iter().find(|s| s.metadata.name == self.key.name),
            Change::Upsert(secret) => Some(secret),
            Change::Delete(_) => None,
        };
        let open = self.gate.lock().unwrap_or_else(PoisonError::into_inner);
        *open && self.tx.send(Event::NamedSecret(self.key.clone(), secret)).is_ok()
    }
}

struct Running {
    stop: Stop,
    gate: Gate,
}

impl Running {
    /// Stops the watcher; the cache forgets the Secret through `events`.
    fn end(self, key: ObjectKey, events: &Sender<Event>) {
        let mut open = self.gate.lock().unwrap_or_else(PoisonError::into_inner);
        *open = false;
        let _ = events.send(Event::NamedSecret(key, None));
        drop(open);
        self.stop.stop();
    }
}

/// Starts the thread that follows the wanted Secrets; it ends, stopping its
/// watchers, on `stop` or when the returned sender is dropped.
pub fn spawn(client: Arc<ApiClient>, events: Sender<Event>, stop: Stop) -> std::io::Result<(Sender<BTreeSet<ObjectKey>>, JoinHandle<()>)> {
    let (wanted_tx, wanted_rx) = crossbeam_channel::unbounded();
    let running: Arc<Mutex<BTreeMap<ObjectKey, Running>>> = Arc::default();
    let on_stop = Arc::clone(&running);
    stop.on_stop(move || {
        for watcher in on_stop.lock().unwrap_or_else(PoisonError::into_inner).values() {
            watcher.stop.stop();
        }
    });
    let handle = std::thread::Builder::new().name("named-secrets".into()).spawn(move || follow(&wanted_rx, &client, &events, &running, &stop))?;
    Ok((wanted_tx, handle))
}

fn follow(
    wanted_rx: &Receiver<BTreeSet<ObjectKey>>,
    client: &Arc<ApiClient>,
    events: &Sender<Event>,
    running: &Mutex<BTreeMap<ObjectKey, Running>>,
    stop: &Stop,
) {
    while let Ok(mut wanted) = wanted_rx.recv() {
        // Only the latest set matters.
        while let Ok(newer) = wanted_rx.try_recv() {
            wanted = newer;
        }
        let mut running = running.lock().unwrap_or_else(PoisonError::into_inner);
        if stop.is_stopped() {
            break;
        }
        let (start, end) = plan(&running.keys().cloned().collect(), &wanted);
        for key in end {
            if let Some(watcher) = running.remove(&key) {
                log::info!("secret {key}: no longer named by an annotation; stopped following it");
                watcher.end(key, events);
            }
        }
        for key in start {
            let watcher = Running { stop: Stop::new(), gate: Arc::new(Mutex::new(true)) };
            let target = Target {
                resource: &NAMED_SECRET,
                namespace: Some(key.namespace.clone()),
                label_selector: None,
                field_selector: Some(format!("metadata.name={}", key.name)),
            };
            let sink = NamedSink { key: key.clone(), tx: events.clone(), gate: Arc::clone(&watcher.gate) };
            match watcher::spawn_watch(target, Arc::clone(client), sink, None, watcher.stop.clone()) {
                Ok(_) => drop(running.insert(key, watcher)),
                Err(e) => log::error!("secret {key}: cannot start its watcher: {e}; it stays unavailable"),
            }
        }
    }
    for (key, watcher) in std::mem::take(&mut *running.lock().unwrap_or_else(PoisonError::into_inner)) {
        watcher.end(key, events);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(names: &[&str]) -> BTreeSet<ObjectKey> {
        names.iter().map(|n| ObjectKey::new("ns", n)).collect()
    }

    #[test]
    fn plan_starts_the_new_names_and_stops_the_dropped_ones() {
        let (start, end) = plan(&keys(&["a", "b"]), &keys(&["b", "c"]));
        assert_eq!(start, [ObjectKey::new("ns", "c")]);
        assert_eq!(end, [ObjectKey::new("ns", "a")]);
        let (start, end) = plan(&keys(&["a"]), &keys(&["a"]));
        assert!(start.is_empty() && end.is_empty());
    }

    #[test]
    fn a_closed_gate_delivers_nothing_more() {
        let (tx, rx) = crossbeam_channel::unbounded();
        let gate = Arc::new(Mutex::new(true));
        let key = ObjectKey::new("ns", "creds");
        let mut sink = NamedSink { key: key.clone(), tx: tx.clone(), gate: Arc::clone(&gate) };
        let secret = Secret { metadata: crate::kube::objects::ObjectMeta { namespace: "ns".into(), name: "creds".into(), ..Default::default() }, ..Default::default() };
        assert!(sink.deliver(Change::Replace(vec![secret.clone()])));
        assert!(matches!(rx.try_recv(), Ok(Event::NamedSecret(k, Some(_))) if k == key));
        assert!(sink.deliver(Change::Replace(vec![])));
        assert!(matches!(rx.try_recv(), Ok(Event::NamedSecret(k, None)) if k == key), "an empty list means absent");
        Running { stop: Stop::new(), gate }.end(key.clone(), &tx);
        assert!(matches!(rx.try_recv(), Ok(Event::NamedSecret(k, None)) if k == key));
        assert!(!sink.deliver(Change::Upsert(secret)), "a late read after the end is dropped");
        assert!(rx.try_recv().is_err());
    }
}
