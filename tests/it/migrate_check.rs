//! `ingressd migrate-check` as an operator runs it: the real binary, on a
//! `kubectl get ingress -A -o json` dump and against the fake API server.

use std::process::{Command, Output};

use serde_json::{json, Value};

use crate::common::{Api, TempDir};

/// ingress-nginx's own list, kept apart from the catalogue it checks.
fn nginx_annotation_names() -> Vec<String> {
    include_str!("fixtures/ingress-nginx-annotations.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(String::from)
        .collect()
}

fn migrate_check(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ingressd")).arg("migrate-check").args(args).output().expect("ingressd runs")
}

fn ingress(name: &str, class: &str, annotations: Value, tls: bool) -> Value {
    let mut spec = json!({"ingressClassName": class, "rules": [{"host": format!("{name}.example.com"), "http": {"paths": [
        {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": name, "port": {"number": 80}}}}]}}]});
    if tls {
        spec["tls"] = json!([{"hosts": [format!("{name}.example.com")], "secretName": name}]);
    }
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"namespace": "shop", "name": name, "annotations": annotations}, "spec": spec})
}

fn dump(dir: &TempDir, items: Vec<Value>) -> String {
    let path = dir.path("ingresses.json");
    std::fs::write(&path, json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string()).expect("dump");
    path.display().to_string()
}

#[test]
fn the_catalogue_holds_exactly_ingress_nginx_annotations() {
    let catalogue: Vec<&str> = ingressd::annotations::catalogue::CATALOGUE.iter().map(|e| e.name).collect();
    assert_eq!(catalogue, nginx_annotation_names());
}

#[test]
fn every_ingress_nginx_annotation_gets_a_verdict() {
    let names = nginx_annotation_names();
    let annotations: serde_json::Map<String, Value> =
        names.iter().map(|n| (format!("nginx.ingress.kubernetes.io/{n}"), json!("x"))).collect();
    let dir = TempDir::new();
    let file = dump(&dir, vec![ingress("everything", "ingressd", Value::Object(annotations), true)]);
    let out = migrate_check(&["--file", &file]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "something is ignored: {stdout}");
    for name in &names {
        let key = format!("nginx.ingress.kubernetes.io/{name}");
        let line = stdout.lines().find(|l| l.split_whitespace().nth(1).is_some_and(|k| k.trim_end_matches(':') == key));
        let line = line.unwrap_or_else(|| panic!("{key} is not reported:\n{stdout}"));
        let verdict = line.split_whitespace().next().unwrap_or_default();
        let expected = if name.ends_with("-snippet") { ["refused"].as_slice() } else { ["honoured", "ignored"].as_slice() };
        assert!(expected.contains(&verdict), "{line}");
    }
    assert!(stdout.contains("Summary"), "{stdout}");
    let honoured = ingressd::annotations::catalogue::CATALOGUE.iter().filter(|e| e.support == ingressd::annotations::catalogue::Support::Honoured).count();
    assert!(stdout.contains(&format!("Annotations: {honoured} honoured, {} ignored, 5 refused", names.len() - honoured - 5)), "{stdout}");
}

#[test]
fn an_ingress_that_needs_nothing_exits_zero_and_unreadable_input_exits_two() {
    let dir = TempDir::new();
    let clean = dump(&dir, vec![ingress("clean", "ingressd", json!({"nginx.ingress.kubernetes.io/ssl-redirect": "true"}), true)]);
    let out = migrate_check(&["--file", &clean]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));

    let tls_without_redirect = dump(&dir, vec![ingress("tls", "ingressd", json!({}), true)]);
    let out = migrate_check(&["--file", &tls_without_redirect]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("DEFAULT"), "the default HTTPS redirect is flagged");

    let missing = dir.path("missing.json");
    assert_eq!(migrate_check(&["--file", &missing.display().to_string()]).status.code(), Some(2));
    let garbage = dir.path("garbage.json");
    std::fs::write(&garbage, "{not json").expect("write");
    let out = migrate_check(&["--file", &garbage.display().to_string()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not JSON"), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(migrate_check(&["--file"]).status.code(), Some(2), "a flag without its value");
    assert_eq!(migrate_check(&["--help"]).status.code(), Some(0));
}

#[test]
fn reads_every_ingress_and_class_from_the_api_server() {
    let api = Api::start();
    api.fake.create(json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": {"name": "nginx"},
        "spec": {"controller": "k8s.io/ingress-nginx"}}));
    api.fake.create(ingress("old", "nginx", json!({"nginx.ingress.kubernetes.io/configuration-snippet": "return 200;"}), false));
    api.fake.create(ingress("new", "ingressd", json!({}), false));
    let token = api.dir.path("token").display().to_string();
    let ca = api.dir.path("ca.crt").display().to_string();
    let out = migrate_check(&["--apiserver", &api.fake.url(), "--token-file", &token, "--ca-file", &ca]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("shop/old\n  NOT SERVED  class \"nginx\""), "{stdout}");
    assert!(stdout.contains("refused     nginx.ingress.kubernetes.io/configuration-snippet"), "{stdout}");
    assert!(stdout.contains("shop/new\n  ok"), "{stdout}");

    let unreachable = migrate_check(&["--apiserver", "https://127.0.0.1:1", "--token-file", &token, "--ca-file", &ca]);
    assert_eq!(unreachable.status.code(), Some(2));
}
