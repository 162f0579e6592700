//! HTTPS end to end on loopback: real TCP, real rustls clients, the patched
//! tiny_http serving `tls::TlsStream`s, certificates made by the tests.

use crate::support;
use crate::tls_support;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use ingressd::cache::{self, CompileConfig, Current};
use ingressd::kube::objects::{Ingress, IngressSpec, IngressTls, ObjectKey, ObjectMeta, Secret};
use ingressd::routes::RouteConfig;
use ingressd::store::Snapshot;
use ingressd::tls;
use rustls::{AlertDescription, ClientConfig};
use support::http::*;
use tls_support::*;

/// The class every Ingress here names and the harness serves.
const CLASS: &str = "ingressd";

fn ingress(namespace: &str, name: &str, tls: &[(&[&str], &str)]) -> Ingress {
    Ingress {
        metadata: ObjectMeta {
            namespace: namespace.into(),
            name: name.into(),
            creation_timestamp: "2024-01-01T00:00:00Z".into(),
            ..ObjectMeta::default()
        },
        spec: IngressSpec {
            ingress_class_name: Some(CLASS.into()),
            tls: tls
                .iter()
                .map(|(hosts, secret)| IngressTls { hosts: hosts.iter().map(|h| (*h).into()).collect(), secret_name: Some((*secret).into()) })
                .collect(),
            ..IngressSpec::default()
        },
        status: None,
    }
}

// ---- the server under test ------------------------------------------------

struct Harness {
    addr: SocketAddr,
    current: Arc<Current>,
    stop: Arc<AtomicBool>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Harness {
    /// HTTPS on an ephemeral port; every request is answered by echoing its
    /// body, with `x-path` and `x-secure` headers.
    fn start(handshake_timeout: Duration) -> Harness {
        let current = Arc::new(Current::default());
        let plain = TcpListener::bind("127.0.0.1:0").expect("bind plain");
        let server = Arc::new(tiny_http::Server::from_listener_with_limits(plain, tiny_http::Limits::default()).expect("server"));
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind tls");
        let addr = listener.local_addr().expect("addr");
        tls::spawn_listener(listener, tls::server_config(current.clone()), Arc::clone(&server), handshake_timeout)
            .expect("HTTPS accept loop starts");
        let stop = Arc::new(AtomicBool::new(false));
        for _ in 0..4 {
            let (server, stop) = (Arc::clone(&server), Arc::clone(&stop));
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(Some(request)) = server.recv_timeout(Duration::from_millis(50)) {
                        echo(request);
                    }
                }
            });
        }
        Harness { addr, current, stop }
    }

    /// Publishes a generation of `secrets` and `ingresses`, compiled as the cache thread does.
    fn publish(&self, secrets: &[&Arc<Secret>], ingresses: &[&Ingress], default_cert: Option<&ObjectKey>) {
        let previous = self.current.load();
        let routes = RouteConfig { ingress_class: CLASS.into(), controller_name: "ingressd.io/ingress-controller".into(), ..Default::default() };
        let config = CompileConfig { routes, default_certificate: default_cert.cloned() };
        self.current.store(cache::compile(&Arc::new(snapshot(secrets, ingresses)), &config, &previous));
    }
}

fn echo(mut request: tiny_http::Request) {
    if request.headers().iter().any(|h| h.field.equiv("upgrade")) {
        return tunnel(request);
    }
    let mut body = Vec::new();
    if request.as_reader().read_to_end(&mut body).is_err() {
        return;
    }
    let headers = [
        tiny_http::Header::from_bytes("x-path", request.url()).expect("header"),
        tiny_http::Header::from_bytes("x-secure", request.secure().to_string()).expect("header"),
    ];
    let mut response = tiny_http::Response::from_data(body).with_chunked_threshold(usize::MAX);
    for header in headers {
        response.add_header(header);
    }
    let _ = request.respond(response);
}

