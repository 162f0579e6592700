//! The fake API server over real TCP and TLS, as ingressd's client will see it.

use crate::common;

use std::time::{Duration, Instant};

use common::*;
use fakeapi::{certs, FakeApi, Options};
use serde_json::json;

const INGRESSES: &str = "/apis/networking.k8s.io/v1/ingresses";

#[test]
fn unauthorized_without_a_valid_token() {
    let api = start();
    let response = Client::anonymous(&api).get(INGRESSES);
    assert_eq!(response.status, 401);
    assert_eq!(
        response.json(),
        json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401})
    );
    let mut wrong = Client::new(&api);
    wrong.token = Some("wrong".into());
    assert_eq!(wrong.get(INGRESSES).status, 401);
    assert_eq!(Client::new(&api).get(INGRESSES).status, 200);

    api.add_token("second");
    let mut second = Client::new(&api);
    second.token = Some("second".into());
    assert_eq!(second.get(INGRESSES).status, 200);
    api.revoke_token("second");
    api.revoke_token(TOKEN);
    assert_eq!(second.get(INGRESSES).status, 401, "revoking every token must not switch auth off");
}

#[test]
fn no_tokens_means_no_auth_and_plain_http_works() {
    let api = start_with(Options { tls: false, ..Default::default() });
    assert!(api.url().starts_with("http://127.0.0.1:"));
    assert_eq!(api.ca_pem(), "");
    assert_eq!(Client::anonymous(&api).get(INGRESSES).status, 200);
}

#[test]
fn crud_stamps_versions_and_answers_status_errors() {
    let api = start();
    let client = Client::new(&api);
    let path = "/apis/networking.k8s.io/v1/namespaces/web/ingresses";
    let created = client.request("POST", path, Some(&ingress("web", "shop", json!({})))).json();
    assert_eq!(created["kind"], "Ingress");
    assert_eq!(created["apiVersion"], "networking.k8s.io/v1");
    let rv = rv_of(&created);
    let now_millis = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    assert!(rv > now_millis - 60_000 && rv <= now_millis + 1, "versions start from the wall clock: {rv}");
    let ts = created["metadata"]["creationTimestamp"].as_str().unwrap();
    assert!(ts.len() == 20 && ts.ends_with('Z') && ts.as_bytes()[10] == b'T', "{ts}");

    let again = client.request("POST", path, Some(&ingress("web", "shop", json!({}))));
    assert_eq!((again.status, again.json()["reason"].clone()), (409, json!("AlreadyExists")));

    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "shop"}});
    let svc = client.request("POST", "/api/v1/namespaces/web/services", Some(&svc)).json();
    assert_eq!(rv_of(&svc), rv + 1, "one global counter across kinds");

    let got = client.get(&format!("{path}/shop"));
    assert_eq!(got.json(), created);
    let missing = client.get(&format!("{path}/nope"));
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["reason"], "NotFound");
    assert_eq!(missing.json()["message"], "ingresses.networking.k8s.io \"nope\" not found");

    let deleted = client.request("DELETE", &format!("{path}/shop"), None);
    assert_eq!(deleted.status, 200);
    assert_eq!(client.request("DELETE", &format!("{path}/shop"), None).status, 404);
    assert_eq!(client.get("/apis/networking.k8s.io/v1/widgets").status, 404);
    let bad = client.request("POST", path, Some(&json!({"kind": "Ingress", "apiVersion": "networking.k8s.io/v1", "metadata": {}})));
    assert_eq!(bad.status, 422);
}

