//! HTTPS through the real data plane: TLS listener → tiny_http connection
//! threads running the proxy → a backend written here, with routes and certificates compiled
//! from the same API objects.

use crate::proxy_support;
use crate::support;
use crate::tls_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;

use ingressd::cache::{self, CompileConfig, Current, Generation};
use ingressd::kube::objects::{Ingress, IngressTls, ObjectKey};
use ingressd::proxy::{self, Outcome, ProxyConfig};
use ingressd::tls;
use proxy_support::{respond, route_config, rule, test_config, Backend};
use support::http::*;
use tls_support::*;

const HOST: &str = "secure.example.com";

struct Edge {
    http: SocketAddr,
    https: SocketAddr,
    _server: Arc<tiny_http::Server>,
    leaf: Vec<u8>,
}

/// One server for plain and TLS connections, as ingressd runs it; HOST is
/// routed to `backend_port`, has a TLS Secret and the ssl-redirect annotation.
fn start_edge(backend_port: u16) -> Edge {
    let ca = Ca::new();
    let issued = ca.issue(&[HOST]);
    let mut snapshot = proxy_support::snapshot(&[rule(HOST, "/", &[backend_port])]);
    let web = ObjectKey::new("default", "web");
    let mut ingress = Ingress::clone(&snapshot.ingresses[&web]);
    ingress.metadata.annotations.insert("ingressd.io/ssl-redirect", "true");
    ingress.spec.tls = vec![IngressTls { hosts: vec![HOST.into()], secret_name: Some("secure-tls".into()) }];
    snapshot.insert(ingressd::kube::Object::Ingress(ingress));
    let secret = secret("default", "secure-tls", &issued.cert_pem, &issued.key_pem);
    snapshot.insert(ingressd::kube::Object::Secret(ingressd::kube::objects::Secret::clone(&secret)));

    let config = CompileConfig { routes: route_config(), default_certificate: None };
    let current = Arc::new(Current::new(cache::compile(&Arc::new(snapshot), &config, &Generation::default())));

    let plain = TcpListener::bind("127.0.0.1:0").expect("bind http");
    let http = plain.local_addr().expect("addr");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind https");
    let https = listener.local_addr().expect("addr");
    let config = ProxyConfig { http_port: http.port(), https_port: https.port(), ..test_config() };
    let server = proxy::serve(plain, tiny_http::Limits::default(), Arc::clone(&current), Arc::new(config), Arc::new(|_: &Outcome| {}))
        .expect("server");
    tls::spawn_listener(listener, tls::server_config(current), Arc::clone(&server), PATIENCE).expect("HTTPS accept loop starts");
    Edge { http, https, _server: server, leaf: issued.leaf }
}

#[test]
fn plain_http_redirects_and_https_reaches_the_backend() {
    let backend = Backend::start(Arc::new(|request, out| {
        let proto = request.header("x-forwarded-proto").unwrap_or("none").to_string();
        respond(out, 200, &[("x-seen-proto", &proto)], b"from backend")
    }));
    let edge = start_edge(backend.port());

    let socket = TcpStream::connect(edge.http).expect("connect http");
    socket.set_read_timeout(Some(PATIENCE)).expect("timeout");
    let mut plain = BufReader::new(socket);
    proxy_support::send(&mut plain, format!("GET /cart?item=1 HTTP/1.1\r\nHost: {HOST}\r\n\r\n").as_bytes());
    let redirect = read_response(&mut plain, false).expect("a response");
    assert_eq!(redirect.status, 308);
    assert_eq!(redirect.header("location"), Some(format!("https://{HOST}:{}/cart?item=1", edge.https.port()).as_str()));

    let tls = connect(edge.https, Some(HOST), any_client()).expect("handshake");
    assert_eq!(served_leaf(&tls), edge.leaf);
    let mut tls = BufReader::new(tls);
    let response = send_request(&mut tls, "GET", HOST, "/cart?item=1", b"").expect("https request");
    assert_eq!((response.status, response.body.as_slice()), (200, &b"from backend"[..]));
    assert_eq!(response.header("x-seen-proto"), Some("https"));
    assert_eq!(backend.last().target, "/cart?item=1");
}

