//! Graceful drain: SIGTERM fails readiness at once, in-flight requests
//! complete, and the process exits 0.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{get, wait_until, Api, Backend, Ingressd};

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
    assert_eq!(response.body_text(), "slow /report\n");

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
fn read_sized_response(conn: &mut BufReader<TcpStream>) -> common::Response {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut line = Vec::new();
        assert!(conn.read_until(b'\n', &mut line).expect("a response head") > 0, "closed before a response");
        head.extend_from_slice(&line);
    }
    let response = common::parse_response(&head).expect("a well-formed head");
    let length: usize = response.header("content-length").and_then(|v| v.parse().ok()).expect("a sized response");
    let mut body = vec![0; length];
    conn.read_exact(&mut body).expect("the whole body");
    common::Response { body, ..response }
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
    assert_eq!((response.status, response.body_text().as_str()), (200, "blue /keep\n"));
    assert_eq!(response.header("connection"), Some("close"));
    assert!(closed_within(&mut conn, Duration::from_secs(1)), "the connection ends after that response");
    assert!(asked.elapsed() < Duration::from_secs(2), "closed during the delay, not at its end");

    let status = ingressd.wait_exit(Duration::from_secs(10)).expect("exits after the delay");
    assert!(status.success(), "exit status {status:?}");
}