#[test]
fn put_conflicts_on_a_stale_resource_version_and_status_is_a_subresource() {
    let api = start();
    let client = Client::new(&api);
    let path = "/apis/networking.k8s.io/v1/namespaces/web/ingresses/shop";
    let created = api.create(ingress("web", "shop", json!({})));

    let mut fresh = created.clone();
    fresh["spec"]["rules"][0]["host"] = json!("new.example");
    let replaced = client.request("PUT", path, Some(&fresh));
    assert_eq!(replaced.status, 200);
    assert!(rv_of(&replaced.json()) > rv_of(&created));

    let stale = client.request("PUT", path, Some(&fresh));
    assert_eq!(stale.status, 409);
    assert_eq!(stale.json()["reason"], "Conflict");
    let absent = client.request("PUT", "/apis/networking.k8s.io/v1/namespaces/web/ingresses/other", Some(&ingress("web", "other", json!({}))));
    assert_eq!(absent.status, 404);

    let mut with_status = replaced.json();
    with_status["status"] = json!({"loadBalancer": {"ingress": [{"ip": "192.0.2.7"}]}});
    with_status["spec"]["rules"][0]["host"] = json!("ignored.example");
    let updated = client.request("PUT", &format!("{path}/status"), Some(&with_status)).json();
    assert_eq!(updated["status"]["loadBalancer"]["ingress"][0]["ip"], "192.0.2.7");
    assert_eq!(updated["spec"]["rules"][0]["host"], "new.example", "status PUT leaves spec alone");

    let mut spec_only = updated.clone();
    spec_only.as_object_mut().unwrap().remove("status");
    let kept = client.request("PUT", path, Some(&spec_only)).json();
    assert_eq!(kept["status"]["loadBalancer"]["ingress"][0]["ip"], "192.0.2.7", "main PUT keeps status");

    let mut conn = client.connect().unwrap();
    let patch = json!({"status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}}}).to_string();
    conn.send_raw(format!(
        "PATCH {path}/status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/merge-patch+json\r\nContent-Length: {}\r\n\r\n{patch}",
        patch.len()
    ).as_bytes()).unwrap();
    let patched = conn.read_response().unwrap();
    assert_eq!(patched.status, 200, "{}", String::from_utf8_lossy(&patched.body));
    assert_eq!(patched.json()["status"]["loadBalancer"]["ingress"][0]["ip"], "1.2.3.4");
}

#[test]
fn pagination_is_a_consistent_view_and_compaction_expires_tokens() {
    let api = start();
    for name in ["a", "b", "c", "d", "e"] {
        api.create(ingress("web", name, json!({})));
    }
    let client = Client::new(&api);
    let page1 = client.get(&format!("{INGRESSES}?limit=2")).json();
    assert_eq!(page1["kind"], "IngressList");
    assert_eq!(names(&page1), ["a", "b"]);
    let list_rv = page1["metadata"]["resourceVersion"].clone();
    let token = page1["metadata"]["continue"].as_str().unwrap().to_string();

    api.delete("networking.k8s.io/v1", "Ingress", "web", "c");
    api.create(ingress("web", "bb", json!({})));

    let page2 = client.get(&format!("{INGRESSES}?limit=2&continue={token}")).json();
    assert_eq!(names(&page2), ["c", "d"]);
    assert_eq!(page2["metadata"]["resourceVersion"], list_rv);
    let token3 = page2["metadata"]["continue"].as_str().unwrap().to_string();
    let page3 = client.get(&format!("{INGRESSES}?limit=2&continue={token3}")).json();
    assert_eq!(names(&page3), ["e"]);
    assert!(page3["metadata"].get("continue").is_none());

    let unpaged = client.get(INGRESSES).json();
    assert_eq!(names(&unpaged), ["a", "b", "bb", "d", "e"]);
    assert!(unpaged["metadata"].get("continue").is_none());

    api.compact();
    let expired = client.get(&format!("{INGRESSES}?limit=2&continue={token3}"));
    assert_eq!(expired.status, 410);
    let status = expired.json();
    assert_eq!((status["kind"].clone(), status["reason"].clone(), status["code"].clone()), (json!("Status"), json!("Expired"), json!(410)));
}

#[test]
fn watch_replays_events_after_the_list_version() {
    let api = start();
    api.create(ingress("web", "old", json!({})));
    let client = Client::new(&api);
    let list = client.get(INGRESSES).json();
    let list_rv = list["metadata"]["resourceVersion"].as_str().unwrap().to_string();

    let added = api.create(ingress("web", "new", json!({})));
    let mut modified = added.clone();
    modified["spec"]["rules"][0]["host"] = json!("changed.example");
    api.apply(modified);
    api.delete("networking.k8s.io/v1", "Ingress", "web", "old");

    let mut watch = client.watch(&format!("{INGRESSES}?watch=1&resourceVersion={list_rv}"));
    assert_eq!(watch.status, 200);
    assert_eq!(watch.header("content-type"), Some("application/json"));
    assert_eq!(watch.header("transfer-encoding"), Some("chunked"));
    let mut seen = Vec::new();
    for _ in 0..3 {
        let event = watch.change();
        assert_eq!(event["object"]["kind"], "Ingress");
        assert_eq!(event["object"]["apiVersion"], "networking.k8s.io/v1");
        seen.push((event["type"].as_str().unwrap().to_string(), event["object"]["metadata"]["name"].as_str().unwrap().to_string(), rv_of(&event["object"])));
    }
    let types: Vec<_> = seen.iter().map(|(t, n, _)| (t.as_str(), n.as_str())).collect();
    assert_eq!(types, [("ADDED", "new"), ("MODIFIED", "new"), ("DELETED", "old")]);
    assert!(seen.windows(2).all(|w| w[0].2 < w[1].2), "versions increase: {seen:?}");

    // Live events arrive as they happen.
    api.create(ingress("web", "live", json!({})));
    let live = watch.change();
    assert_eq!((live["type"].as_str(), live["object"]["metadata"]["name"].as_str()), (Some("ADDED"), Some("live")));
}

#[test]
fn watch_without_a_version_starts_with_synthetic_added() {
    let api = start();
    api.create(ingress("a", "one", json!({})));
    api.create(ingress("b", "two", json!({})));
    let client = Client::new(&api);
    for target in [format!("{INGRESSES}?watch=true"), format!("{INGRESSES}?watch=1&resourceVersion=0")] {
        let mut watch = client.watch(&target);
        let first = watch.change();
        let second = watch.change();
        assert_eq!((first["type"].as_str(), first["object"]["metadata"]["name"].as_str()), (Some("ADDED"), Some("one")));
        assert_eq!((second["type"].as_str(), second["object"]["metadata"]["name"].as_str()), (Some("ADDED"), Some("two")));
    }
    let mut namespaced = client.watch("/apis/networking.k8s.io/v1/namespaces/b/ingresses?watch=1");
    assert_eq!(namespaced.change()["object"]["metadata"]["name"], "two");
    api.create(ingress("a", "three", json!({})));
    api.create(ingress("b", "four", json!({})));
    assert_eq!(namespaced.change()["object"]["metadata"]["name"], "four", "other namespaces are filtered out");
}

#[test]
fn bookmarks_carry_the_current_version_at_the_set_interval() {
    let api = start();
    api.create(ingress("web", "a", json!({})));
    api.create(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}));
    let client = Client::new(&api);
    let list_rv = client.get(INGRESSES).json()["metadata"]["resourceVersion"].as_str().unwrap().to_string();
    let started = Instant::now();
    let mut watch = client.watch(&format!("{INGRESSES}?watch=1&resourceVersion={list_rv}&allowWatchBookmarks=true"));
    let bookmark = watch.event();
    assert_eq!(bookmark["type"], "BOOKMARK");
    assert_eq!(bookmark["object"], json!({"kind": "Ingress", "apiVersion": "networking.k8s.io/v1", "metadata": {"resourceVersion": list_rv}}));
    assert!(started.elapsed() >= Duration::from_millis(150), "first bookmark after about one interval");
    assert_eq!(watch.event()["type"], "BOOKMARK");

    let mut plain = client.watch(&format!("{INGRESSES}?watch=1&resourceVersion={list_rv}&timeoutSeconds=1"));
    assert!(matches!(plain.next(), WatchItem::End), "no bookmarks unless asked for");
}