/// An upgraded connection: the server speaks first ("hello\n") while its
/// reader half is already waiting, then answers each line with "echo:" + line.
fn tunnel(request: tiny_http::Request) {
    let (reader, mut writer) = request.into_raw();
    let (lines, received) = std::sync::mpsc::channel::<String>();
    thread::spawn(move || {
        let mut reader = BufReader::new(reader);
        let mut line = String::new();
        // Raw reads time out after the idle timeout; a test's client is never that slow.
        while matches!(reader.read_line(&mut line), Ok(n) if n > 0) {
            if lines.send(std::mem::take(&mut line)).is_err() {
                return;
            }
        }
    });
    let head = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
    if writer.write_all(head).and_then(|()| writer.flush()).is_err() {
        return;
    }
    // Give the reader half time to block in a read before the writer needs the stream.
    thread::sleep(Duration::from_millis(100));
    if writer.write_all(b"hello\n").and_then(|()| writer.flush()).is_err() {
        return;
    }
    while let Ok(line) = received.recv_timeout(PATIENCE) {
        if writer.write_all(format!("echo:{line}").as_bytes()).and_then(|()| writer.flush()).is_err() {
            return;
        }
    }
}

fn snapshot(secrets: &[&Arc<Secret>], ingresses: &[&Ingress]) -> Snapshot {
    let mut snapshot = Snapshot::default();
    for secret in secrets {
        snapshot.insert(ingressd::kube::Object::Secret(Secret::clone(secret)));
    }
    for ingress in ingresses {
        snapshot.insert(ingressd::kube::Object::Ingress(Ingress::clone(ingress)));
    }
    snapshot
}

// ---- tests ------------------------------------------------------------------

#[test]
fn sni_picks_the_certificate_of_each_host() {
    let harness = Harness::start(PATIENCE);
    let ca = Ca::new();
    let (a, b) = (ca.issue(&["a.example.com"]), ca.issue(&["b.example.com"]));
    let (sa, sb) = (secret("web", "a-tls", &a.cert_pem, &a.key_pem), secret("shop", "b-tls", &b.cert_pem, &b.key_pem));
    let ia = ingress("web", "a", &[(&["a.example.com"], "a-tls")]);
    let ib = ingress("shop", "b", &[(&["B.Example.com"], "b-tls")]);
    harness.publish(&[&sa, &sb], &[&ia, &ib], None);

    for versions in [&[&rustls::version::TLS13][..], &[&rustls::version::TLS12][..]] {
        let config = client_config(versions, &[b"h2", b"http/1.1"]);
        let tls = connect(harness.addr, Some("a.example.com"), Arc::clone(&config)).expect("a handshake");
        assert_eq!(served_leaf(&tls), a.leaf);
        assert_eq!(tls.conn.protocol_version(), Some(versions[0].version));
        assert_eq!(tls.conn.alpn_protocol(), Some(&b"http/1.1"[..]), "a client offering h2 gets HTTP/1.1");
        let tls = connect(harness.addr, Some("b.example.com"), config).expect("b handshake");
        assert_eq!(served_leaf(&tls), b.leaf);
    }

    // A client verifying against the CA accepts the served chain.
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.cert.der().clone()).expect("root");
    let verifying = ClientConfig::builder_with_provider(provider()).with_safe_default_protocol_versions().expect("versions").with_root_certificates(roots).with_no_client_auth();
    let tls = connect(harness.addr, Some("b.example.com"), Arc::new(verifying)).expect("verified handshake");
    assert_eq!(tls.conn.peer_certificates().map(<[_]>::len), Some(2), "leaf and CA");

    // h2 only: no ALPN answer (HTTP/1.1) rather than a failed handshake.
    let tls = connect(harness.addr, Some("a.example.com"), client_config(rustls::DEFAULT_VERSIONS, &[b"h2"])).expect("h2-only handshake");
    assert_eq!(tls.conn.alpn_protocol(), None);
    let mut tls = BufReader::new(tls);
    let response = request(&mut tls, "a.example.com", "/h2-only", b"").expect("HTTP/1.1 works");
    assert_eq!(response.status, 200);
}

