//! The five watchers against the fake API server over real HTTPS on loopback.

use crate::support;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use fakeapi::{FakeApi, Options};
use ingressd::kube::client::ApiClient;
use ingressd::kube::metrics::WatchMetrics;
use ingressd::kube::watcher::{api_path, spawn, spawn_watch, Change, Sink, Target};
use ingressd::kube::{Event, Kind, Object};
use ingressd::status::addresses::{Pod, PODS};
use ingressd::stop::Stop;
use serde_json::{json, Value};
use support::wait::wait_until;

const TOKEN: &str = "first-token";

fn ingress(ns: &str, name: &str, host: &str) -> Value {
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": name, "namespace": ns},
        "spec": {"rules": [{"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}})
}

fn service(ns: &str, name: &str, port: i32) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
        "spec": {"ports": [{"port": port, "targetPort": 8080}]}})
}

fn initial_objects() -> Vec<Value> {
    vec![
        ingress("shop", "front", "shop.example"),
        ingress("blog", "front", "blog.example"),
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": {"name": "ingressd"},
            "spec": {"controller": "ingressd.io/ingress-controller"}}),
        service("shop", "web", 80),
        json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "web-abc", "namespace": "shop", "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.7"], "conditions": {"ready": true}}],
            "ports": [{"name": "", "port": 8080}]}),
        json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": "shop-tls", "namespace": "shop"}, "data": {"tls.crt": "", "tls.key": ""}}),
        json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": "db-password", "namespace": "shop"}, "data": {"password": "aHVudGVyMg=="}}),
    ]
}

/// A temp dir holding the CA and token files of one test.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ingressd-kube-watch-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

struct Harness {
    api: Option<FakeApi>,
    dir: PathBuf,
    rx: Receiver<Event>,
    metrics: Arc<WatchMetrics>,
    stop: Stop,
    threads: Vec<JoinHandle<()>>,
}

impl Harness {
    /// Starts a fake API with the initial objects; `before_spawn` runs before the watchers start.
    fn start(name: &str, before_spawn: impl FnOnce(&FakeApi)) -> Harness {
        Harness::start_with(name, None, Vec::new(), before_spawn)
    }

    /// Also with extra initial objects and watchers limited to `namespace`.
    fn start_with(name: &str, namespace: Option<&str>, extra: Vec<Value>, before_spawn: impl FnOnce(&FakeApi)) -> Harness {
        let _ = simple_logger::SimpleLogger::new().with_level(log::LevelFilter::Info).init();
        let objects = initial_objects().into_iter().chain(extra).collect();
        let api = FakeApi::start(Options { tokens: vec![TOKEN.to_string()], objects, ..Default::default() })
            .expect("fake API starts");
        let dir = temp_dir(name);
        std::fs::write(dir.join("ca.crt"), api.ca_pem()).expect("write CA");
        std::fs::write(dir.join("token"), TOKEN).expect("write token");
        let client = Arc::new(ApiClient::new(&api.url(), &dir.join("ca.crt"), &dir.join("token")).expect("client"));
        before_spawn(&api);
        let (tx, rx) = crossbeam_channel::unbounded();
        let metrics = Arc::new(WatchMetrics::new());
        let stop = Stop::new();
        let threads = Kind::ALL
            .iter()
            .map(|kind| {
                let namespace = namespace.map(str::to_string);
                spawn(*kind, Arc::clone(&client), namespace, tx.clone(), Arc::clone(&metrics), stop.clone()).expect("watcher starts")
            })
            .collect();
        Harness { api: Some(api), dir, rx, metrics, stop, threads }
    }

    fn api(&self) -> &FakeApi {
        self.api.as_ref().expect("fake API running")
    }

    /// Receives events until one matches, within `timeout`.
    fn wait_for(&self, timeout: Duration, mut matches: impl FnMut(&Event) -> bool) -> Option<Event> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            match self.rx.recv_timeout(left) {
                Ok(event) if matches(&event) => return Some(event),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }

