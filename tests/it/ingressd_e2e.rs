//! The `ingressd` binary against the fake API server over real HTTPS, with
//! real backends: sync and readiness, live routing changes, API outages.

use crate::common;
use crate::support;

use std::time::Duration;

use common::{get, ingress, service_for, Api, Backend, Ingressd};
use support::wait::wait_until;

fn body(ingressd: &Ingressd, host: &str, path: &str) -> String {
    match get(ingressd.http, path, host) {
        Ok(r) => format!("{} {}", r.status, r.text().trim_end()),
        Err(e) => format!("error {e}"),
    }
}

#[test]
fn syncs_then_routes_and_follows_changes_within_a_second() {
    let api = Api::start();
    let blue = Backend::start("blue");
    let green = Backend::start("green");
    for object in service_for("web", "blue", blue.addr).into_iter().chain(service_for("web", "green", green.addr)) {
        api.fake.create(object);
    }
    api.fake.create(ingress("web", "site", &[("shop.example.com", "/", "blue")]));

    let ingressd = Ingressd::start(&api, &[]);
    assert!(ingressd.wait_ready(Duration::from_secs(10)), "ready after the first list of every kind");
    assert_eq!(ingressd.admin_get("/healthz").status, 200);
    assert_eq!(body(&ingressd, "shop.example.com", "/cart"), "200 blue /cart");
    assert_eq!(body(&ingressd, "other.example.com", "/"), "404 no route for this host and path");

    api.fake.apply(ingress("web", "site", &[("shop.example.com", "/", "green")]));
    assert!(
        wait_until(Duration::from_secs(1), || body(&ingressd, "shop.example.com", "/x") == "200 green /x"),
        "an update reaches the proxy within 1 s"
    );
    api.fake.create(ingress("web", "second", &[("api.example.com", "/v1", "blue")]));
    assert!(wait_until(Duration::from_secs(1), || body(&ingressd, "api.example.com", "/v1/users") == "200 blue /v1/users"));
    assert!(api.fake.delete("networking.k8s.io/v1", "Ingress", "web", "second"));
    assert!(wait_until(Duration::from_secs(1), || body(&ingressd, "api.example.com", "/v1/users").starts_with("404")));

    assert_eq!(ingressd.metric("ingressd_watch_objects{kind=\"ingress\"}"), Some(1.0));
}

#[test]
fn the_request_path_never_calls_the_api_server() {
    let api = Api::start();
    let backend = Backend::start("blue");
    api.serve_one_site("shop.example.com", "blue", &backend);
    let ingressd = Ingressd::start(&api, &[]);
    assert!(ingressd.wait_ready(Duration::from_secs(10)));
    assert!(api.fake.wait_for_watches(5, Duration::from_secs(5)));
    let before = api.fake.total_requests();
    for n in 0..50 {
        assert_eq!(body(&ingressd, "shop.example.com", &format!("/{n}")), format!("200 blue /{n}"));
    }
    assert_eq!(get(ingressd.http, "/", "nowhere.example.com").map(|r| r.status).ok(), Some(404));
    assert_eq!(api.fake.total_requests(), before, "no API request was made while proxying");
    assert_eq!(backend.requests.load(std::sync::atomic::Ordering::SeqCst), 50);

    let metric = |series: &str| ingressd.metric(series).unwrap_or(-1.0);
    // A request is counted after its last byte is written, so the client can
    // read the answer before the count moves: wait (bounded) for the last one.
    let counted = || {
        metric("ingressd_requests_total{namespace=\"web\",ingress=\"site\",service=\"blue\",code_class=\"2xx\"}") >= 50.0
            && metric("ingressd_requests_total{namespace=\"\",ingress=\"\",service=\"\",code_class=\"4xx\"}") >= 1.0
    };
    assert!(wait_until(Duration::from_secs(2), counted), "every answered request is counted");
    assert_eq!(metric("ingressd_requests_total{namespace=\"web\",ingress=\"site\",service=\"blue\",code_class=\"2xx\"}"), 50.0);
    assert_eq!(metric("ingressd_requests_total{namespace=\"\",ingress=\"\",service=\"\",code_class=\"4xx\"}"), 1.0);
    assert_eq!(metric("ingressd_request_duration_seconds_count{namespace=\"web\",ingress=\"site\"}"), 50.0);
    assert_eq!(metric("ingressd_upstream_connect_errors_total"), 0.0);
    assert!(metric("ingressd_client_connections") >= 0.0);
    assert!(metric("ingressd_upstream_connections") >= 0.0);
    let body = ingressd.admin_get("/metrics").text();
    assert!(!body.contains("/49") && !body.contains("nowhere"), "no label comes from client input");
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README");
    for family in body.lines().filter_map(|l| l.strip_prefix("# TYPE ")).filter_map(|l| l.split_whitespace().next()) {
        assert!(readme.contains(&format!("`{family}")), "README documents the metric {family}");
    }
}