#[test]
fn too_old_versions_get_an_error_event_then_a_clean_end() {
    let api = start();
    let first = api.create(ingress("web", "a", json!({})));
    api.create(ingress("web", "b", json!({})));
    api.compact();
    let client = Client::new(&api);
    let mut watch = client.watch(&format!("{INGRESSES}?watch=1&resourceVersion={}", rv_of(&first)));
    assert_eq!(watch.status, 200);
    let error = watch.event();
    assert_eq!(error["type"], "ERROR");
    let status = &error["object"];
    assert_eq!((status["kind"].as_str(), status["status"].as_str(), status["reason"].as_str(), status["code"].as_u64()), (Some("Status"), Some("Failure"), Some("Expired"), Some(410)));
    assert!(status["message"].as_str().unwrap().starts_with(&format!("too old resource version: {} (", rv_of(&first))));
    assert!(matches!(watch.next(), WatchItem::End));
    // The connection stays usable after a cleanly ended watch.
    assert_eq!(watch.conn.request("GET", INGRESSES, None).unwrap().status, 200);

    let current = api.resource_version();
    let mut fresh = client.watch(&format!("{INGRESSES}?watch=1&resourceVersion={current}"));
    api.create(ingress("web", "c", json!({})));
    assert_eq!(fresh.change()["object"]["metadata"]["name"], "c");
}

