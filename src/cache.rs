//! The object cache: one thread owns every watched object, applies watch
//! events, compiles the route table and certificate set, and publishes them.
//!
//! Readers (connection threads, the TLS resolver, the admin server) call
//! [`Current::load`], which clones an `Arc` under a read lock held for a few
//! nanoseconds; they never hold the lock while they work, and they see either
//! the old generation or the new one, never a mix.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use std::collections::BTreeSet;

use crossbeam_channel::{Receiver, Sender};

use crate::kube::metrics::WatchMetrics;
use crate::notify::Notify;
use crate::annotations;
use crate::kube::objects::{Ingress, ObjectKey};
use crate::kube::{Event, Kind, Object};
use crate::prometheus::{self, Type};
use crate::routes::{self, Changes, RouteCompiler, RouteConfig, RouteTable};
use crate::store::{Snapshot, Store};
use crate::tls::client_auth::{ClientAuth, ClientAuthSet};
use crate::tls::{CertSet, LiveTls};

/// What the cache thread compiled from one snapshot.
#[derive(Default)]
pub struct Generation {
    pub snapshot: Arc<Snapshot>,
    pub routes: Arc<RouteTable>,
    pub certs: Arc<CertSet>,
    /// Client-certificate settings by host (`auth-tls-*`).
    pub client_auth: Arc<ClientAuthSet>,
}

/// The published generation.
#[derive(Default)]
pub struct Current {
    generation: RwLock<Arc<Generation>>,
    /// Notified on every publish, and when the cache first becomes synced.
    published: Arc<Notify>,
}

impl Current {
    pub fn new(generation: Generation) -> Current {
        Current { generation: RwLock::new(Arc::new(generation)), published: Arc::default() }
    }

    /// What a thread that acts on new generations waits on.
    pub fn published(&self) -> &Arc<Notify> {
        &self.published
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
        self.published.notify();
    }
}

impl LiveTls for Current {
    fn certificate(&self, server_name: Option<&str>) -> Option<Arc<rustls::sign::CertifiedKey>> {
        self.load().certs.resolve(server_name)
    }

    fn client_auth(&self, server_name: Option<&str>) -> Option<Arc<ClientAuth>> {
        self.load().client_auth.for_server_name(server_name).cloned()
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
    let client_auth = ClientAuthSet::compile(snapshot, &served, &previous.client_auth);
    Generation { snapshot: Arc::clone(snapshot), routes: Arc::new(routes), certs: Arc::new(certs), client_auth: Arc::new(client_auth) }
}

/// The cache thread's compiler: routes are kept up to date by parts (see
/// [`RouteCompiler`]), certificates and client-certificate settings are
/// compiled again only when an Ingress with TLS entries or client-certificate
/// annotations changed (a change to a Secret they or
/// `--default-ssl-certificate` name updates only that Secret's hosts), and
/// whatever a change did not touch is shared with the previous generation.
/// Equal to [`compile`] on the same snapshot (the property test below
/// checks it).
#[derive(Debug)]
pub struct Compiler {
    config: CompileConfig,
    routes: Option<RouteCompiler>,
}

impl Compiler {
    pub fn new(config: CompileConfig) -> Compiler {
        Compiler { config, routes: None }
    }

    /// The generation for `snapshot`, which differs from the one `previous`
    /// was made from by `changes`.
    pub fn update(&mut self, snapshot: &Arc<Snapshot>, changes: &Changes, previous: &Generation) -> Generation {
        let (compiler, first, tls_changed) = match &mut self.routes {
            Some(compiler) => {
                let tls_changed = compiler.update(snapshot, changes);
                (compiler, false, tls_changed)
            }
            None => (self.routes.insert(RouteCompiler::new(snapshot, &self.config.routes)), true, true),
        };
        let routes = if first || changes.touches_routes() { Arc::new(compiler.table().clone()) } else { Arc::clone(&previous.routes) };
        let default_certificate = self.config.default_certificate.as_ref();
        let secret_in_use = changes.secrets.iter().any(|key| previous.certs.names(key) || default_certificate == Some(key));
        let ca_in_use = changes.secrets.iter().any(|key| previous.client_auth.names_secret(key));
        let (certs, client_auth) = if tls_changed {
            let served = compiler.tls_ingresses(snapshot);
            let certs = CertSet::compile(snapshot, &served, default_certificate, &previous.certs);
            (Arc::new(certs), Arc::new(ClientAuthSet::compile(snapshot, &served, &previous.client_auth)))
        } else {
            let certs = if secret_in_use { Arc::new(previous.certs.update_secrets(snapshot, &changes.secrets, default_certificate)) } else { Arc::clone(&previous.certs) };
            let client_auth = if ca_in_use { Arc::new(previous.client_auth.update_secrets(snapshot, &changes.secrets)) } else { Arc::clone(&previous.client_auth) };
            (certs, client_auth)
        };
        Generation { snapshot: Arc::clone(snapshot), routes, certs, client_auth }
    }

