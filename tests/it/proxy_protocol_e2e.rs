//! `--use-proxy-protocol` through the real data plane: each test writes a
//! PROXY protocol v1 or v2 header itself on a real TCP connection, before a
//! plain request or a TLS handshake, and checks what the backend, the access
//! log's outcome and the client see.

use crate::common;
use crate::proxy_support;
use crate::support;
use crate::tls_support;

use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ingressd::cache::{self, CompileConfig, Current, Generation};
use ingressd::cidr::Cidr;
use ingressd::kube::objects::{Ingress, IngressTls, ObjectKey, Secret};
use ingressd::kube::Object;
use ingressd::proxy::{self, Outcome, ProxyConfig};
use ingressd::tls;
use proxy_support::{respond, route_config, rule, test_config, test_limits, Backend};
use rustls::pki_types::ServerName;
use support::http::*;
use support::wait::wait_until;
use tls_support::*;

const HOST: &str = "pp.example.com";

struct Edge {
    http: SocketAddr,
    https: SocketAddr,
    outcomes: Arc<Mutex<Vec<Outcome>>>,
    _server: Arc<tiny_http::Server>,
}

/// Plain and TLS listeners on one server, as ingressd runs them, with
/// `--use-proxy-protocol` and these trusted peers (empty: any).
fn start_edge(backend_port: u16, trusted: &[&str], trusted_proxies: &[&str]) -> Edge {
    let ca = Ca::new();
    let issued = ca.issue(&[HOST]);
    let mut snapshot = proxy_support::snapshot(&[rule(HOST, "/", &[backend_port])]);
    let mut ingress = Ingress::clone(&snapshot.ingresses[&ObjectKey::new("default", "web")]);
    ingress.spec.tls = vec![IngressTls { hosts: vec![HOST.into()], secret_name: Some("pp-tls".into()) }];
    snapshot.insert(Object::Ingress(ingress));
    let secret = secret("default", "pp-tls", &issued.cert_pem, &issued.key_pem);
    snapshot.insert(Object::Secret(Secret::clone(&secret)));
    let config = CompileConfig { routes: route_config(), default_certificate: None };
    let current = Arc::new(Current::new(cache::compile(&Arc::new(snapshot), &config, &Generation::default())));

    let plain = TcpListener::bind("127.0.0.1:0").expect("bind http");
    let http = plain.local_addr().expect("addr");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind https");
    let https = listener.local_addr().expect("addr");
    let cidrs = |list: &[&str]| list.iter().map(|c| Cidr::parse(c).expect("cidr")).collect::<Vec<_>>();
    let config = ProxyConfig {
        http_port: http.port(),
        https_port: https.port(),
        proxy_protocol: Some(cidrs(trusted)),
        trusted_proxies: cidrs(trusted_proxies),
        ..test_config()
    };
    let outcomes = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&outcomes);
    let observer = Arc::new(move |outcome: &Outcome| sink.lock().unwrap().push(outcome.clone()));
    let server = proxy::serve(plain, test_limits(), Arc::clone(&current), Arc::new(config), observer).expect("server");
    tls::spawn_listener(listener, tls::server_config(current), Arc::clone(&server), PATIENCE).expect("HTTPS accept loop");
    Edge { http, https, outcomes, _server: server }
}

/// A backend answering with the forwarding headers it received.
fn reporting_backend() -> Backend {
    Backend::start(Arc::new(|request, out| {
        let seen = format!(
            "xff={} real={} proto={}",
            request.header("x-forwarded-for").unwrap_or("-"),
            request.header("x-real-ip").unwrap_or("-"),
            request.header("x-forwarded-proto").unwrap_or("-")
        );
        respond(out, 200, &[], seen.as_bytes())
    }))
}

fn v1(client: &str, port: u16) -> Vec<u8> {
    let family = if client.contains(':') { "TCP6" } else { "TCP4" };
    let destination = if client.contains(':') { "::1" } else { "127.0.0.1" };
    format!("PROXY {family} {client} {destination} {port} 80\r\n").into_bytes()
}

