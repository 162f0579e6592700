//! Endpoint choice through the real binary: sticky cookies, `upstream-hash-by`
//! and `proxy-next-upstream-tries`, with several real backends behind one
//! Service (loopback addresses 127.0.0.N sharing one port, as pods of a
//! Service share their target port) and two ingressd replicas reading the
//! same fake API server.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{annotated, endpoint_slice, request, Api, Ingressd};
use crate::support::http::Response;
use crate::support::wait::wait_until;

/// Backends answering `NAME` on 127.0.0.N:PORT for each N in `hosts`, one port for all.
fn backends(hosts: &[u8]) -> (u16, Vec<SocketAddr>) {
    for _ in 0..20 {
        let Ok(first) = TcpListener::bind((std::net::Ipv4Addr::new(127, 0, 0, hosts[0]), 0)) else { continue };
        let port = first.local_addr().expect("addr").port();
        let mut listeners = vec![first];
        for &n in &hosts[1..] {
            match TcpListener::bind((std::net::Ipv4Addr::new(127, 0, 0, n), port)) {
                Ok(listener) => listeners.push(listener),
                Err(_) => break,
            }
        }
        if listeners.len() < hosts.len() {
            continue;
        }
        let addrs = listeners.iter().map(|l| l.local_addr().expect("addr")).collect();
        for listener in listeners {
            let name = listener.local_addr().expect("addr").ip().to_string();
            std::thread::spawn(move || {
                for stream in listener.incoming().flatten() {
                    let name = name.clone();
                    std::thread::spawn(move || {
                        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                        let mut reader = BufReader::new(&stream);
                        loop {
                            let mut line = String::new();
                            match reader.read_line(&mut line) {
                                Ok(0) | Err(_) => return,
                                Ok(_) if line == "\r\n" => break,
                                Ok(_) => {}
                            }
                        }
                        let _ = (&stream).write_all(
                            format!("HTTP/1.1 200 OK\r\nSet-Cookie: app=1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{name}", name.len()).as_bytes(),
                        );
                    });
                }
            });
        }
        return (port, addrs);
    }
    panic!("no port free on every loopback address");
}

/// Service `name` on port 80 whose ready endpoints are 127.0.0.N:`port`.
fn service(api: &Api, name: &str, port: u16, hosts: &[u8]) {
    api.fake.create(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"namespace": "web", "name": name},
        "spec": {"ports": [{"name": "http", "port": 80, "targetPort": port}], "clusterIP": "10.96.0.10"}
    }));
    api.fake.apply(slice(name, port, hosts));
}

fn slice(name: &str, port: u16, hosts: &[u8]) -> Value {
    let addrs: Vec<SocketAddr> = hosts.iter().map(|n| SocketAddr::from(([127, 0, 0, *n], port))).collect();
    endpoint_slice("web", name, &addrs)
}

fn send(ingressd: &Ingressd, host: &str, target: &str, cookie: Option<&str>) -> Response {
    let cookie = cookie.map(|c| format!("Cookie: {c}\r\n")).unwrap_or_default();
    let raw = format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n{cookie}Connection: close\r\n\r\n");
    request(ingressd.http, &raw).expect("an answer")
}

fn set_cookies(response: &Response) -> Vec<String> {
    response.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie")).map(|(_, v)| v.clone()).collect()
}

fn start_replicas(api: &Api, count: usize) -> Vec<Ingressd> {
    (0..count)
        .map(|_| {
            let ingressd = Ingressd::start(api, &[]);
            assert!(ingressd.wait_ready(Duration::from_secs(10)));
            ingressd
        })
        .collect()
}

#[test]
fn a_sticky_cookie_holds_on_every_replica_while_its_endpoint_is_ready() {
    let api = Api::start();
    let (port, _) = backends(&[21, 22, 23]);
    service(&api, "pods", port, &[21, 22, 23]);
    api.fake.create(annotated("sticky", "pods", &[("affinity", "cookie"), ("session-cookie-max-age", "3600"), ("session-cookie-samesite", "Lax")]));
    let replicas = start_replicas(&api, 2);

    let first = send(&replicas[0], "sticky.example.com", "/", None);
    assert_eq!(first.status, 200);
    let served_by = first.text();
    let cookies = set_cookies(&first);
    assert_eq!(cookies.len(), 2, "the backend's cookie and the sticky one: {cookies:?}");
    assert!(cookies.contains(&"app=1".to_string()), "the backend's own cookie passes: {cookies:?}");
    let sticky = cookies.iter().find(|c| c.starts_with("INGRESSCOOKIE=")).expect("a sticky cookie");
    assert!(sticky.ends_with("; Path=/; Max-Age=3600; HttpOnly; SameSite=Lax"), "{sticky}");
    let pair = sticky.split(';').next().expect("name=value").to_string();

    for round in 0..12 {
        let replica = &replicas[round % 2];
        let response = send(replica, "sticky.example.com", "/", Some(&format!("other=x; {pair}")));
        assert_eq!(response.text(), served_by, "round {round}: the cookie's endpoint serves");
        assert!(set_cookies(&response).iter().all(|c| !c.starts_with("INGRESSCOOKIE")), "a valid cookie is not set again");
    }
    // Without the cookie, round robin spreads requests over every endpoint.
    let spread: std::collections::HashSet<String> = (0..6).map(|_| send(&replicas[1], "sticky.example.com", "/", None).text()).collect();
    assert_eq!(spread.len(), 3, "{spread:?}");

    // The endpoint leaves: the session moves and gets a new cookie.
    let remaining: Vec<u8> = [21u8, 22, 23].into_iter().filter(|n| format!("127.0.0.{n}") != served_by).collect();
    api.fake.apply(slice("pods", port, &remaining));
    for replica in &replicas {
        assert!(wait_until(Duration::from_secs(10), || send(replica, "sticky.example.com", "/", Some(&pair)).text() != served_by));
        let moved = send(replica, "sticky.example.com", "/", Some(&pair));
        let renewed = set_cookies(&moved).into_iter().find(|c| c.starts_with("INGRESSCOOKIE=")).expect("a new sticky cookie");
        assert_ne!(renewed.split(';').next(), Some(pair.as_str()));
    }
}

