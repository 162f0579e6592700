//! Shared by the proxy test binaries: real HTTP backends written here, raw
//! TCP clients so every byte is under the test's control, and a proxy whose
//! routes are compiled from real API objects.
//!
//! Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use ingressd::cache::{self, CompileConfig, Current, Generation};
use ingressd::kube::objects::{EndpointSlice, Ingress, Service};
use ingressd::kube::Object;
use ingressd::proxy::{self, Outcome, ProxyConfig};
use ingressd::routes::RouteConfig;
use ingressd::store::Snapshot;
use serde_json::json;

use crate::support::http::{header, read_chunked, read_head, read_response, Response};
use crate::support::wait::wait_until;

pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------- backends

/// A request as a test backend received it.
#[derive(Debug, Clone, Default)]
pub struct Received {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
    pub fn has(&self, name: &str) -> bool {
        self.header(name).is_some()
    }
}

pub type Handler = Arc<dyn Fn(&Received, &mut TcpStream) + Send + Sync>;

/// An HTTP/1.1 server with keep-alive that counts connections and records requests.
pub struct Backend {
    pub addr: SocketAddr,
    pub connections: Arc<AtomicUsize>,
    pub received: Arc<Mutex<Vec<Received>>>,
}

impl Backend {
    pub fn start(handler: Handler) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let received = Arc::new(Mutex::new(Vec::new()));
        let (count, log) = (connections.clone(), received.clone());
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                count.fetch_add(1, Ordering::SeqCst);
                let (handler, log) = (handler.clone(), log.clone());
                thread::spawn(move || serve_backend_connection(stream, handler, log));
            }
        });
        Backend { addr, connections, received }
    }

    /// Answers `200` with `text` and echoes nothing else.
    pub fn text(text: &'static str) -> Backend {
        Backend::start(Arc::new(move |req, out| {
            let body = if req.method == "HEAD" { &b""[..] } else { text.as_bytes() };
            respond_sized(out, 200, &[], text.len(), body)
        }))
    }

    /// Answers with the request body.
    pub fn echo() -> Backend {
        Backend::start(Arc::new(|req, out| respond(out, 200, &[], &req.body)))
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn last(&self) -> Received {
        self.received.lock().unwrap().last().cloned().expect("the backend received a request")
    }
}

pub fn respond(out: &mut TcpStream, status: u16, headers: &[(&str, &str)], body: &[u8]) {
    respond_sized(out, status, headers, body.len(), body)
}

pub fn respond_sized(out: &mut TcpStream, status: u16, headers: &[(&str, &str)], length: usize, body: &[u8]) {
    let mut head = format!("HTTP/1.1 {status} X\r\ncontent-length: {length}\r\n");
    for (n, v) in headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = out.write_all(head.as_bytes()).and_then(|()| out.write_all(body));
}

/// Test backends keep bodies in memory; a larger declared body drops the connection.
pub const MAX_BACKEND_BODY: usize = 64 << 20;

pub fn serve_backend_connection(stream: TcpStream, handler: Handler, log: Arc<Mutex<Vec<Received>>>) {
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut out = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    while let Ok((line, headers)) = read_head(&mut reader) {
        let mut parts = line.split(' ');
        let method = parts.next().unwrap_or("").to_string();
        let target = parts.next().unwrap_or("").to_string();
        let body = if header(&headers, "transfer-encoding").is_some() {
            match read_chunked(&mut reader) {
                Ok(body) => body,
                Err(_) => return,
            }
        } else {
            let length: usize = header(&headers, "content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
            if length > MAX_BACKEND_BODY {
                return;
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_err() {
                return;
            }
            body
        };
        let received = Received { method, target, headers, body };
        log.lock().unwrap().push(received.clone());
        handler(&received, &mut out);
    }
}

/// A port with nothing listening on it, which stays that way.
pub fn dead_port() -> u16 {
    crate::support::ports::unused_port().port()
}

// ---------------------------------------------------------------- routes

/// One Ingress rule: host, Prefix path, backend ports (one Service per rule).
pub struct Rule<'a> {
    pub host: &'a str,
    pub path: &'a str,
    pub ports: Vec<u16>,
}

pub fn rule(host: &str, path: &str, ports: &[u16]) -> Rule<'static> {
    Rule { host: Box::leak(host.to_string().into_boxed_str()), path: Box::leak(path.to_string().into_boxed_str()), ports: ports.to_vec() }
}