/// A v2 header: `PROXY` over TCP/IPv4 from `client:port`, or `LOCAL` when `client` is None.
fn v2(client: Option<([u8; 4], u16)>) -> Vec<u8> {
    let mut header = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    match client {
        Some((ip, port)) => {
            header.extend_from_slice(&[0x21, 0x11, 0, 12]);
            header.extend_from_slice(&ip);
            header.extend_from_slice(&[127, 0, 0, 1]);
            header.extend_from_slice(&port.to_be_bytes());
            header.extend_from_slice(&80u16.to_be_bytes());
        }
        None => header.extend_from_slice(&[0x20, 0x00, 0, 0]),
    }
    header
}

fn plain(addr: SocketAddr) -> TcpStream {
    let socket = TcpStream::connect(addr).expect("connect");
    socket.set_read_timeout(Some(PATIENCE)).expect("timeout");
    socket
}

/// Writes `preface` and one request in a single write, as a load balancer
/// forwards them, and reads the response.
fn exchange(addr: SocketAddr, preface: &[u8], headers: &str) -> std::io::Result<Response> {
    let mut socket = plain(addr);
    let request = format!("GET / HTTP/1.1\r\nHost: {HOST}\r\n{headers}Connection: close\r\n\r\n");
    socket.write_all(&[preface, request.as_bytes()].concat())?;
    read_response(&mut BufReader::new(socket), false)
}

/// True when the proxy closes the connection without sending a byte.
fn closed_unanswered(mut socket: TcpStream) -> bool {
    let mut received = Vec::new();
    let _ = socket.read_to_end(&mut received);
    received.is_empty()
}

#[test]
fn the_header_s_address_is_the_client_for_forwarding_headers_and_the_access_log() {
    let backend = reporting_backend();
    let edge = start_edge(backend.port(), &[], &[]);
    let cases: [(Vec<u8>, &str); 4] = [
        (v1("203.0.113.7", 4711), "xff=203.0.113.7 real=203.0.113.7 proto=http"),
        (v1("2001:db8::7", 4711), "xff=2001:db8::7 real=2001:db8::7 proto=http"),
        (v2(Some(([198, 51, 100, 9], 4712))), "xff=198.51.100.9 real=198.51.100.9 proto=http"),
        (v2(None), "xff=127.0.0.1 real=127.0.0.1 proto=http"),
    ];
    for (preface, expected) in &cases {
        let response = exchange(edge.http, preface, "").expect("answered");
        assert_eq!((response.status, response.text()), (200, expected.to_string()));
    }
    // The observer runs after the response is written.
    assert!(wait_until(PATIENCE, || edge.outcomes.lock().unwrap().len() == cases.len()));
    let outcomes = edge.outcomes.lock().unwrap().clone();
    let clients: Vec<String> = outcomes.iter().map(|o| o.client.map(|c| c.ip().to_string()).unwrap_or_default()).collect();
    assert_eq!(clients, ["203.0.113.7", "2001:db8::7", "198.51.100.9", "127.0.0.1"], "the access log sees the header's address; LOCAL keeps the peer");
}

#[test]
fn a_trusted_proxy_is_judged_by_the_header_s_address() {
    let backend = reporting_backend();
    let edge = start_edge(backend.port(), &[], &["10.0.0.0/8"]);
    let forwarded = "X-Forwarded-For: 192.0.2.44\r\n";
    let response = exchange(edge.http, &v1("10.1.2.3", 1000), forwarded).expect("answered");
    assert_eq!(response.text(), "xff=192.0.2.44, 10.1.2.3 real=192.0.2.44 proto=http", "the load balancer's client is a trusted proxy");
    let response = exchange(edge.http, &v1("203.0.113.7", 1000), forwarded).expect("answered");
    assert_eq!(response.text(), "xff=203.0.113.7 real=203.0.113.7 proto=http", "the loopback peer itself is not what is judged");
}

