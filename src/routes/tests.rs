//! Table tests for compile + lookup, from Snapshot to Route.

use serde_json::{json, Value};

use super::*;
use crate::kube::objects::{EndpointSlice, Ingress, IngressClass, Service};
use crate::test_rng::Xorshift;

fn config() -> RouteConfig {
    RouteConfig {
        ingress_class: "ingressd".into(),
        controller_name: "ingressd.io/ingress-controller".into(),
        ..RouteConfig::default()
    }
}

/// A snapshot under construction; objects are written as the API sends them.
#[derive(Default)]
struct Cluster {
    snapshot: Snapshot,
}

impl Cluster {
    fn ingress(&mut self, value: Value) -> &mut Self {
        let ingress: Ingress = serde_json::from_value(value).expect("ingress json");
        self.snapshot.insert(crate::kube::Object::Ingress(ingress));
        self
    }

    /// An Ingress of our class in namespace `ns` with one rule per host.
    fn rules(&mut self, name: &str, created: &str, rules: Value) -> &mut Self {
        self.ingress(json!({
            "metadata": {"namespace": "ns", "name": name, "creationTimestamp": created},
            "spec": {"ingressClassName": "ingressd", "rules": rules}
        }))
    }

    /// One host with `(path, pathType)` pairs, all to service `svc:80`.
    fn paths(&mut self, name: &str, host: Option<&str>, paths: &[(&str, &str)]) -> &mut Self {
        let paths: Vec<Value> = paths.iter().map(|(path, path_type)| path_rule(path, path_type, backend("svc", 80))).collect();
        self.rules(name, "2024-01-01T00:00:00Z", json!([{"host": host, "http": {"paths": paths}}]))
    }

    fn class(&mut self, value: Value) -> &mut Self {
        let class: IngressClass = serde_json::from_value(value).expect("class json");
        self.snapshot.insert(crate::kube::Object::IngressClass(class));
        self
    }

    fn service(&mut self, value: Value) -> &mut Self {
        let service: Service = serde_json::from_value(value).expect("service json");
        self.snapshot.insert(crate::kube::Object::Service(service));
        self
    }

    fn slice(&mut self, value: Value) -> &mut Self {
        let slice: EndpointSlice = serde_json::from_value(value).expect("slice json");
        self.snapshot.insert(crate::kube::Object::EndpointSlice(slice));
        self
    }

    fn table(&self) -> RouteTable {
        compile(&self.snapshot, &config())
    }
}

fn backend(service: &str, port: i32) -> Value {
    json!({"service": {"name": service, "port": {"number": port}}})
}

fn path_rule(path: &str, path_type: &str, backend: Value) -> Value {
    json!({"path": path, "pathType": path_type, "backend": backend})
}

/// `(path, pathType)` of the route a request reaches, if any.
fn matched(table: &RouteTable, host: &str, path: &str) -> Option<(String, Option<PathType>)> {
    table.lookup(host, path).map(|r| (r.path.to_string(), r.path_type))
}

fn upstreams(route: Option<&Route>) -> Vec<String> {
    match route.map(|r| &r.backend) {
        Some(Backend::Upstreams(list)) => list.iter().map(|u| u.authority.to_string()).collect(),
        other => panic!("expected upstreams, got {other:?}"),
    }
}

fn unavailable(route: Option<&Route>) -> String {
    match route.map(|r| &r.backend) {
        Some(Backend::Unavailable(reason)) => reason.clone(),
        other => panic!("expected unavailable, got {other:?}"),
    }
}

/// The "Examples" table of the Kubernetes Ingress concept page, row by row:
/// the rules of one Ingress, a request path, and the rule it must reach.
#[test]
fn kubernetes_path_matching_examples() {
    type Row<'a> = (&'a [(&'a str, &'a str)], &'a str, Option<(&'a str, &'a str)>);
    let rows: &[Row] = &[
        (&[("/", "Prefix")], "/", Some(("/", "Prefix"))),
        (&[("/", "Prefix")], "/anything", Some(("/", "Prefix"))),
        (&[("/foo", "Exact")], "/foo", Some(("/foo", "Exact"))),
        (&[("/foo", "Exact")], "/bar", None),
        (&[("/foo", "Exact")], "/foo/", None),
        (&[("/foo/", "Exact")], "/foo", None),
        (&[("/foo", "Prefix")], "/foo", Some(("/foo", "Prefix"))),
        (&[("/foo", "Prefix")], "/foo/", Some(("/foo", "Prefix"))),
        (&[("/foo/", "Prefix")], "/foo", Some(("/foo/", "Prefix"))),
        (&[("/foo/", "Prefix")], "/foo/", Some(("/foo/", "Prefix"))),
        (&[("/foo", "Prefix"), ("/foo/", "Prefix")], "/foo", Some(("/foo", "Prefix"))),
        (&[("/foo", "Prefix"), ("/foo/", "Prefix")], "/foo/", Some(("/foo", "Prefix"))),
        (&[("/aaa/bb", "Prefix")], "/aaa/bbb", None),
        (&[("/aaa/bbb", "Prefix")], "/aaa/bbb", Some(("/aaa/bbb", "Prefix"))),
        (&[("/aaa/bbb/", "Prefix")], "/aaa/bbb", Some(("/aaa/bbb/", "Prefix"))),
        (&[("/aaa/bbb", "Prefix")], "/aaa/bbb/", Some(("/aaa/bbb", "Prefix"))),
        (&[("/aaa/bbb", "Prefix")], "/aaa/bbb/ccc", Some(("/aaa/bbb", "Prefix"))),
        (&[("/aaa/bbb", "Prefix")], "/aaa/bbbxyz", None),
        (&[("/", "Prefix"), ("/aaa", "Prefix")], "/aaa/ccc", Some(("/aaa", "Prefix"))),
        (&[("/", "Prefix"), ("/aaa", "Prefix"), ("/aaa/bbb", "Prefix")], "/aaa/bbb", Some(("/aaa/bbb", "Prefix"))),
        (&[("/", "Prefix"), ("/aaa", "Prefix"), ("/aaa/bbb", "Prefix")], "/ccc", Some(("/", "Prefix"))),
        (&[("/aaa", "Prefix")], "/ccc", None),
        (&[("/foo", "Exact"), ("/foo", "Prefix")], "/foo", Some(("/foo", "Exact"))),
        (&[("/foo", "Prefix"), ("/foo", "Exact")], "/foo", Some(("/foo", "Exact"))),
        (&[("/foo", "Prefix"), ("/foo", "Exact")], "/foo/", Some(("/foo", "Prefix"))),
        (&[("/foo/", "Exact"), ("/foo", "Prefix")], "/foo/", Some(("/foo/", "Exact"))),
        (&[("/foo", "ImplementationSpecific")], "/foo/bar", Some(("/foo", "ImplementationSpecific"))),
    ];
    for (rules, request, expected) in rows {
        let table = Cluster::default().paths("ing", Some("foo.com"), rules).table();
        let expected = expected.map(|(path, path_type)| {
            let path_type = path::parse_path_type(Some(path_type)).expect("path type");
            (path.to_string(), Some(path_type))
        });
        assert_eq!(matched(&table, "foo.com", request), expected, "rules {rules:?}, request {request}");
    }
}