#[test]
fn not_ready_while_the_api_is_down_at_start_then_ready_once_it_is_up() {
    let ca = fakeapi::certs::Ca::new("test-ca");
    let port = support::ports::unused_port().port();
    let dir = common::TempDir::new();
    std::fs::write(dir.path("token"), common::TOKEN).expect("token");
    std::fs::write(dir.path("ca.crt"), ca.cert_pem()).expect("ca");
    let args: Vec<String> = [
        "--apiserver", &format!("https://127.0.0.1:{port}"),
        "--token-file", &dir.path("token").display().to_string(),
        "--ca-file", &dir.path("ca.crt").display().to_string(),
        "--http-addr", "127.0.0.1:0", "--https-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let ingressd = Ingressd::start_args(&args);
    assert!(
        wait_until(Duration::from_secs(5), || ingressd.metric("ingressd_watch_api_errors_total{kind=\"ingress\"}").unwrap_or(0.0) >= 2.0),
        "list attempts fail and are retried"
    );
    assert_eq!(ingressd.admin_get("/readyz").status, 503);
    assert_eq!(ingressd.admin_get("/healthz").status, 200);

    let _api = fakeapi::FakeApi::start(fakeapi::Options {
        addr: format!("127.0.0.1:{port}").parse().expect("addr"),
        tokens: vec![common::TOKEN.to_string()],
        ca: Some(ca),
        ..Default::default()
    })
    .expect("fake API starts on the reserved port");
    assert!(ingressd.wait_ready(Duration::from_secs(35)), "ready once the API answers (backoff is capped at 30 s)");
}

#[test]
fn keeps_serving_the_last_snapshot_when_the_api_goes_away() {
    let api = Api::start();
    let backend = Backend::start("blue");
    api.serve_one_site("shop.example.com", "blue", &backend);
    let ingressd = Ingressd::start(&api, &[]);
    assert!(ingressd.wait_ready(Duration::from_secs(10)));
    drop(api);
    assert!(
        wait_until(Duration::from_secs(10), || ingressd.metric("ingressd_api_reachable") == Some(0.0)),
        "the outage shows in metrics"
    );
    assert_eq!(ingressd.admin_get("/healthz").status, 200);
    assert_eq!(ingressd.admin_get("/readyz").status, 200, "readiness stays green after the first sync");
    assert_eq!(body(&ingressd, "shop.example.com", "/still"), "200 blue /still");
}

#[test]
fn a_dead_endpoint_is_skipped_and_counted() {
    let api = Api::start();
    let live = Backend::start("live");
    let dead = support::ports::unused_port();
    for object in service_for("web", "pair", live.addr) {
        api.fake.create(object);
    }
    let mut dead_slice = common::endpoint_slice("web", "pair", &[dead]);
    dead_slice["metadata"]["name"] = serde_json::json!("pair-dead");
    api.fake.create(dead_slice);
    api.fake.create(ingress("web", "site", &[("pair.example.com", "/", "pair")]));
    let ingressd = Ingressd::start(&api, &[]);
    assert!(ingressd.wait_ready(Duration::from_secs(10)));
    for n in 0..6 {
        assert_eq!(body(&ingressd, "pair.example.com", &format!("/{n}")), format!("200 live /{n}"));
    }
    assert_eq!(
        ingressd.metric("ingressd_upstream_connect_errors_total"),
        Some(1.0),
        "after one refused connect the dead endpoint is held down, not tried every other request"
    );
    assert_eq!(ingressd.metric("ingressd_upstream_retries_total"), Some(1.0));
}

#[test]
fn service_and_endpoint_changes_reach_the_proxy_within_a_second() {
    let api = Api::start();
    let blue = Backend::start("blue");
    let green = Backend::start("green");
    api.serve_one_site("shop.example.com", "web", &blue);
    let ingressd = Ingressd::start(&api, &[]);
    assert!(ingressd.wait_ready(Duration::from_secs(10)));
    assert_eq!(body(&ingressd, "shop.example.com", "/a"), "200 blue /a");

    api.fake.apply(common::endpoint_slice("web", "web", &[green.addr]));
    assert!(
        wait_until(Duration::from_secs(1), || body(&ingressd, "shop.example.com", "/b") == "200 green /b"),
        "an EndpointSlice change reaches the proxy within 1 s"
    );
    api.fake.apply(common::endpoint_slice("web", "web", &[]));
    assert!(
        wait_until(Duration::from_secs(1), || body(&ingressd, "shop.example.com", "/c").starts_with("503")),
        "no ready endpoint answers 503"
    );
    api.fake.apply(common::endpoint_slice("web", "web", &[blue.addr]));
    assert!(wait_until(Duration::from_secs(1), || body(&ingressd, "shop.example.com", "/d") == "200 blue /d"));
    assert!(api.fake.delete("v1", "Service", "web", "web"));
    assert!(
        wait_until(Duration::from_secs(1), || body(&ingressd, "shop.example.com", "/e").starts_with("503")),
        "a deleted Service answers 503"
    );
}

#[test]
fn the_route_inspector_shows_the_live_table() {
    let api = Api::start();
    let blue = Backend::start("blue");
    api.serve_one_site("shop.example.com", "blue", &blue);
    let ingressd = Ingressd::start(&api, &[]);
    assert!(ingressd.wait_ready(Duration::from_secs(10)));

    let document: serde_json::Value = serde_json::from_slice(&ingressd.admin_get("/debug/routes").body).expect("JSON");
    let route = &document["routes"][0];
    assert_eq!(route["host"], "shop.example.com");
    assert_eq!(route["ingress"], "web/site");
    assert_eq!(route["endpoints"][0], blue.addr.to_string());

    let printed = std::process::Command::new(env!("CARGO_BIN_EXE_ingressd"))
        .args(["routes", "--admin-addr", &ingressd.admin.to_string()])
        .output()
        .expect("ingressd routes runs");
    assert!(printed.status.success());
    let table = String::from_utf8_lossy(&printed.stdout);
    assert!(table.starts_with("HOST"), "{table}");
    assert!(table.contains("shop.example.com") && table.contains("web/site") && table.contains("blue:80"), "{table}");
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_ingressd")).args(["routes"]).output().expect("runs");
    assert_eq!(refused.status.code(), Some(2));
}

#[test]
fn annotations_ingressd_does_not_apply_are_counted_and_listed_and_the_ingress_still_serves() {
    let api = Api::start();
    let blue = Backend::start("blue");
    api.serve_one_site("shop.example.com", "blue", &blue);
    let ingressd = Ingressd::start(&api, &[]);
    assert!(ingressd.wait_ready(Duration::from_secs(10)));
    let series = |annotation: &str| format!("ingressd_ingress_annotations_ignored{{annotation=\"{annotation}\"}}");

    let mut annotated = ingress("web", "site", &[("shop.example.com", "/", "blue")]);
    annotated["metadata"]["annotations"] = serde_json::json!({
        "nginx.ingress.kubernetes.io/configuration-snippet": "more_set_headers \"X: y\";",
        "nginx.ingress.kubernetes.io/proxy-buffering": "on",
        "ingressd.io/rewrite-targt": "/",
        "nginx.ingress.kubernetes.io/ssl-redirect": "false",
    });
    api.fake.apply(annotated.clone());
    assert!(
        wait_until(Duration::from_secs(2), || ingressd.metric(&series("nginx.ingress.kubernetes.io/proxy-buffering")) == Some(1.0)),
        "an ignored annotation is counted"
    );
    assert_eq!(ingressd.metric(&series("nginx.ingress.kubernetes.io/configuration-snippet")), Some(1.0));
    assert_eq!(ingressd.metric(&series("ingressd.io/rewrite-targt")), Some(1.0), "unknown names count too");
    assert_eq!(ingressd.metric(&series("nginx.ingress.kubernetes.io/ssl-redirect")), None, "honoured ones do not");
    assert_eq!(body(&ingressd, "shop.example.com", "/still"), "200 blue /still", "the Ingress keeps serving");

    let document: serde_json::Value = serde_json::from_slice(&ingressd.admin_get("/debug/routes").body).expect("JSON");
    let listed: Vec<(String, String)> = document["unappliedAnnotations"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|u| (u["annotation"].as_str().unwrap_or_default().to_string(), u["status"].as_str().unwrap_or_default().to_string()))
        .collect();
    assert_eq!(
        listed,
        [
            ("ingressd.io/rewrite-targt".to_string(), "ignored".to_string()),
            ("nginx.ingress.kubernetes.io/configuration-snippet".to_string(), "refused".to_string()),
            ("nginx.ingress.kubernetes.io/proxy-buffering".to_string(), "ignored".to_string()),
        ]
    );

    annotated["metadata"]["annotations"] = serde_json::json!({});
    api.fake.apply(annotated);
    assert!(
        wait_until(Duration::from_secs(2), || ingressd.metric(&series("nginx.ingress.kubernetes.io/proxy-buffering")).is_none()),
        "the count follows the Ingress"
    );
}

/// Reads ingressd's log until a line containing `needle` (bounded); returns
/// every line read, the match last.
fn read_log_until(ingressd: &Ingressd, needle: &str, timeout: Duration) -> Vec<String> {
    let deadline = std::time::Instant::now() + timeout;
    let mut lines = Vec::new();
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match ingressd.log.recv_timeout(left) {
            Ok(line) => {
                let found = line.contains(needle);
                lines.push(line);
                if found {
                    return lines;
                }
            }
            Err(_) => break,
        }
    }
    panic!("no log line with {needle:?} within {timeout:?}; read:\n{}", lines.join("\n"));
}

