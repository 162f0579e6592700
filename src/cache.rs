//! The object cache: one thread owns every watched object, applies watch
//! events, compiles the route table and certificate set, and publishes them.
//!
//! Readers (connection threads, the TLS resolver, the admin server) call
//! [`Current::load`], which clones an `Arc` under a read lock held for a few
//! nanoseconds; they never hold the lock while they work, and they see either
//! the old generation or the new one, never a mix.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::Receiver;

use crate::kube::metrics::WatchMetrics;
use crate::kube::objects::ObjectKey;
use crate::kube::{Event, Kind};
use crate::routes::{self, RouteConfig, RouteTable};
use crate::store::{Snapshot, Store};
use crate::tls::CertSet;

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

/// The flags a generation is compiled with.
#[derive(Debug, Clone, Default)]
pub struct CompileConfig {
    pub routes: RouteConfig,
    /// `--default-ssl-certificate`.
    pub default_certificate: Option<ObjectKey>,
}

/// Compiles routes and certificates from one snapshot: the one way a
/// generation is made, by the cache thread and by tests alike. The previous
/// generation is passed so certificates that stopped parsing stay in service.
pub fn compile(snapshot: &Arc<Snapshot>, config: &CompileConfig, previous: &Generation) -> Generation {
    let served = routes::served_ingresses(snapshot, &config.routes);
    let routes = routes::compile_served(snapshot, &served, &config.routes);
    let certs = CertSet::compile(snapshot, &served, config.default_certificate.as_ref(), &previous.certs);
    Generation { snapshot: Arc::clone(snapshot), routes: Arc::new(routes), certs: Arc::new(certs) }
}

/// What the cache thread reports about itself.
#[derive(Debug)]
pub struct CacheStatus {
    /// Every kind has completed its first list: `/readyz` may say 200.
    pub synced: AtomicBool,
    /// Until then, the kinds still waiting for their first list, which
    /// `/readyz` names.
    waiting: Mutex<Vec<Kind>>,
    pub compiles: AtomicU64,
    pub last_compile_micros: AtomicU64,
    /// Unix time (seconds) of the last applied change.
    pub last_change_unix: AtomicU64,
}

impl Default for CacheStatus {
    fn default() -> Self {
        CacheStatus {
            synced: AtomicBool::new(false),
            waiting: Mutex::new(Kind::ALL.to_vec()),
            compiles: AtomicU64::new(0),
            last_compile_micros: AtomicU64::new(0),
            last_change_unix: AtomicU64::new(0),
        }
    }
}

impl CacheStatus {
    /// The kinds still waiting for their first list; empty once synced.
    pub fn waiting(&self) -> Vec<Kind> {
        if self.synced.load(Ordering::Relaxed) {
            return Vec::new();
        }
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

/// The cache thread: applies events in batches (everything already queued is
/// applied before one compile, so a relist of thousands of objects costs one
/// compile), then publishes. Ends when every sender is gone.
pub fn spawn(
    rx: Receiver<Event>,
    current: Arc<Current>,
    config: CompileConfig,
    status: Arc<CacheStatus>,
    watch_metrics: Arc<WatchMetrics>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("cache".into())
        .spawn(move || {
            let mut store = Store::default();
            while let Ok(first) = rx.recv() {
                store.apply(first);
                while let Ok(next) = rx.try_recv() {
                    store.apply(next);
                }
                let started = Instant::now();
                let previous = current.load();
                for kind in Kind::ALL {
                    watch_metrics.set_objects(kind, store.snapshot().count(kind));
                }
                let generation = compile(store.snapshot(), &config, &previous);
                current.store(generation);
                status.last_compile_micros.store(started.elapsed().as_micros() as u64, Ordering::Relaxed);
                status.compiles.fetch_add(1, Ordering::Relaxed);
                let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
                status.last_change_unix.store(now, Ordering::Relaxed);
                if !status.synced.load(Ordering::Relaxed) {
                    *status.waiting.lock().unwrap_or_else(PoisonError::into_inner) = store.waiting();
                }
                if store.synced() && !status.synced.swap(true, Ordering::Relaxed) {
                    log::info!("every kind listed: ready");
                }
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::objects::{Ingress, ObjectMeta};
    use crate::kube::Object;

    fn ingress(ns: &str, name: &str) -> Object {
        Object::Ingress(Ingress {
            metadata: ObjectMeta { namespace: ns.into(), name: name.into(), ..Default::default() },
            ..Default::default()
        })
    }

    #[test]
    fn the_cache_thread_batches_and_publishes() {
        let (tx, rx) = crossbeam_channel::unbounded();
        let current = Arc::new(Current::default());
        let status = Arc::new(CacheStatus::default());
        for kind in Kind::ALL {
            tx.send(Event::Replace(kind, vec![])).expect("send");
        }
        tx.send(Event::Upsert(ingress("a", "one"))).expect("send");
        let metrics = Arc::new(WatchMetrics::new());
        let handle = spawn(rx, Arc::clone(&current), CompileConfig::default(), Arc::clone(&status), metrics).expect("thread");
        drop(tx);
        handle.join().expect("cache thread ends when senders are gone");
        assert!(status.synced.load(Ordering::Relaxed));
        assert_eq!(current.load().snapshot.ingresses.len(), 1);
        assert!(status.compiles.load(Ordering::Relaxed) >= 1);
    }
}