#[test]
fn hostname_wildcards_match_one_label() {
    let table = Cluster::default().paths("wild", Some("*.foo.com"), &[("/", "Prefix")]).table();
    assert!(table.lookup("bar.foo.com", "/").is_some());
    assert!(table.lookup("BAR.Foo.com:8080", "/").is_some());
    assert!(table.lookup("bar.foo.com.", "/").is_some());
    assert!(table.lookup("baz.bar.foo.com", "/").is_none());
    assert!(table.lookup("foo.com", "/").is_none());
    assert!(table.lookup(".foo.com", "/").is_none());
    assert!(table.lookup("bar.foo.org", "/").is_none());
}

#[test]
fn exact_hosts_match_only_themselves_in_any_case() {
    let table = Cluster::default().paths("one", Some("foo.example.com"), &[("/", "Prefix")]).table();
    for host in ["foo.example.com", "FOO.example.COM", "foo.example.com:80", "foo.example.com."] {
        assert!(table.lookup(host, "/x").is_some(), "{host}");
    }
    for host in ["bar.foo.example.com", "example.com", "foo.example.com.evil", "[::1]:80", "", "::1"] {
        assert!(table.lookup(host, "/x").is_none(), "{host}");
    }
}

#[test]
fn precedence_and_fall_through() {
    let table = Cluster::default()
        .rules(
            "ing",
            "2024-01-01T00:00:00Z",
            json!([
                {"host": "a.foo.com", "http": {"paths": [path_rule("/api", "Prefix", backend("exact", 80))]}},
                {"host": "*.foo.com", "http": {"paths": [path_rule("/", "Prefix", backend("wild", 80)), path_rule("/web", "Prefix", backend("wild-web", 80))]}},
                {"http": {"paths": [path_rule("/", "Prefix", backend("any", 80)), path_rule("/static", "Prefix", backend("any-static", 80))]}}
            ]),
        )
        .ingress(json!({
            "metadata": {"namespace": "ns", "name": "fallback", "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"ingressClassName": "ingressd", "defaultBackend": backend("default", 80)}
        }))
        .table();
    let service = |host: &str, path: &str| table.lookup(host, path).map(|r| r.service.clone());
    assert_eq!(service("a.foo.com", "/api/v1").as_deref(), Some("exact"));
    assert_eq!(service("a.foo.com", "/web").as_deref(), Some("wild-web"), "exact host without matching path falls to wildcard");
    assert_eq!(service("a.foo.com", "/other").as_deref(), Some("wild"));
    assert_eq!(service("b.foo.com", "/api").as_deref(), Some("wild"));
    assert_eq!(service("other.com", "/static/x").as_deref(), Some("any-static"));
    assert_eq!(service("other.com", "/x").as_deref(), Some("any"));
    assert_eq!(service("", "/x").as_deref(), Some("any"));
    assert_eq!(service("other.com", "nopath").as_deref(), Some("default"), "a path no prefix covers ends at the default backend");
    assert_eq!(table.len(), 6);
    assert!(table.default_backend().is_some_and(|r| r.is_default_backend()));
}

#[test]
fn no_match_without_default_backend_is_none() {
    let table = Cluster::default().paths("ing", Some("foo.com"), &[("/app", "Prefix")]).table();
    assert!(table.lookup("foo.com", "/other").is_none());
    assert!(table.lookup("bar.com", "/app").is_none());
    assert!(RouteTable::default().is_empty());
}

#[test]
fn query_strings_are_ignored() {
    let table = Cluster::default().paths("ing", Some("foo.com"), &[("/foo", "Exact")]).table();
    assert!(table.lookup("foo.com", "/foo?x=1").is_some());
    assert!(table.lookup("foo.com", "/foo/?x=1").is_none());
}

#[test]
fn many_ingresses_merge_and_the_oldest_claim_wins() {
    let mut cluster = Cluster::default();
    let one_path = |service: &str| json!([{"host": "foo.com", "http": {"paths": [path_rule("/", "Prefix", backend(service, 80))]}}]);
    cluster
        .rules("young", "2024-03-01T00:00:00Z", one_path("young"))
        .rules("old", "2024-01-01T00:00:00Z", one_path("old"))
        .rules("b-tie", "2024-02-01T00:00:00Z", one_path("b-tie"))
        .rules("a-tie", "2024-02-01T00:00:00Z", json!([{"host": "foo.com", "http": {"paths": [path_rule("/", "ImplementationSpecific", backend("a-tie", 80))]}}]))
        .rules("other", "2024-05-01T00:00:00Z", json!([{"host": "foo.com", "http": {"paths": [path_rule("/other", "Prefix", backend("other", 80))]}}]));
    let table = cluster.table();
    assert_eq!(table.lookup("foo.com", "/").map(|r| r.service.as_str()), Some("old"));
    assert_eq!(table.lookup("foo.com", "/other").map(|r| r.service.as_str()), Some("other"), "non-conflicting paths merge");
    let conflicts = table.conflicts();
    let losers: Vec<&str> = conflicts.iter().map(|c| c.loser.name.as_str()).collect();
    assert_eq!(losers, ["a-tie", "b-tie", "young"], "oldest first, then by name");
    assert!(table.conflicts().iter().all(|c| c.winner.name == "old" && c.host == "foo.com"));
    assert_eq!(table.conflicts()[0].path_type, Some(PathType::ImplementationSpecific));

    cluster.snapshot.remove(crate::kube::Kind::Ingress, &ObjectKey::new("ns", "old"));
    let table = cluster.table();
    assert_eq!(table.lookup("foo.com", "/").map(|r| r.service.as_str()), Some("a-tie"), "a change re-decides");
}

#[test]
fn prefix_with_and_without_trailing_slash_is_one_claim_but_exact_is_another() {
    let table = Cluster::default()
        .rules(
            "ing",
            "2024-01-01T00:00:00Z",
            json!([{"host": "foo.com", "http": {"paths": [
                path_rule("/foo", "Prefix", backend("first", 80)),
                path_rule("/foo/", "Prefix", backend("second", 80)),
                path_rule("/foo", "Exact", backend("exact", 80)),
            ]}}]),
        )
        .table();
    assert_eq!(table.conflicts().len(), 1);
    assert_eq!(table.lookup("foo.com", "/foo/x").map(|r| r.service.as_str()), Some("first"));
    assert_eq!(table.lookup("foo.com", "/foo").map(|r| r.service.as_str()), Some("exact"));
}

#[test]
fn default_backends_oldest_ingress_then_flag() {
    let mut cluster = Cluster::default();
    let with_default = |name: &str, created: &str| {
        json!({
            "metadata": {"namespace": "ns", "name": name, "creationTimestamp": created},
            "spec": {"ingressClassName": "ingressd", "defaultBackend": backend(name, 80)}
        })
    };
    cluster.ingress(with_default("newer", "2024-02-01T00:00:00Z")).ingress(with_default("older", "2024-01-01T00:00:00Z"));
    let table = cluster.table();
    assert_eq!(table.lookup("any.host", "/").map(|r| r.service.as_str()), Some("older"));
    assert_eq!(table.conflicts().len(), 1);
    assert_eq!(table.conflicts()[0].path_type, None);

    let mut flag = config();
    flag.default_backend_service = Some((ObjectKey::new("sys", "fallback"), PortRef::Name("http".into())));
    assert_eq!(compile(&cluster.snapshot, &flag).lookup("x", "/").map(|r| r.service.as_str()), Some("older"), "an Ingress beats the flag");

    let empty = Snapshot::default();
    let table = compile(&empty, &flag);
    let route = table.lookup("x", "/y");
    assert_eq!(route.map(|r| (r.service.as_str(), r.service_port.as_str())), Some(("fallback", "http")));
    assert!(unavailable(route).contains("sys/fallback"));
    assert_eq!(table.len(), 1);
}

#[test]
fn invalid_paths_and_hosts_are_skipped_and_the_rest_works() {
    let table = Cluster::default()
        .rules(
            "ing",
            "2024-01-01T00:00:00Z",
            json!([
                {"host": "foo.com", "http": {"paths": [
                    path_rule("relative", "Prefix", backend("s", 80)),
                    {"path": "/nopathtype", "backend": backend("s", 80)},
                    path_rule("/unknown", "Regex", backend("s", 80)),
                    path_rule("/ok", "Prefix", backend("s", 80)),
                ]}},
                {"host": "bad:80", "http": {"paths": [path_rule("/", "Prefix", backend("s", 80))]}},
                {"host": "bad host", "http": {"paths": [path_rule("/", "Prefix", backend("s", 80))]}},
                {"host": "a.*.com", "http": {"paths": [path_rule("/", "Prefix", backend("s", 80))]}},
                {"host": "good.com", "http": {"paths": [path_rule("/", "Prefix", backend("s", 80))]}},
            ]),
        )
        .table();
    assert_eq!(table.len(), 2);
    assert!(table.lookup("foo.com", "/ok").is_some());
    assert!(table.lookup("foo.com", "/nopathtype").is_none());
    assert!(table.lookup("foo.com", "/unknown").is_none());
    assert!(table.lookup("good.com", "/").is_some());
    assert!(table.lookup("bad", "/").is_none());
}

fn class(name: &str, controller: &str, default: bool) -> Value {
    let annotations = if default { json!({"ingressclass.kubernetes.io/is-default-class": "true"}) } else { json!({}) };
    json!({"metadata": {"name": name, "annotations": annotations}, "spec": {"controller": controller}})
}

fn classed(name: &str, class_name: Option<&str>, legacy: Option<&str>) -> Value {
    let annotations = match legacy {
        Some(value) => json!({"kubernetes.io/ingress.class": value}),
        None => json!({}),
    };
    json!({
        "metadata": {"namespace": "ns", "name": name, "annotations": annotations},
        "spec": {"ingressClassName": class_name, "rules": [{"host": format!("{name}.com"), "http": {"paths": [path_rule("/", "Prefix", backend("s", 80))]}}]}
    })
}

#[test]
fn class_selection_decides_what_is_routed() {
    let mut cluster = Cluster::default();
    cluster
        .class(class("edge", "ingressd.io/ingress-controller", false))
        .class(class("nginx", "k8s.io/ingress-nginx", false))
        .ingress(classed("by-controller", Some("edge"), None))
        .ingress(classed("by-flag-name", Some("ingressd"), None))
        .ingress(classed("other-class", Some("nginx"), None))
        .ingress(classed("legacy-ours", None, Some("ingressd")))
        .ingress(classed("legacy-other", None, Some("nginx")))
        .ingress(classed("classless", None, None));
    let routed = |snapshot: &Snapshot, config: &RouteConfig| -> Vec<String> {
        let mut names: Vec<String> = served_ingresses(snapshot, config).iter().map(|i| i.metadata.name.to_string()).collect();
        names.sort();
        let table = compile(snapshot, config);
        for name in &names {
            assert!(table.lookup(&format!("{name}.com"), "/").is_some(), "{name} served but not routed");
        }
        names
    };
    assert_eq!(routed(&cluster.snapshot, &config()), ["by-controller", "by-flag-name", "legacy-ours"]);

    let all = RouteConfig { watch_ingress_without_class: true, ..config() };
    assert_eq!(routed(&cluster.snapshot, &all), ["by-controller", "by-flag-name", "classless", "legacy-ours"]);

    cluster.class(class("edge", "ingressd.io/ingress-controller", true));
    assert_eq!(routed(&cluster.snapshot, &config()), ["by-controller", "by-flag-name", "classless", "legacy-ours"]);

    cluster.ingress(classed("by-controller", Some("nginx"), None));
    assert!(compile(&cluster.snapshot, &config()).lookup("by-controller.com", "/").is_none(), "a class change takes effect");
}

fn web_service(ports: Value) -> Value {
    json!({"metadata": {"namespace": "ns", "name": "web"}, "spec": {"clusterIP": "10.96.0.10", "ports": ports}})
}

fn web_slice(name: &str, ports: Value, endpoints: Value) -> Value {
    json!({
        "metadata": {"namespace": "ns", "name": name, "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4", "ports": ports, "endpoints": endpoints
    })
}

fn web_ingress(cluster: &mut Cluster, port: Value) {
    cluster.rules("ing", "2024-01-01T00:00:00Z", json!([{"host": "web.com", "http": {"paths": [
        path_rule("/", "Prefix", json!({"service": {"name": "web", "port": port}}))
    ]}}]));
}

#[test]
fn endpoints_by_named_port_ready_and_deduplicated() {
    let mut cluster = Cluster::default();
    web_ingress(&mut cluster, json!({"name": "http"}));
    cluster
        .service(web_service(json!([{"name": "metrics", "port": 9090}, {"name": "http", "port": 80, "targetPort": "web"}])))
        .slice(web_slice(
            "web-a",
            json!([{"name": "metrics", "port": 19090}, {"name": "http", "port": 8080}]),
            json!([
                {"addresses": ["10.0.0.2"], "conditions": {"ready": true}},
                {"addresses": ["10.0.0.1"]},
                {"addresses": ["10.0.0.9"], "conditions": {"ready": false}}
            ]),
        ))
        .slice(web_slice("web-b", json!([{"name": "http", "port": 8080}]), json!([{"addresses": ["10.0.0.1", "10.0.0.3"]}])))
        .slice(json!({
            "metadata": {"namespace": "ns", "name": "web-v6", "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv6", "ports": [{"name": "http", "port": 8080}], "endpoints": [{"addresses": ["fd00::1"]}]
        }))
        .slice(json!({
            "metadata": {"namespace": "other", "name": "web-x", "labels": {"kubernetes.io/service-name": "web"}},
            "ports": [{"name": "http", "port": 8080}], "endpoints": [{"addresses": ["10.9.9.9"]}]
        }));
    let table = cluster.table();
    let route = table.lookup("web.com", "/");
    assert_eq!(upstreams(route), ["10.0.0.1:8080", "10.0.0.2:8080", "10.0.0.3:8080", "[fd00::1]:8080"]);
    assert_eq!(route.map(|r| (r.service.as_str(), r.service_port.as_str(), r.ready_upstreams())), Some(("web", "http", 4)));
}

#[test]
fn unnamed_port_by_number_and_no_ready_endpoint() {
    let mut cluster = Cluster::default();
    web_ingress(&mut cluster, json!({"number": 80}));
    cluster
        .service(web_service(json!([{"port": 80, "targetPort": 8080}])))
        .slice(web_slice("web-a", json!([{"port": 8080}]), json!([{"addresses": ["10.0.0.1"], "conditions": {"ready": false}}])));
    let table = cluster.table();
    assert!(upstreams(table.lookup("web.com", "/")).is_empty(), "the route exists and answers 503");

    cluster.slice(web_slice("web-a", json!([{"port": 8080}]), json!([{"addresses": ["10.0.0.1"], "conditions": {"ready": true}}])));
    assert_eq!(upstreams(cluster.table().lookup("web.com", "/")), ["10.0.0.1:8080"]);
}

#[test]
fn missing_service_port_and_resource_backends_are_unavailable() {
    let mut cluster = Cluster::default();
    cluster.rules(
        "ing",
        "2024-01-01T00:00:00Z",
        json!([{"host": "web.com", "http": {"paths": [
            path_rule("/missing", "Prefix", backend("nope", 80)),
            path_rule("/port", "Prefix", backend("web", 81)),
            path_rule("/named", "Prefix", json!({"service": {"name": "web", "port": {"name": "grpc"}}})),
            path_rule("/noport", "Prefix", json!({"service": {"name": "web", "port": {}}})),
            path_rule("/resource", "Prefix", json!({"resource": {"apiGroup": "k8s.example.com", "kind": "Bucket", "name": "b"}})),
        ]}}]),
    );
    cluster.service(web_service(json!([{"port": 80}])));
    let table = cluster.table();
    assert!(unavailable(table.lookup("web.com", "/missing")).contains("ns/nope not found"));
    assert!(unavailable(table.lookup("web.com", "/port")).contains("no port 81"));
    assert!(unavailable(table.lookup("web.com", "/named")).contains("no port grpc"));
    assert!(unavailable(table.lookup("web.com", "/noport")).contains("names no port"));
    assert!(unavailable(table.lookup("web.com", "/resource")).contains("not supported"));
}

#[test]
fn services_resolve_in_the_ingress_namespace_only() {
    let mut cluster = Cluster::default();
    web_ingress(&mut cluster, json!({"number": 80}));
    cluster.service(json!({"metadata": {"namespace": "elsewhere", "name": "web"}, "spec": {"ports": [{"port": 80}]}}));
    assert!(unavailable(cluster.table().lookup("web.com", "/")).contains("ns/web not found"));
}

#[test]
fn external_name_services_forward_to_their_name() {
    let mut cluster = Cluster::default();
    web_ingress(&mut cluster, json!({"number": 443}));
    cluster.service(json!({"metadata": {"namespace": "ns", "name": "web"}, "spec": {"type": "ExternalName", "externalName": "api.example.net"}}));
    assert_eq!(upstreams(cluster.table().lookup("web.com", "/")), ["api.example.net:443"]);
}

#[test]
fn cluster_ip_mode_uses_the_service_address() {
    let mut cluster = Cluster::default();
    web_ingress(&mut cluster, json!({"number": 80}));
    cluster
        .service(web_service(json!([{"port": 80, "targetPort": 8080}])))
        .slice(web_slice("web-a", json!([{"port": 8080}]), json!([{"addresses": ["10.0.0.1"]}])));
    let mode = RouteConfig { upstream_mode: UpstreamMode::ClusterIp, ..config() };
    assert_eq!(upstreams(compile(&cluster.snapshot, &mode).lookup("web.com", "/")), ["10.96.0.10:80"]);

    cluster.service(json!({"metadata": {"namespace": "ns", "name": "web"}, "spec": {"clusterIP": "fd00::10", "ports": [{"port": 80}]}}));
    assert_eq!(upstreams(compile(&cluster.snapshot, &mode).lookup("web.com", "/")), ["[fd00::10]:80"]);

    cluster.service(json!({"metadata": {"namespace": "ns", "name": "web"}, "spec": {"clusterIP": "None", "ports": [{"port": 80}]}}));
    assert_eq!(upstreams(compile(&cluster.snapshot, &mode).lookup("web.com", "/")), ["10.0.0.1:8080"], "headless falls back to endpoints");
}

#[test]
fn ssl_redirect_needs_the_annotation_and_a_tls_host() {
    let rules = json!([
        {"host": "secure.com", "http": {"paths": [path_rule("/", "Prefix", backend("s", 80))]}},
        {"host": "a.wild.com", "http": {"paths": [path_rule("/", "Prefix", backend("s", 80))]}},
        {"host": "a.b.wild.com", "http": {"paths": [path_rule("/", "Prefix", backend("s", 80))]}},
        {"host": "plain.com", "http": {"paths": [path_rule("/", "Prefix", backend("s", 80))]}},
    ]);
    let ingress = |annotation: Option<&str>, tls: Value| {
        let annotations = match annotation {
            Some(v) => json!({"ingressd.io/ssl-redirect": v}),
            None => json!({}),
        };
        json!({
            "metadata": {"namespace": "ns", "name": "ing", "annotations": annotations},
            "spec": {"ingressClassName": "ingressd", "tls": tls, "rules": rules}
        })
    };
    let redirects = |value: Value| {
        let table = Cluster::default().ingress(value).table();
        ["secure.com", "a.wild.com", "a.b.wild.com", "plain.com"]
            .into_iter()
            .filter(|host| table.lookup(host, "/").is_some_and(|r| r.ssl_redirect))
            .collect::<Vec<_>>()
    };
    let tls = json!([{"hosts": ["secure.com", "*.wild.com"], "secretName": "cert"}]);
    assert_eq!(redirects(ingress(Some("true"), tls.clone())), ["secure.com", "a.wild.com"]);
    assert!(redirects(ingress(Some("false"), tls.clone())).is_empty());
    assert!(redirects(ingress(None, tls)).is_empty());
    assert_eq!(redirects(ingress(Some("true"), json!([{"secretName": "cert"}]))).len(), 4, "tls without hosts covers every rule host");

    let with_annotations = |annotations: Value| {
        let mut ingress = ingress(None, json!([{"hosts": ["secure.com"], "secretName": "cert"}]));
        ingress["metadata"]["annotations"] = annotations;
        redirects(ingress)
    };
    assert_eq!(with_annotations(json!({"nginx.ingress.kubernetes.io/ssl-redirect": "true"})), ["secure.com"], "ingress-nginx's name");
    assert!(
        with_annotations(json!({"nginx.ingress.kubernetes.io/ssl-redirect": "true", "ingressd.io/ssl-redirect": "false"})).is_empty(),
        "ingressd.io/ wins over nginx.ingress.kubernetes.io/"
    );
}

#[test]
fn inspector_lists_every_route_once() {
    let mut cluster = Cluster::default();
    cluster
        .paths("a", Some("b.com"), &[("/", "Prefix"), ("/x", "Exact")])
        .paths("b", Some("*.a.com"), &[("/", "Prefix")])
        .paths("c", None, &[("/", "Prefix")]);
    let table = cluster.table();
    let listed: Vec<(&str, &str)> = table.routes().iter().map(|r| (r.host.as_str(), r.path.as_str())).collect();
    assert_eq!(listed, [("*.a.com", "/"), ("b.com", "/x"), ("b.com", "/"), ("", "/")]);
    assert_eq!(listed.len(), table.len());
}

/// The shared xorshift generator, with the picks the property test makes.
struct Rng(Xorshift);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0.next()
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    /// Text from pieces that exercise the boundaries, plus arbitrary bytes.
    fn text(&mut self, pieces: &[&str]) -> String {
        let mut out = String::new();
        for _ in 0..self.below(8) {
            if self.below(8) == 0 {
                out.push(char::from_u32(self.below(0x3000) as u32).unwrap_or('x'));
            } else {
                out.push_str(self.pick(pieces));
            }
        }
        out
    }
}

const PATH_PIECES: &[&str] = &["/", "a", "b", "aa", "/a", "/b", "//", "?", ".", "%2F", " ", "#"];
const HOST_PIECES: &[&str] = &["a", "b", ".", "*", ":", "[", "]", "::1", "A", "-", "80", "com", "é"];

/// What a route's pattern must do, written independently of the matcher.
fn reference_prefix_match(pattern: &str, path: &str) -> bool {
    let pattern: Vec<&str> = pattern.split('/').filter(|e| !e.is_empty()).collect();
    let path: Vec<&str> = path.split('/').filter(|e| !e.is_empty()).collect();
    path.len() >= pattern.len() && path.iter().zip(&pattern).all(|(a, b)| a == b)
}

#[test]
fn property_arbitrary_input_never_panics_and_prefix_is_element_wise() {
    let mut rng = Rng(Xorshift(0x9e37_79b9_7f4a_7c15));
    for _ in 0..300 {
        let mut cluster = Cluster::default();
        let mut rules = Vec::new();
        for _ in 0..rng.below(6) {
            let host = if rng.below(3) == 0 { Value::Null } else { Value::String(rng.text(HOST_PIECES)) };
            let paths: Vec<Value> = (0..rng.below(5))
                .map(|_| {
                    let path_type = rng.pick(&["Exact", "Prefix", "ImplementationSpecific", "Bogus"]);
                    path_rule(&format!("/{}", rng.text(PATH_PIECES)), path_type, backend("s", 80))
                })
                .collect();
            rules.push(json!({"host": host, "http": {"paths": paths}}));
        }
        cluster.rules("fuzz", "2024-01-01T00:00:00Z", Value::Array(rules));
        let table = cluster.table();
        assert_eq!(table.routes().len(), table.len());
        for _ in 0..50 {
            let host = rng.text(HOST_PIECES);
            let path = rng.text(PATH_PIECES);
            if let Some(route) = table.lookup(&host, &path) {
                let path = path::strip_query(&path);
                match route.path_type {
                    Some(PathType::Exact) => assert_eq!(route.path, path),
                    Some(_) => assert!(
                        reference_prefix_match(&route.path, path) && path.starts_with(route.path.trim_end_matches('/')),
                        "prefix {:?} matched {path:?}",
                        route.path
                    ),
                    None => panic!("no default backend was configured"),
                }
            }
        }
    }
}

#[test]
fn property_prefix_matcher_agrees_with_element_wise_reference() {
    let mut rng = Rng(Xorshift(42));
    let mut matched = 0;
    for _ in 0..20_000 {
        let pattern = format!("/{}", rng.text(&["a", "b", "ab", "/"]));
        let path = format!("/{}", rng.text(&["a", "b", "ab", "/"]));
        let Ok(matcher) = path::compile_path(Some(&pattern), PathType::Prefix) else { continue };
        let expected = reference_prefix_match(&pattern, &path) && !path.contains("//");
        if !path.contains("//") {
            assert_eq!(matcher.matches(&path), expected, "Prefix {pattern:?} vs {path:?}");
            matched += usize::from(expected);
        }
    }
    assert!(matched > 1000, "the generator must produce matches, got {matched}");
}

#[test]
fn service_upstream_sends_one_ingress_to_the_cluster_ip() {
    let ingress = |name: &str, host: &str, annotations: Value| {
        json!({
            "metadata": {"namespace": "ns", "name": name, "annotations": annotations},
            "spec": {"ingressClassName": "ingressd", "rules": [{"host": host, "http": {"paths": [
                path_rule("/", "Prefix", json!({"service": {"name": "web", "port": {"number": 80}}}))
            ]}}]}
        })
    };
    let mut cluster = Cluster::default();
    cluster
        .ingress(ingress("direct", "direct.com", json!({})))
        .ingress(ingress("kube-proxy", "vip.com", json!({"nginx.ingress.kubernetes.io/service-upstream": "true"})))
        .service(web_service(json!([{"port": 80, "targetPort": 8080}])))
        .slice(web_slice("web-a", json!([{"port": 8080}]), json!([{"addresses": ["10.0.0.1"]}])));
    let table = cluster.table();
    assert_eq!(upstreams(table.lookup("direct.com", "/")), ["10.0.0.1:8080"]);
    assert_eq!(upstreams(table.lookup("vip.com", "/")), ["10.96.0.10:80"], "the same Service, through its ClusterIP");
}

/// An Ingress of our class on one host with annotations and `(path,
/// pathType, service)` paths.
fn annotated(name: &str, created: &str, host: &str, annotations: Value, paths: &[(&str, &str, &str)]) -> Value {
    let paths: Vec<Value> = paths.iter().map(|(path, path_type, service)| path_rule(path, path_type, backend(service, 80))).collect();
    json!({
        "metadata": {"namespace": "ns", "name": name, "creationTimestamp": created, "annotations": annotations},
        "spec": {"ingressClassName": "ingressd", "rules": [{"host": host, "http": {"paths": paths}}]}
    })
}

fn served_by(table: &RouteTable, host: &str, path: &str) -> Option<(String, String)> {
    table.lookup(host, path).map(|r| (r.ingress.name.to_string(), r.path.to_string()))
}

/// A host, a path, and the Ingress and path of the route that must answer.
type LookupCase = (&'static str, &'static str, Option<(&'static str, &'static str)>);

/// ingress-nginx's "ingress path matching" page: one Ingress with
/// `use-regex` makes every path of its host a case-insensitive regex
/// anchored at the start, in every Ingress on that host; other hosts stay plain.
#[test]
fn one_regex_ingress_makes_its_host_regex() {
    let regex = json!({"nginx.ingress.kubernetes.io/use-regex": "true"});
    let mut cluster = Cluster::default();
    cluster
        .ingress(annotated("regex", "2024-01-01T00:00:00Z", "r.test", regex, &[("/foo/bar/bar", "Prefix", "svc"), ("/foo/bar/.+", "ImplementationSpecific", "svc")]))
        .ingress(annotated("plain", "2024-01-02T00:00:00Z", "r.test", json!({}), &[("/foo/bar/[A-Z0-9]{3}", "ImplementationSpecific", "svc"), ("/exact", "Exact", "svc")]))
        .ingress(annotated("other", "2024-01-01T00:00:00Z", "p.test", json!({}), &[("/foo", "Prefix", "svc")]));
    let table = cluster.table();
    let cases: &[LookupCase] = &[
        ("r.test", "/foo/bar/bar", Some(("plain", "/foo/bar/[A-Z0-9]{3}"))),
        ("r.test", "/foo/bar/ba", Some(("regex", "/foo/bar/.+"))),
        ("r.test", "/FOO/BAR/BAZ", Some(("plain", "/foo/bar/[A-Z0-9]{3}"))),
        ("r.test", "/foo/bar/bar-and-more", Some(("plain", "/foo/bar/[A-Z0-9]{3}"))),
        ("r.test", "/foo/bar/", None),
        ("r.test", "/exact/and/more", Some(("plain", "/exact"))),
        ("r.test", "/EXACT", Some(("plain", "/exact"))),
        ("p.test", "/foo", Some(("other", "/foo"))),
        ("p.test", "/foobar", None),
        ("p.test", "/FOO", None),
    ];
    for (host, path, expected) in cases {
        let expected = expected.map(|(i, p)| (i.to_string(), p.to_string()));
        assert_eq!(served_by(&table, host, path), expected, "{host}{path}");
    }
}

#[test]
fn rewrite_target_turns_regex_on_unless_it_is_the_path_itself() {
    let mut cluster = Cluster::default();
    cluster
        .ingress(annotated("rw", "", "rw.test", json!({"nginx.ingress.kubernetes.io/rewrite-target": "/$2"}), &[("/something(/|$)(.*)", "ImplementationSpecific", "svc")]))
        .ingress(annotated("same", "", "same.test", json!({"nginx.ingress.kubernetes.io/rewrite-target": "/app"}), &[("/app", "Prefix", "svc")]));
    let table = cluster.table();
    let route = table.lookup("rw.test", "/something/new").expect("routed");
    let rewrite = route.rewrite.as_ref().expect("a rewrite");
    assert_eq!(rewrite.apply("/something/new", Some("a=1")).as_deref(), Some("/new?a=1"));
    assert_eq!(rewrite.target(), "/$2");
    assert!(table.lookup("rw.test", "/somethingelse").is_none());
    let same = table.lookup("same.test", "/app/x").expect("routed");
    assert!(same.rewrite.is_none(), "a target equal to the path rewrites nothing");
    assert!(table.lookup("same.test", "/application").is_none(), "and the host stays plain");
}

/// A bad regex is logged and counted, and leaves out that path only.
#[test]
fn a_bad_regex_path_is_left_out_and_the_rest_serves() {
    let mut cluster = Cluster::default();
    cluster.ingress(annotated(
        "mixed",
        "",
        "r.test",
        json!({"ingressd.io/use-regex": "true"}),
        &[("/broken(", "ImplementationSpecific", "svc"), ("/lookahead(?=x)", "ImplementationSpecific", "svc"), ("/good/(.*)", "ImplementationSpecific", "svc")],
    ));
    let table = cluster.table();
    assert_eq!(table.invalid_regex_paths(), 2);
    assert_eq!(served_by(&table, "r.test", "/good/x"), Some(("mixed".into(), "/good/(.*)".into())));
    assert!(table.lookup("r.test", "/broken(").is_none());
    assert_eq!(table.len(), 1);
}

/// In regex mode equal patterns are one claim whatever their pathType: the
/// oldest Ingress wins, as for plain paths.
#[test]
fn regex_claims_conflict_by_pattern() {
    let regex = json!({"nginx.ingress.kubernetes.io/use-regex": "true"});
    let mut cluster = Cluster::default();
    cluster
        .ingress(annotated("young", "2024-01-02T00:00:00Z", "r.test", regex.clone(), &[("/a.*", "ImplementationSpecific", "svc")]))
        .ingress(annotated("old", "2024-01-01T00:00:00Z", "r.test", json!({}), &[("/a.*", "Prefix", "svc")]));
    let table = cluster.table();
    assert_eq!(served_by(&table, "r.test", "/abc"), Some(("old".into(), "/a.*".into())));
    let conflicts = table.conflicts();
    assert_eq!(conflicts.len(), 1);
    assert_eq!((conflicts[0].winner.name.as_str(), conflicts[0].loser.name.as_str()), ("old", "young"));
}

fn canary_annotations(weight: &str) -> Value {
    json!({"nginx.ingress.kubernetes.io/canary": "true", "nginx.ingress.kubernetes.io/canary-by-header": "X-Canary", "nginx.ingress.kubernetes.io/canary-weight": weight})
}

fn chosen<'t>(table: &'t RouteTable, host: &str, path: &str, headers: &[(&str, &str)]) -> &'t Route {
    table.lookup(host, path).expect("routed").for_request(|| headers.iter().copied())
}