#[test]
fn bounded_history_expires_old_versions() {
    let api = start_with(Options { tokens: vec![TOKEN.into()], history: 3, ..Default::default() });
    let first = api.create(ingress("web", "a", json!({})));
    for name in ["b", "c", "d"] {
        api.create(ingress("web", name, json!({})));
    }
    let client = Client::new(&api);
    assert_eq!(client.watch(&format!("{INGRESSES}?watch=1&resourceVersion={}", rv_of(&first) - 1)).event()["type"], "ERROR");
    let mut replay = client.watch(&format!("{INGRESSES}?watch=1&resourceVersion={}", rv_of(&first)));
    assert_eq!(replay.change()["object"]["metadata"]["name"], "b");
}

#[test]
fn selectors_apply_to_lists_and_watches() {
    let api = start();
    api.create(ingress("web", "shop", json!({"app": "shop", "tier": "front"})));
    api.create(ingress("web", "blog", json!({"app": "blog"})));
    api.create(ingress("other", "shop", json!({"app": "shop"})));
    let client = Client::new(&api);
    let list = |query: &str| names(&client.get(&format!("{INGRESSES}?{query}")).json());
    assert_eq!(list("labelSelector=app%3Dshop").len(), 2);
    assert_eq!(list("labelSelector=app%3Dshop,tier%3Dfront"), ["shop"]);
    assert_eq!(list("labelSelector=app!%3Dshop"), ["blog"]);
    assert_eq!(list("labelSelector=tier"), ["shop"]);
    assert_eq!(list("fieldSelector=metadata.namespace%3Dother"), ["shop"]);
    assert_eq!(list("fieldSelector=metadata.name%3Dblog"), ["blog"]);
    assert_eq!(client.get(&format!("{INGRESSES}?labelSelector=a%20in%20(x)")).status, 400);

    let issued = certs::self_signed("x", &["x.example"]);
    api.create(certs::tls_secret("web", "x-tls", &issued));
    api.create(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "opaque", "namespace": "web"}, "type": "Opaque"}));
    let secrets = client.get("/api/v1/secrets?fieldSelector=type%3Dkubernetes.io/tls").json();
    assert_eq!(names(&secrets), ["x-tls"]);

    let mut watch = client.watch("/api/v1/secrets?watch=1&fieldSelector=type%3Dkubernetes.io%2Ftls");
    assert_eq!(watch.change()["object"]["metadata"]["name"], "x-tls");
    api.create(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "opaque2", "namespace": "web"}, "type": "Opaque"}));
    api.create(certs::tls_secret("web", "y-tls", &issued));
    assert_eq!(watch.change()["object"]["metadata"]["name"], "y-tls");

    let mut labelled = client.watch(&format!("{INGRESSES}?watch=1&labelSelector=app%3Dshop&resourceVersion={}", api.resource_version()));
    let mut blog = api.get("networking.k8s.io/v1", "Ingress", "web", "blog").unwrap();
    blog["metadata"]["labels"]["app"] = json!("shop");
    api.apply(blog.clone());
    let entered = labelled.change();
    assert_eq!((entered["type"].as_str(), entered["object"]["metadata"]["name"].as_str()), (Some("ADDED"), Some("blog")));
    blog["metadata"]["labels"]["app"] = json!("gone");
    api.apply(blog);
    assert_eq!(labelled.change()["type"], "DELETED", "leaving the selector is a delete");
}

