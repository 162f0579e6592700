//! Ingress status publishing by the real `ingressd` binary against the fake
//! API server: which Ingresses get our addresses, when writes are skipped,
//! conflicts, leader election between two processes, and node addresses from
//! ingressd's own pods.

use crate::common;
use crate::support;

use std::time::Duration;

use common::{ingress, Api, Ingressd};
use serde_json::{json, Value};
use support::wait::wait_until;

const INGRESS_API: &str = "networking.k8s.io/v1";
const LEASE_PATH: &str = "/apis/coordination.k8s.io/v1/namespaces/ingress/leases/ingressd-leader";
/// Short election timings so takeovers happen within a test's patience.
const FAST_LEASE: [&str; 6] = ["--lease-duration", "2", "--lease-renew-deadline", "1.5", "--lease-retry-period", "0.2"];

fn status_path(namespace: &str, name: &str) -> String {
    format!("/apis/networking.k8s.io/v1/namespaces/{namespace}/ingresses/{name}/status")
}

/// The IPs and hostnames in an Ingress's `status.loadBalancer.ingress`.
fn published(api: &Api, namespace: &str, name: &str) -> Vec<String> {
    let Some(object) = api.fake.get(INGRESS_API, "Ingress", namespace, name) else { return vec!["<missing>".into()] };
    object
        .pointer("/status/loadBalancer/ingress")
        .and_then(Value::as_array)
        .map(|list| list.iter().filter_map(|a| a.get("ip").or_else(|| a.get("hostname")).and_then(Value::as_str)).map(String::from).collect())
        .unwrap_or_default()
}

fn wait_published(api: &Api, namespace: &str, name: &str, want: &[&str]) -> bool {
    wait_until(Duration::from_secs(10), || published(api, namespace, name) == want)
}

fn with_class(mut object: Value, class: &str) -> Value {
    object["spec"]["ingressClassName"] = json!(class);
    object
}

fn lease_holder(api: &Api, namespace: &str) -> Option<String> {
    let lease = api.fake.get("coordination.k8s.io/v1", "Lease", namespace, "ingressd-leader")?;
    lease.pointer("/spec/holderIdentity").and_then(Value::as_str).map(String::from)
}

fn metric(ingressd: &Ingressd, name: &str) -> f64 {
    ingressd.metric(&format!("{name} ")).unwrap_or(-1.0)
}

fn started(api: &Api, extra: &[&str], env: &[(&str, &str)]) -> Ingressd {
    let ingressd = Ingressd::start_with_env(api, extra, env);
    assert!(ingressd.wait_ready(Duration::from_secs(10)), "ingressd becomes ready");
    ingressd
}

#[test]
fn served_ingresses_get_the_address_foreign_ones_keep_theirs_and_departed_ones_are_cleared() {
    let api = Api::start();
    api.fake.create(ingress("web", "site", &[("shop.example.com", "/", "blue")]));
    let mut foreign = with_class(ingress("web", "foreign", &[("other.example.com", "/", "red")]), "other");
    foreign["status"] = json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.5"}]}});
    api.fake.create(foreign);
    api.fake.create(with_class(ingress("web", "unclaimed", &[("x.example.com", "/", "red")]), "other"));

    let ingressd = started(&api, &["--publish-status-address", "192.0.2.10,lb.example.com"], &[]);
    assert!(wait_published(&api, "web", "site", &["lb.example.com", "192.0.2.10"]), "got {:?}", published(&api, "web", "site"));
    let holder = lease_holder(&api, "default").expect("without POD_NAMESPACE the Lease lives in default");
    assert!(holder.ends_with(&format!("_{}", ingressd.child.id())), "hostname_pid identity without POD_NAME: {holder}");

    // No longer ours: cleared. Another controller's status is never touched.
    api.fake.apply(with_class(ingress("web", "site", &[("shop.example.com", "/", "blue")]), "other"));
    assert!(wait_published(&api, "web", "site", &[]), "got {:?}", published(&api, "web", "site"));
    assert_eq!(published(&api, "web", "foreign"), ["203.0.113.5"]);
    assert!(published(&api, "web", "unclaimed").is_empty());
    assert_eq!(api.fake.request_count(&status_path("web", "foreign")), 0);
    assert_eq!(api.fake.request_count(&status_path("web", "unclaimed")), 0);
    // The counter moves once the PUT's response is back, a moment after the
    // fake API already shows the write.
    wait_until(Duration::from_secs(2), || metric(&ingressd, "ingressd_status_writes_total") == 2.0);
    assert_eq!(metric(&ingressd, "ingressd_status_writes_total"), 2.0);
    assert_eq!(metric(&ingressd, "ingressd_leader"), 1.0);
}