/// One canary per host+path, exempt from oldest-wins: an older canary
/// Ingress does not take the path from the main one, and a second canary
/// on the same path is a conflict.
#[test]
fn canaries_shadow_a_host_and_path() {
    let mut cluster = Cluster::default();
    cluster
        .ingress(annotated("canary", "2024-01-01T00:00:00Z", "c.test", canary_annotations("0"), &[("/", "Prefix", "new"), ("/only-canary", "Prefix", "new"), ("/same", "Prefix", "main")]))
        .ingress(annotated("second", "2024-01-03T00:00:00Z", "c.test", canary_annotations("100"), &[("/", "Prefix", "other")]))
        .ingress(annotated("main", "2024-01-02T00:00:00Z", "c.test", json!({"nginx.ingress.kubernetes.io/upstream-vhost": "internal.test"}), &[("/", "Prefix", "main"), ("/same", "Prefix", "main")]))
        .ingress(annotated("wrong-type", "2024-01-04T00:00:00Z", "c.test", canary_annotations("100"), &[("/", "Exact", "other")]));
    let table = cluster.table();
    let main = table.lookup("c.test", "/x").expect("routed");
    assert_eq!((main.ingress.name.as_str(), main.service.as_str()), ("main", "main"), "the older canary does not win the path");
    let canary = main.canary.as_ref().expect("the canary shadows it");
    assert_eq!((canary.route.ingress.name.as_str(), canary.route.service.as_str()), ("canary", "new"));
    assert_eq!(canary.route.policy, main.policy, "the main Ingress's annotations apply to canary traffic");
    assert_eq!(chosen(&table, "c.test", "/x", &[]).service, "main", "weight 0");
    assert_eq!(chosen(&table, "c.test", "/x", &[("x-canary", "always")]).service, "new");
    assert_eq!(chosen(&table, "c.test", "/x", &[("x-canary", "never")]).service, "main");
    assert_eq!(served_by(&table, "c.test", "/only-canary/x"), Some(("main".into(), "/".into())), "a canary without main claims nothing");
    assert!(table.lookup("c.test", "/same").expect("routed").canary.is_none(), "a canary to the main Service is ignored");
    let conflicts = table.conflicts();
    assert_eq!(conflicts.len(), 1, "{conflicts:?}");
    assert_eq!((conflicts[0].winner.name.as_str(), conflicts[0].loser.name.as_str()), ("canary", "second"));
    assert_eq!(table.len(), 2, "canary paths are not routes of their own");
}

