//! The object cache: one thread owns every watched object, applies watch
//! events, compiles the route table and certificate set, and publishes them.
//!
//! Readers (proxy workers, the TLS resolver, the admin server) call
//! [`Current::load`], which clones an `Arc` under a read lock held for a few
//! nanoseconds; they never hold the lock while they work, and they see either
//! the old generation or the new one, never a mix.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use crate::kube::objects::{EndpointSlice, Ingress, IngressClass, ObjectKey, Secret, Service};
use crate::routes::RouteTable;
use crate::tls::CertSet;

/// Every watched object, by kind, at one instant.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    pub ingresses: BTreeMap<ObjectKey, Arc<Ingress>>,
    pub ingress_classes: BTreeMap<ObjectKey, Arc<IngressClass>>,
    pub services: BTreeMap<ObjectKey, Arc<Service>>,
    pub endpoint_slices: BTreeMap<ObjectKey, Arc<EndpointSlice>>,
    pub secrets: BTreeMap<ObjectKey, Arc<Secret>>,
}

/// What the cache thread compiled from one snapshot.
#[derive(Default)]
pub struct Generation {
    pub snapshot: Arc<Snapshot>,
    pub routes: Arc<RouteTable>,
    pub certs: Arc<CertSet>,
}

/// The published generation.
#[derive(Default)]
pub struct Current {
    generation: RwLock<Arc<Generation>>,
}

impl Current {
    pub fn new(generation: Generation) -> Current {
        Current { generation: RwLock::new(Arc::new(generation)) }
    }

    pub fn load(&self) -> Arc<Generation> {
        match self.generation.read() {
            Ok(guard) => Arc::clone(&guard),
            // A writer never panics while holding the lock, but a poisoned
            // lock still holds a complete generation: keep serving it.
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    pub fn store(&self, generation: Generation) {
        let next = Arc::new(generation);
        match self.generation.write() {
            Ok(mut guard) => *guard = next,
            Err(poisoned) => *poisoned.into_inner() = next,
        }
    }
}