#[test]
fn a_wildcard_certificate_covers_one_label() {
    let harness = Harness::start(PATIENCE);
    let ca = Ca::new();
    let wild = ca.issue(&["*.example.com"]);
    let s = secret("web", "wild", &wild.cert_pem, &wild.key_pem);
    let i = ingress("web", "w", &[(&["*.example.com"], "wild")]);
    harness.publish(&[&s], &[&i], None);
    let tls = connect(harness.addr, Some("Shop.Example.COM"), any_client()).expect("handshake");
    assert_eq!(served_leaf(&tls), wild.leaf);
    let Err(error) = connect(harness.addr, Some("a.b.example.com"), any_client()) else { panic!("two labels deep is not covered") };
    assert_eq!(alert_of(&error), Some(AlertDescription::UnrecognisedName), "{error}");
}

#[test]
fn unknown_names_get_the_default_certificate_or_unrecognized_name() {
    let harness = Harness::start(PATIENCE);
    let ca = Ca::new();
    let (a, fallback) = (ca.issue(&["a.example.com"]), ca.issue(&["default.invalid"]));
    let sa = secret("web", "a-tls", &a.cert_pem, &a.key_pem);
    let sd = secret("ingressd", "default-tls", &fallback.cert_pem, &fallback.key_pem);
    let ia = ingress("web", "a", &[(&["a.example.com"], "a-tls")]);

    harness.publish(&[&sa, &sd], &[&ia], None);
    for name in [Some("other.example.com"), None] {
        let Err(error) = connect(harness.addr, name, any_client()) else { panic!("{name:?}: no certificate, no handshake") };
        assert_eq!(alert_of(&error), Some(AlertDescription::UnrecognisedName), "{name:?}: {error}");
    }

    harness.publish(&[&sa, &sd], &[&ia], Some(&ObjectKey::new("ingressd", "default-tls")));
    for name in [Some("other.example.com"), None] {
        let tls = connect(harness.addr, name, any_client()).expect("default certificate");
        assert_eq!(served_leaf(&tls), fallback.leaf, "{name:?}");
    }
    let tls = connect(harness.addr, Some("a.example.com"), any_client()).expect("handshake");
    assert_eq!(served_leaf(&tls), a.leaf, "a matching host still wins over the default");
}

#[test]
fn a_rotated_secret_serves_the_next_handshake_and_a_broken_one_is_ignored() {
    let harness = Harness::start(PATIENCE);
    let ca = Ca::new();
    let (v1, v2, v3) = (ca.issue(&["r.example.com"]), ca.issue(&["r.example.com"]), ca.issue(&["r.example.com"]));
    let i = ingress("web", "r", &[(&["r.example.com"], "r-tls")]);
    harness.publish(&[&secret("web", "r-tls", &v1.cert_pem, &v1.key_pem)], &[&i], None);
    let old = connect(harness.addr, Some("r.example.com"), any_client()).expect("v1 handshake");
    assert_eq!(served_leaf(&old), v1.leaf);

    harness.publish(&[&secret("web", "r-tls", &v2.cert_pem, &v2.key_pem)], &[&i], None);
    let tls = connect(harness.addr, Some("r.example.com"), any_client()).expect("v2 handshake");
    assert_eq!(served_leaf(&tls), v2.leaf);

    // The connection made before the rotation is untouched.
    let mut old = BufReader::new(old);
    let response = request(&mut old, "r.example.com", "/still-here", b"ping").expect("old connection works");
    assert_eq!((response.status, response.body.as_slice()), (200, &b"ping"[..]));

    let errors_before = tls::secret_errors_total();
    harness.publish(&[&secret("web", "r-tls", &v3.cert_pem, &v1.key_pem)], &[&i], None);
    assert!(tls::secret_errors_total() > errors_before, "the rejection is counted");
    let tls = connect(harness.addr, Some("r.example.com"), any_client()).expect("handshake after a bad update");
    assert_eq!(served_leaf(&tls), v2.leaf, "the last good certificate stays");
}

