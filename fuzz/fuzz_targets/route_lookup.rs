//! Route lookup and compile against arbitrary input.
//!
//! Input `HOST\nPATH` is looked up in a fixed table covering every host
//! pattern and path type; the match must obey the Ingress path rules. Input
//! starting with `{` is also decoded as an Ingress and compiled with the fixed
//! ones, so malformed rules must be skipped, never panic.
//!
//! Run from `fuzz/` with `cargo +nightly fuzz run route_lookup corpus/route_lookup seeds/route_lookup`, or without
//! cargo-fuzz: build with the sancov RUSTFLAGS cargo-fuzz uses and
//! `--target x86_64-unknown-linux-gnu` (so build scripts stay uninstrumented),
//! then run `target/x86_64-unknown-linux-gnu/release/route_lookup -max_total_time=60`.

#![no_main]

use std::sync::OnceLock;

use ingressd::store::Snapshot;
use ingressd::kube::objects::Ingress;
use ingressd::routes::{compile, PathType, RouteConfig, RouteTable};
use libfuzzer_sys::fuzz_target;
use serde_json::json;

fn config() -> RouteConfig {
    RouteConfig { ingress_class: "ingressd".into(), watch_ingress_without_class: true, ..RouteConfig::default() }
}

fn fixed_snapshot() -> Snapshot {
    let backend = json!({"service": {"name": "svc", "port": {"number": 80}}});
    let paths: Vec<_> = [("/", "Prefix"), ("/a", "Prefix"), ("/a/b/", "Prefix"), ("/a", "Exact"), ("/a/", "Exact"), ("/c", "ImplementationSpecific")]
        .iter()
        .map(|(path, path_type)| json!({"path": path, "pathType": path_type, "backend": backend}))
        .collect();
    let rules: Vec<_> = [json!("a.example.com"), json!("*.example.com"), json!("b.a.example.com"), serde_json::Value::Null]
        .into_iter()
        .map(|host| json!({"host": host, "http": {"paths": paths}}))
        .collect();
    let ingress: Result<Ingress, _> = serde_json::from_value(json!({"metadata": {"namespace": "ns", "name": "fixed"}, "spec": {"rules": rules}}));
    let mut snapshot = Snapshot::default();
    if let Ok(ingress) = ingress {
        snapshot.insert(ingressd::kube::Object::Ingress(ingress));
    }
    snapshot
}

fn check(table: &RouteTable, host: &str, path: &str) {
    let Some(route) = table.lookup(host, path) else { return };
    let path = path.split('?').next().unwrap_or("");
    match route.path_type {
        Some(PathType::Exact) => assert_eq!(route.path, path),
        Some(_) => {
            let prefix = route.path.trim_end_matches('/');
            assert!(path == prefix || path.starts_with(&format!("{prefix}/")), "prefix {:?} matched {path:?}", route.path);
        }
        None => {}
    }
}

fuzz_target!(|data: &[u8]| {
    static TABLE: OnceLock<RouteTable> = OnceLock::new();
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (host, path) = text.split_once('\n').unwrap_or((text, "/"));
    check(TABLE.get_or_init(|| compile(&fixed_snapshot(), &config())), host, path);

    if text.starts_with('{') {
        if let Ok(ingress) = serde_json::from_str::<Ingress>(text) {
            let mut snapshot = fixed_snapshot();
            snapshot.insert(ingressd::kube::Object::Ingress(ingress));
            let table = compile(&snapshot, &config());
            assert_eq!(table.routes().len(), table.len());
            check(&table, host, path);
        }
    }
});
