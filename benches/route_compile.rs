//! Compile and lookup cost at 10,000 Ingresses.
//!
//! `cargo bench --bench route_compile` prints milliseconds per compile and
//! nanoseconds per lookup; compile must stay linear in the number of objects,
//! lookup flat in the number of hosts.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use ingressd::store::Snapshot;
use ingressd::kube::objects::{EndpointSlice, Ingress, Service};
use ingressd::routes::{compile, RouteConfig};
use serde_json::json;

/// One Ingress per host with three paths, its own Service, and a slice of three endpoints.
fn cluster(ingresses: usize) -> Snapshot {
    let mut snapshot = Snapshot::default();
    for i in 0..ingresses {
        let ns = format!("ns{}", i % 100);
        let name = format!("app{i}");
        let path = |p: &str, t: &str| json!({"path": p, "pathType": t, "backend": {"service": {"name": name, "port": {"name": "http"}}}});
        let ingress: Ingress = serde_json::from_value(json!({
            "metadata": {"namespace": ns, "name": name, "creationTimestamp": format!("2024-01-01T00:00:{:02}Z", i % 60)},
            "spec": {"ingressClassName": "ingressd", "rules": [
                {"host": format!("app{i}.example.com"), "http": {"paths": [path("/", "Prefix"), path("/api", "Prefix"), path("/health", "Exact")]}},
                {"host": format!("*.app{i}.example.com"), "http": {"paths": [path("/", "Prefix")]}}
            ]}
        }))
        .expect("ingress json");
        let service: Service = serde_json::from_value(json!({
            "metadata": {"namespace": ns, "name": name},
            "spec": {"clusterIP": "10.96.0.1", "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}
        }))
        .expect("service json");
        let endpoints: Vec<_> = (0..3).map(|e| json!({"addresses": [format!("10.{}.{}.{e}", i / 256 % 256, i % 256)]})).collect();
        let slice: EndpointSlice = serde_json::from_value(json!({
            "metadata": {"namespace": ns, "name": format!("{name}-abcde"), "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080}],
            "endpoints": endpoints
        }))
        .expect("slice json");
        snapshot.ingresses.insert(ingress.metadata.key(), Arc::new(ingress));
        snapshot.services.insert(service.metadata.key(), Arc::new(service));
        snapshot.endpoint_slices.insert(slice.metadata.key(), Arc::new(slice));
    }
    snapshot
}

fn main() {
    let config = RouteConfig {
        ingress_class: "ingressd".into(),
        controller_name: "ingressd.io/ingress-controller".into(),
        ..RouteConfig::default()
    };
    for ingresses in [1_000, 10_000, 20_000] {
        let snapshot = cluster(ingresses);
        let runs = 5;
        let mut best = f64::MAX;
        let mut table = compile(&snapshot, &config);
        for _ in 0..runs {
            let start = Instant::now();
            let next = black_box(compile(&snapshot, &config));
            best = best.min(start.elapsed().as_secs_f64() * 1e3);
            // The old table is dropped by whoever held the last reference, not by compile.
            table = next;
        }
        let lookups = 1_000_000;
        let hosts: Vec<String> = (0..1000).map(|i| format!("x.APP{}.example.com:443", i * ingresses / 1000)).collect();
        let start = Instant::now();
        for n in 0..lookups {
            black_box(table.lookup(&hosts[n % hosts.len()], "/api/v1/items"));
        }
        let per_lookup = start.elapsed().as_secs_f64() * 1e9 / lookups as f64;
        println!(
            "{ingresses} ingresses, {} routes: compile best of {runs} {best:.1} ms; lookup (wildcard fall-through, upper-case host) {per_lookup:.0} ns",
            table.len()
        );
    }
}