#[test]
fn fail_next_answers_status_objects_then_recovers() {
    let api = start();
    let client = Client::new(&api);
    api.fail_next(2, 429);
    for _ in 0..2 {
        let failed = client.get(INGRESSES);
        assert_eq!(failed.status, 429);
        assert_eq!(failed.header("retry-after"), Some("1"));
        assert_eq!(failed.json()["reason"], "TooManyRequests");
        assert_eq!(failed.json()["code"], 429);
    }
    assert_eq!(client.get(INGRESSES).status, 200);
    api.fail_next(1, 503);
    let failed = client.get(INGRESSES);
    assert_eq!((failed.status, failed.header("retry-after")), (503, None));
    assert_eq!(client.get(INGRESSES).status, 200);
}

#[test]
fn drop_watches_closes_streams_abruptly() {
    let api = start();
    let client = Client::new(&api);
    let mut first = client.watch(&format!("{INGRESSES}?watch=1&resourceVersion={}", api.resource_version()));
    let mut second = client.watch("/api/v1/services?watch=1");
    assert!(api.wait_for_watches(2, Duration::from_secs(5)));
    assert_eq!(api.open_watches(), 2);
    api.drop_watches();
    assert_eq!(api.open_watches(), 0);
    for watch in [&mut first, &mut second] {
        assert!(matches!(watch.next(), WatchItem::Broken(_)), "no terminating chunk after a drop");
    }
    let mut after = client.watch(&format!("{INGRESSES}?watch=1"));
    assert!(api.wait_for_watches(1, Duration::from_secs(5)), "new watches work after a drop");
    api.create(ingress("web", "x", json!({})));
    assert_eq!(after.change()["object"]["metadata"]["name"], "x");
}

#[test]
fn timeout_seconds_ends_the_stream_cleanly() {
    let api = start();
    let client = Client::new(&api);
    let started = Instant::now();
    let mut watch = client.watch(&format!("{INGRESSES}?watch=1&resourceVersion={}&timeoutSeconds=1&allowWatchBookmarks=true", api.resource_version()));
    loop {
        match watch.next() {
            WatchItem::Event(event) => assert_eq!(event["type"], "BOOKMARK"),
            WatchItem::End => break,
            other => panic!("expected a clean end, got {other:?}"),
        }
    }
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(950) && elapsed < Duration::from_secs(3), "{elapsed:?}");
    assert!(eventually(Duration::from_secs(2), || api.open_watches() == 0));
}