#[test]
fn unchanged_status_is_not_written_again() {
    let api = Api::start();
    api.fake.create(ingress("web", "site", &[("shop.example.com", "/", "blue")]));
    let ingressd = started(&api, &["--publish-status-address", "192.0.2.10"], &[]);
    assert!(wait_published(&api, "web", "site", &["192.0.2.10"]));

    // Each new Service makes a new generation; each is evaluated, none written.
    for n in 1..=3 {
        let before = metric(&ingressd, "ingressd_status_evaluations_total");
        api.fake.create(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"namespace": "web", "name": format!("svc{n}")},
            "spec": {"ports": [{"port": 80}]}}));
        assert!(
            wait_until(Duration::from_secs(5), || {
                ingressd.metric("ingressd_watch_objects{kind=\"service\"}") == Some(f64::from(n))
                    && metric(&ingressd, "ingressd_status_evaluations_total") > before
            }),
            "generation {n} evaluated"
        );
    }
    assert_eq!(api.fake.request_count(&status_path("web", "site")), 1, "one write, then only comparisons");
    assert_eq!(metric(&ingressd, "ingressd_status_writes_total"), 1.0);
}

#[test]
fn a_conflicting_write_rereads_and_succeeds() {
    let api = Api::start();
    // A long retry period keeps the Lease quiet, so the injected 409 hits the status write.
    let slow_lease = ["--lease-duration", "30", "--lease-renew-deadline", "20", "--lease-retry-period", "10"];
    let mut args = vec!["--publish-status-address", "192.0.2.10"];
    args.extend(slow_lease);
    let ingressd = started(&api, &args, &[]);
    assert!(wait_until(Duration::from_secs(5), || metric(&ingressd, "ingressd_leader") == 1.0));
    assert!(api.fake.wait_for_watches(5, Duration::from_secs(5)));

    api.fake.fail_next(1, 409);
    api.fake.create(ingress("web", "site", &[("shop.example.com", "/", "blue")]));
    assert!(wait_published(&api, "web", "site", &["192.0.2.10"]));
    assert_eq!(api.fake.request_count(&status_path("web", "site")), 2, "the conflict, then the retry");
    assert_eq!(api.fake.request_count("/apis/networking.k8s.io/v1/namespaces/web/ingresses/site"), 1, "one re-read");
    assert_eq!(metric(&ingressd, "ingressd_status_write_errors_total"), 0.0);
}

#[test]
fn only_the_leader_writes_and_a_follower_takes_over_when_it_dies() {
    let api = Api::start();
    api.fake.create(ingress("web", "site", &[("shop.example.com", "/", "blue")]));
    let mut args = vec!["--publish-status-address", "192.0.2.10"];
    args.extend(FAST_LEASE);
    let mut first = started(&api, &args, &[("POD_NAME", "ingressd-a"), ("POD_NAMESPACE", "ingress")]);
    assert!(wait_until(Duration::from_secs(5), || metric(&first, "ingressd_leader") == 1.0));
    let second = started(&api, &args, &[("POD_NAME", "ingressd-b"), ("POD_NAMESPACE", "ingress")]);
    assert!(wait_published(&api, "web", "site", &["192.0.2.10"]));
    // The follower has read the Lease several times by now.
    assert!(wait_until(Duration::from_secs(5), || api.fake.request_count(LEASE_PATH) >= 20));
    assert_eq!(lease_holder(&api, "ingress").as_deref(), Some("ingressd-a"));
    assert_eq!(metric(&second, "ingressd_leader"), 0.0);
    assert_eq!(metric(&first, "ingressd_status_writes_total"), 1.0);
    assert_eq!(metric(&second, "ingressd_status_writes_total"), 0.0);

    first.child.kill().expect("kill the leader");
    first.wait_exit(Duration::from_secs(5)).expect("leader exited");
    assert!(
        wait_until(Duration::from_secs(10), || metric(&second, "ingressd_leader") == 1.0),
        "the follower takes over once the Lease expires"
    );
    let lease = api.fake.get("coordination.k8s.io/v1", "Lease", "ingress", "ingressd-leader").expect("lease");
    assert_eq!(lease["spec"]["holderIdentity"], "ingressd-b");
    assert_eq!(lease["spec"]["leaseTransitions"], 1);
    api.fake.create(ingress("web", "second", &[("api.example.com", "/", "blue")]));
    assert!(wait_published(&api, "web", "second", &["192.0.2.10"]));
    assert_eq!(metric(&second, "ingressd_status_writes_total"), 1.0);
}

