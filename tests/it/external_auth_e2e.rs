//! `auth-url` through the real binary: the fake API server holds the
//! Ingresses and the auth Service (its ClusterIP is loopback, so the name
//! `oauth2-proxy.auth.svc.cluster.local` resolves from the cache without
//! DNS), a real auth server decides by the Authorization header, and an echo
//! backend shows what the forwarded request carried.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use crate::common;
use crate::common::{request, service_for, Api, Ingressd};
use crate::support::ports::unused_port;
use crate::support::wait::wait_until;

/// One request as a loopback server received it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// An answer: status, headers, body.
type Answer = (u16, Vec<(&'static str, String)>, String);

/// A loopback HTTP server, one request per connection, that records each
/// request head and answers what `answer` makes of it.
fn serve(answer: fn(&Seen) -> Answer) -> (SocketAddr, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let record = Arc::clone(&record);
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let mut reader = BufReader::new(&stream);
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    return;
                }
                let mut parts = line.split_whitespace();
                let (method, path) = (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("").to_string());
                let mut headers = Vec::new();
                loop {
                    let mut header = String::new();
                    match reader.read_line(&mut header) {
                        Ok(0) | Err(_) => return,
                        Ok(_) if header == "\r\n" => break,
                        Ok(_) => {
                            if let Some((name, value)) = header.trim_end().split_once(':') {
                                headers.push((name.to_string(), value.trim().to_string()));
                            }
                        }
                    }
                }
                let seen = Seen { method, path, headers };
                record.lock().expect("record").push(seen.clone());
                let (status, extra, body) = answer(&seen);
                let mut head = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
                for (name, value) in extra {
                    head.push_str(&format!("{name}: {value}\r\n"));
                }
                let _ = (&stream).write_all(format!("{head}\r\n{body}").as_bytes());
            });
        }
    });
    (addr, seen)
}

/// The auth service: decides by the bearer token.
fn auth_answer(seen: &Seen) -> Answer {
    match seen.header("authorization") {
        Some("Bearer good") => (
            200,
            vec![("X-Auth-Request-User", "alice".into()), ("X-Other", "not copied".into()), ("Set-Cookie", "_oauth2_proxy=refreshed; Path=/".into())],
            String::new(),
        ),
        Some("Bearer anonymous") => (202, Vec::new(), String::new()),
        Some("Bearer forbidden") => (403, Vec::new(), "no".into()),
        Some("Bearer broken") => (502, Vec::new(), "oops".into()),
        Some("Bearer slow") => {
            std::thread::sleep(Duration::from_secs(3));
            (200, Vec::new(), String::new())
        }
        _ => (401, vec![("WWW-Authenticate", "Bearer realm=\"test\"".into())], "who?".into()),
    }
}

/// The backend: echoes the request head it received.
fn echo_answer(seen: &Seen) -> Answer {
    let mut body = format!("{} {}\n", seen.method, seen.path);
    for (name, value) in &seen.headers {
        body.push_str(&format!("{}: {value}\n", name.to_ascii_lowercase()));
    }
    (200, vec![("Set-Cookie", "backend=1".into())], body)
}

fn annotated(name: &str, annotations: &[(&str, String)]) -> Value {
    let pairs: Vec<(&str, &str)> = annotations.iter().map(|(k, v)| (*k, v.as_str())).collect();
    common::annotated(name, "echo", &pairs)
}

fn call(ingressd: &Ingressd, method: &str, host: &str, path: &str, extra: &str) -> crate::support::http::Response {
    let raw = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n");
    request(ingressd.http, &raw).expect("an answer")
}

