//! The per-request lookup must not allocate, whatever the case of the Host
//! header: a counting global allocator (only possible in its own test binary)
//! checks it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use ingressd::store::Snapshot;
use ingressd::kube::objects::Ingress;
use ingressd::routes::{compile, RouteConfig};
use serde_json::json;

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn lookup_does_not_allocate() {
    let backend = json!({"service": {"name": "svc", "port": {"number": 80}}});
    let ingress: Ingress = serde_json::from_value(json!({
        "metadata": {"namespace": "ns", "name": "ing"},
        "spec": {"ingressClassName": "ingressd", "rules": [
            {"host": "www.example.com", "http": {"paths": [{"path": "/app", "pathType": "Prefix", "backend": backend}]}},
            {"host": "*.example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}},
            {"http": {"paths": [{"path": "/", "pathType": "Exact", "backend": backend}]}}
        ]}
    }))
    .expect("ingress json");
    let mut snapshot = Snapshot::default();
    snapshot.ingresses.insert(ingress.metadata.key(), Arc::new(ingress));
    let config = RouteConfig { ingress_class: "ingressd".into(), ..RouteConfig::default() };
    let table = compile(&snapshot, &config);
    let requests = [
        ("www.example.com", "/app/x", Some("/app")),
        ("WWW.Example.COM:8443", "/app?q=1", Some("/app")),
        ("www.example.com.", "/other", Some("/")),
        ("API.example.com", "/", Some("/")),
        ("[::1]:80", "/", Some("/")),
        ("a.b.example.com", "/x", None),
    ];
    // Only this thread looks up, but the test harness's threads may allocate
    // concurrently: retry, and require one clean run.
    let clean = (0..20).any(|_| {
        let before = ALLOCATIONS.load(Ordering::SeqCst);
        for (host, path, expected) in requests {
            assert_eq!(table.lookup(host, path).map(|r| r.path.as_str()), expected, "{host} {path}");
        }
        ALLOCATIONS.load(Ordering::SeqCst) == before
    });
    assert!(clean, "lookup allocated");
}
