//! Regex paths, rewrites, canaries and the www redirect through the real
//! binary: the fake API server holds the Ingresses, ingressd answers over
//! real TCP, and two real backends (`blue`, `green`) answer with their name
//! and the request target they received.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common;
use crate::common::{get, request, service_for, Api, Backend, Ingressd};
use crate::support::wait::wait_until;

/// An Ingress `name` on `host` with `nginx.ingress.kubernetes.io/`
/// annotations and `(path, pathType, service)` paths.
fn ingress(name: &str, created: &str, host: &str, annotations: &[(&str, &str)], paths: &[(&str, &str, &str)]) -> Value {
    let annotations = common::nginx_annotations(annotations);
    let paths: Vec<Value> = paths
        .iter()
        .map(|(path, path_type, service)| json!({"path": path, "pathType": path_type, "backend": {"service": {"name": service, "port": {"number": 80}}}}))
        .collect();
    json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"namespace": "web", "name": name, "creationTimestamp": created, "annotations": annotations},
        "spec": {"ingressClassName": "ingressd", "rules": [{"host": host, "http": {"paths": paths}}]}
    })
}

struct Stack {
    api: Api,
    blue: Backend,
    /// Kept so its listener lives as long as the test.
    _green: Backend,
    ingressd: Ingressd,
}

fn start(ingresses: Vec<Value>) -> Stack {
    let api = Api::start();
    let blue = Backend::start("blue");
    let green = Backend::start("green");
    for object in service_for("web", "blue", blue.addr).into_iter().chain(service_for("web", "green", green.addr)) {
        api.fake.create(object);
    }
    for object in ingresses {
        api.fake.create(object);
    }
    let ingressd = Ingressd::start(&api, &[]);
    assert!(ingressd.wait_ready(Duration::from_secs(10)));
    Stack { api, blue, _green: green, ingressd }
}

/// What the backend answered (`NAME TARGET`), or the status when no backend did.
fn reached(stack: &Stack, host: &str, raw_headers: &str, target: &str) -> String {
    let raw = format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n{raw_headers}Connection: close\r\n\r\n");
    match request(stack.ingressd.http, &raw) {
        Ok(response) if response.status == 200 => response.text().trim().to_string(),
        Ok(response) => response.status.to_string(),
        Err(error) => format!("error: {error}"),
    }
}

/// Whether ingressd logs a line containing `needle` within `timeout`.
fn logged(ingressd: &Ingressd, needle: &str, timeout: Duration) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match ingressd.log.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return true,
            Ok(_) => {}
            Err(_) => return false,
        }
    }
    false
}