#[test]
fn a_silent_client_neither_blocks_others_nor_outlives_the_deadline() {
    let deadline = Duration::from_millis(1500);
    let harness = Harness::start(deadline);
    let ca = Ca::new();
    let a = ca.issue(&["a.example.com"]);
    let ia = ingress("web", "a", &[(&["a.example.com"], "a-tls")]);
    harness.publish(&[&secret("web", "a-tls", &a.cert_pem, &a.key_pem)], &[&ia], None);

    let started = Instant::now();
    // More silent clients than tiny_http keeps idle threads for.
    let silent: Vec<TcpStream> = (0..8).map(|_| TcpStream::connect(harness.addr).expect("connect")).collect();
    // One that trickles a byte of a ClientHello at a time cannot extend the deadline.
    let mut trickling = TcpStream::connect(harness.addr).expect("connect");
    let trickler = thread::spawn(move || {
        for byte in [0x16u8, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03].iter().cycle().take(40) {
            if trickling.write_all(&[*byte]).is_err() {
                return Instant::now();
            }
            thread::sleep(Duration::from_millis(100));
        }
        Instant::now()
    });

    let tls = connect(harness.addr, Some("a.example.com"), any_client()).expect("handshake alongside silent clients");
    let mut tls = BufReader::new(tls);
    assert_eq!(request(&mut tls, "a.example.com", "/", b"x").expect("request").status, 200);
    assert!(started.elapsed() < deadline, "served before the silent clients' deadline: {:?}", started.elapsed());

    for mut socket in silent {
        socket.set_read_timeout(Some(PATIENCE)).expect("timeout");
        let mut byte = [0u8; 1];
        match socket.read(&mut byte) {
            Ok(0) => {}
            Err(error) if error.kind() == io::ErrorKind::ConnectionReset => {}
            other => panic!("silent client should be closed, got {other:?}"),
        }
        let closed_after = started.elapsed();
        assert!(closed_after >= deadline - Duration::from_millis(100), "closed too early: {closed_after:?}");
        assert!(closed_after < deadline + Duration::from_secs(2), "closed too late: {closed_after:?}");
    }
    let trickle_stopped = trickler.join().expect("trickler") - started;
    assert!(trickle_stopped < deadline + Duration::from_secs(2), "trickling client kept for {trickle_stopped:?}");
}

#[test]
fn large_bodies_over_one_keep_alive_connection() {
    let harness = Harness::start(PATIENCE);
    let ca = Ca::new();
    let a = ca.issue(&["a.example.com"]);
    let ia = ingress("web", "a", &[(&["a.example.com"], "a-tls")]);
    harness.publish(&[&secret("web", "a-tls", &a.cert_pem, &a.key_pem)], &[&ia], None);

    let mut tls = BufReader::new(connect(harness.addr, Some("a.example.com"), any_client()).expect("handshake"));
    for round in 0..3u8 {
        let body: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8 ^ round).collect();
        let response = request(&mut tls, "a.example.com", &format!("/upload/{round}"), &body).expect("1 MiB round trip");
        assert_eq!(response.status, 200);
        assert_eq!(response.header("x-path"), Some(format!("/upload/{round}").as_str()));
        assert_eq!(response.header("x-secure"), Some("true"));
        assert!(response.body == body, "round {round}: body differs");
    }
}

#[test]
fn an_upgraded_connection_relays_both_ways_over_tls() {
    let harness = Harness::start(PATIENCE);
    let ca = Ca::new();
    let a = ca.issue(&["ws.example.com"]);
    let ia = ingress("web", "ws", &[(&["ws.example.com"], "ws-tls")]);
    harness.publish(&[&secret("web", "ws-tls", &a.cert_pem, &a.key_pem)], &[&ia], None);

    let mut tls = BufReader::new(connect(harness.addr, Some("ws.example.com"), any_client()).expect("handshake"));
    let head = "GET /chat HTTP/1.1\r\nHost: ws.example.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
    tls.get_mut().write_all(head.as_bytes()).expect("write head");
    tls.get_mut().flush().expect("flush");
    let (line, _) = read_head(&mut tls).expect("the response head");
    assert!(line.starts_with("HTTP/1.1 101"), "{line:?}");
    // The server writes while its reader half waits for us: the halves do not block each other.
    let mut line = String::new();
    tls.read_line(&mut line).expect("server speaks first");
    assert_eq!(line, "hello\n");
    for message in ["ping\n", "second message\n"] {
        tls.get_mut().write_all(message.as_bytes()).expect("send");
        tls.get_mut().flush().expect("flush");
        line.clear();
        tls.read_line(&mut line).expect("echo");
        assert_eq!(line, format!("echo:{message}"));
    }
}
