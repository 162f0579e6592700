//! Graceful drain: SIGTERM fails readiness at once, in-flight requests
//! complete, and the process exits 0.

use crate::common;
use crate::support;
use crate::tls_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{get, Api, Backend, Ingressd};
use support::http::*;
use support::wait::wait_until;

#[test]
fn an_in_flight_slow_request_completes_during_a_drain() {
    let api = Api::start();
    let slow = Backend::start_with_delay("slow", Duration::from_millis(1500));
    api.serve_one_site("slow.example.com", "slow", &slow);
    let mut ingressd = Ingressd::start(&api, &["--shutdown-delay", "0.3", "--shutdown-grace", "10"]);
    assert!(ingressd.wait_ready(Duration::from_secs(10)));

    let http = ingressd.http;
    let in_flight = std::thread::spawn(move || get(http, "/report", "slow.example.com"));
    assert!(wait_until(Duration::from_secs(5), || slow.requests.load(std::sync::atomic::Ordering::SeqCst) == 1));

    let signalled = Instant::now();
    ingressd.signal("TERM");
    assert!(
        wait_until(Duration::from_millis(500), || ingressd.admin_get("/readyz").status == 503),
        "readiness fails at once"
    );
    let refused = |addr| std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err();
    assert!(
        wait_until(Duration::from_secs(1), || refused(ingressd.http) && refused(ingressd.https)),
        "after --shutdown-delay both listeners are closed while the slow request is still in flight"
    );
    let response = in_flight.join().expect("client thread").expect("the in-flight request is answered");
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "slow /report\n");

    let status = ingressd.wait_exit(Duration::from_secs(10)).expect("ingressd exits after the drain");
    assert!(status.success(), "exit status {status:?}");
    assert!(signalled.elapsed() >= Duration::from_millis(300), "listeners stayed up for --shutdown-delay");
}

#[test]
fn new_connections_are_still_served_during_the_shutdown_delay() {
    let api = Api::start();
    let backend = Backend::start("blue");
    api.serve_one_site("shop.example.com", "blue", &backend);
    let mut ingressd = Ingressd::start(&api, &["--shutdown-delay", "2", "--shutdown-grace", "5"]);
    assert!(ingressd.wait_ready(Duration::from_secs(10)));
    ingressd.signal("INT");
    assert!(wait_until(Duration::from_millis(500), || ingressd.admin_get("/readyz").status == 503));
    let response = get(ingressd.http, "/during-delay", "shop.example.com").expect("still accepting");
    assert_eq!(response.status, 200);
    let status = ingressd.wait_exit(Duration::from_secs(10)).expect("exits");
    assert!(status.success());
}

/// Reads one response with a Content-Length body from a kept-alive connection.
fn read_sized_response(conn: &mut BufReader<TcpStream>) -> Response {
    let response = read_response(conn, false).expect("a response");
    assert!(response.header("content-length").is_some(), "a sized response: {:?}", response.headers);
    response
}

/// A client connection that sent one request and keeps the connection open.
fn keep_alive_client(ingressd: &Ingressd) -> BufReader<TcpStream> {
    let stream = TcpStream::connect(ingressd.http).expect("connects");
    stream.set_read_timeout(Some(Duration::from_secs(5))).expect("read timeout");
    let mut conn = BufReader::new(stream);
    conn.get_mut().write_all(KEEP_ALIVE_GET).expect("sends");
    let response = read_sized_response(&mut conn);
    assert_eq!(response.status, 200);
    assert_eq!(response.header("connection"), None, "kept alive before the drain");
    conn
}

const KEEP_ALIVE_GET: &[u8] = b"GET /keep HTTP/1.1\r\nHost: shop.example.com\r\n\r\n";

/// True when the peer closes within `within` (EOF or reset).
fn closed_within(conn: &mut BufReader<TcpStream>, within: Duration) -> bool {
    conn.get_mut().set_read_timeout(Some(within)).expect("read timeout");
    let mut rest = Vec::new();
    match conn.read_to_end(&mut rest) {
        Ok(_) => true,
        Err(err) => err.kind() == std::io::ErrorKind::ConnectionReset,
    }
}

#[test]
fn an_idle_keep_alive_connection_does_not_delay_the_exit() {
    let api = Api::start();
    let backend = Backend::start("blue");
    api.serve_one_site("shop.example.com", "blue", &backend);
    // The idle timeout and the grace are both far longer than the exit may take.
    let mut ingressd = Ingressd::start(&api, &["--shutdown-delay", "0.2", "--shutdown-grace", "20", "--idle-timeout", "60"]);
    assert!(ingressd.wait_ready(Duration::from_secs(10)));
    let mut idle = keep_alive_client(&ingressd);

    let signalled = Instant::now();
    ingressd.signal("TERM");
    let status = ingressd.wait_exit(Duration::from_secs(5)).expect("ingressd exits well before the grace ends");
    assert!(status.success(), "exit status {status:?}");
    assert!(signalled.elapsed() >= Duration::from_millis(200), "listeners stayed up for --shutdown-delay");
    assert!(closed_within(&mut idle, Duration::from_secs(1)), "the idle connection was closed");
}

