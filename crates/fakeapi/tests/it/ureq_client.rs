//! The fake server as ingressd's own HTTP client (ureq 3 over rustls) sees it: lists,
//! streamed watch lines, a clean end versus an abrupt drop, error statuses.

use crate::common;

use std::io::{BufRead, BufReader};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use ureq::tls::{PemItem, RootCerts, TlsConfig, TlsProvider};
use ureq::Agent;

fn agent(ca_pem: &str) -> Agent {
    let certs: Vec<_> = ureq::tls::parse_pem(ca_pem.as_bytes())
        .filter_map(|item| match item {
            Ok(PemItem::Certificate(cert)) => Some(cert),
            _ => None,
        })
        .collect();
    assert!(!certs.is_empty());
    let tls = TlsConfig::builder()
        .provider(TlsProvider::Rustls)
        .root_certs(RootCerts::new_with_certs(&certs))
        .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .build();
    Agent::config_builder()
        .tls_config(tls)
        .http_status_as_error(false)
        .proxy(None)
        .timeout_connect(Some(Duration::from_secs(5)))
        .timeout_per_read(Some(Duration::from_secs(5)))
        .build()
        .into()
}

const INGRESSES: &str = "/apis/networking.k8s.io/v1/ingresses";

#[test]
fn ureq_lists_and_reads_error_statuses() {
    let api = start();
    api.create(ingress("web", "a", json!({})));
    let agent = agent(&api.ca_pem());
    let mut response = agent.get(format!("{}{INGRESSES}", api.url())).header("Authorization", format!("Bearer {TOKEN}")).call().unwrap();
    assert_eq!(response.status(), 200);
    let list: Value = serde_json::from_reader(response.body_mut().as_reader()).unwrap();
    assert_eq!(names(&list), ["a"]);

    api.fail_next(1, 429);
    let mut response = agent.get(format!("{}{INGRESSES}", api.url())).header("Authorization", format!("Bearer {TOKEN}")).call().unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers().get("retry-after").unwrap(), "1");
    let status: Value = serde_json::from_reader(response.body_mut().as_reader()).unwrap();
    assert_eq!(status["reason"], "TooManyRequests");

    let body = json!({"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}, "metadata": {"name": "a", "namespace": "web"}});
    let mut response = agent
        .put(format!("{}/apis/networking.k8s.io/v1/namespaces/web/ingresses/a/status", api.url()))
        .header("Authorization", format!("Bearer {TOKEN}"))
        .header("Content-Type", "application/json")
        .send(body.to_string().as_bytes())
        .unwrap();
    assert_eq!(response.status(), 200);
    let updated: Value = serde_json::from_reader(response.body_mut().as_reader()).unwrap();
    assert_eq!(updated["status"]["loadBalancer"]["ingress"][0]["ip"], "192.0.2.1");
}

#[test]
fn ureq_reads_watch_lines_as_they_come_and_tells_clean_end_from_drop() {
    let api = start();
    let agent = agent(&api.ca_pem());
    let rv = api.resource_version();
    let url = format!("{}{INGRESSES}?watch=1&resourceVersion={rv}&allowWatchBookmarks=true&timeoutSeconds=2", api.url());
    let response = agent.get(&url).header("Authorization", format!("Bearer {TOKEN}")).call().unwrap();
    assert_eq!(response.status(), 200);
    let mut lines = BufReader::new(response.into_body().into_reader());
    api.create(ingress("web", "live", json!({})));
    let mut line = String::new();
    let started = Instant::now();
    let mut types = Vec::new();
    loop {
        line.clear();
        let n = lines.read_line(&mut line).expect("a cleanly ended watch reads to EOF without error");
        if n == 0 {
            break;
        }
        let event: Value = serde_json::from_str(&line).unwrap();
        types.push(event["type"].as_str().unwrap().to_string());
    }
    assert_eq!(types[0], "ADDED");
    assert!(types[1..].iter().all(|t| t == "BOOKMARK") && types.len() > 1, "{types:?}");
    assert!(started.elapsed() < Duration::from_secs(4));

    let url = format!("{}{INGRESSES}?watch=1&resourceVersion={}", api.url(), api.resource_version());
    let response = agent.get(&url).header("Authorization", format!("Bearer {TOKEN}")).call().unwrap();
    let mut lines = BufReader::new(response.into_body().into_reader());
    assert!(api.wait_for_watches(1, Duration::from_secs(5)));
    api.drop_watches();
    let mut rest = String::new();
    let outcome = lines.read_line(&mut rest);
    assert!(outcome.is_err(), "a dropped watch must not look like a clean end: {outcome:?} {rest:?}");
}