#[test]
fn a_leader_that_cannot_renew_stops_before_the_lease_expires() {
    let api = Api::start();
    let args = [
        "--publish-status-address", "192.0.2.10",
        "--lease-duration", "3", "--lease-renew-deadline", "1.5", "--lease-retry-period", "0.2",
    ];
    let ingressd = started(&api, &args, &[("POD_NAME", "ingressd-a"), ("POD_NAMESPACE", "ingress")]);
    assert!(wait_until(Duration::from_secs(5), || metric(&ingressd, "ingressd_leader") == 1.0));
    api.fake.set_hang(true);
    assert!(wait_until(Duration::from_secs(5), || metric(&ingressd, "ingressd_leader") == 0.0), "leadership lapses");
    let stopped = ingressd::status::microtime::now_micros(std::time::SystemTime::now());
    let lease = api.fake.get("coordination.k8s.io/v1", "Lease", "ingress", "ingressd-leader").expect("lease");
    let renewed = lease["spec"]["renewTime"].as_str().and_then(ingressd::status::microtime::parse).expect("renewTime");
    let expires = renewed + lease["spec"]["leaseDurationSeconds"].as_i64().expect("duration") * 1_000_000;
    assert!(stopped < expires, "stopped {} ms before others may take over", (expires - stopped) / 1000);
    api.fake.set_hang(false);
}

#[test]
fn node_addresses_come_from_ready_ingressd_pods() {
    let api = Api::start();
    let pod = |name: &str, app: &str, phase: &str, ready: &str, host_ip: &str| {
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"namespace": "ingress", "name": name, "labels": {"app.kubernetes.io/name": app}},
               "status": {"phase": phase, "hostIP": host_ip, "conditions": [{"type": "Ready", "status": ready}]}})
    };
    api.fake.create(pod("ingressd-a", "ingressd", "Running", "True", "10.0.0.2"));
    api.fake.create(pod("ingressd-b", "ingressd", "Running", "True", "10.0.0.1"));
    api.fake.create(pod("ingressd-c", "ingressd", "Pending", "False", "10.0.0.3"));
    api.fake.create(pod("web-x", "web", "Running", "True", "10.0.0.9"));
    api.fake.create(ingress("web", "site", &[("shop.example.com", "/", "blue")]));

    let _ingressd = started(&api, &FAST_LEASE, &[("POD_NAME", "ingressd-a"), ("POD_NAMESPACE", "ingress")]);
    assert!(wait_published(&api, "web", "site", &["10.0.0.1", "10.0.0.2"]), "got {:?}", published(&api, "web", "site"));

    api.fake.apply(pod("ingressd-c", "ingressd", "Running", "True", "10.0.0.3"));
    assert!(wait_published(&api, "web", "site", &["10.0.0.1", "10.0.0.2", "10.0.0.3"]), "got {:?}", published(&api, "web", "site"));
    assert!(api.fake.delete("v1", "Pod", "ingress", "ingressd-b"));
    assert!(wait_published(&api, "web", "site", &["10.0.0.2", "10.0.0.3"]), "got {:?}", published(&api, "web", "site"));
}

#[test]
fn a_leader_shutting_down_hands_the_lease_over_at_once() {
    let api = Api::start();
    api.fake.create(ingress("web", "site", &[("shop.example.com", "/", "blue")]));
    // A 30 s Lease: without the release the follower would wait that long.
    let args = [
        "--publish-status-address", "192.0.2.10", "--shutdown-delay", "0", "--shutdown-grace", "1",
        "--lease-duration", "30", "--lease-renew-deadline", "20", "--lease-retry-period", "0.2",
    ];
    let mut first = started(&api, &args, &[("POD_NAME", "ingressd-a"), ("POD_NAMESPACE", "ingress")]);
    assert!(wait_until(Duration::from_secs(5), || metric(&first, "ingressd_leader") == 1.0));
    let second = started(&api, &args, &[("POD_NAME", "ingressd-b"), ("POD_NAMESPACE", "ingress")]);
    assert!(wait_published(&api, "web", "site", &["192.0.2.10"]));

    first.signal("TERM");
    assert!(first.wait_exit(Duration::from_secs(10)).is_some(), "the leader exits after draining");
    assert!(
        wait_until(Duration::from_secs(5), || metric(&second, "ingressd_leader") == 1.0),
        "the follower leads within a few retry periods, not after 30 s"
    );
    assert_eq!(lease_holder(&api, "ingress").as_deref(), Some("ingressd-b"));
}