    /// The Secrets the served Ingresses' annotations name.
    pub fn named_secrets(&self) -> BTreeSet<ObjectKey> {
        self.routes.iter().flat_map(RouteCompiler::named_secrets).cloned().collect()
    }

    /// Logs the annotations ingressd does not apply: once the cache is
    /// synced, one summary line per annotation; after that, one line per
    /// served Ingress that gains or changes one. Ingresses of other classes
    /// are not ours to judge, and unchanged annotations were reported already.
    fn report_annotations(&self, previous: &Snapshot, snapshot: &Snapshot, changes: &Changes, just_synced: bool) {
        let Some(compiler) = &self.routes else { return };
        let served = |ingress: &&Arc<Ingress>| compiler.serves(&ingress.metadata.key());
        if just_synced {
            let ingresses = snapshot.ingresses.values().filter(served).map(|i| &i.metadata.annotations);
            for (key, (count, support)) in annotations::summary(ingresses) {
                log::warn!("{key} on {count} served Ingress(es) is {}: {}", support.label(), support.reason().unwrap_or_default());
            }
            return;
        }
        let changed: Box<dyn Iterator<Item = &Arc<Ingress>>> = if changes.everything {
            Box::new(snapshot.ingresses.values())
        } else {
            Box::new(changes.ingresses.iter().filter_map(|key| snapshot.ingresses.get(key)))
        };
        for ingress in changed.filter(|i| served(i)) {
            let old = previous.ingresses.get(&ingress.metadata.key()).map(|i| &i.metadata.annotations);
            for (key, support) in annotations::newly_unapplied(old, &ingress.metadata.annotations) {
                log::warn!("ingress {}: {key} is {}: {}", ingress.metadata.key(), support.label(), support.reason().unwrap_or_default());
            }
        }
    }
}

/// Applies `events` in order, noting in `changes` what each touches.
pub fn apply_all(store: &mut Store, events: impl IntoIterator<Item = Event>, changes: &mut Changes) {
    for event in events {
        record(store.snapshot(), &event, changes);
        store.apply(event);
    }
}

/// Notes what `event` touches, before the store applies it (an
/// EndpointSlice that moves to another Service touches both).
fn record(snapshot: &Snapshot, event: &Event, changes: &mut Changes) {
    let object = match event {
        Event::Replace(..) => {
            changes.everything = true;
            return;
        }
        Event::NamedSecret(key, _) => {
            changes.secrets.insert(key.clone());
            return;
        }
        Event::Upsert(object) | Event::Delete(object) => object,
    };
    match object {
        Object::Ingress(ingress) => drop(changes.ingresses.insert(ingress.metadata.key())),
        Object::IngressClass(_) => changes.everything = true,
        Object::Service(service) => drop(changes.services.insert(service.metadata.key())),
        Object::EndpointSlice(slice) => {
            let old = snapshot.endpoint_slices.get(&slice.metadata.key());
            for owner in [Some(slice), old.map(|o| o.as_ref())].into_iter().flatten() {
                if let Some(service) = owner.service_name() {
                    changes.services.insert(ObjectKey::new(&owner.metadata.namespace, service));
                }
            }
        }
        Object::Secret(secret) => drop(changes.secrets.insert(secret.metadata.key())),
    }
}

/// Upper bounds of the CPU-per-change histogram, in seconds.
const CPU_BUCKETS: [f64; 10] = [0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.25, 1.0];

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
    /// The cache thread's own CPU time per batch of changes (applying,
    /// compiling, publishing), from its thread CPU clock: `/proc` ticks every
    /// 10 ms, far coarser than one change.
    cpu_buckets: [AtomicU64; CPU_BUCKETS.len()],
    cpu_count: AtomicU64,
    cpu_nanos: AtomicU64,
}

impl CacheStatus {
    fn observe_cpu(&self, cpu: Duration) {
        let seconds = cpu.as_secs_f64();
        for (bucket, bound) in self.cpu_buckets.iter().zip(CPU_BUCKETS) {
            if seconds <= bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.cpu_count.fetch_add(1, Ordering::Relaxed);
        self.cpu_nanos.fetch_add(cpu.as_nanos() as u64, Ordering::Relaxed);
    }

    /// `ingressd_cache_change_cpu_seconds`, the histogram of CPU per batch.
    pub fn render_cpu(&self, out: &mut String) {
        let name = "ingressd_cache_change_cpu_seconds";
        prometheus::header(out, name, Type::Histogram, "Cache thread CPU time per batch of changes (apply, compile, publish).");
        let bucket = format!("{name}_bucket");
        for (count, bound) in self.cpu_buckets.iter().zip(CPU_BUCKETS) {
            prometheus::sample(out, &bucket, &[("le", &bound.to_string())], count.load(Ordering::Relaxed));
        }
        let count = self.cpu_count.load(Ordering::Relaxed);
        prometheus::sample(out, &bucket, &[("le", "+Inf")], count);
        prometheus::sample(out, &format!("{name}_sum"), &[], self.cpu_nanos.load(Ordering::Relaxed) as f64 / 1e9);
        prometheus::sample(out, &format!("{name}_count"), &[], count);
    }
}

/// Hands memory freed after a (re)list back to the OS. Decoding a list
/// allocates every page's JSON tree across the watcher threads' malloc
/// arenas; glibc keeps what they freed, so without this the RSS after sync
/// counts the decoding peak, not what the cache holds.
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn malloc_trim(pad: usize) -> i32;
        }
        // SAFETY: malloc_trim only returns free heap pages to the kernel.
        unsafe {
            malloc_trim(0);
        }
    }
}