#[test]
fn counts_requests_per_path_and_kind() {
    let api = start();
    let client = Client::new(&api);
    client.get(&format!("{INGRESSES}?limit=5"));
    client.get(INGRESSES);
    let _watch = client.watch(&format!("{INGRESSES}?watch=1&timeoutSeconds=5"));
    client.get("/api/v1/services");
    assert_eq!(api.request_count(INGRESSES), 3);
    assert_eq!(api.list_count(INGRESSES), 2);
    assert_eq!(api.watch_count(INGRESSES), 1);
    assert_eq!(api.total_requests(), 4);
    assert_eq!(api.method_count("GET", INGRESSES), 3);
    assert_eq!(api.method_count("PUT", INGRESSES), 0);
    Client::new(&api).get("/fake/counts");
    assert_eq!(api.total_requests(), 4, "controls are not counted");
}

#[test]
fn http_controls_for_scripts() {
    let api = start();
    let client = Client::anonymous(&api);
    assert_eq!(client.get("/fake/fail-next?n=1&status=500").status, 200);
    let failed = Client::new(&api).get(INGRESSES);
    assert_eq!((failed.status, failed.json()["reason"].as_str()), (500, Some("InternalError")));
    assert_eq!(client.request("POST", "/fake/tokens/add?token=script", None).status, 200);
    let mut script = Client::new(&api);
    script.token = Some("script".into());
    assert_eq!(script.get(INGRESSES).status, 200);
    client.get("/fake/tokens/revoke?token=script");
    assert_eq!(script.get(INGRESSES).status, 401);

    let applied = client.request("POST", "/fake/apply", Some(&json!({"kind": "List", "apiVersion": "v1", "items": [ingress("web", "s", json!({}))]})));
    assert_eq!(applied.status, 200);
    assert!(api.get("networking.k8s.io/v1", "Ingress", "web", "s").is_some());
    let counts = client.get(&format!("/fake/counts?path={INGRESSES}")).json();
    assert_eq!(counts["result"]["requests"], 3);
    assert_eq!(counts["result"]["methods"]["GET"], 3);
    assert_eq!(client.get("/fake/delete?apiVersion=networking.k8s.io/v1&kind=Ingress&namespace=web&name=s").status, 200);
    assert!(api.list("networking.k8s.io/v1", "Ingress").is_empty());
    assert_eq!(client.get("/fake/bookmark-interval?seconds=0.05").status, 200);
    assert_eq!(client.get("/fake/fail-next?n=x").status, 400);
    assert_eq!(client.get("/fake/nope").status, 404);

    let old = api.create(ingress("web", "t", json!({})));
    client.get("/fake/compact");
    assert_eq!(Client::new(&api).watch(&format!("{INGRESSES}?watch=1&resourceVersion={}", rv_of(&old) - 1)).event()["type"], "ERROR");
    let _watch = Client::new(&api).watch(&format!("{INGRESSES}?watch=1"));
    assert_eq!(client.get("/fake/wait-for-watches?n=1&timeoutSeconds=5").status, 200);
    assert_eq!(client.get("/fake/drop-watches").status, 200);
    assert_eq!(api.open_watches(), 0);
}

#[test]
fn hang_accepts_but_never_answers() {
    let api = start();
    let client = Client::new(&api);
    api.set_hang(true);
    let mut conn = client.connect().unwrap();
    conn.raw.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let started = Instant::now();
    let error = conn.request("GET", INGRESSES, None).unwrap_err();
    assert!(matches!(error.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut), "{error}");
    assert!(started.elapsed() >= Duration::from_millis(250));
    api.set_hang(false);
    assert_eq!(client.get(INGRESSES).status, 200);
}