#[test]
fn unapplied_annotations_are_summarised_at_start_then_warned_once_per_change() {
    let api = Api::start();
    let blue = Backend::start("blue");
    for object in service_for("web", "blue", blue.addr) {
        api.fake.create(object);
    }
    let annotated = |name: &str, annotations: serde_json::Value| {
        let mut object = ingress("web", name, &[(&format!("{name}.example.com"), "/", "blue")]);
        object["metadata"]["annotations"] = annotations;
        object
    };
    for name in ["one", "two"] {
        api.fake.create(annotated(name, serde_json::json!({"nginx.ingress.kubernetes.io/proxy-buffering": "on"})));
    }
    let mut other_class = annotated("theirs", serde_json::json!({"nginx.ingress.kubernetes.io/server-snippet": "x"}));
    other_class["spec"]["ingressClassName"] = serde_json::json!("nginx");
    api.fake.create(other_class);

    let ingressd = Ingressd::start(&api, &[]);
    let start = read_log_until(&ingressd, "nginx.ingress.kubernetes.io/proxy-buffering on 2 served Ingress(es) is ignored", Duration::from_secs(10));
    assert!(!start.iter().any(|l| l.contains("server-snippet")), "another class's Ingress is not ours to judge: {start:#?}");
    assert!(!start.iter().any(|l| l.contains("ingress web/one: nginx.ingress")), "a summary, not a line per Ingress: {start:#?}");

    api.fake.apply(annotated("one", serde_json::json!({"nginx.ingress.kubernetes.io/proxy-buffering": "on", "nginx.ingress.kubernetes.io/server-snippet": "x"})));
    let change = read_log_until(&ingressd, "ingress web/one: nginx.ingress.kubernetes.io/server-snippet is refused", Duration::from_secs(5));
    assert!(!change.iter().any(|l| l.contains("web/one: nginx.ingress.kubernetes.io/proxy-buffering")), "unchanged ones are not repeated: {change:#?}");
    api.fake.apply(annotated("two", serde_json::json!({"nginx.ingress.kubernetes.io/proxy-buffering": "off"})));
    read_log_until(&ingressd, "ingress web/two: nginx.ingress.kubernetes.io/proxy-buffering is ignored", Duration::from_secs(5));
}