/// This thread's CPU time so far (`CLOCK_THREAD_CPUTIME_ID`). Declared here
/// rather than pulling in the libc crate for one function, as `shutdown`
/// does for `signal`; std already links the C library it lives in.
fn thread_cpu_time() -> Duration {
    #[repr(C)]
    struct Timespec {
        seconds: i64,
        nanos: i64,
    }
    extern "C" {
        fn clock_gettime(clock: i32, time: *mut Timespec) -> i32;
    }
    const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
    let mut time = Timespec { seconds: 0, nanos: 0 };
    // SAFETY: `time` is a valid, writable timespec (64-bit time_t and long
    // on the 64-bit Linux targets ingressd builds for).
    if unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut time) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(time.seconds.max(0) as u64, time.nanos.clamp(0, 999_999_999) as u32)
}

impl Default for CacheStatus {
    fn default() -> Self {
        CacheStatus {
            synced: AtomicBool::new(false),
            waiting: Mutex::new(Kind::ALL.to_vec()),
            compiles: AtomicU64::new(0),
            last_compile_micros: AtomicU64::new(0),
            last_change_unix: AtomicU64::new(0),
            cpu_buckets: Default::default(),
            cpu_count: AtomicU64::new(0),
            cpu_nanos: AtomicU64::new(0),
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

/// How long readiness waits, once every kind is listed, for the first read
/// of the Secrets annotations name: routes that need one fail closed (502,
/// 503) until it arrives, so a new replica waits for them before it takes
/// traffic, but a Secret its watch cannot read (RBAC, an API error) must not
/// keep it unready for ever.
const NAMED_SECRETS_GRACE: Duration = Duration::from_secs(10);

fn become_ready(status: &CacheStatus, current: &Current) {
    if !status.synced.swap(true, Ordering::Relaxed) {
        log::info!("every kind listed: ready");
        // Readiness is an input of the status publisher too.
        current.published().notify();
    }
}

/// The cache thread: applies events in batches (everything already queued is
/// applied before one compile, so a relist of thousands of objects costs one
/// compile), then publishes, and tells `wanted_secrets` (see
/// [`crate::kube::named_secrets`]) whenever the set of Secrets the served
/// Ingresses' annotations name changes. Ends when every sender is gone.
pub fn spawn(
    rx: Receiver<Event>,
    current: Arc<Current>,
    config: CompileConfig,
    status: Arc<CacheStatus>,
    watch_metrics: Arc<WatchMetrics>,
    wanted_secrets: Sender<BTreeSet<ObjectKey>>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("cache".into())
        .spawn(move || {
            let mut store = Store::default();
            let mut compiler = Compiler::new(config);
            let mut named = BTreeSet::new();
            // Set while every kind is listed but named Secrets are not read yet.
            let mut secrets_deadline: Option<Instant> = None;
            // The annotations' summary is logged once, on the first compile with every kind.
            let mut summarised = false;
            loop {
                let received = match secrets_deadline {
                    Some(deadline) => rx.recv_deadline(deadline).map_err(|e| e.is_timeout()),
                    None => rx.recv().map_err(|_| false),
                };
                let first = match received {
                    Ok(event) => event,
                    Err(true) => {
                        let unheard: Vec<String> = store.named_unheard(&named).iter().map(|key| key.to_string()).collect();
                        log::warn!(
                            "secrets {} named by annotations not read within {} s of the first lists; ready without them (their routes fail closed until they arrive)",
                            unheard.join(", "),
                            NAMED_SECRETS_GRACE.as_secs()
                        );
                        secrets_deadline = None;
                        become_ready(&status, &current);
                        continue;
                    }
                    Err(false) => break,
                };
                let cpu_before = thread_cpu_time();
                let mut changes = Changes::default();
                apply_all(&mut store, std::iter::once(first).chain(rx.try_iter()), &mut changes);
                let started = Instant::now();
                let previous = current.load();
                for kind in Kind::ALL {
                    watch_metrics.set_objects(kind, store.snapshot().count(kind));
                }
                let generation = compiler.update(store.snapshot(), &changes, &previous);
                if store.synced() {
                    compiler.report_annotations(&previous.snapshot, store.snapshot(), &changes, !summarised);
                    summarised = true;
                }
                current.store(generation);
                let wanted = compiler.named_secrets();
                if wanted != named {
                    // Nobody follows them in tests that run the cache alone.
                    let _ = wanted_secrets.send(wanted.clone());
                    named = wanted;
                }
                status.last_compile_micros.store(started.elapsed().as_micros() as u64, Ordering::Relaxed);
                status.compiles.fetch_add(1, Ordering::Relaxed);
                status.observe_cpu(thread_cpu_time().saturating_sub(cpu_before));
                let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
                status.last_change_unix.store(now, Ordering::Relaxed);
                if !status.synced.load(Ordering::Relaxed) {
                    *status.waiting.lock().unwrap_or_else(PoisonError::into_inner) = store.waiting();
                }
                if store.synced() && !status.synced.load(Ordering::Relaxed) {
                    let unheard = store.named_unheard(&named);
                    if unheard.is_empty() {
                        secrets_deadline = None;
                        become_ready(&status, &current);
                    } else if secrets_deadline.is_none() {
                        log::info!("every kind listed; waiting for {} secrets named by annotations", unheard.len());
                        secrets_deadline = Some(Instant::now() + NAMED_SECRETS_GRACE);
                    }
                }
                if changes.everything {
                    release_free_memory();
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
    fn readiness_waits_for_the_secrets_annotations_name() {
        let json = r#"{"metadata": {"namespace": "ns", "name": "private", "annotations": {
            "nginx.ingress.kubernetes.io/auth-type": "basic", "nginx.ingress.kubernetes.io/auth-secret": "creds"}},
          "spec": {"ingressClassName": "ingressd", "rules": [{"host": "private.example", "http": {"paths": [
            {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}}"#;
        let private: Ingress = serde_json::from_str(json).expect("an Ingress");
        let (tx, rx) = crossbeam_channel::unbounded();
        for kind in Kind::ALL {
            tx.send(Event::Replace(kind, vec![])).expect("send");
        }
        tx.send(Event::Upsert(Object::Ingress(private))).expect("send");
        let current = Arc::new(Current::default());
        let status = Arc::new(CacheStatus::default());
        let (wanted_tx, wanted_rx) = crossbeam_channel::unbounded();
        let config = CompileConfig { routes: RouteConfig { ingress_class: "ingressd".into(), ..Default::default() }, ..Default::default() };
        let handle = spawn(rx, Arc::clone(&current), config, Arc::clone(&status), Arc::new(WatchMetrics::new()), wanted_tx).expect("thread");
        let key = ObjectKey::new("ns", "creds");
        let wanted = wanted_rx.recv_timeout(Duration::from_secs(5)).expect("the cache asks for the named Secret");
        assert!(wanted.contains(&key), "{wanted:?}");
        let published = current.published().version();
        assert!(!status.synced.load(Ordering::Relaxed), "every kind is listed, but the Secret is not read yet");
        tx.send(Event::NamedSecret(key, None)).expect("send");
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut seen = published;
        while !status.synced.load(Ordering::Relaxed) && Instant::now() < deadline {
            seen = current.published().wait_past(seen, Duration::from_millis(100));
        }
        assert!(status.synced.load(Ordering::Relaxed), "ready once the Secret's watch answered, even that it is absent");
        drop(tx);
        handle.join().expect("cache thread ends when senders are gone");
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
        let (wanted_secrets, _) = crossbeam_channel::unbounded();
        let handle = spawn(rx, Arc::clone(&current), CompileConfig::default(), Arc::clone(&status), metrics, wanted_secrets).expect("thread");
        drop(tx);
        handle.join().expect("cache thread ends when senders are gone");
        assert!(status.synced.load(Ordering::Relaxed));
        assert_eq!(current.load().snapshot.ingresses.len(), 1);
        assert!(status.compiles.load(Ordering::Relaxed) >= 1);
    }

    /// Incremental equals full: random event sequences applied through
    /// [`Compiler::update`] give, after every batch, the same routes (in
    /// match order, with their backends), the same conflict winners and the
    /// same certificates as [`compile`] of the same snapshot. A seeded
    /// generator, so a failure names the seed and step that reproduce it.
    #[test]
    fn incremental_compiles_equal_full_compiles() {
        use crate::kube::backoff::XorShift;
        use crate::routes::{PortRef, UpstreamMode};

        let certs = [random_cert(&["h0.test", "*.w.test"]), random_cert(&["h1.test"])];
        // (canaries attached, rewriting routes, regex paths left out) seen, so
        // the generator is known to reach them.
        let mut reached = (0, 0, 0, 0);
        for seed in 1..=40u64 {
            let mut rng = XorShift::new(seed);
            let routes = RouteConfig {
                ingress_class: "ingressd".into(),
                controller_name: "ingressd.io/c".into(),
                watch_ingress_without_class: rng.range(0, 2) == 0,
                default_backend_service: (rng.range(0, 2) == 0).then(|| (ObjectKey::new("a", "s0"), PortRef::Number(80))),
                upstream_mode: if rng.range(0, 4) == 0 { UpstreamMode::ClusterIp } else { UpstreamMode::Endpoints },
            };
            let config = CompileConfig { routes, default_certificate: (rng.range(0, 2) == 0).then(|| ObjectKey::new("a", "tls0")) };
            let mut store = Store::default();
            let mut compiler = Compiler::new(config.clone());
            let mut current = Arc::new(Generation::default());
            for step in 0..150 {
                let mut changes = Changes::default();
                let events: Vec<Event> = (0..rng.range(1, 4)).map(|_| random_event(&mut rng, &certs)).collect();
                apply_all(&mut store, events, &mut changes);
                let incremental = compiler.update(store.snapshot(), &changes, &current);
                let full = compile(store.snapshot(), &config, &current);
                assert_eq!(dump(&incremental), dump(&full), "seed {seed}, step {step}, after {changes:?}");
                let routes = incremental.routes.routes();
                reached.0 += routes.iter().filter(|r| r.canary.is_some()).count();
                reached.1 += routes.iter().filter(|r| r.rewrite.is_some()).count();
                reached.2 += incremental.routes.invalid_regex_paths();
                reached.3 += routes.iter().filter(|r| r.policy.as_ref().is_some_and(|p| p.www_redirect.is_some())).count();
                current = Arc::new(incremental);
            }
        }
        assert!(reached.0 > 100 && reached.1 > 100 && reached.2 > 100 && reached.3 > 100, "the generator must reach canaries, rewrites, bad regexes and www redirects: {reached:?}");
    }

    /// Untouched hosts are shared with the previous generation, and a route
    /// keeps its round-robin position when its Service's endpoints change.
    #[test]
    fn new_generations_share_untouched_hosts_and_keep_round_robin_positions() {
        use serde_json::json;
        let ingress = |name: &str, host: &str, service: &str| {
            Object::Ingress(serde_json::from_value(json!({"metadata": {"namespace": "a", "name": name}, "spec": {"ingressClassName": "ingressd", "rules": [
                {"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {"service": {"name": service, "port": {"number": 80}}}}]}}]}})).expect("ingress"))
        };
        let service = |name: &str| Object::Service(serde_json::from_value(json!({"metadata": {"namespace": "a", "name": name}, "spec": {"ports": [{"port": 80}]}})).expect("service"));
        let slice = |service: &str, address: &str| {
            Object::EndpointSlice(serde_json::from_value(json!({"metadata": {"namespace": "a", "name": service, "labels": {"kubernetes.io/service-name": service}},
                "ports": [{"port": 8080}], "endpoints": [{"addresses": [address]}]})).expect("slice"))
        };
        let config = CompileConfig { routes: RouteConfig { ingress_class: "ingressd".into(), ..Default::default() }, default_certificate: None };
        let mut store = Store::default();
        let mut compiler = Compiler::new(config);
        let mut apply = |events: Vec<Event>, previous: &Generation| {
            let mut changes = Changes::default();
            apply_all(&mut store, events, &mut changes);
            compiler.update(store.snapshot(), &changes, previous)
        };
        let first = apply(
            vec![Event::Replace(Kind::Ingress, vec![ingress("one", "one.test", "s1"), ingress("two", "two.test", "s2")]), Event::Upsert(service("s1")), Event::Upsert(service("s2"))],
            &Generation::default(),
        );
        let position = |generation: &Generation, host: &str| generation.routes.lookup(host, "/").expect("routed").next_upstream.load(Ordering::Relaxed);
        for _ in 0..3 {
            first.routes.lookup("one.test", "/").expect("routed").next_upstream.fetch_add(1, Ordering::Relaxed);
        }
        let second = apply(vec![Event::Upsert(slice("s2", "10.0.0.2"))], &first);
        assert!(std::ptr::eq(first.routes.lookup("one.test", "/").expect("one"), second.routes.lookup("one.test", "/").expect("one")), "an untouched host is shared");
        assert_eq!(position(&second, "one.test"), 3);
        let third = apply(vec![Event::Upsert(slice("s1", "10.0.0.1"))], &second);
        assert_eq!(third.routes.lookup("one.test", "/").expect("one").ready_upstreams(), 1, "the new endpoint is used");
        assert_eq!(position(&third, "one.test"), 3, "the position survives an endpoint change");
        let fourth = apply(vec![Event::Upsert(ingress("three", "one.test", "s2"))], &third);
        assert_eq!(position(&fourth, "one.test"), 3, "and a recompile of its host");
    }

    /// A change to Secrets alone (a label, a renewal, a broken version, a
    /// deletion, a fix, the default certificate's Secret) updates only the
    /// hosts those Secrets serve, into what a full compile of the same
    /// snapshot gives: the same certificates, the same rejected Secrets.
    #[test]
    fn secret_changes_update_their_hosts_as_a_full_compile_would() {
        use serde_json::json;
        let ingress = |name: &str, host: &str, secret: &str| {
            Object::Ingress(serde_json::from_value(json!({"metadata": {"namespace": "a", "name": name, "creationTimestamp": "2024-01-01T00:00:00Z"},
                "spec": {"ingressClassName": "ingressd", "tls": [{"hosts": [host], "secretName": secret}], "rules": [{"host": host}]}})).expect("ingress"))
        };
        let secret = |name: &str, (cert, key): &(String, String), label: &str| {
            Object::Secret(serde_json::from_value(json!({"metadata": {"namespace": "a", "name": name, "labels": {"label": label}}, "type": "kubernetes.io/tls",
                "data": {"tls.crt": base64(cert.as_bytes()), "tls.key": base64(key.as_bytes())}})).expect("secret"))
        };
        let [a, b, c, d] = [&["one.test"][..], &["one.test"], &["two.test"], &["default.test"]].map(random_cert);
        let broken = (b.0.clone(), a.1.clone());
        let leaf = |cert: &(String, String)| Some(crate::tls::certs::parse_chain(cert.0.as_bytes()).expect("pem")[0].to_vec());
        let config = CompileConfig { routes: RouteConfig { ingress_class: "ingressd".into(), ..Default::default() }, default_certificate: Some(ObjectKey::new("a", "fallback")) };
        /// A step's name, its events, the certificates then served for
        /// one.test, two.test and the default, and the Secrets rejected.
        type Step<'a> = (&'a str, Vec<Event>, [&'a (String, String); 3], &'a [&'a str]);
        let steps: Vec<Step> = vec![
            (
                "start",
                vec![
                    Event::Replace(Kind::Ingress, vec![ingress("i1", "one.test", "one"), ingress("i2", "two.test", "two")]),
                    Event::Upsert(secret("one", &a, "0")),
                    Event::Upsert(secret("two", &c, "0")),
                    Event::Upsert(secret("fallback", &d, "0")),
                ],
                [&a, &c, &d],
                &[],
            ),
            ("a label changes", vec![Event::Upsert(secret("one", &a, "1"))], [&a, &c, &d], &[]),
            ("renewal", vec![Event::Upsert(secret("one", &b, "2"))], [&b, &c, &d], &[]),
            ("a broken version keeps the last good", vec![Event::Upsert(secret("one", &broken, "3"))], [&b, &c, &d], &["one"]),
            ("deleted: the default serves", vec![Event::Delete(secret("one", &broken, "3"))], [&d, &c, &d], &[]),
            ("created broken: still the default", vec![Event::Upsert(secret("one", &broken, "4"))], [&d, &c, &d], &["one"]),
            ("fixed", vec![Event::Upsert(secret("one", &a, "5"))], [&a, &c, &d], &[]),
            ("the default renewed", vec![Event::Upsert(secret("fallback", &b, "1"))], [&a, &c, &b], &[]),
            (
                "a host moved to a broken Secret keeps its certificate",
                vec![Event::Upsert(ingress("i2", "two.test", "moved")), Event::Upsert(secret("moved", &broken, "0"))],
                [&a, &c, &b],
                &["moved"],
            ),
            ("and keeps it through another broken version", vec![Event::Upsert(secret("moved", &broken, "1"))], [&a, &c, &b], &["moved"]),
            ("until the Secret is fixed", vec![Event::Upsert(secret("moved", &d, "2"))], [&a, &d, &b], &[]),
        ];
        let mut store = Store::default();
        let mut compiler = Compiler::new(config.clone());
        let mut current = Arc::new(Generation::default());
        for (step, events, [one, two, other], rejected) in steps {
            let mut changes = Changes::default();
            apply_all(&mut store, events, &mut changes);
            let incremental = compiler.update(store.snapshot(), &changes, &current);
            let full = compile(store.snapshot(), &config, &current);
            assert_eq!(dump(&incremental), dump(&full), "{step}");
            let rejected_names = |generation: &Generation| generation.certs.rejected().map(|(key, _)| key.name.to_string()).collect::<Vec<_>>();
            assert_eq!(rejected_names(&incremental), rejected_names(&full), "{step}");
            assert_eq!(rejected_names(&incremental), rejected, "{step}");
            let served = |host: &str| incremental.certs.resolve(Some(host)).map(|certified| certified.cert[0].to_vec());
            assert_eq!([served("one.test"), served("two.test"), served("other.test")], [leaf(one), leaf(two), leaf(other)], "{step}");
            if step == "a label changes" {
                let unchanged = current.certs.resolve(Some("one.test")).expect("served");
                assert!(Arc::ptr_eq(&unchanged, &incremental.certs.resolve(Some("one.test")).expect("served")), "unchanged data is not parsed again");
            }
            current = Arc::new(incremental);
        }
    }

    /// A change to CA Secrets alone (`auth-tls-secret`) reloads only the
    /// hosts that name them, into what a full compile gives; other hosts
    /// keep their entries, and an Ingress's hosts keep sharing one.
    #[test]
    fn ca_secret_changes_reload_only_their_hosts() {
        use serde_json::json;
        let ingress = |name: &str, hosts: &[&str], ca: &str| {
            let rules: Vec<_> = hosts.iter().map(|host| json!({"host": host})).collect();
            Object::Ingress(serde_json::from_value(json!({"metadata": {"namespace": "a", "name": name, "annotations": {"nginx.ingress.kubernetes.io/auth-tls-secret": format!("a/{ca}")}},
                "spec": {"ingressClassName": "ingressd", "rules": rules}})).expect("ingress"))
        };
        let ca = |name: &str, pem: &str, label: &str| {
            Object::Secret(serde_json::from_value(json!({"metadata": {"namespace": "a", "name": name, "labels": {"label": label}}, "data": {"ca.crt": base64(pem.as_bytes())}})).expect("secret"))
        };
        let [x, y, z] = [&["x"][..], &["y"], &["z"]].map(|names| random_cert(names).0);
        let steps: Vec<(&str, Vec<Event>, bool)> = vec![
            (
                "start",
                vec![
                    Event::Replace(Kind::Ingress, vec![ingress("i1", &["one.test", "*.w.test"], "ca1"), ingress("i2", &["two.test"], "ca2")]),
                    Event::Upsert(ca("ca1", &x, "0")),
                    Event::Upsert(ca("ca2", &y, "0")),
                ],
                true,
            ),
            ("a label changes", vec![Event::Upsert(ca("ca1", &x, "1"))], true),
            ("a new CA", vec![Event::Upsert(ca("ca1", &z, "2"))], true),
            ("no usable CA: 403", vec![Event::Upsert(ca("ca1", "garbage", "3"))], false),
            ("deleted", vec![Event::Delete(ca("ca1", "garbage", "3"))], false),
            ("back", vec![Event::Upsert(ca("ca1", &x, "4"))], true),
        ];
        let config = CompileConfig { routes: RouteConfig { ingress_class: "ingressd".into(), ..Default::default() }, default_certificate: None };
        let mut store = Store::default();
        let mut compiler = Compiler::new(config.clone());
        let mut current = Arc::new(Generation::default());
        for (step, events, usable) in steps {
            let mut changes = Changes::default();
            apply_all(&mut store, events, &mut changes);
            let incremental = compiler.update(store.snapshot(), &changes, &current);
            let full = compile(store.snapshot(), &config, &current);
            let auth = |generation: &Generation, host: &str| generation.client_auth.for_server_name(Some(host)).cloned().expect("client auth");
            for host in ["one.test", "x.w.test", "two.test"] {
                assert_eq!(auth(&incremental, host), auth(&full, host), "{step}: {host}");
            }
            assert_eq!(auth(&incremental, "one.test").usable(), usable, "{step}");
            assert!(Arc::ptr_eq(&auth(&incremental, "one.test"), &auth(&incremental, "x.w.test")), "{step}: one Ingress, one entry");
            if step != "start" {
                assert!(Arc::ptr_eq(&auth(&current, "two.test"), &auth(&incremental, "two.test")), "{step}: another CA's host is untouched");
            }
            current = Arc::new(incremental);
        }
    }

    /// Everything a generation serves, in a comparable form.
    fn dump(generation: &Generation) -> (Vec<String>, Vec<crate::routes::Conflict>, Vec<crate::tls::CertEntry>) {
        let routes = generation
            .routes
            .routes()
            .iter()
            .map(|r| {
                let canary = r.canary.as_ref().map(|c| (&c.route.ingress, &c.route.service, &c.route.service_port, &c.route.backend));
                let rewrite = r.rewrite.as_ref().map(|w| w.target());
                format!("{:?}", (&r.host, &r.path, r.path_type, &r.ingress, &r.service, &r.service_port, &r.backend, r.ssl_redirect, canary, rewrite))
            })
            .collect();
        let mut routes: Vec<String> = routes;
        routes.push(format!("invalid regex paths: {}", generation.routes.invalid_regex_paths()));
        (routes, generation.routes.conflicts(), generation.certs.entries().collect())
    }

    fn random_cert(hosts: &[&str]) -> (String, String) {
        let key = rcgen::KeyPair::generate().expect("key");
        let params = rcgen::CertificateParams::new(hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>()).expect("params");
        let cert = params.self_signed(&key).expect("self-signed");
        (cert.pem(), key.serialize_pem())
    }

    fn base64(bytes: &[u8]) -> String {
        const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
            for i in 0..4 {
                out.push(if i <= chunk.len() { char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]) } else { '=' });
            }
        }
        out
    }

    fn pick<'a, T>(rng: &mut crate::kube::backoff::XorShift, items: &'a [T]) -> &'a T {
        &items[rng.range(0, items.len() as u64) as usize]
    }

    /// One Upsert, Delete or (rarely) Replace over a small universe of
    /// names, hosts, paths and Services, so that claims collide often.
    fn random_event(rng: &mut crate::kube::backoff::XorShift, certs: &[(String, String)]) -> Event {
        use serde_json::json;
        let ns = *pick(rng, &["a", "b"]);
        let object = match rng.range(0, 10) {
            0..=3 => {
                let backend = |rng: &mut crate::kube::backoff::XorShift| {
                    let port = match rng.range(0, 4) {
                        0 => json!({"name": "http"}),
                        1 => json!({"number": 81}),
                        2 => json!({}),
                        _ => json!({"number": 80}),
                    };
                    json!({"service": {"name": *pick(rng, &["s0", "s1", "s2"]), "port": port}})
                };
                let rules: Vec<_> = (0..rng.range(0, 3))
                    .map(|_| {
                        let paths: Vec<_> = (0..rng.range(1, 3))
                            .map(|_| {
                                let (path, path_type) = *pick(rng, &[("/", "Prefix"), ("/x", "Prefix"), ("/x/", "Prefix"), ("/x", "Exact"), ("/x", "ImplementationSpecific"), ("", "ImplementationSpecific"), ("x", "Prefix"), ("/x(/|$)(.*)", "ImplementationSpecific"), ("/[", "ImplementationSpecific"), ("/x/?", "ImplementationSpecific")]);
                                json!({"path": path, "pathType": path_type, "backend": backend(rng)})
                            })
                            .collect();
                        let host = *pick(rng, &[Some("h0.test"), Some("h1.test"), Some("*.w.test"), Some("x.w.test"), None, Some("bad host"), Some("www.h1.test")]);
                        json!({"host": host, "http": {"paths": paths}})
                    })
                    .collect();
                let mut spec = json!({"rules": rules});
                if let Some(class) = *pick(rng, &[Some("ingressd"), Some("ingressd"), Some("other"), None]) {
                    spec["ingressClassName"] = json!(class);
                }
                if rng.range(0, 4) == 0 {
                    spec["defaultBackend"] = backend(rng);
                }
                if rng.range(0, 3) == 0 {
                    let options: [&[&str]; 3] = [&["h0.test"], &[], &["*.w.test", "h1.test"]];
                    let hosts = *pick(rng, &options);
                    spec["tls"] = json!([{"hosts": hosts, "secretName": *pick(rng, &["tls0", "tls1"])}]);
                }
                let mut annotations = if rng.range(0, 3) == 0 { json!({"ingressd.io/ssl-redirect": "true"}) } else { json!({}) };
                // Regex mode, rewrites and canaries, which decide a host's routes across Ingresses.
                match rng.range(0, 9) {
                    0 => annotations["nginx.ingress.kubernetes.io/use-regex"] = json!("true"),
                    4 => annotations["nginx.ingress.kubernetes.io/from-to-www-redirect"] = json!("true"),
                    1 => annotations["nginx.ingress.kubernetes.io/rewrite-target"] = json!(*pick(rng, &["/$2", "/x"])),
                    2 | 3 => {
                        annotations["nginx.ingress.kubernetes.io/canary"] = json!("true");
                        annotations["nginx.ingress.kubernetes.io/canary-weight"] = json!("50");
                    }
                    _ => {}
                }
                let created = *pick(rng, &["", "2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z"]);
                let name = *pick(rng, &["i0", "i1", "i2", "i3", "i4"]);
                Object::Ingress(serde_json::from_value(json!({
                    "metadata": {"namespace": ns, "name": name, "creationTimestamp": created, "annotations": annotations},
                    "spec": spec
                })).expect("ingress"))
            }
            4 | 5 => {
                let ports = if rng.range(0, 3) == 0 { json!([{"port": 81}]) } else { json!([{"name": "http", "port": 80}]) };
                let cluster_ip = *pick(rng, &["10.96.0.1", "None"]);
                Object::Service(serde_json::from_value(json!({
                    "metadata": {"namespace": ns, "name": *pick(rng, &["s0", "s1", "s2"])},
                    "spec": {"clusterIP": cluster_ip, "ports": ports}
                })).expect("service"))
            }
            6 | 7 => {
                let endpoints: Vec<_> = (0..rng.range(0, 3))
                    .map(|_| json!({"addresses": [format!("10.0.0.{}", rng.range(1, 5))], "conditions": {"ready": rng.range(0, 4) != 0}}))
                    .collect();
                Object::EndpointSlice(serde_json::from_value(json!({
                    "metadata": {"namespace": ns, "name": *pick(rng, &["e0", "e1", "e2", "e3"]),
                        "labels": {"kubernetes.io/service-name": *pick(rng, &["s0", "s1", "s2"])}},
                    "ports": [{"name": "http", "port": 8080}],
                    "endpoints": endpoints
                })).expect("slice"))
            }
            8 => {
                let (cert, key) = match rng.range(0, 3) {
                    0 => ("garbage".to_string(), "garbage".to_string()),
                    n => certs[n as usize - 1].clone(),
                };
                Object::Secret(serde_json::from_value(json!({
                    "metadata": {"namespace": ns, "name": *pick(rng, &["tls0", "tls1"])},
                    "type": "kubernetes.io/tls",
                    "data": {"tls.crt": base64(cert.as_bytes()), "tls.key": base64(key.as_bytes())}
                })).expect("secret"))
            }
            _ => {
                let annotations = if rng.range(0, 2) == 0 { json!({"ingressclass.kubernetes.io/is-default-class": "true"}) } else { json!({}) };
                let class = *pick(rng, &["ingressd", "other"]);
                Object::IngressClass(serde_json::from_value(json!({
                    "metadata": {"name": class, "annotations": annotations},
                    "spec": {"controller": "ingressd.io/c"}
                })).expect("class"))
            }
        };
        match rng.range(0, 20) {
            0 => Event::Replace(object.kind(), vec![object]),
            1..=5 => Event::Delete(object),
            _ => Event::Upsert(object),
        }
    }
}
