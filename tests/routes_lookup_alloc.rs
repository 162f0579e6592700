//! The per-request lookup must not allocate, whatever the case of the Host
//! header: a counting global allocator (only possible in its own test binary)
//! checks it.

mod counting_alloc;


use ingressd::store::Snapshot;
use ingressd::kube::objects::Ingress;
use ingressd::kube::Object;
use ingressd::routes::{compile, RouteConfig};
use serde_json::json;

#[global_allocator]
static GLOBAL: counting_alloc::Counting = counting_alloc::Counting;

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
    snapshot.insert(ingressd::kube::Object::Ingress(ingress));
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
        let before = counting_alloc::allocations();
        for (host, path, expected) in requests {
            assert_eq!(table.lookup(host, path).map(|r| r.path.as_str()), expected, "{host} {path}");
        }
        counting_alloc::allocations() == before
    });
    assert!(clean, "lookup allocated");
}

/// The canary choice (header, cookie, then the weighted draw) allocates
/// nothing either.
#[test]
fn canary_choice_does_not_allocate() {
    let ingress = |name: &str, created: &str, service: &str, annotations: serde_json::Value| -> Ingress {
        serde_json::from_value(json!({
            "metadata": {"namespace": "ns", "name": name, "creationTimestamp": created, "annotations": annotations},
            "spec": {"ingressClassName": "ingressd", "rules": [
                {"host": "www.example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {"service": {"name": service, "port": {"number": 80}}}}]}}
            ]}
        }))
        .expect("ingress json")
    };
    let mut snapshot = Snapshot::default();
    for ingress in [
        ingress("main", "2024-01-01T00:00:00Z", "main", json!({})),
        ingress("canary", "2024-01-02T00:00:00Z", "canary", json!({
            "nginx.ingress.kubernetes.io/canary": "true",
            "nginx.ingress.kubernetes.io/canary-by-header": "X-Canary",
            "nginx.ingress.kubernetes.io/canary-by-cookie": "canary",
            "nginx.ingress.kubernetes.io/canary-weight": "50"
        })),
    ] {
        snapshot.insert(Object::Ingress(ingress));
    }
    let config = RouteConfig { ingress_class: "ingressd".into(), ..RouteConfig::default() };
    let table = compile(&snapshot, &config);
    let requests: [&[(&str, &str)]; 4] = [&[("x-canary", "always")], &[("cookie", "a=b; canary=never")], &[("user-agent", "curl")], &[]];
    let clean = (0..20).any(|_| {
        let before = counting_alloc::allocations();
        let mut canary = 0;
        for _ in 0..100 {
            for headers in requests {
                let route = table.lookup("www.example.com", "/x").expect("routed").for_request(|| headers.iter().copied());
                canary += usize::from(route.service == "canary");
            }
        }
        assert!(canary > 100 && canary < 300, "always, never, and about half of the rest: {canary}");
        counting_alloc::allocations() == before
    });
    assert!(clean, "the canary choice allocated");
}
