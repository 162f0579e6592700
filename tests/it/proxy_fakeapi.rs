//! The whole binary against the fake API server: routes arrive by
//! list-then-watch, requests flow to a real backend, and the request path
//! never calls the API server.

use crate::proxy_support;
use crate::support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use fakeapi::{FakeApi, Options};
use proxy_support::*;
use serde_json::json;
use support::http::*;

/// Stops the binary however the test ends.
struct Ingressd(Child);

impl Drop for Ingressd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts ingressd on ephemeral ports and returns its HTTP address, read from its startup log line.
fn start_ingressd(apiserver: &str) -> (Ingressd, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ingressd"))
        .args(["--apiserver", apiserver, "--token-file", "/nonexistent/token", "--ca-file", "/nonexistent/ca.crt"])
        .args(["--http-addr", "127.0.0.1:0", "--https-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"])
        .args(["--workers", "4", "--access-log", "off", "--log-level", "info"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ingressd starts");
    let (lines_tx, lines) = mpsc::channel::<String>();
    for output in [child.stdout.take().map(|o| Box::new(o) as Box<dyn std::io::Read + Send>), child.stderr.take().map(|e| Box::new(e) as _)]
        .into_iter()
        .flatten()
    {
        let lines_tx = lines_tx.clone();
        thread::spawn(move || {
            for line in BufReader::new(output).lines().map_while(Result::ok) {
                let _ = lines_tx.send(line);
            }
        });
    }
    let child = Ingressd(child);
    let deadline = Instant::now() + IO_TIMEOUT;
    while let Ok(line) = lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        if let Some(rest) = line.split("listening: http=").nth(1) {
            let addr = rest.split_whitespace().next().unwrap().parse().expect("an address in the startup line");
            return (child, addr);
        }
    }
    panic!("ingressd did not report its listening address");
}

fn objects(backend_port: u16) -> Vec<serde_json::Value> {
    vec![
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"ingressClassName": "ingressd", "rules": [{"host": "app.test", "http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}}),
        json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"clusterIP": "10.96.0.10", "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}),
        json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "web-1", "namespace": "default", "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": true}}],
            "ports": [{"name": "http", "port": backend_port, "protocol": "TCP"}]}),
    ]
}

fn get_at(addr: SocketAddr, host: &str) -> Option<u16> {
    let stream = std::net::TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(IO_TIMEOUT)).ok()?;
    let mut conn = BufReader::new(stream);
    use std::io::Write;
    conn.get_mut().write_all(format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes()).ok()?;
    let (line, _) = read_head(&mut conn).ok()?;
    line.split(' ').nth(1)?.parse().ok()
}

#[test]
fn requests_never_reach_the_api_server() {
    let backend = Backend::text("from-backend");
    let api = FakeApi::start(Options { tls: false, objects: objects(backend.port()), ..Options::default() }).expect("fake API");
    let (_ingressd, addr) = start_ingressd(&api.url());

    let deadline = Instant::now() + IO_TIMEOUT;
    while get_at(addr, "app.test") != Some(200) {
        assert!(Instant::now() < deadline, "the route never became ready");
        thread::sleep(Duration::from_millis(50));
    }
    assert!(api.wait_for_watches(5, IO_TIMEOUT), "every kind is watched");

    let paths = [
        "/apis/networking.k8s.io/v1/ingresses",
        "/apis/networking.k8s.io/v1/ingressclasses",
        "/api/v1/services",
        "/apis/discovery.k8s.io/v1/endpointslices",
        "/api/v1/secrets",
    ];
    let watch_requests = || paths.iter().map(|p| api.watch_count(p)).sum::<usize>();
    let (total_before, watches_before) = (api.total_requests(), watch_requests());
    let mut conn = connect_to(addr);
    for _ in 0..100 {
        use std::io::Write;
        conn.get_mut().write_all(b"GET /x HTTP/1.1\r\nHost: app.test\r\n\r\n").unwrap();
        let response = read_response(&mut conn, false).expect("a response");
        assert_eq!((response.status, response.text()), (200, "from-backend".to_string()));
    }
    for _ in 0..20 {
        assert_eq!(get_at(addr, "unknown.test"), Some(404));
    }
    let other_requests = (api.total_requests() - total_before) - (watch_requests() - watches_before);
    assert_eq!(other_requests, 0, "API requests other than watch restarts while serving");
}