/// Compiles a snapshot where each rule's Service has endpoints at 127.0.0.1 on the given ports
/// (one EndpointSlice port per backend port, so several ports mean several endpoints only
/// when they share a number; different ports get one slice each).
pub fn snapshot(rules: &[Rule]) -> Snapshot {
    let mut snapshot = Snapshot::default();
    let mut ingress_rules = Vec::new();
    for (index, rule) in rules.iter().enumerate() {
        let service = format!("svc{index}");
        ingress_rules.push(json!({
            "host": rule.host,
            "http": {"paths": [{"path": rule.path, "pathType": "Prefix",
                "backend": {"service": {"name": service, "port": {"number": 80}}}}]}
        }));
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": service, "namespace": "default"},
            "spec": {"clusterIP": "10.96.0.1", "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}
        }))
        .unwrap();
        snapshot.insert(Object::Service(svc));
        for (slice_index, port) in rule.ports.iter().enumerate() {
            let name = format!("{service}-{slice_index}");
            let slice: EndpointSlice = serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "default",
                    "labels": {"kubernetes.io/service-name": service}},
                "addressType": "IPv4",
                "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": true}}],
                "ports": [{"name": "http", "port": port, "protocol": "TCP"}]
            }))
            .unwrap();
            snapshot.insert(Object::EndpointSlice(slice));
        }
    }
    let ingress: Ingress = serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "default", "creationTimestamp": "2024-01-01T00:00:00Z"},
        "spec": {"ingressClassName": "ingressd", "rules": ingress_rules}
    }))
    .unwrap();
    snapshot.insert(Object::Ingress(ingress));
    snapshot
}

pub fn route_config() -> RouteConfig {
    RouteConfig {
        ingress_class: "ingressd".into(),
        controller_name: "ingressd.io/ingress-controller".into(),
        ..RouteConfig::default()
    }
}

// ---------------------------------------------------------------- proxy

pub struct Proxy {
    pub addr: SocketAddr,
    pub outcomes: Arc<Mutex<Vec<Outcome>>>,
    pub server: Arc<tiny_http::Server>,
}

impl Proxy {
    /// The outcomes once `count` requests were reported (the observer runs
    /// after the response is written, so a client may be faster).
    pub fn wait_outcomes(&self, count: usize) -> Vec<Outcome> {
        wait_until(IO_TIMEOUT, || self.outcomes.lock().unwrap().len() >= count);
        let outcomes = self.outcomes.lock().unwrap().clone();
        assert_eq!(outcomes.len(), count, "outcomes reported");
        outcomes
    }
}

pub fn test_config() -> ProxyConfig {
    ProxyConfig {
        max_body_size: 1 << 30,
        connect_timeout: Duration::from_secs(2),
        response_timeout: Duration::from_secs(5),
        read_timeout: Duration::from_secs(5),
        websocket_idle_timeout: Duration::from_secs(5),
        trusted_proxies: Vec::new(),
        proxy_protocol: None,
        http_port: 0,
        https_port: 443,
    }
}

/// Small server limits so slow-client tests finish quickly.
pub fn test_limits() -> tiny_http::Limits {
    tiny_http::Limits {
        max_header_line: 8 * 1024,
        max_headers: 50,
        header_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(3),
        write_timeout: Duration::from_secs(5),
        ..tiny_http::Limits::default()
    }
}

pub fn start_proxy(rules: &[Rule], config: ProxyConfig) -> Proxy {
    start_proxy_with(snapshot(rules), config)
}

/// A proxy serving routes compiled from `snapshot`.
pub fn start_proxy_with(snapshot: Snapshot, config: ProxyConfig) -> Proxy {
    start_proxy_with_limits(snapshot, config, test_limits())
}

/// A proxy whose server has `limits` instead of [`test_limits`].
pub fn start_proxy_with_limits(snapshot: Snapshot, config: ProxyConfig, limits: tiny_http::Limits) -> Proxy {
    let compile_config = CompileConfig { routes: route_config(), default_certificate: None };
    let current = Arc::new(Current::new(cache::compile(&Arc::new(snapshot), &compile_config, &Generation::default())));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let config = ProxyConfig { http_port: addr.port(), ..config };
    let outcomes = Arc::new(Mutex::new(Vec::new()));
    let sink = outcomes.clone();
    let server = proxy::serve(
        listener,
        limits,
        current,
        Arc::new(config),
        Arc::new(move |outcome: &Outcome| sink.lock().unwrap().push(outcome.clone())),
    )
    .unwrap();
    Proxy { addr, outcomes, server }
}

// ---------------------------------------------------------------- clients

pub fn connect(proxy: &Proxy) -> BufReader<TcpStream> {
    connect_to(proxy.addr)
}

pub fn connect_to(addr: SocketAddr) -> BufReader<TcpStream> {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    BufReader::new(stream)
}

pub fn send(conn: &mut BufReader<TcpStream>, raw: &[u8]) {
    conn.get_mut().write_all(raw).unwrap();
}

pub fn get(proxy: &Proxy, host: &str, target: &str) -> Response {
    let mut conn = connect(proxy);
    send(&mut conn, format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes());
    read_response(&mut conn, false).expect("a response")
}
