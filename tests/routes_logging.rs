//! What compile logs: one line per problem per compile, each naming the
//! Ingress. A capturing logger is process-wide, hence its own test binary.

use std::sync::{Arc, Mutex};

use ingressd::store::Snapshot;
use ingressd::kube::objects::Ingress;
use ingressd::routes::{compile, RouteConfig};
use serde_json::{json, Value};

struct Capture(Mutex<Vec<String>>);

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }

    fn log(&self, record: &log::Record) {
        if let Ok(mut lines) = self.0.lock() {
            lines.push(format!("{} {}", record.level(), record.args()));
        }
    }

    fn flush(&self) {}
}

static CAPTURE: Capture = Capture(Mutex::new(Vec::new()));

fn take_lines() -> Vec<String> {
    CAPTURE.0.lock().map(|mut lines| std::mem::take(&mut *lines)).unwrap_or_default()
}

fn ingress(name: &str, created: &str, paths: Value) -> (ingressd::kube::objects::ObjectKey, Arc<Ingress>) {
    let ingress: Ingress = serde_json::from_value(json!({
        "metadata": {"namespace": "shop", "name": name, "creationTimestamp": created},
        "spec": {"ingressClassName": "ingressd", "rules": [{"host": "shop.example.com", "http": {"paths": paths}}]}
    }))
    .expect("ingress json");
    (ingress.metadata.key(), Arc::new(ingress))
}

#[test]
fn each_problem_is_logged_once_per_compile_with_its_ingress() {
    log::set_logger(&CAPTURE).expect("the only logger in this binary");
    log::set_max_level(log::LevelFilter::Trace);

    let missing = |path: &str| json!({"path": path, "pathType": "Prefix", "backend": {"service": {"name": "gone", "port": {"number": 80}}}});
    let mut snapshot = Snapshot::default();
    for (_, ingress) in [
        ingress("cart", "2024-01-01T00:00:00Z", json!([missing("/cart"), missing("/basket"), missing("/checkout")])),
        ingress("late", "2024-06-01T00:00:00Z", json!([missing("/cart"), {"path": "no-slash", "pathType": "Prefix", "backend": {}}])),
    ] {
        snapshot.insert(ingressd::kube::Object::Ingress(Ingress::clone(&ingress)));
    }
    let config = RouteConfig { ingress_class: "ingressd".into(), ..RouteConfig::default() };

    for _ in 0..2 {
        let table = compile(&snapshot, &config);
        assert_eq!(table.len(), 3);
        let lines = take_lines();
        let count = |needle: &str| lines.iter().filter(|l| l.contains(needle)).count();
        assert_eq!(count("service shop/gone not found"), 1, "{lines:#?}");
        assert_eq!(count("ingress shop/late: Prefix /cart on host \"shop.example.com\" is already claimed by the older ingress shop/cart"), 1, "{lines:#?}");
        assert_eq!(count("ingress shop/late: path skipped: invalid path \"no-slash\""), 1, "{lines:#?}");
        assert_eq!(lines.len(), 3, "nothing else: {lines:#?}");
        assert!(lines.iter().all(|l| l.starts_with("WARN ")), "{lines:#?}");
    }
}