    /// The first Replace of every kind, by kind.
    fn initial_sync(&self, timeout: Duration) -> Vec<(Kind, Vec<Object>)> {
        let mut replaces = Vec::new();
        while replaces.len() < Kind::ALL.len() {
            match self.wait_for(timeout, |e| matches!(e, Event::Replace(..))) {
                Some(Event::Replace(kind, objects)) => {
                    assert!(!replaces.iter().any(|(k, _)| *k == kind), "second Replace for {kind:?} during initial sync");
                    replaces.push((kind, objects));
                }
                _ => panic!("initial sync incomplete: got {:?}", replaces.iter().map(|(k, _)| *k).collect::<Vec<_>>()),
            }
        }
        replaces.sort_by_key(|(k, _)| *k);
        replaces
    }

    fn list_counts(&self) -> Vec<usize> {
        Kind::ALL.iter().map(|k| self.api().list_count(&api_path(*k, None))).collect()
    }

    fn watch_counts(&self) -> Vec<usize> {
        Kind::ALL.iter().map(|k| self.api().watch_count(&api_path(*k, None))).collect()
    }

    /// Waits until every watcher has a watch open on the server.
    fn wait_for_all_watches(&self) {
        assert!(self.api().wait_for_watches(Kind::ALL.len(), Duration::from_secs(5)), "watches did not open");
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.stop.stop();
        // Closing the server ends blocked watch reads; stop wakes backoff sleeps.
        drop(self.api.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        for thread in self.threads.drain(..) {
            while !thread.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if !std::thread::panicking() {
                assert!(thread.is_finished(), "a watcher did not stop within 5 s");
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn keys(objects: &[Object]) -> BTreeSet<String> {
    objects.iter().map(|o| o.metadata().key().to_string()).collect()
}

fn is_upsert_of(event: &Event, kind: Kind, key: &str) -> bool {
    matches!(event, Event::Upsert(o) if o.kind() == kind && o.metadata().key().to_string() == key)
}

#[test]
fn initial_sync_sends_one_complete_replace_per_kind() {
    let h = Harness::start("sync", |_| {});
    let replaces = h.initial_sync(Duration::from_secs(5));
    let by_kind = |kind| keys(&replaces.iter().find(|(k, _)| *k == kind).expect("kind synced").1);
    assert_eq!(by_kind(Kind::Ingress), BTreeSet::from(["blog/front".to_string(), "shop/front".to_string()]));
    assert_eq!(by_kind(Kind::IngressClass), BTreeSet::from(["ingressd".to_string()]));
    assert_eq!(by_kind(Kind::Service), BTreeSet::from(["shop/web".to_string()]));
    assert_eq!(by_kind(Kind::EndpointSlice), BTreeSet::from(["shop/web-abc".to_string()]));
    // Only TLS Secrets are ever fetched.
    assert_eq!(by_kind(Kind::Secret), BTreeSet::from(["shop/shop-tls".to_string()]));
    for kind in Kind::ALL {
        assert_eq!(h.metrics.list_requests(kind), 1, "{kind:?}");
    }
    assert_eq!(h.metrics.api_reachable(), Some(true));
}

#[test]
fn create_update_delete_reach_the_channel_within_a_second() {
    let h = Harness::start("crud", |_| {});
    h.initial_sync(Duration::from_secs(5));
    h.wait_for_all_watches();

    h.api().create(service("shop", "api", 81));
    let created = h.wait_for(Duration::from_secs(1), |e| is_upsert_of(e, Kind::Service, "shop/api"));
    assert!(created.is_some(), "ADDED not delivered");

    h.api().apply(service("shop", "api", 82));
    let updated = h.wait_for(Duration::from_secs(1), |e| is_upsert_of(e, Kind::Service, "shop/api"));
    match updated {
        Some(Event::Upsert(Object::Service(svc))) => assert_eq!(svc.spec.ports[0].port, 82),
        other => panic!("MODIFIED not delivered: {other:?}"),
    }

    assert!(h.api().delete("v1", "Service", "shop", "api"));
    let deleted = h.wait_for(Duration::from_secs(1), |e| {
        matches!(e, Event::Delete(o) if o.kind() == Kind::Service && o.metadata().name == "api")
    });
    assert!(deleted.is_some(), "DELETED not delivered");
    assert!(h.metrics.events(Kind::Service) >= 3);
    assert!(h.metrics.last_event_unix(Kind::Service) > 0);
}

#[test]
fn dropped_watches_resume_without_relisting() {
    let h = Harness::start("drop", |_| {});
    h.initial_sync(Duration::from_secs(5));
    h.wait_for_all_watches();
    let lists = h.list_counts();
    let watches = h.watch_counts();

    h.api().drop_watches();
    assert!(
        wait_until(Duration::from_secs(5), || h.watch_counts().iter().zip(&watches).all(|(now, before)| now > before)),
        "watches not re-established: {:?} vs {watches:?}",
        h.watch_counts()
    );
    h.wait_for_all_watches();
    h.api().create(ingress("shop", "after-drop", "new.example"));
    assert!(h.wait_for(Duration::from_secs(2), |e| is_upsert_of(e, Kind::Ingress, "shop/after-drop")).is_some());
    assert_eq!(h.list_counts(), lists, "a dropped watch must not cause a relist");
    assert!(h.rx.try_iter().all(|e| !matches!(e, Event::Replace(..))));
    assert!(Kind::ALL.iter().all(|k| h.metrics.watch_restarts(*k) >= 1));
}

#[test]
fn expired_resource_version_relists_to_the_servers_state() {
    let h = Harness::start("compact", |_| {});
    h.initial_sync(Duration::from_secs(5));
    h.wait_for_all_watches();

    // The streams break and the first reconnects fail; meanwhile objects
    // change and the history is compacted, so the watchers' resourceVersion
    // is gone when they come back.
    h.api().fail_next(Kind::ALL.len(), 503);
    h.api().drop_watches();
    h.api().create(ingress("shop", "extra", "extra.example"));
    assert!(h.api().delete("networking.k8s.io/v1", "Ingress", "blog", "front"));
    h.api().compact();

    let replace = h.wait_for(Duration::from_secs(5), |e| matches!(e, Event::Replace(Kind::Ingress, _)));
    let Some(Event::Replace(_, objects)) = replace else { panic!("no relist after compaction") };
    let server: BTreeSet<String> = h
        .api()
        .list("networking.k8s.io/v1", "Ingress")
        .iter()
        .map(|o| format!("{}/{}", o["metadata"]["namespace"].as_str().unwrap_or(""), o["metadata"]["name"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(keys(&objects), server);
    assert_eq!(keys(&objects), BTreeSet::from(["shop/extra".to_string(), "shop/front".to_string()]));
    assert!(h.metrics.relists(Kind::Ingress) >= 1);
    assert!(h.api().list_count(&api_path(Kind::Ingress, None)) >= 2);
}

#[test]
fn token_rotation_recovers_after_401() {
    let h = Harness::start("token", |_| {});
    h.initial_sync(Duration::from_secs(5));
    h.wait_for_all_watches();

    std::fs::write(h.dir.join("token"), "second-token").expect("rotate token file");
    h.api().add_token("second-token");
    h.api().revoke_token(TOKEN);
    h.api().drop_watches();

    assert!(h.api().wait_for_watches(Kind::ALL.len(), Duration::from_secs(8)), "watchers did not recover with the new token");
    h.api().create(service("shop", "rotated", 80));
    assert!(h.wait_for(Duration::from_secs(2), |e| is_upsert_of(e, Kind::Service, "shop/rotated")).is_some());
}

#[test]
fn failing_server_at_start_backs_off_then_syncs() {
    let h = Harness::start("unavailable", |api| api.fail_next(10, 503));
    let started = Instant::now();
    let replaces = h.initial_sync(Duration::from_secs(9));
    assert_eq!(replaces.len(), Kind::ALL.len());
    let errors: u64 = Kind::ALL.iter().map(|k| h.metrics.api_errors(*k)).sum();
    assert_eq!(errors, 10, "every 503 is counted");
    // Ten failures over five watchers cost at least one backoff delay.
    assert!(started.elapsed() >= Duration::from_millis(500), "no backoff: {:?}", started.elapsed());
    assert_eq!(h.metrics.api_reachable(), Some(true));
}

#[test]
fn too_many_requests_backs_off_and_recovers_the_watch() {
    let h = Harness::start("throttled", |_| {});
    h.initial_sync(Duration::from_secs(5));
    h.wait_for_all_watches();
    h.api().fail_next(5, 429);
    h.api().drop_watches();
    assert!(h.api().wait_for_watches(Kind::ALL.len(), Duration::from_secs(8)), "watches not back after 429s");
    h.api().create(service("shop", "after-429", 80));
    assert!(h.wait_for(Duration::from_secs(2), |e| is_upsert_of(e, Kind::Service, "shop/after-429")).is_some());
    let errors: u64 = Kind::ALL.iter().map(|k| h.metrics.api_errors(*k)).sum();
    assert!(errors >= 5, "429s counted as API errors: {errors}");
}

#[test]
fn server_gone_after_sync_counts_errors_without_panicking() {
    let mut h = Harness::start("gone", |_| {});
    h.initial_sync(Duration::from_secs(5));
    h.wait_for_all_watches();
    drop(h.api.take());
    assert!(
        wait_until(Duration::from_secs(5), || {
            h.metrics.api_reachable() == Some(false) && Kind::ALL.iter().all(|k| h.metrics.api_errors(*k) > 0)
        }),
        "errors not counted after the server went away"
    );
    assert!(h.threads.iter().all(|t| !t.is_finished()), "watchers keep retrying");
    // Nothing reaches the cache that would drop the routes it holds.
    assert!(h.rx.try_iter().all(|e| !matches!(e, Event::Replace(..) | Event::Delete(_))));
}

#[test]
fn a_certificate_from_another_ca_is_refused() {
    let api = FakeApi::start(Options { tokens: vec![TOKEN.to_string()], ..Default::default() }).expect("fake API starts");
    let dir = temp_dir("other-ca");
    std::fs::write(dir.join("ca.crt"), fakeapi::certs::Ca::new("some other CA").cert_pem()).expect("write CA");
    std::fs::write(dir.join("token"), TOKEN).expect("write token");
    let client = Arc::new(ApiClient::new(&api.url(), &dir.join("ca.crt"), &dir.join("token")).expect("client"));
    let (tx, rx) = crossbeam_channel::unbounded();
    let metrics = Arc::new(WatchMetrics::new());
    let stop = Stop::new();
    let watcher = spawn(Kind::Ingress, client, None, tx, Arc::clone(&metrics), stop.clone()).expect("watcher starts");
    let deadline = Instant::now() + Duration::from_secs(5);
    while metrics.api_errors(Kind::Ingress) == 0 {
        assert!(Instant::now() < deadline, "no error counted");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(metrics.api_reachable(), Some(false));
    assert!(rx.try_recv().is_err(), "nothing may come from an untrusted server");
    stop.stop();
    while !watcher.is_finished() {
        assert!(Instant::now() < deadline + Duration::from_secs(2), "watcher ignores stop");
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn undecodable_service(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "shop"},
        "spec": {"ports": "eighty"}})
}

#[test]
fn undecodable_objects_are_skipped_and_the_watch_goes_on() {
    let h = Harness::start_with("undecodable", None, vec![undecodable_service("broken-at-start")], |_| {});
    let replaces = h.initial_sync(Duration::from_secs(5));
    let services = &replaces.iter().find(|(k, _)| *k == Kind::Service).expect("services synced").1;
    assert_eq!(keys(services), BTreeSet::from(["shop/web".to_string()]), "the bad object is skipped, the good one kept");
    h.wait_for_all_watches();

    h.api().create(undecodable_service("broken-later"));
    h.api().create(service("shop", "fine-later", 80));
    let next_service_event = h.wait_for(Duration::from_secs(2), |e| matches!(e, Event::Upsert(o) if o.kind() == Kind::Service));
    assert!(
        next_service_event.as_ref().is_some_and(|e| is_upsert_of(e, Kind::Service, "shop/fine-later")),
        "{next_service_event:?}"
    );
    assert_eq!(h.api().list_count(&api_path(Kind::Service, None)), 1, "no relist for a bad object");
}

#[test]
fn namespaced_watchers_see_only_their_namespace_but_all_ingress_classes() {
    let h = Harness::start_with("namespaced", Some("blog"), Vec::new(), |_| {});
    let replaces = h.initial_sync(Duration::from_secs(5));
    let by_kind = |kind| keys(&replaces.iter().find(|(k, _)| *k == kind).expect("kind synced").1);
    assert_eq!(by_kind(Kind::Ingress), BTreeSet::from(["blog/front".to_string()]));
    assert_eq!(by_kind(Kind::IngressClass), BTreeSet::from(["ingressd".to_string()]));
    assert!(by_kind(Kind::Service).is_empty() && by_kind(Kind::Secret).is_empty());
    assert_eq!(h.api().list_count(&api_path(Kind::Ingress, Some("blog"))), 1);
    assert_eq!(h.api().list_count(&api_path(Kind::IngressClass, None)), 1);
    h.wait_for_all_watches();

    h.api().create(ingress("shop", "elsewhere", "x.example"));
    h.api().create(ingress("blog", "here", "y.example"));
    let event = h.wait_for(Duration::from_secs(2), |e| matches!(e, Event::Upsert(o) if o.kind() == Kind::Ingress));
    assert!(event.as_ref().is_some_and(|e| is_upsert_of(e, Kind::Ingress, "blog/here")), "{event:?}");
}

#[test]
fn large_lists_are_paged_and_delivered_as_one_replace() {
    let many: Vec<Value> = (0..1100).map(|i| service("bulk", &format!("svc-{i:04}"), 80)).collect();
    let h = Harness::start_with("paged", None, many, |_| {});
    let replaces = h.initial_sync(Duration::from_secs(8));
    let services = &replaces.iter().find(|(k, _)| *k == Kind::Service).expect("services synced").1;
    assert_eq!(services.len(), 1101);
    assert_eq!(keys(services).len(), 1101, "no object twice");
    assert_eq!(h.api().list_count(&api_path(Kind::Service, None)), 3, "pages of 500");
    assert_eq!(h.metrics.list_requests(Kind::Service), 3);
}

#[test]
fn no_server_at_start_backs_off_until_it_appears() {
    let _ = simple_logger::SimpleLogger::new().with_level(log::LevelFilter::Info).init();
    // A free port with nothing listening: connections are refused.
    let addr = support::ports::unused_port();
    let ca = fakeapi::certs::Ca::new("ingressd test CA");
    let dir = temp_dir("late-server");
    std::fs::write(dir.join("ca.crt"), ca.cert_pem()).expect("write CA");
    std::fs::write(dir.join("token"), TOKEN).expect("write token");
    let client = Arc::new(ApiClient::new(&format!("https://{addr}"), &dir.join("ca.crt"), &dir.join("token")).expect("client"));
    let (tx, rx) = crossbeam_channel::unbounded();
    let metrics = Arc::new(WatchMetrics::new());
    let stop = Stop::new();
    let watcher = spawn(Kind::IngressClass, client, None, tx, Arc::clone(&metrics), stop.clone()).expect("watcher starts");

    assert!(wait_until(Duration::from_secs(5), || metrics.api_errors(Kind::IngressClass) >= 2), "refused connections not retried");
    assert_eq!(metrics.api_reachable(), Some(false));
    assert!(rx.try_recv().is_err());

    let api = FakeApi::start(Options {
        addr,
        ca: Some(ca),
        tokens: vec![TOKEN.to_string()],
        objects: initial_objects(),
        ..Default::default()
    })
    .expect("fake API starts on the same port");
    match rx.recv_timeout(Duration::from_secs(8)) {
        Ok(Event::Replace(Kind::IngressClass, objects)) => assert_eq!(keys(&objects), BTreeSet::from(["ingressd".to_string()])),
        other => panic!("no sync after the server appeared: {other:?}"),
    }
    assert_eq!(metrics.api_reachable(), Some(true));
    stop.stop();
    drop(api);
    assert!(wait_until(Duration::from_secs(5), || watcher.is_finished()), "watcher ignores stop");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Hands a generic watcher's changes to the test as (what, pod names).
struct PodChanges(crossbeam_channel::Sender<(&'static str, Vec<String>)>);

impl Sink<Pod> for PodChanges {
    fn deliver(&mut self, change: Change<Pod>) -> bool {
        let seen = match change {
            Change::Replace(pods) => ("replace", pods.iter().map(|p| p.metadata.name.clone()).collect()),
            Change::Upsert(pod) => ("upsert", vec![pod.metadata.name]),
            Change::Delete(pod) => ("delete", vec![pod.metadata.name]),
        };
        self.0.send(seen).is_ok()
    }
}

fn pod(ns: &str, name: &str, app: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns, "labels": {"app": app}},
        "status": {"phase": "Running", "hostIP": "10.0.0.1"}})
}

/// A kind outside the cache is one row (status' PODS) watched by the same
/// watcher, narrowed by namespace and label selector.
#[test]
fn any_resource_row_is_watched_with_its_label_selector() {
    let _ = simple_logger::SimpleLogger::new().with_level(log::LevelFilter::Info).init();
    let objects = vec![pod("ingress", "ingressd-a", "ingressd"), pod("ingress", "web-a", "web"), pod("other", "ingressd-b", "ingressd")];
    let api = FakeApi::start(Options { tokens: vec![TOKEN.to_string()], objects, ..Default::default() }).expect("fake API starts");
    let dir = temp_dir("pods");
    std::fs::write(dir.join("ca.crt"), api.ca_pem()).expect("write CA");
    std::fs::write(dir.join("token"), TOKEN).expect("write token");
    let client = Arc::new(ApiClient::new(&api.url(), &dir.join("ca.crt"), &dir.join("token")).expect("client"));
    let (tx, rx) = crossbeam_channel::unbounded();
    let stop = Stop::new();
    let target = Target { resource: &PODS, namespace: Some("ingress".into()), label_selector: Some("app=ingressd".into()), field_selector: None };
    let watcher = spawn_watch(target, client, PodChanges(tx), None, stop.clone()).expect("watcher starts");
    let next = || rx.recv_timeout(Duration::from_secs(5)).expect("a change");
    assert_eq!(next(), ("replace", vec!["ingressd-a".to_string()]));
    assert!(api.wait_for_watches(1, Duration::from_secs(5)), "watch did not open");
    api.create(pod("ingress", "web-b", "web"));
    api.create(pod("other", "ingressd-c", "ingressd"));
    api.create(pod("ingress", "ingressd-d", "ingressd"));
    assert_eq!(next(), ("upsert", vec!["ingressd-d".to_string()]), "other labels and namespaces are not seen");
    assert!(api.delete("v1", "Pod", "ingress", "ingressd-a"));
    assert_eq!(next(), ("delete", vec!["ingressd-a".to_string()]));
    stop.stop();
    drop(api);
    assert!(wait_until(Duration::from_secs(5), || watcher.is_finished()), "watcher ignores stop");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Stop wakes a watcher sleeping out a backoff at once, rather than after
/// the delay (or a polling interval).
#[test]
fn stop_ends_a_backoff_sleep_at_once() {
    let _ = simple_logger::SimpleLogger::new().with_level(log::LevelFilter::Info).init();
    // A free port with nothing listening: connections are refused.
    let addr = support::ports::unused_port();
    let dir = temp_dir("stop-backoff");
    std::fs::write(dir.join("ca.crt"), fakeapi::certs::Ca::new("ingressd test CA").cert_pem()).expect("write CA");
    std::fs::write(dir.join("token"), TOKEN).expect("write token");
    let client = Arc::new(ApiClient::new(&format!("https://{addr}"), &dir.join("ca.crt"), &dir.join("token")).expect("client"));
    let (tx, _rx) = crossbeam_channel::unbounded();
    let metrics = Arc::new(WatchMetrics::new());
    let stop = Stop::new();
    let watcher = spawn(Kind::Service, client, None, tx, Arc::clone(&metrics), stop.clone()).expect("watcher starts");
    // After the third failure the next delay is 2.4 s at least (3.2 s, jittered by ±25%).
    assert!(wait_until(Duration::from_secs(10), || metrics.api_errors(Kind::Service) >= 3), "refused connections not retried");
    let stopped = Instant::now();
    stop.stop();
    assert!(wait_until(Duration::from_secs(5), || watcher.is_finished()), "watcher ignores stop");
    assert!(stopped.elapsed() < Duration::from_millis(1500), "the backoff was waited out: {:?}", stopped.elapsed());
    let _ = std::fs::remove_dir_all(&dir);
}