#[test]
fn regex_paths_and_rewrites_reach_the_backend_rewritten() {
    let stack = start(vec![
        ingress(
            "rewrite",
            "2024-01-01T00:00:00Z",
            "rw.example.com",
            &[("rewrite-target", "/$2")],
            &[("/something(/|$)(.*)", "ImplementationSpecific", "blue"), ("/broken(", "ImplementationSpecific", "blue")],
        ),
        ingress("plain", "2024-01-02T00:00:00Z", "rw.example.com", &[], &[("/plain", "Prefix", "green")]),
        ingress("other", "2024-01-01T00:00:00Z", "other.example.com", &[], &[("/plain", "Prefix", "green")]),
    ]);
    let cases = [
        ("rw.example.com", "/something", "blue /"),
        ("rw.example.com", "/something/new?a=1&b=2", "blue /new?a=1&b=2"),
        ("rw.example.com", "/SomeThing/Deep/Path", "blue /Deep/Path"),
        ("rw.example.com", "/somethingelse", "404"),
        ("rw.example.com", "/plainly?x", "green /plainly?x"),
        ("rw.example.com", "/PLAIN", "green /PLAIN"),
        ("other.example.com", "/plainly", "404"),
        ("other.example.com", "/plain/x", "green /plain/x"),
    ];
    for (host, target, expected) in cases {
        assert_eq!(reached(&stack, host, "", target), expected, "{host}{target}");
    }
    assert_eq!(stack.ingressd.metric("ingressd_route_invalid_regex_paths"), Some(1.0), "the bad regex path is counted");
    assert!(logged(&stack.ingressd, r#"invalid regex path "/broken(""#, Duration::from_secs(2)), "and logged");
}

#[test]
fn canary_takes_traffic_by_header_then_cookie_then_weight() {
    let canary = |weight: &str| {
        ingress(
            "canary",
            "2024-01-01T00:00:00Z",
            "app.example.com",
            &[("canary", "true"), ("canary-by-header", "X-Canary"), ("canary-by-cookie", "use_canary"), ("canary-weight", weight)],
            &[("/", "Prefix", "green")],
        )
    };
    let stack = start(vec![
        ingress("main", "2024-01-02T00:00:00Z", "app.example.com", &[("rewrite-target", "/v1/$1")], &[("/(.*)", "ImplementationSpecific", "blue")]),
        ingress("main-root", "2024-01-02T00:00:00Z", "root.example.com", &[], &[("/", "Prefix", "blue")]),
        canary("0"),
    ]);
    // The canary's path must be the main's as written; "/" shadows nothing on app.example.com.
    assert_eq!(reached(&stack, "app.example.com", "X-Canary: always\r\n", "/a"), "blue /v1/a");
    stack.api.fake.apply(ingress(
        "canary",
        "2024-01-01T00:00:00Z",
        "app.example.com",
        &[("canary", "true"), ("canary-by-header", "X-Canary"), ("canary-by-cookie", "use_canary"), ("canary-weight", "0")],
        &[("/(.*)", "ImplementationSpecific", "green")],
    ));
    assert!(wait_until(Duration::from_secs(2), || reached(&stack, "app.example.com", "X-Canary: always\r\n", "/a") == "green /v1/a"), "the main's rewrite applies to canary traffic");
    let cases = [
        ("", "blue /v1/a"),
        ("X-Canary: never\r\nCookie: use_canary=always\r\n", "blue /v1/a"),
        ("Cookie: theme=dark; use_canary=always\r\n", "green /v1/a"),
        ("X-Canary: perhaps\r\nCookie: use_canary=always\r\n", "green /v1/a"),
        ("Cookie: use_canary=never\r\n", "blue /v1/a"),
    ];
    for (headers, expected) in cases {
        assert_eq!(reached(&stack, "app.example.com", headers, "/a"), expected, "{headers:?}");
    }
    stack.api.fake.apply(ingress(
        "canary",
        "2024-01-01T00:00:00Z",
        "app.example.com",
        &[("canary", "true"), ("canary-weight", "100")],
        &[("/(.*)", "ImplementationSpecific", "green")],
    ));
    assert!(wait_until(Duration::from_secs(2), || reached(&stack, "app.example.com", "", "/b") == "green /v1/b"), "weight 100 takes everything");
    assert_eq!(reached(&stack, "root.example.com", "", "/b"), "blue /b", "other hosts are untouched");

    let document: Value = serde_json::from_slice(&stack.ingressd.admin_get("/debug/routes").body).expect("inspector JSON");
    let routes = document["routes"].as_array().expect("routes");
    let app = routes.iter().find(|r| r["host"] == "app.example.com").expect("the app route");
    assert_eq!((app["ingress"].as_str(), app["rewriteTarget"].as_str()), (Some("web/main"), Some("/v1/$1")));
    assert_eq!((app["canary"]["ingress"].as_str(), app["canary"]["service"].as_str()), (Some("web/canary"), Some("green")), "{app}");
    assert_eq!(app["canary"]["endpoints"].as_array().map(Vec::len), Some(1));
}

#[test]
fn a_weighted_canary_takes_about_its_share() {
    let stack = start(vec![
        ingress("main", "2024-01-02T00:00:00Z", "w.example.com", &[], &[("/", "Prefix", "blue")]),
        ingress("canary", "2024-01-01T00:00:00Z", "w.example.com", &[("canary", "true"), ("canary-weight", "30")], &[("/", "Prefix", "green")]),
    ]);
    let green = (0..400).filter(|_| reached(&stack, "w.example.com", "", "/").starts_with("green")).count();
    // 30 % of 400 is 120; a binomial's 5-sigma band is about +-46.
    assert!((74..=166).contains(&green), "{green} of 400 went to the 30 % canary");
}

#[test]
fn from_to_www_redirect_sends_the_other_host_to_the_served_one() {
    let stack = start(vec![
        ingress("shop", "", "shop.example.com", &[("from-to-www-redirect", "true")], &[("/", "Prefix", "blue")]),
        ingress("blog", "", "www.blog.example.com", &[("from-to-www-redirect", "true")], &[("/", "Prefix", "blue")]),
    ]);
    let port = stack.ingressd.http.port();
    let location = |host: &str, target: &str| {
        let response = get(stack.ingressd.http, target, host).expect("answer");
        (response.status, response.header("location").map(str::to_string))
    };
    assert_eq!(location(&format!("www.shop.example.com:{port}"), "/cart?id=1"), (308, Some(format!("http://shop.example.com:{port}/cart?id=1"))));
    assert_eq!(location("blog.example.com", "/post/"), (308, Some("http://www.blog.example.com/post".to_string())));
    assert_eq!(location("shop.example.com", "/cart").0, 200);
    assert_eq!(stack.blue.requests.load(std::sync::atomic::Ordering::SeqCst), 1, "redirects never reach the backend");
}