#[test]
fn large_bodies_through_the_proxy_over_one_tls_connection() {
    let backend = Backend::echo();
    let edge = start_edge(backend.port());
    let mut tls = BufReader::new(connect(edge.https, Some(HOST), any_client()).expect("handshake"));
    for round in 0..2u8 {
        let body: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 253) as u8 ^ round).collect();
        let response = request(&mut tls, HOST, "/upload", &body).expect("1 MiB through the proxy");
        assert_eq!(response.status, 200);
        assert!(response.body == body, "round {round}: body differs");
    }
}

/// Answers the first request on each connection with 101 and a greeting, then
/// echoes every byte; sends each request head it saw to `heads`.
fn upgrade_echo_backend(heads: std::sync::mpsc::Sender<String>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind backend");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let heads = heads.clone();
            std::thread::spawn(move || {
                stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
                let mut writer = stream.try_clone().expect("clone");
                let mut reader = BufReader::new(stream);
                let mut head = String::new();
                while !head.ends_with("\r\n\r\n") {
                    if reader.read_line(&mut head).unwrap_or(0) == 0 {
                        return;
                    }
                }
                let _ = heads.send(head);
                let switch = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nhello-from-upstream";
                if writer.write_all(switch).is_err() {
                    return;
                }
                let mut buffer = [0u8; 16 * 1024];
                while let Ok(n @ 1..) = reader.read(&mut buffer) {
                    if writer.write_all(&buffer[..n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

#[test]
fn websocket_through_the_proxy_over_tls() {
    let (heads, seen) = std::sync::mpsc::channel();
    let edge = start_edge(upgrade_echo_backend(heads));
    let mut tls = BufReader::new(connect(edge.https, Some(HOST), any_client()).expect("handshake"));
    let upgrade = format!("GET /chat HTTP/1.1\r\nHost: {HOST}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n");
    tls.get_mut().write_all(upgrade.as_bytes()).expect("send upgrade");
    tls.get_mut().flush().expect("flush");

    let (line, _) = read_head(&mut tls).expect("the response head");
    assert!(line.starts_with("HTTP/1.1 101"), "{line:?}");
    let mut greeting = [0u8; 19];
    tls.read_exact(&mut greeting).expect("upstream bytes past its head");
    assert_eq!(&greeting, b"hello-from-upstream");
    for message in [b"ping".to_vec(), vec![0u8, 255, 13, 10], vec![b'x'; 100_000]] {
        tls.get_mut().write_all(&message).expect("send");
        tls.get_mut().flush().expect("flush");
        let mut echo = vec![0; message.len()];
        tls.read_exact(&mut echo).expect("echo");
        assert!(echo == message, "echo of {} bytes", message.len());
    }
    let head = seen.recv_timeout(PATIENCE).expect("backend saw the upgrade").to_ascii_lowercase();
    assert!(head.contains("x-forwarded-proto: https"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
}

/// An upstream that fails mid-body cuts the HTTPS client at once: the cut
/// shuts the TLS session's socket down without waiting for the stream's lock,
/// which the connection's next read holds until its read timeout (the
/// server's idle timeout here is 60 s, far past PATIENCE).
#[test]
fn an_upstream_failing_mid_body_cuts_the_https_client_at_once() {
    let backend = Backend::start(Arc::new(|_, out| {
        proxy_support::respond_sized(out, 200, &[], 1000, &[b'x'; 500]);
        let _ = out.shutdown(std::net::Shutdown::Both);
    }));
    let edge = start_edge(backend.port());
    for round in 0..5 {
        let mut tls = connect(edge.https, Some(HOST), any_client()).expect("handshake");
        tls.write_all(format!("GET /half HTTP/1.1\r\nHost: {HOST}\r\n\r\n").as_bytes()).expect("send");
        let mut received = Vec::new();
        let mut buffer = [0u8; 4096];
        let ended = loop {
            match tls.read(&mut buffer) {
                Ok(0) => break None,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
                Err(error) => break Some(error),
            }
        };
        if let Some(error) = &ended {
            assert!(
                !matches!(error.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
                "round {round}: the cut connection stayed open for {PATIENCE:?}"
            );
        }
        let text = String::from_utf8_lossy(&received);
        assert!(text.starts_with("HTTP/1.1 200"), "round {round}: {text}");
        assert!(text.ends_with(&"x".repeat(500)), "round {round}: the bytes the upstream sent, and no more");
    }
}
