//! Compile and lookup cost at 10,000 Ingresses.
//!
//! `cargo bench --bench route_compile` prints milliseconds per compile and
//! nanoseconds per lookup; compile must stay linear in the number of objects,
//! lookup flat in the number of hosts.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use ingressd::cache::{apply_all, CompileConfig, Compiler, Generation};
use ingressd::kube::objects::{EndpointSlice, Ingress, Service};
use ingressd::kube::{Event, Kind, Object};
use ingressd::routes::{compile, Changes, RouteConfig};
use ingressd::store::{Snapshot, Store};
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
        snapshot.insert(Object::Ingress(ingress));
        snapshot.insert(Object::Service(service));
        snapshot.insert(Object::EndpointSlice(slice));
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
        // The best of 20 rounds: on a shared machine the other processes
        // only ever add time.
        let lookups = 100_000;
        let hosts: Vec<String> = (0..1000).map(|i| format!("x.APP{}.example.com:443", i * ingresses / 1000)).collect();
        let per_lookup = (0..20)
            .map(|_| {
                let start = Instant::now();
                for n in 0..lookups {
                    black_box(table.lookup(&hosts[n % hosts.len()], "/api/v1/items"));
                }
                start.elapsed().as_secs_f64() * 1e9 / lookups as f64
            })
            .fold(f64::MAX, f64::min);
        println!(
            "{ingresses} ingresses, {} routes: compile best of {runs} {best:.1} ms; lookup (wildcard fall-through, upper-case host) best of 20 rounds {per_lookup:.0} ns",
            table.len()
        );
        incremental(snapshot, &config, ingresses);
    }
}

/// The cache thread's cost of one change after the first compile: the
/// median of 101 changes of each kind, each applied and compiled as the
/// cache thread does.
fn incremental(snapshot: Snapshot, config: &RouteConfig, ingresses: usize) {
    let mut store = Store::default();
    for kind in Kind::ALL {
        let objects: Vec<Object> = match kind {
            Kind::Ingress => snapshot.ingresses.values().map(|i| Object::Ingress(Ingress::clone(i))).collect(),
            Kind::Service => snapshot.services.values().map(|s| Object::Service(Service::clone(s))).collect(),
            Kind::EndpointSlice => snapshot.endpoint_slices.values().map(|s| Object::EndpointSlice(EndpointSlice::clone(s))).collect(),
            _ => Vec::new(),
        };
        store.apply(Event::Replace(kind, objects));
    }
    let mut compiler = Compiler::new(CompileConfig { routes: config.clone(), default_certificate: None });
    let mut current = Arc::new(compiler.update(store.snapshot(), &Changes { everything: true, ..Changes::default() }, &Generation::default()));
    let kinds: [(&str, &dyn Fn(usize) -> Event); 2] = [
        ("Ingress update", &|n| {
            let mut ingress = Ingress::clone(snapshot.ingresses.values().nth(n * 7 % ingresses).expect("ingress"));
            ingress.metadata.annotations.insert("n", n.to_string());
            Event::Upsert(Object::Ingress(ingress))
        }),
        ("EndpointSlice update", &|n| {
            let mut slice = EndpointSlice::clone(snapshot.endpoint_slices.values().nth(n * 7 % ingresses).expect("slice"));
            slice.endpoints.truncate(n % 3 + 1);
            Event::Upsert(Object::EndpointSlice(slice))
        }),
    ];
    for (label, event) in kinds {
        let mut times: Vec<f64> = (0..101)
            .map(|n| {
                let event = event(n);
                let start = Instant::now();
                let mut changes = Changes::default();
                apply_all(&mut store, [event], &mut changes);
                current = Arc::new(compiler.update(store.snapshot(), &changes, &current));
                start.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        times.sort_by(f64::total_cmp);
        println!("  {label}: median {:.3} ms, max {:.3} ms", times[50], times[100]);
    }
}
