//! `limit-rpm`, `limit-connections` and `limit-whitelist` through the real
//! binary, against the fake API server and a real backend. Rates are per
//! minute so that a slow machine cannot drain a bucket between two requests.

use std::sync::atomic::Ordering;
use std::time::Duration;


use crate::common::{annotated, get, service_for, Api, Backend, Ingressd};
use crate::support::wait::wait_until;


fn status(ingressd: &Ingressd, host: &str) -> u16 {
    get(ingressd.http, "/", &format!("{host}.example.com")).map(|r| r.status).unwrap_or(0)
}

#[test]
fn limits_answer_503_per_client_and_spare_the_allowlist() {
    let api = Api::start();
    let fast = Backend::start("fast");
    let slow = Backend::start_with_delay("slow", Duration::from_millis(1500));
    for object in service_for("web", "fast", fast.addr).into_iter().chain(service_for("web", "slow", slow.addr)) {
        api.fake.create(object);
    }
    for object in [
        annotated("rated", "fast", &[("limit-rpm", "1"), ("limit-burst-multiplier", "2")]),
        annotated("exempt", "fast", &[("limit-rpm", "1"), ("limit-burst-multiplier", "1"), ("limit-whitelist", "10.0.0.0/8, 127.0.0.0/8")]),
        annotated("typo", "fast", &[("limit-rpm", "one"), ("limit-connections", "-2")]),
        annotated("single", "slow", &[("limit-connections", "1")]),
        annotated("plain", "fast", &[]),
    ] {
        api.fake.create(object);
    }
    let ingressd = Ingressd::start(&api, &[]);
    assert!(ingressd.wait_ready(Duration::from_secs(10)));

    // rpm 1 with a burst of 2: three at once pass (the first starts the bucket), the fourth does not.
    let answers: Vec<u16> = (0..5).map(|_| status(&ingressd, "rated")).collect();
    assert_eq!(answers, [200, 200, 200, 503, 503]);
    assert_eq!(status(&ingressd, "plain"), 200, "the limit is the Ingress's own");
    assert!((0..5).all(|_| status(&ingressd, "exempt") == 200), "loopback is allowlisted");
    assert!((0..5).all(|_| status(&ingressd, "typo") == 200), "an invalid limit is ignored, not applied to everyone");

    // limit-connections counts requests in flight.
    let before = slow.requests.load(Ordering::SeqCst);
    let port = ingressd.http;
    let first = std::thread::spawn(move || get(port, "/", "single.example.com").map(|r| r.status).unwrap_or(0));
    assert!(wait_until(Duration::from_secs(5), || slow.requests.load(Ordering::SeqCst) > before), "the first request reached the backend");
    assert_eq!(status(&ingressd, "single"), 503, "a second request while the first is in flight");
    assert_eq!(first.join().expect("first request"), 200);
    assert_eq!(status(&ingressd, "single"), 200, "the first finished: its slot is free");

    assert_eq!(ingressd.metric("ingressd_limit_refused_total{limit=\"rpm\"}"), Some(2.0));
    assert_eq!(ingressd.metric("ingressd_limit_refused_total{limit=\"connections\"}"), Some(1.0));
    assert!(ingressd.metric("ingressd_limit_clients").is_some_and(|n| n >= 2.0));
    assert_eq!(ingressd.metric("ingressd_limit_evictions_total"), Some(0.0));
}