#[test]
fn a_keep_alive_request_during_the_delay_is_answered_with_connection_close() {
    let api = Api::start();
    let backend = Backend::start("blue");
    api.serve_one_site("shop.example.com", "blue", &backend);
    let mut ingressd = Ingressd::start(&api, &["--shutdown-delay", "3", "--shutdown-grace", "10", "--idle-timeout", "60"]);
    assert!(ingressd.wait_ready(Duration::from_secs(10)));
    let mut conn = keep_alive_client(&ingressd);

    ingressd.signal("TERM");
    assert!(wait_until(Duration::from_millis(500), || ingressd.admin_get("/readyz").status == 503));
    let asked = Instant::now();
    conn.get_mut().write_all(KEEP_ALIVE_GET).expect("sends on the kept-alive connection");
    let response = read_sized_response(&mut conn);
    assert_eq!((response.status, response.text().as_str()), (200, "blue /keep\n"));
    assert_eq!(response.header("connection"), Some("close"));
    assert!(closed_within(&mut conn, Duration::from_secs(1)), "the connection ends after that response");
    assert!(asked.elapsed() < Duration::from_secs(2), "closed during the delay, not at its end");

    let status = ingressd.wait_exit(Duration::from_secs(10)).expect("exits after the delay");
    assert!(status.success(), "exit status {status:?}");
}

/// Answers one upgrade with a 101, then echoes every byte until the client side closes.
fn echo_upgrade_backend() -> Backend {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("backend binds");
    let addr = listener.local_addr().expect("backend addr");
    std::thread::spawn(move || {
        let Ok((stream, _)) = listener.accept() else { return };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(20)));
        let mut reader = BufReader::new(&stream);
        let mut line = String::new();
        while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
            line.clear();
        }
        if (&stream).write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n").is_err() {
            return;
        }
        let mut buffer = [0u8; 1024];
        while let Ok(read @ 1..) = reader.read(&mut buffer) {
            if (&stream).write_all(&buffer[..read]).is_err() {
                return;
            }
        }
    });
    Backend { addr, requests: Default::default() }
}

#[test]
fn a_tunnel_in_flight_is_served_until_it_ends_within_the_grace() {
    let api = Api::start();
    let backend = echo_upgrade_backend();
    api.serve_one_site("ws.example.com", "echo", &backend);
    let mut ingressd = Ingressd::start(&api, &["--shutdown-delay", "0.2", "--shutdown-grace", "20"]);
    assert!(ingressd.wait_ready(Duration::from_secs(10)));
    let stream = TcpStream::connect(ingressd.http).expect("connects");
    stream.set_read_timeout(Some(Duration::from_secs(5))).expect("read timeout");
    let mut tunnel = BufReader::new(stream);
    tunnel
        .get_mut()
        .write_all(b"GET /ws HTTP/1.1\r\nHost: ws.example.com\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
        .expect("sends the upgrade");
    let mut status = String::new();
    tunnel.read_line(&mut status).expect("a status line");
    assert!(status.starts_with("HTTP/1.1 101"), "{status}");
    let mut line = String::new();
    while tunnel.read_line(&mut line).expect("the response head") > 0 && line != "\r\n" {
        line.clear();
    }

    ingressd.signal("TERM");
    let refused = |addr| TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err();
    assert!(wait_until(Duration::from_secs(2), || refused(ingressd.http)), "accepting stopped");
    tunnel.get_mut().write_all(b"still-open").expect("sends through the tunnel");
    let mut echo = [0u8; 10];
    tunnel.read_exact(&mut echo).expect("the tunnel still relays during the drain");
    assert_eq!(&echo, b"still-open");
    assert!(ingressd.child.try_wait().expect("process status").is_none(), "the drain waits for the tunnel");

    drop(tunnel);
    let status = ingressd.wait_exit(Duration::from_secs(5)).expect("exits once the tunnel ended");
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn an_idle_https_keep_alive_connection_does_not_delay_the_exit() {
    let api = Api::start();
    let backend = Backend::start("blue");
    api.serve_one_site("shop.example.com", "blue", &backend);
    let ca = fakeapi::certs::Ca::new("drain-ca");
    let issued = ca.issue("shop.example.com", &["shop.example.com"]);
    api.fake.create(fakeapi::certs::tls_secret("web", "shop-tls", &issued));
    let mut site = api.fake.get("networking.k8s.io/v1", "Ingress", "web", "site").expect("the site Ingress");
    site["spec"]["tls"] = serde_json::json!([{"hosts": ["shop.example.com"], "secretName": "shop-tls"}]);
    api.fake.apply(site);
    let mut ingressd = Ingressd::start(&api, &["--shutdown-delay", "0.2", "--shutdown-grace", "20", "--idle-timeout", "60"]);
    assert!(ingressd.wait_ready(Duration::from_secs(10)));

    let mut tls = None;
    assert!(
        wait_until(Duration::from_secs(5), || {
            tls = tls_support::connect(ingressd.https, Some("shop.example.com"), tls_support::any_client()).ok();
            tls.is_some()
        }),
        "the certificate is served"
    );
    let mut tls = tls.expect("connected");
    tls.write_all(KEEP_ALIVE_GET).expect("sends over TLS");
    let mut reader = BufReader::new(&mut tls);
    let response = read_response(&mut reader, false).expect("a response over TLS");
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "blue /keep\n");

    let signalled = Instant::now();
    ingressd.signal("TERM");
    let status = ingressd.wait_exit(Duration::from_secs(5)).expect("ingressd exits well before the grace ends");
    assert!(status.success(), "exit status {status:?}");
    assert!(signalled.elapsed() < Duration::from_secs(5));
    let mut rest = Vec::new();
    let closed = match reader.read_to_end(&mut rest) {
        Ok(_) => true,
        Err(err) => matches!(err.kind(), std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::UnexpectedEof),
    };
    assert!(closed, "the idle TLS connection was closed");
}
