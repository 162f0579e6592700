//! The proxy end to end on loopback: routing, header rules, streaming bodies
//! both ways, keep-alive, error statuses and their timing, failover, limits.

use crate::proxy_support;
use crate::support;

use std::io::{BufRead, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use ingressd::proxy::ProxyConfig;
use proxy_support::*;
use support::http::*;

#[test]
fn routes_by_host_and_path() {
    let root = Backend::text("root");
    let api = Backend::text("api");
    let other = Backend::text("other");
    let proxy = start_proxy(
        &[rule("a.test", "/", &[root.port()]), rule("a.test", "/api", &[api.port()]), rule("b.test", "/", &[other.port()])],
        test_config(),
    );
    assert_eq!(get(&proxy, "a.test", "/").text(), "root");
    assert_eq!(get(&proxy, "A.Test:80", "/api/v1?x=1").text(), "api");
    assert_eq!(get(&proxy, "a.test", "/apix").text(), "root");
    assert_eq!(get(&proxy, "b.test", "/api").text(), "other");
    assert_eq!(api.last().target, "/api/v1?x=1", "target forwarded byte for byte");
    let missing = get(&proxy, "c.test", "/");
    assert_eq!(missing.status, 404);
    let outcomes = proxy.wait_outcomes(5);
    // Workers report in the order they finish, not the order the client sent:
    // the previous answer's report may come after the 404's.
    let reported = outcomes.iter().find(|o| o.host == "c.test").expect("the c.test request reported");
    assert_eq!((reported.status, reported.host.as_str()), (404, "c.test"));
    assert!(outcomes.iter().any(|o| o.upstream_status == Some(200) && o.service.as_deref() == Some("svc1")));
}

#[test]
fn absolute_form_target_routes_by_its_authority() {
    let backend = Backend::text("ok");
    let proxy = start_proxy(&[rule("a.test", "/", &[backend.port()])], test_config());
    let mut conn = connect(&proxy);
    send(&mut conn, b"GET http://a.test/x?y HTTP/1.1\r\nHost: ignored.test\r\n\r\n");
    assert_eq!(read_response(&mut conn, false).expect("a response").status, 200);
    assert_eq!(backend.last().target, "/x?y");
    assert_eq!(backend.last().header("host"), Some("a.test"), "the target's authority replaces Host");
}

#[test]
fn backend_sees_the_header_rules() {
    let backend = Backend::text("ok");
    let proxy = start_proxy(&[rule("a.test", "/", &[backend.port()])], test_config());
    let mut conn = connect(&proxy);
    send(
        &mut conn,
        b"GET /p HTTP/1.1\r\nHost: A.test\r\nConnection: keep-alive, X-Drop\r\nX-Drop: 1\r\nKeep-Alive: 5\r\n\
          Proxy-Authorization: secret\r\nTE: trailers\r\nX-Forwarded-For: 6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\n\
          X-Forwarded-Proto: https\r\nCookie: a=1\r\n\r\n",
    );
    let response = read_response(&mut conn, false).expect("a response");
    assert_eq!(response.status, 200);
    assert!(response.header("x-request-id").is_none(), "request id is for the upstream");
    let seen = backend.last();
    assert_eq!(seen.header("host"), Some("A.test"));
    assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(seen.header("x-real-ip"), Some("127.0.0.1"));
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
    assert_eq!(seen.header("x-forwarded-host"), Some("A.test"));
    assert_eq!(seen.header("x-forwarded-port"), Some(proxy.addr.port().to_string().as_str()));
    assert_eq!(seen.header("cookie"), Some("a=1"));
    assert_eq!(seen.header("x-request-id").map(str::len), Some(32));
    for dropped in ["x-drop", "keep-alive", "proxy-authorization", "te", "user-agent", "accept"] {
        assert!(!seen.has(dropped), "{dropped} reached the backend: {:?}", seen.headers);
    }
    if let Some(connection) = seen.header("connection") {
        assert!(!connection.contains("X-Drop"), "client Connection forwarded: {connection}");
    }
    let outcome = proxy.wait_outcomes(1).pop().unwrap();
    assert_eq!(Some(outcome.request_id.as_str()), seen.header("x-request-id"));
}

#[test]
fn response_hop_by_hop_headers_are_dropped_and_content_length_kept() {
    let backend = Backend::start(Arc::new(|_req, out| {
        respond(out, 201, &[("Keep-Alive", "timeout=1"), ("X-App", "1"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")], &[7; 40000])
    }));
    let proxy = start_proxy(&[rule("a.test", "/", &[backend.port()])], test_config());
    let response = get(&proxy, "a.test", "/");
    assert_eq!(response.status, 201);
    assert_eq!(response.header("content-length"), Some("40000"));
    assert_eq!(response.body.len(), 40000);
    assert!(response.header("keep-alive").is_none());
    assert_eq!(response.header("x-app"), Some("1"));
    assert_eq!(response.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie")).count(), 2);
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

/// The proxy writes a response head in front of the first body bytes it
/// reads; whatever the sizes, every byte arrives once and in order, and the
/// connection stays usable.
#[test]
fn heads_and_bodies_of_every_size_arrive_whole_on_one_connection() {
    let backend = Backend::start(Arc::new(|req, out| {
        let (head, body): (usize, usize) = req.target[1..].split_once('/').map(|(h, b)| (h.parse().unwrap(), b.parse().unwrap())).unwrap();
        respond(out, 200, &[("X-Pad", &"p".repeat(head))], &pattern(body))
    }));
    let proxy = start_proxy(&[rule("a.test", "/", &[backend.port()])], test_config());
    let mut conn = connect(&proxy);
    for head in [0, 3000, 40_000] {
        for body in [1, 1024, 65_536, 68 * 1024, 200_000] {
            send(&mut conn, format!("GET /{head}/{body} HTTP/1.1\r\nHost: a.test\r\n\r\n").as_bytes());
            let response = read_response(&mut conn, false).expect("a response");
            assert_eq!(response.status, 200, "head {head}, body {body}");
            assert_eq!(response.header("x-pad").map(str::len), Some(head), "head {head}, body {body}");
            assert!(response.body == pattern(body), "head {head}, body {body}: body differs");
        }
    }
}

#[test]
fn one_mebibyte_bodies_both_ways() {
    let backend = Backend::echo();
    let proxy = start_proxy(&[rule("a.test", "/", &[backend.port()])], test_config());
    let body = pattern(1 << 20);
    let mut conn = connect(&proxy);
    send(&mut conn, format!("POST /up HTTP/1.1\r\nHost: a.test\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes());
    send(&mut conn, &body);
    let response = read_response(&mut conn, false).expect("a response");
    assert_eq!(response.status, 200);
    assert!(response.body == body, "echoed body differs");
    assert_eq!(backend.last().header("content-length"), Some("1048576"));
}

#[test]
fn chunked_upload_is_streamed_upstream() {
    let backend = Backend::echo();
    let proxy = start_proxy(&[rule("a.test", "/", &[backend.port()])], test_config());
    let mut conn = connect(&proxy);
    send(&mut conn, b"POST /up HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n");
    let mut expected = Vec::new();
    for i in 0..50 {
        let chunk = pattern(1000 + i * 100);
        send(&mut conn, format!("{:x}\r\n", chunk.len()).as_bytes());
        send(&mut conn, &chunk);
        send(&mut conn, b"\r\n");
        expected.extend_from_slice(&chunk);
    }
    send(&mut conn, b"0\r\n\r\n");
    let response = read_response(&mut conn, false).expect("a response");
    assert_eq!(response.status, 200);
    assert!(response.body == expected, "echoed chunked body differs");
    let seen = backend.last();
    assert_eq!(seen.method, "POST");
    assert!(seen.header("transfer-encoding").is_some_and(|te| te.eq_ignore_ascii_case("chunked")));
}

#[test]
fn chunked_download_arrives_event_by_event() {
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let release_rx = Arc::new(Mutex::new(release_rx));
    let backend = Backend::start(Arc::new(move |_req, out| {
        let _ = out.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n");
        let _ = out.write_all(b"d\r\ndata: first\n\n\r\n");
        let _ = out.flush();
        let _ = release_rx.lock().unwrap().recv_timeout(IO_TIMEOUT);
        let _ = out.write_all(b"e\r\ndata: second\n\n\r\n0\r\n\r\n");
    }));
    let proxy = start_proxy(&[rule("a.test", "/", &[backend.port()])], test_config());
    let mut conn = connect(&proxy);
    send(&mut conn, b"GET /events HTTP/1.1\r\nHost: a.test\r\n\r\n");
    let (line, headers) = read_head(&mut conn).unwrap();
    assert!(line.contains(" 200 "), "{line}");
    assert_eq!(header(&headers, "transfer-encoding"), Some("chunked"));
    let mut size = String::new();
    conn.read_line(&mut size).unwrap();
    let mut first = vec![0; usize::from_str_radix(size.trim(), 16).unwrap() + 2];
    conn.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"data: first\n\n\r\n", "first event arrives before the second is sent");
    release_tx.send(()).unwrap();
    let rest = read_chunked(&mut conn).unwrap();
    assert_eq!(rest, b"data: second\n\n");
}

#[test]
fn keep_alive_reuses_client_and_upstream_connections() {
    let backend = Backend::text("ok");
    let proxy = start_proxy(&[rule("a.test", "/", &[backend.port()])], test_config());
    let mut conn = connect(&proxy);
    for _ in 0..5 {
        send(&mut conn, b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n");
        let response = read_response(&mut conn, false).expect("a response");
        assert_eq!(response.status, 200);
        assert!(response.header("connection").is_none_or(|c| !c.eq_ignore_ascii_case("close")));
    }
    send(&mut conn, b"HEAD / HTTP/1.1\r\nHost: a.test\r\n\r\n");
    let head = read_response(&mut conn, true).expect("a response");
    assert_eq!((head.status, head.header("content-length")), (200, Some("2")));
    send(&mut conn, b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n");
    let last = read_response(&mut conn, false).expect("a response");
    assert_eq!(last.header("connection"), Some("close"));
    let mut rest = Vec::new();
    assert_eq!(conn.read_to_end(&mut rest).unwrap(), 0, "connection closed after Connection: close");
    assert_eq!(backend.connections.load(Ordering::SeqCst), 1, "one upstream connection for 7 requests");
}

#[test]
fn http10_client_gets_its_semantics() {
    let backend = Backend::start(Arc::new(|_req, out| {
        let _ = out.write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
    }));
    let proxy = start_proxy(&[rule("a.test", "/", &[backend.port()])], test_config());
    let mut conn = connect(&proxy);
    send(&mut conn, b"GET / HTTP/1.0\r\nHost: a.test\r\n\r\n");
    let response = read_response(&mut conn, false).expect("a response");
    assert_eq!(response.status, 200);
    assert!(response.header("transfer-encoding").is_none(), "no chunking towards HTTP/1.0");
    assert_eq!(response.text(), "hello");
    assert_eq!(response.header("connection"), Some("close"));

    let mut conn = connect(&proxy);
    for _ in 0..2 {
        send(&mut conn, b"GET / HTTP/1.0\r\nHost: a.test\r\nConnection: keep-alive\r\n\r\n");
        let response = read_response(&mut conn, false).expect("a response");
        assert_eq!((response.header("content-length"), response.text().as_str()), (Some("5"), "hello"));
        assert_eq!(response.header("connection"), Some("keep-alive"));
    }
}

#[test]
fn error_statuses_and_their_timing() {
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let config = ProxyConfig { response_timeout: Duration::from_millis(400), connect_timeout: Duration::from_secs(3), ..test_config() };
    let proxy = start_proxy(
        &[rule("dead.test", "/", &[dead_port()]), rule("slow.test", "/", &[silent_port]), rule("none.test", "/", &[])],
        config,
    );
    let started = Instant::now();
    assert_eq!(get(&proxy, "dead.test", "/").status, 502);
    assert!(started.elapsed() < Duration::from_secs(1), "502 took {:?}", started.elapsed());

    let started = Instant::now();
    assert_eq!(get(&proxy, "slow.test", "/").status, 504);
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(400) && took < Duration::from_secs(3), "504 took {took:?}");

    assert_eq!(get(&proxy, "none.test", "/").status, 503);
    assert_eq!(get(&proxy, "unknown.test", "/").status, 404);
    drop(silent);
}

#[test]
fn a_dead_endpoint_fails_over_to_a_live_one() {
    let live = Backend::text("live");
    let proxy = start_proxy(&[rule("a.test", "/", &[dead_port(), live.port()])], test_config());
    for i in 0..10 {
        let response = get(&proxy, "a.test", "/");
        assert_eq!((i, response.status, response.text()), (i, 200, "live".to_string()));
    }
}

#[test]
fn body_size_limit() {
    let backend = Backend::echo();
    let proxy = start_proxy(&[rule("a.test", "/", &[backend.port()])], ProxyConfig { max_body_size: 2000, ..test_config() });
    let mut conn = connect(&proxy);
    send(&mut conn, b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 2001\r\n\r\n");
    assert_eq!(read_response(&mut conn, false).expect("a response").status, 413);
    assert!(backend.received.lock().unwrap().is_empty(), "the upstream was not contacted");

    let mut conn = connect(&proxy);
    send(&mut conn, b"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n");
    let chunk = [b'x'; 1500];
    let mut aborted = false;
    for _ in 0..2 {
        if conn.get_mut().write_all(format!("{:x}\r\n", chunk.len()).as_bytes()).is_err() || conn.get_mut().write_all(&chunk).is_err() || conn.get_mut().write_all(b"\r\n").is_err() {
            aborted = true;
        }
    }
    if !aborted {
        let _ = conn.get_mut().write_all(b"0\r\n\r\n");
        let response = read_response(&mut conn, false).expect("a response");
        assert_eq!(response.status, 413);
    }
    assert!(backend.received.lock().unwrap().is_empty(), "no complete oversized body reached the upstream");
    assert_eq!(get(&proxy, "a.test", "/").status, 200, "the proxy still serves");
}

#[test]
fn client_aborting_its_upload_frees_the_worker() {
    let backend = Backend::echo();
    let proxy = start_proxy(&[rule("a.test", "/", &[backend.port()])], test_config());
    let mut conn = connect(&proxy);
    send(&mut conn, b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 100000\r\n\r\n");
    send(&mut conn, &[b'x'; 5000]);
    drop(conn);
    let started = Instant::now();
    let response = get(&proxy, "a.test", "/");
    assert_eq!(response.status, 200);
    assert!(started.elapsed() < Duration::from_secs(3), "the only worker was stuck for {:?}", started.elapsed());
}

#[test]
fn bad_requests_get_400() {
    let backend = Backend::text("ok");
    let proxy = start_proxy(&[rule("a.test", "/", &[backend.port()])], test_config());
    for raw in [
        &b"GET * HTTP/1.1\r\nHost: a.test\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n",
        b"GET /a\x7fb HTTP/1.1\r\nHost: a.test\r\n\r\n",
    ] {
        let mut conn = connect(&proxy);
        send(&mut conn, raw);
        assert_eq!(read_response(&mut conn, false).expect("a response").status, 400, "{:?}", String::from_utf8_lossy(raw));
    }
}

#[test]
fn an_empty_sized_body_keeps_its_content_length() {
    let backend = Backend::echo();
    let proxy = start_proxy(&[rule("a.test", "/", &[backend.port()])], test_config());
    let mut conn = connect(&proxy);
    send(&mut conn, b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(read_response(&mut conn, false).expect("a response").status, 200);
    assert_eq!(backend.last().header("content-length"), Some("0"));
}

/// Reads whatever follows within `wait`; the connection may also end.
fn read_more(conn: &mut std::io::BufReader<std::net::TcpStream>, wait: Duration) -> Vec<u8> {
    conn.get_mut().set_read_timeout(Some(wait)).unwrap();
    let mut more = conn.buffer().to_vec();
    let mut buffer = [0u8; 1024];
    while let Ok(read) = conn.get_mut().read(&mut buffer) {
        if read == 0 {
            break;
        }
        more.extend_from_slice(&buffer[..read]);
    }
    more
}

#[test]
fn an_upstream_failing_mid_body_never_looks_complete() {
    let chunked = Backend::start(Arc::new(|_req, out| {
        let _ = out.write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n");
        let _ = out.shutdown(std::net::Shutdown::Both);
    }));
    let sized = Backend::start(Arc::new(|_req, out| {
        let _ = out.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\nonly-part");
        let _ = out.shutdown(std::net::Shutdown::Both);
    }));
    let fine = Backend::text("fine");
    let proxy = start_proxy(
        &[rule("chunked.test", "/", &[chunked.port()]), rule("sized.test", "/", &[sized.port()]), rule("fine.test", "/", &[fine.port()])],
        test_config(),
    );

    let mut conn = connect(&proxy);
    send(&mut conn, b"GET / HTTP/1.1\r\nHost: chunked.test\r\n\r\n");
    let (line, headers) = read_head(&mut conn).unwrap();
    assert!(line.contains(" 200 "));
    assert_eq!(header(&headers, "transfer-encoding"), Some("chunked"));
    let rest = read_more(&mut conn, Duration::from_millis(500));
    assert!(rest.starts_with(b"5\r\nhello\r\n"), "{:?}", String::from_utf8_lossy(&rest));
    assert!(!rest.ends_with(b"0\r\n\r\n"), "a truncated body was terminated cleanly");

    let mut conn = connect(&proxy);
    send(&mut conn, b"GET / HTTP/1.1\r\nHost: sized.test\r\n\r\n");
    let (_, headers) = read_head(&mut conn).unwrap();
    assert_eq!(header(&headers, "content-length"), Some("1000"));
    let rest = read_more(&mut conn, Duration::from_millis(500));
    assert!(rest.len() < 1000, "more bytes than the upstream sent");
    assert_eq!(get(&proxy, "fine.test", "/").text(), "fine", "the proxy keeps serving");
}

#[test]
fn ssl_redirect_answers_308_except_for_acme_challenges() {
    let backend = Backend::text("solver");
    let mut snapshot = snapshot(&[rule("secure.test", "/", &[backend.port()])]);
    let key = ingressd::kube::objects::ObjectKey::new("default", "web");
    let mut ingress = (*snapshot.ingresses[&key]).clone();
    ingress.metadata.annotations.insert("ingressd.io/ssl-redirect", "true");
    ingress.spec.tls = vec![ingressd::kube::objects::IngressTls { hosts: vec!["secure.test".into()], secret_name: Some("cert".into()) }];
    snapshot.insert(ingressd::kube::Object::Ingress(ingress));
    let proxy = start_proxy_with(snapshot, ProxyConfig { https_port: 8443, ..test_config() });

    let redirect = get(&proxy, "Secure.test:80", "/a/b?c=d");
    assert_eq!(redirect.status, 308);
    assert_eq!(redirect.header("location"), Some("https://secure.test:8443/a/b?c=d"));
    assert!(backend.received.lock().unwrap().is_empty());
    let challenge = get(&proxy, "secure.test", "/.well-known/acme-challenge/token");
    assert_eq!((challenge.status, challenge.text()), (200, "solver".to_string()));
}

#[test]
fn an_upstream_failing_before_its_first_body_byte_is_502() {
    let backend = Backend::start(Arc::new(|_req, out| {
        let _ = out.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n");
        let _ = out.shutdown(std::net::Shutdown::Both);
    }));
    let proxy = start_proxy(&[rule("a.test", "/", &[backend.port()])], test_config());
    let response = get(&proxy, "a.test", "/");
    assert_eq!(response.status, 502);
    assert_eq!(proxy.wait_outcomes(1)[0].upstream_status, Some(200));
}

/// A backend that answers one request per connection and then closes it
/// without saying so, as an upstream whose keep-alive timeout just expired.
fn one_request_per_connection_backend() -> Backend {
    Backend::start(Arc::new(|req, out| {
        respond(out, 200, &[], req.method.as_bytes());
        let _ = out.shutdown(std::net::Shutdown::Both);
    }))
}

#[test]
fn a_dead_pooled_connection_is_retried_on_a_fresh_one() {
    let backend = one_request_per_connection_backend();
    let proxy = start_proxy(&[rule("a.test", "/", &[backend.port()])], test_config());
    let mut conn = connect(&proxy);
    for round in 0..3 {
        send(&mut conn, b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n");
        let response = read_response(&mut conn, false).expect("a response");
        assert_eq!(response.status, 200, "round {round}: a dead pooled connection became a {}", response.status);
        assert_eq!(response.text(), "GET");
    }
    assert_eq!(backend.received.lock().unwrap().len(), 3, "each GET reached the backend once");
}

#[test]
fn a_request_body_never_goes_out_twice() {
    let backend = one_request_per_connection_backend();
    let proxy = start_proxy(&[rule("a.test", "/", &[backend.port()])], test_config());
    let mut conn = connect(&proxy);
    send(&mut conn, b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n");
    assert_eq!(read_response(&mut conn, false).expect("a response").status, 200);
    send(&mut conn, b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\n\r\nhello");
    let response = read_response(&mut conn, false).expect("a response");
    assert_eq!(response.status, 200, "a POST after a dead pooled connection");
    let posts = backend.received.lock().unwrap().iter().filter(|r| r.method == "POST").count();
    assert_eq!(posts, 1, "the POST reached the backend {posts} times");
}
