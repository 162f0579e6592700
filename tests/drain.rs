//! Graceful drain: SIGTERM fails readiness at once, in-flight requests
//! complete, and the process exits 0.

mod common;

use std::time::{Duration, Instant};

use common::{get, wait_until, Api, Backend, Ingressd};

#[test]
fn an_in_flight_slow_request_completes_during_a_drain() {
    let api = Api::start();
    let slow = Backend::start_with_delay("slow", Duration::from_millis(1500));
    api.serve_one_site("slow.example.com", "slow", &slow);
    let mut ingressd = Ingressd::start(&api, &["--shutdown-delay", "0.3", "--shutdown-grace", "10"]);
    assert!(ingressd.wait_ready(Duration::from_secs(10)));

    let http = ingressd.http;
    let in_flight = std::thread::spawn(move || get(http, "/report", "slow.example.com"));
    assert!(wait_until(Duration::from_secs(5), || slow.requests.load(std::sync::atomic::Ordering::SeqCst) == 1));

    let signalled = Instant::now();
    ingressd.signal("TERM");
    assert!(
        wait_until(Duration::from_millis(500), || ingressd.admin_get("/readyz").status == 503),
        "readiness fails at once"
    );
    let refused = |addr| std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err();
    assert!(
        wait_until(Duration::from_secs(1), || refused(ingressd.http) && refused(ingressd.https)),
        "after --shutdown-delay both listeners are closed while the slow request is still in flight"
    );
    let response = in_flight.join().expect("client thread").expect("the in-flight request is answered");
    assert_eq!(response.status, 200);
    assert_eq!(response.body_text(), "slow /report\n");

    let status = ingressd.wait_exit(Duration::from_secs(10)).expect("ingressd exits after the drain");
    assert!(status.success(), "exit status {status:?}");
    assert!(signalled.elapsed() >= Duration::from_millis(300), "listeners stayed up for --shutdown-delay");
}

#[test]
fn new_connections_are_still_served_during_the_shutdown_delay() {
    let api = Api::start();
    let backend = Backend::start("blue");
    api.serve_one_site("shop.example.com", "blue", &backend);
    let mut ingressd = Ingressd::start(&api, &["--shutdown-delay", "2", "--shutdown-grace", "5"]);
    assert!(ingressd.wait_ready(Duration::from_secs(10)));
    ingressd.signal("INT");
    assert!(wait_until(Duration::from_millis(500), || ingressd.admin_get("/readyz").status == 503));
    let response = get(ingressd.http, "/during-delay", "shop.example.com").expect("still accepting");
    assert_eq!(response.status, 200);
    let status = ingressd.wait_exit(Duration::from_secs(10)).expect("exits");
    assert!(status.success());
}