#[test]
fn a_canary_default_backend_claims_nothing() {
    let mut cluster = Cluster::default();
    cluster.ingress(json!({
        "metadata": {"namespace": "ns", "name": "canary", "annotations": {"nginx.ingress.kubernetes.io/canary": "true"}},
        "spec": {"ingressClassName": "ingressd", "defaultBackend": backend("svc", 80)}
    }));
    assert!(cluster.table().default_backend().is_none());
}

/// ingress-nginx's `BuildRedirects`: the other host (`www.` added or
/// removed) redirects, unless an Ingress serves it; wildcard hosts have none.
#[test]
fn from_to_www_redirect_adds_the_other_host_unless_it_is_served() {
    let www = json!({"nginx.ingress.kubernetes.io/from-to-www-redirect": "true"});
    let mut cluster = Cluster::default();
    cluster
        .ingress(annotated("bare", "", "shop.test", www.clone(), &[("/", "Prefix", "svc")]))
        .ingress(annotated("www", "", "www.blog.test", www.clone(), &[("/", "Prefix", "svc")]))
        .ingress(annotated("both", "", "both.test", www.clone(), &[("/", "Prefix", "svc")]))
        .ingress(annotated("both-www", "", "www.both.test", json!({}), &[("/", "Prefix", "svc")]))
        .ingress(annotated("wild", "", "*.wild.test", www, &[("/", "Prefix", "svc")]));
    let table = cluster.table();
    let redirect = |host: &str, path: &str| {
        let route = table.lookup(host, path)?;
        route.policy.as_ref()?.redirect_for("https", host, path)
    };
    assert_eq!(redirect("www.shop.test", "/a?b=1"), Some((308, "https://shop.test/a?b=1".to_string())));
    assert_eq!(redirect("WWW.Shop.Test:8443", "/"), Some((308, "https://shop.test:8443".to_string())));
    assert_eq!(redirect("blog.test", "/x/"), Some((308, "https://www.blog.test/x".to_string())));
    assert_eq!(redirect("shop.test", "/"), None, "the host itself is served");
    assert_eq!(served_by(&table, "www.both.test", "/"), Some(("both-www".into(), "/".into())), "a served host is never redirected");
    assert!(table.lookup("www.*.wild.test", "/").is_none());
    assert_eq!(table.lookup("www.shop.test", "/").map(|r| r.ingress.name.as_str()), Some("bare"), "the inspector names the asking Ingress");
}