#[test]
fn auth_url_decides_before_the_request_is_forwarded() {
    let (auth, auth_seen) = serve(auth_answer);
    let (echo, echo_seen) = serve(echo_answer);
    let api = Api::start();
    for object in service_for("web", "echo", echo) {
        api.fake.create(object);
    }
    api.fake.create(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"namespace": "auth", "name": "oauth2-proxy"},
        "spec": {"clusterIP": "127.0.0.1", "ports": [{"name": "http", "port": auth.port()}]}
    }));
    let in_cluster = format!("http://oauth2-proxy.auth.svc.cluster.local:{}/oauth2/auth", auth.port());
    let s = |text: &str| text.to_string();
    for object in [
        annotated("guarded", &[("auth-url", in_cluster.clone()), ("auth-response-headers", s("X-Auth-Request-User"))]),
        annotated("signin", &[("auth-url", in_cluster.clone()), ("auth-signin", s("https://login.example.com/oauth2/start"))]),
        annotated("posted", &[("auth-url", format!("http://127.0.0.1:{}/check", auth.port())), ("auth-method", s("POST")), ("auth-request-redirect", s("https://$host/back"))]),
        annotated("cached", &[("auth-url", in_cluster.clone()), ("auth-cache-key", s("$http_authorization")), ("auth-cache-duration", s("200 5m"))]),
        annotated("missing", &[("auth-url", s("http://nobody.auth.svc.cluster.local/auth"))]),
        annotated("down", &[("auth-url", format!("http://{}/auth", unused_port()))]),
        annotated("misspelt", &[("auth-url", s("oauth2-proxy/auth"))]),
        annotated("slow", &[("auth-url", in_cluster.clone())]),
    ] {
        api.fake.create(object);
    }
    let ingressd = Ingressd::start(&api, &["--upstream-response-timeout", "1"]);
    assert!(ingressd.wait_ready(Duration::from_secs(10)));
    let echoed = || echo_seen.lock().expect("seen").len();
    let last_auth = || auth_seen.lock().expect("seen").last().cloned().expect("the auth service was asked");

    // No credentials: the auth service's 401 and its challenge reach the client; the backend is not asked.
    let answer = call(&ingressd, "GET", "guarded.example.com", "/p?q=1", "");
    assert_eq!((answer.status, answer.header("www-authenticate")), (401, Some("Bearer realm=\"test\"")));
    assert_eq!(echoed(), 0);
    let asked = last_auth();
    assert_eq!((asked.method.as_str(), asked.path.as_str()), ("GET", "/oauth2/auth"));
    assert_eq!(asked.header("host"), Some(format!("oauth2-proxy.auth.svc.cluster.local:{}", auth.port()).as_str()));
    assert_eq!(asked.header("x-original-url"), Some("http://guarded.example.com/p?q=1"));
    assert_eq!(asked.header("x-original-method"), Some("GET"));
    assert_eq!(asked.header("x-auth-request-redirect"), Some("/p?q=1"));
    assert_eq!(asked.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(asked.header("x-forwarded-host"), Some("guarded.example.com"));
    assert_eq!(asked.header("x-original-uri"), None, "only with auth-method, as ingress-nginx");

    // An upgrade is checked too, and the auth service is not asked to upgrade.
    let answer = call(&ingressd, "GET", "guarded.example.com", "/ws", "Connection: Upgrade\r\nUpgrade: websocket\r\n");
    assert_eq!(answer.status, 401);
    let asked = last_auth();
    assert_eq!((asked.path.as_str(), asked.header("upgrade"), asked.header("connection")), ("/oauth2/auth", None, None));

    // Allowed: the configured response header is copied, replacing the client's forged one; others are not.
    let answer = call(&ingressd, "GET", "guarded.example.com", "/in", "Authorization: Bearer good\r\nX-Auth-Request-User: mallory\r\n");
    assert_eq!(answer.status, 200, "{}", answer.text());
    let text = answer.text();
    assert!(text.contains("x-auth-request-user: alice\n") && !text.contains("mallory") && !text.contains("x-other"), "{text}");
    assert!(text.contains("authorization: Bearer good\n"), "the backend gets the credentials too: {text}");
    let cookies: Vec<&str> = answer.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie")).map(|(_, v)| v.as_str()).collect();
    assert_eq!(cookies, ["backend=1", "_oauth2_proxy=refreshed; Path=/"], "the auth service's cookie is added beside the backend's");
    // A 2xx without the header: the client's forged copy is still removed.
    let answer = call(&ingressd, "GET", "guarded.example.com", "/in", "Authorization: Bearer anonymous\r\nX-Auth-Request-User: mallory\r\n");
    assert_eq!(answer.status, 200);
    assert!(!answer.text().contains("x-auth-request-user"), "{}", answer.text());

    for (token, status) in [("forbidden", 403), ("broken", 500)] {
        let before = echoed();
        let answer = call(&ingressd, "GET", "guarded.example.com", "/", &format!("Authorization: Bearer {token}\r\n"));
        assert_eq!(answer.status, status, "{token}");
        assert_eq!(echoed(), before, "{token}: not forwarded");
    }

    // auth-signin turns the 401 into a redirect back to the original URL.
    let answer = call(&ingressd, "GET", "signin.example.com", "/p?q=1", "");
    assert_eq!((answer.status, answer.header("location")), (302, Some("https://login.example.com/oauth2/start?rd=http://signin.example.com%2Fp%3Fq%3D1")));
    assert_eq!(call(&ingressd, "GET", "signin.example.com", "/", "Authorization: Bearer forbidden\r\n").status, 403, "only a 401 redirects");

    // auth-method, a name from the system resolver, and no body in the sub-request.
    let answer = call(&ingressd, "POST", "posted.example.com", "/upload", "Authorization: Bearer good\r\nContent-Length: 5\r\n\r\nhello");
    assert_eq!(answer.status, 200);
    let asked = last_auth();
    assert_eq!((asked.method.as_str(), asked.path.as_str()), ("POST", "/check"));
    assert_eq!(asked.header("x-original-method"), Some("POST"));
    assert_eq!(asked.header("x-original-uri"), Some("/upload"));
    assert_eq!(asked.header("x-auth-request-redirect"), Some("https://posted.example.com/back"));
    assert!(asked.header("content-length").is_none_or(|l| l == "0") && asked.header("transfer-encoding").is_none(), "{asked:?}");

    // auth-cache-key: the second identical request is answered from the cache.
    let asked_before = auth_seen.lock().expect("seen").len();
    for _ in 0..3 {
        assert_eq!(call(&ingressd, "GET", "cached.example.com", "/", "Authorization: Bearer good\r\n").status, 200);
    }
    assert_eq!(auth_seen.lock().expect("seen").len(), asked_before + 1, "one sub-request for three requests");
    assert_eq!(call(&ingressd, "GET", "cached.example.com", "/", "Authorization: Bearer other\r\n").status, 401, "another key asks again");
    assert_eq!(auth_seen.lock().expect("seen").len(), asked_before + 2);

    // Fail closed: a Service that is not there, an address nobody listens on, a timeout, an unreadable auth-url.
    let before = echoed();
    for (host, status) in [("missing", 500), ("down", 500), ("slow", 500), ("misspelt", 503)] {
        let token = if host == "slow" { "slow" } else { "good" };
        let answer = call(&ingressd, "GET", &format!("{host}.example.com"), "/", &format!("Authorization: Bearer {token}\r\n"));
        assert_eq!(answer.status, status, "{host}");
    }
    assert_eq!(echoed(), before, "nothing unauthenticated reached the backend");
    assert!(ingressd.metric("ingressd_external_auth_total{result=\"failed\"}").is_some_and(|n| n >= 4.0));
    assert!(ingressd.metric("ingressd_external_auth_cache_hits_total").is_some_and(|n| n >= 2.0));
}

#[test]
fn an_auth_service_that_appears_later_is_used_without_a_restart() {
    let (auth, _auth_seen) = serve(auth_answer);
    let (echo, _echo_seen) = serve(echo_answer);
    let api = Api::start();
    for object in service_for("web", "echo", echo) {
        api.fake.create(object);
    }
    api.fake.create(annotated("late", &[("auth-url", format!("http://oauth2-proxy.auth.svc:{}/", auth.port()))]));
    let ingressd = Ingressd::start(&api, &[]);
    assert!(ingressd.wait_ready(Duration::from_secs(10)));
    assert_eq!(call(&ingressd, "GET", "late.example.com", "/", "Authorization: Bearer good\r\n").status, 500);
    api.fake.create(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"namespace": "auth", "name": "oauth2-proxy"},
        "spec": {"clusterIP": "127.0.0.1", "ports": [{"port": auth.port()}]}
    }));
    assert!(wait_until(Duration::from_secs(10), || call(&ingressd, "GET", "late.example.com", "/", "Authorization: Bearer good\r\n").status == 200));
}