#[test]
fn keep_alive_and_malformed_requests() {
    let api = start();
    let client = Client::new(&api);
    let mut conn = client.connect().unwrap();
    for _ in 0..3 {
        assert_eq!(conn.request("GET", INGRESSES, None).unwrap().status, 200);
    }
    let body = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "big", "namespace": "web"}, "spec": {"pad": "x".repeat(2000)}}).to_string();
    conn.send_raw(format!("POST /api/v1/namespaces/web/pods HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes()).unwrap();
    let (interim, _) = conn.read_head().unwrap();
    assert_eq!(interim, 100, "curl waits for 100 Continue before a large body");
    conn.send_raw(body.as_bytes()).unwrap();
    assert_eq!(conn.read_response().unwrap().status, 201);
    conn.send_raw(b"GET /api/v1/pods HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
    let rejected = conn.read_response().unwrap();
    assert_eq!(rejected.status, 400);
    assert_eq!(rejected.header("connection"), Some("close"));
}

#[test]
fn initial_objects_default_their_namespace() {
    let api = start_with(Options {
        objects: vec![
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "a"}}),
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": {"name": "ingressd"}, "spec": {"controller": "example.com/ingressd"}}),
        ],
        ..Default::default()
    });
    let ingress = api.get("networking.k8s.io/v1", "Ingress", "default", "a").unwrap();
    assert_eq!(ingress["metadata"]["namespace"], "default");
    let class = Client::new(&api).get("/apis/networking.k8s.io/v1/ingressclasses/ingressd").json();
    assert!(class["metadata"].get("namespace").is_none());
    assert!(FakeApi::start(Options { objects: vec![json!({"kind": "Widget"})], ..Default::default() }).is_err());
}

#[test]
fn a_reused_ca_keeps_clients_trusting_a_restarted_server() {
    let ca = certs::Ca::new("restart CA");
    let reloaded = certs::Ca::from_pem(&ca.cert_pem(), &ca.key_pem()).unwrap();
    for ca_for_run in [ca.clone(), reloaded] {
        let api = start_with(Options { ca: Some(ca_for_run), tokens: vec![TOKEN.into()], ..Default::default() });
        assert_eq!(Client::trusting(&api, &ca.cert_pem()).get(INGRESSES).status, 200);
    }
    let api = start();
    let other = certs::Ca::new("other CA");
    assert!(Client::trusting(&api, &other.cert_pem()).connect().unwrap().request("GET", INGRESSES, None).is_err());
}

#[test]
fn drop_closes_every_connection() {
    let api = start();
    let client = Client::new(&api);
    let mut idle = client.connect().unwrap();
    assert_eq!(idle.request("GET", INGRESSES, None).unwrap().status, 200);
    let mut watch = client.watch(&format!("{INGRESSES}?watch=1"));
    assert!(api.wait_for_watches(1, Duration::from_secs(5)));
    let addr = api.addr();
    let started = Instant::now();
    drop(api);
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(idle.request("GET", INGRESSES, None).is_err());
    assert!(matches!(watch.next(), WatchItem::Broken(_)));
    assert!(std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err());
}

#[test]
fn a_watch_whose_client_left_stops_counting() {
    for tls in [true, false] {
        let api = start_with(Options { tls, ..Default::default() });
        let client = Client::new(&api);
        let watch = client.watch(&format!("{INGRESSES}?watch=1"));
        let mut kept = client.watch(&format!("{INGRESSES}?watch=1"));
        assert!(api.wait_for_watches(2, Duration::from_secs(5)));
        drop(watch);
        assert!(eventually(Duration::from_secs(3), || api.open_watches() == 1), "tls={tls}: open {}", api.open_watches());
        api.create(ingress("web", "still", json!({})));
        assert_eq!(kept.change()["object"]["metadata"]["name"], "still");
    }
}

#[test]
fn methods_a_path_does_not_take_are_405() {
    let api = start();
    let client = Client::new(&api);
    let response = client.request("DELETE", INGRESSES, None);
    assert_eq!((response.status, response.json()["reason"].as_str()), (405, Some("MethodNotAllowed")));
    let ahead = api.resource_version() + 10;
    let mut watch = client.watch(&format!("{INGRESSES}?watch=1&resourceVersion={ahead}&timeoutSeconds=1"));
    api.create(ingress("web", "before-the-requested-version", json!({})));
    assert!(matches!(watch.next(), WatchItem::End), "events at or below the requested version are not sent");
}