#[test]
fn upstream_hash_by_sends_a_key_to_one_endpoint_on_every_replica() {
    let api = Api::start();
    let (port, _) = backends(&[31, 32, 33, 34]);
    service(&api, "pods", port, &[31, 32, 33, 34]);
    api.fake.create(annotated("hashed", "pods", &[("upstream-hash-by", "$arg_user")]));
    api.fake.create(annotated("header", "pods", &[("upstream-hash-by", "$http_x_tenant")]));
    let replicas = start_replicas(&api, 2);

    let mut used = std::collections::HashSet::new();
    for user in 0..24 {
        let target = format!("/cart?user=u{user}&page={user}");
        let endpoint = send(&replicas[0], "hashed.example.com", &target, None).text();
        for round in 0..3 {
            let other = format!("/other?page={round}&user=u{user}");
            assert_eq!(send(&replicas[round % 2], "hashed.example.com", &other, None).text(), endpoint, "user u{user}");
        }
        used.insert(endpoint);
    }
    assert!(used.len() >= 3, "keys spread over the endpoints: {used:?}");

    let tenant = |ingressd: &Ingressd, tenant: &str| {
        let raw = format!("GET / HTTP/1.1\r\nHost: header.example.com\r\nX-Tenant: {tenant}\r\nConnection: close\r\n\r\n");
        request(ingressd.http, &raw).expect("answer").text()
    };
    for name in ["acme", "globex", "initech"] {
        assert_eq!(tenant(&replicas[0], name), tenant(&replicas[1], name), "{name}");
    }
}

#[test]
fn next_upstream_tries_bounds_the_endpoints_one_request_tries() {
    let api = Api::start();
    // Each Service: three refusing endpoints, sorted before one that answers.
    let (port, _) = backends(&[44, 48, 52]);
    service(&api, "one", port, &[41, 42, 43, 44]);
    service(&api, "default", port, &[45, 46, 47, 48]);
    service(&api, "four", port, &[49, 50, 51, 52]);
    api.fake.create(annotated("one", "one", &[("proxy-next-upstream-tries", "1")]));
    api.fake.create(annotated("default", "default", &[]));
    api.fake.create(annotated("four", "four", &[("proxy-next-upstream-tries", "4")]));
    let ingressd = start_replicas(&api, 1).remove(0);

    // The first request of each route starts at its first endpoint, which refuses.
    assert_eq!(send(&ingressd, "one.example.com", "/", None).status, 502, "one try");
    assert_eq!(send(&ingressd, "default.example.com", "/", None).status, 502, "three tries, all refused");
    let four = send(&ingressd, "four.example.com", "/", None);
    assert_eq!((four.status, four.text()), (200, "127.0.0.52".to_string()), "the fourth try answers");
}

/// A pooled connection the backend closed after its answer fails the next
/// request on it: a GET goes again on a fresh connection, a POST (even
/// without a body) does not, since the backend may have acted on it.
#[test]
fn only_idempotent_requests_are_sent_again_after_a_dead_pooled_connection() {
    use crate::proxy_support::{connect, rule, send, start_proxy, test_config, Backend as KeepAliveBackend};
    use crate::support::http::read_response;

    let backend = KeepAliveBackend::start(std::sync::Arc::new(|_request, out| {
        // Keep-alive as far as the proxy can tell, then gone.
        let _ = out.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        let _ = out.shutdown(std::net::Shutdown::Both);
    }));
    let proxy = start_proxy(&[rule("a.test", "/", &[backend.port()])], test_config());
    let mut conn = connect(&proxy);
    let mut status = |method: &str| {
        send(&mut conn, format!("{method} / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 0\r\n\r\n").as_bytes());
        read_response(&mut conn, method == "HEAD").expect("an answer").status
    };
    assert_eq!(status("GET"), 200);
    assert_eq!(status("GET"), 200, "retried on a fresh connection");
    let before = backend.received.lock().expect("log").len();
    assert_eq!(status("POST"), 502, "not sent twice");
    assert_eq!(status("DELETE"), 200, "idempotent");
    let methods: Vec<String> = backend.received.lock().expect("log")[before..].iter().map(|r| r.method.clone()).collect();
    assert_eq!(methods, ["DELETE"], "the POST died with its connection and was not sent again");
}
