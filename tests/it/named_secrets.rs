//! Secrets named by annotations, followed through the real watchers, the
//! cache thread and the named-Secret follower, against the fake API server
//! over HTTPS: exactly the named Secrets are read, kept current, and
//! forgotten when no longer named.

use crate::support;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use fakeapi::{FakeApi, Options};
use ingressd::cache::{self, CacheStatus, CompileConfig, Current};
use ingressd::kube::client::ApiClient;
use ingressd::kube::metrics::WatchMetrics;
use ingressd::kube::objects::ObjectKey;
use ingressd::kube::{named_secrets, watcher, Kind};
use ingressd::routes::RouteConfig;
use ingressd::stop::Stop;
use serde_json::{json, Value};
use support::wait::wait_until;

const TOKEN: &str = "named-secrets-token";
const WAIT: Duration = Duration::from_secs(10);

fn ingress(name: &str, annotations: Value) -> Value {
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": name, "namespace": "shop", "annotations": annotations},
        "spec": {"ingressClassName": "ingressd", "rules": [{"host": format!("{name}.example"), "http": {"paths": [{"path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}})
}

fn opaque(namespace: &str, name: &str, value: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": name, "namespace": namespace}, "data": {"auth": value}})
}

struct Controller {
    api: FakeApi,
    current: Arc<Current>,
    stop: Stop,
    dir: PathBuf,
}

impl Controller {
    fn start(name: &str, objects: Vec<Value>) -> Controller {
        let mut all = vec![json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": {"name": "ingressd"},
            "spec": {"controller": "ingressd.io/ingress-controller"}})];
        all.extend(objects);
        let api = FakeApi::start(Options { tokens: vec![TOKEN.to_string()], objects: all, ..Default::default() }).expect("fake API starts");
        let dir = std::env::temp_dir().join(format!("ingressd-named-secrets-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::write(dir.join("ca.crt"), api.ca_pem()).expect("write CA");
        std::fs::write(dir.join("token"), TOKEN).expect("write token");
        let client = Arc::new(ApiClient::new(&api.url(), &dir.join("ca.crt"), &dir.join("token")).expect("client"));
        let (events, received) = crossbeam_channel::unbounded();
        let metrics = Arc::new(WatchMetrics::new());
        let stop = Stop::new();
        let current = Arc::new(Current::default());
        let routes = RouteConfig { ingress_class: "ingressd".into(), controller_name: "ingressd.io/ingress-controller".into(), ..Default::default() };
        let (wanted, _) = named_secrets::spawn(Arc::clone(&client), events.clone(), stop.clone()).expect("follower starts");
        let config = CompileConfig { routes, default_certificate: None };
        cache::spawn(received, Arc::clone(&current), config, Arc::new(CacheStatus::default()), Arc::clone(&metrics), wanted).expect("cache starts");
        for kind in Kind::ALL {
            watcher::spawn(kind, Arc::clone(&client), None, events.clone(), Arc::clone(&metrics), stop.clone()).expect("watcher starts");
        }
        Controller { api, current, stop, dir }
    }

    /// The `auth` value of the Secret `shop/name` in the published snapshot.
    fn auth(&self, namespace: &str, name: &str) -> Option<String> {
        let generation = self.current.load();
        let secret = generation.snapshot.secret(&ObjectKey::new(namespace, name))?;
        secret.data.get("auth").map(str::to_string)
    }

    fn secret_requests(&self, namespace: &str) -> usize {
        self.api.request_count(&format!("/api/v1/namespaces/{namespace}/secrets"))
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.stop.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn a_named_secret_is_followed_and_no_other_opaque_secret_is_read() {
    let controller = Controller::start(
        "followed",
        vec![
            ingress("web", json!({"nginx.ingress.kubernetes.io/auth-secret": "creds"})),
            opaque("shop", "creds", "djE="),
            opaque("shop", "unrelated", "c2VjcmV0"),
        ],
    );
    assert!(wait_until(WAIT, || controller.auth("shop", "creds").as_deref() == Some("djE=")), "the named Secret reaches the cache");
    assert_eq!(controller.auth("shop", "unrelated"), None, "a Secret nobody names is not cached");

    controller.api.apply(opaque("shop", "creds", "djI="));
    assert!(wait_until(WAIT, || controller.auth("shop", "creds").as_deref() == Some("djI=")), "a change of the Secret is followed");

    assert!(controller.api.delete("v1", "Secret", "shop", "creds"));
    assert!(wait_until(WAIT, || controller.auth("shop", "creds").is_none()), "a deleted Secret disappears");
    controller.api.create(opaque("shop", "creds", "djM="));
    assert!(wait_until(WAIT, || controller.auth("shop", "creds").as_deref() == Some("djM=")), "a re-created Secret comes back");
}

#[test]
fn a_secret_no_longer_named_is_forgotten_and_another_namespace_is_never_read() {
    let controller = Controller::start(
        "forgotten",
        vec![
            ingress("web", json!({"nginx.ingress.kubernetes.io/auth-secret": "creds"})),
            ingress("borrow", json!({"nginx.ingress.kubernetes.io/auth-secret": "bank/vault"})),
            opaque("shop", "creds", "djE="),
            opaque("shop", "next", "bmV4dA=="),
            opaque("bank", "vault", "bG9vdA=="),
        ],
    );
    assert!(wait_until(WAIT, || controller.auth("shop", "creds").is_some()));
    controller.api.apply(ingress("web", json!({"ingressd.io/auth-secret": "next"})));
    assert!(
        wait_until(WAIT, || controller.auth("shop", "next").is_some() && controller.auth("shop", "creds").is_none()),
        "the newly named Secret replaces the old one"
    );
    assert_eq!(controller.auth("bank", "vault"), None);
    assert_eq!(controller.secret_requests("bank"), 0, "no request ever reads another namespace's Secrets");
}