#[test]
fn tls_connections_read_the_header_before_the_handshake() {
    let backend = reporting_backend();
    let edge = start_edge(backend.port(), &[], &[]);
    let mut socket = plain(edge.https);
    socket.set_write_timeout(Some(PATIENCE)).expect("timeout");
    socket.write_all(&v1("203.0.113.8", 5000)).expect("header");
    let name = ServerName::try_from(HOST.to_string()).expect("name");
    let mut tls = rustls::StreamOwned::new(rustls::ClientConnection::new(any_client(), name).expect("client"), socket);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).expect("handshake after the header");
    }
    let mut tls = BufReader::new(tls);
    let response = send_request(&mut tls, "GET", HOST, "/", b"").expect("https request");
    assert_eq!((response.status, response.text()), (200, "xff=203.0.113.8 real=203.0.113.8 proto=https".to_string()));

    let without = connect(edge.https, Some(HOST), any_client());
    assert!(without.is_err(), "a handshake without the header is closed");
}

#[test]
fn connections_without_a_header_or_from_untrusted_peers_are_closed() {
    let backend = reporting_backend();
    let open = start_edge(backend.port(), &[], &[]);
    let mut missing = plain(open.http);
    missing.write_all(format!("GET / HTTP/1.1\r\nHost: {HOST}\r\n\r\n").as_bytes()).expect("request");
    assert!(closed_unanswered(missing), "a request without the header");
    let mut malformed = plain(open.http);
    malformed.write_all(b"PROXY TCP4 999.0.0.1 127.0.0.1 1 80\r\nGET / HTTP/1.1\r\n\r\n").expect("request");
    assert!(closed_unanswered(malformed), "a malformed header");

    let guarded = start_edge(backend.port(), &["10.0.0.0/8", "2001:db8::/32"], &[]);
    let mut forged = plain(guarded.http);
    forged.write_all(&[v1("203.0.113.7", 1), format!("GET / HTTP/1.1\r\nHost: {HOST}\r\n\r\n").into_bytes()].concat()).expect("request");
    assert!(closed_unanswered(forged), "a peer outside --proxy-protocol-trusted-cidrs");
    assert!(closed_unanswered(plain(guarded.https)), "on the TLS listener too");
    assert!(open.outcomes.lock().unwrap().is_empty() && guarded.outcomes.lock().unwrap().is_empty(), "no request was served");
}

#[test]
fn the_header_must_arrive_within_the_request_head_deadline() {
    let backend = reporting_backend();
    let edge = start_edge(backend.port(), &[], &[]);
    let started = Instant::now();
    let mut trickle = plain(edge.http);
    trickle.write_all(b"PROXY TCP4 ").expect("a start");
    assert!(closed_unanswered(trickle));
    let waited = started.elapsed();
    let header_timeout = test_limits().header_timeout;
    assert!(waited >= header_timeout - Duration::from_millis(50), "closed after {waited:?}");
    assert!(waited < header_timeout + Duration::from_secs(2), "closed after {waited:?}");
}

#[test]
fn the_binary_takes_the_flags_and_counts_what_it_closed() {
    let api = common::Api::start();
    let blue = common::Backend::start("blue");
    api.serve_one_site("pp.example.com", "blue", &blue);
    let ingressd = common::Ingressd::start(&api, &["--use-proxy-protocol", "--proxy-protocol-trusted-cidrs", "127.0.0.0/8"]);
    assert!(ingressd.wait_ready(Duration::from_secs(10)));
    let response = exchange(ingressd.http, &v1("203.0.113.9", 2000), "").expect("answered");
    assert_eq!(response.status, 200);
    let mut missing = plain(ingressd.http);
    missing.write_all(b"GET / HTTP/1.1\r\nHost: pp.example.com\r\n\r\n").expect("request");
    assert!(closed_unanswered(missing));
    let metric = r#"ingressd_proxy_protocol_rejected_total{reason="missing"}"#;
    assert_eq!(ingressd.metric(metric), Some(1.0));
}