/// The bytes hex-dumped in log lines (ureq-proto's head and body dumps at
/// trace: `4765 5420 ... GET ...`, 16 bytes a row), decoded in order, so a
/// secret split across two rows is still found.
fn hex_dumped_bytes(lines: &[String]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for line in lines {
        let Some((_, row)) = line.split_once("] ") else { continue };
        let groups: Vec<&str> = row.split(' ').take(8).collect();
        let is_row = groups.len() == 8 && groups.iter().all(|g| g.len() == 4 && g.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'));
        if !is_row {
            continue;
        }
        for group in groups {
            for pair in [&group[..2], &group[2..]] {
                if let Ok(byte) = u8::from_str_radix(pair, 16) {
                    bytes.push(byte);
                }
            }
        }
    }
    bytes
}

#[test]
fn trace_logging_never_shows_the_api_token_or_a_client_s_credentials() {
    let api = Api::start();
    let blue = Backend::start("blue");
    api.serve_one_site("site.example.com", "blue", &blue);
    let mut ingressd = Ingressd::start(&api, &["--log-level", "trace", "--shutdown-delay", "0", "--shutdown-grace", "1"]);
    assert!(ingressd.wait_ready(Duration::from_secs(10)), "ready");
    let asked = "GET /private HTTP/1.1\r\nHost: site.example.com\r\nAuthorization: Bearer client-secret-7\r\nCookie: session=cookie-secret-8\r\nConnection: close\r\n\r\n";
    let answer = common::request(ingressd.http, asked).expect("proxied");
    assert_eq!((answer.status, answer.text().trim_end()), (200, "blue /private"));

    // Every line is in once the process has exited and its stderr is closed.
    ingressd.signal("TERM");
    assert!(ingressd.wait_exit(Duration::from_secs(10)).is_some(), "ingressd exits on SIGTERM");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut lines = Vec::new();
    loop {
        match ingressd.log.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now())) {
            Ok(line) => lines.push(line),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => panic!("stderr still open 5 s after exit"),
        }
    }
    assert!(lines.iter().any(|l| l.contains("DEBUG [ureq")), "the upstream client logged at debug: {lines:#?}");
    let text = lines.join("\n").into_bytes();
    let dumped = hex_dumped_bytes(&lines);
    for secret in [common::TOKEN, "client-secret-7", "cookie-secret-8"] {
        for (what, bytes) in [("a line", &text), ("a hex dump", &dumped)] {
            assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()), "{secret:?} is in {what} of the log");
        }
    }
}
