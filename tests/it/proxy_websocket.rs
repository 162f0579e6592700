//! Upgrades through the proxy: a hand-written WebSocket-style handshake and
//! echo backend, bytes sent past the heads on both sides, refused upgrades,
//! the idle timeout, and tunnels not holding proxy workers.

use crate::proxy_support;
use crate::support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use ingressd::proxy::ProxyConfig;
use proxy_support::*;
use support::http::*;

const UPGRADE_REQUEST: &[u8] = b"GET /chat?room=1 HTTP/1.1\r\nHost: ws.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/// Answers an upgrade with `answer`, then echoes every byte until the client
/// side closes; the request head it saw is kept.
fn upgrade_backend(answer: &'static [u8]) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let heads = Arc::new(Mutex::new(Vec::new()));
    let seen = heads.clone();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let seen = seen.clone();
            thread::spawn(move || {
                stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let mut writer = stream.try_clone().unwrap();
                let mut reader = BufReader::new(stream);
                let mut head = String::new();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    head.push_str(&line);
                    if line == "\r\n" {
                        break;
                    }
                }
                seen.lock().unwrap().push(head);
                if writer.write_all(answer).is_err() {
                    return;
                }
                let mut buffer = [0u8; 4096];
                loop {
                    match reader.read(&mut buffer) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if writer.write_all(&buffer[..n]).is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    (port, heads)
}

const SWITCH: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\nhello-from-upstream";

fn read_exactly(conn: &mut BufReader<TcpStream>, len: usize) -> Vec<u8> {
    let mut buffer = vec![0; len];
    conn.read_exact(&mut buffer).unwrap();
    buffer
}

#[test]
fn websocket_echo_through_the_tunnel() {
    let (port, heads) = upgrade_backend(SWITCH);
    let proxy = start_proxy(&[rule("ws.test", "/", &[port])], test_config());
    let mut conn = connect(&proxy);
    let mut request = UPGRADE_REQUEST.to_vec();
    request.extend_from_slice(b"early-bytes");
    send(&mut conn, &request);

    let (line, headers) = read_head(&mut conn).unwrap();
    assert!(line.starts_with("HTTP/1.1 101"), "{line}");
    assert_eq!(header(&headers, "upgrade"), Some("websocket"));
    assert!(header(&headers, "connection").is_some_and(|c| c.eq_ignore_ascii_case("upgrade")));
    assert_eq!(header(&headers, "sec-websocket-accept"), Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
    assert_eq!(read_exactly(&mut conn, 19), b"hello-from-upstream", "upstream bytes past its head");
    assert_eq!(read_exactly(&mut conn, 11), b"early-bytes", "client bytes past its head");
    for message in [&b"ping"[..], &[0u8, 255, 13, 10, 13, 10][..], &[b'x'; 100_000][..]] {
        send(&mut conn, message);
        assert!(read_exactly(&mut conn, message.len()) == message, "echo of {} bytes", message.len());
    }

    let head = heads.lock().unwrap()[0].to_ascii_lowercase();
    assert!(head.starts_with("get /chat?room=1 http/1.1\r\n"), "{head}");
    for expected in ["host: ws.test", "connection: upgrade", "upgrade: websocket", "sec-websocket-key: ", "x-forwarded-for: 127.0.0.1"] {
        assert!(head.contains(expected), "{expected} missing in {head}");
    }
    let outcome = proxy.wait_outcomes(1).pop().unwrap();
    assert_eq!((outcome.status, outcome.upstream_status), (101, Some(101)));
}

#[test]
fn a_refused_upgrade_is_relayed_and_closed() {
    let (port, _) = upgrade_backend(b"HTTP/1.1 426 Upgrade Required\r\ncontent-length: 4\r\n\r\nnope");
    let proxy = start_proxy(&[rule("ws.test", "/", &[port])], test_config());
    let mut conn = connect(&proxy);
    send(&mut conn, UPGRADE_REQUEST);
    let response = read_response(&mut conn, false).expect("a response");
    assert_eq!((response.status, response.text().as_str()), (426, "nope"));
    assert_eq!(response.header("connection"), Some("close"));
}

#[test]
fn upgrade_to_a_dead_backend_is_502() {
    let proxy = start_proxy(&[rule("ws.test", "/", &[dead_port()])], test_config());
    let mut conn = connect(&proxy);
    send(&mut conn, UPGRADE_REQUEST);
    assert_eq!(read_response(&mut conn, false).expect("a response").status, 502);
}

/// Far above the bounds asserted on tunnels: a close by the server's idle
/// timeout instead of the tunnel's own fails the test.
fn patient_limits() -> tiny_http::Limits {
    tiny_http::Limits { idle_timeout: Duration::from_secs(30), ..test_limits() }
}

/// Reads until the proxy closes the client connection; how long that took.
fn time_to_close(conn: &mut BufReader<TcpStream>) -> Duration {
    let started = Instant::now();
    let mut rest = Vec::new();
    match conn.read_to_end(&mut rest) {
        Ok(_) => assert!(rest.is_empty(), "nothing after the idle close: {rest:?}"),
        Err(err) => assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "no close within {IO_TIMEOUT:?}"),
    }
    started.elapsed()
}

#[test]
fn an_idle_tunnel_is_closed() {
    let (port, _) = upgrade_backend(SWITCH);
    let config = ProxyConfig { websocket_idle_timeout: Duration::from_millis(300), ..test_config() };
    let proxy = start_proxy_with_limits(snapshot(&[rule("ws.test", "/", &[port])]), config, patient_limits());
    let mut conn = connect(&proxy);
    send(&mut conn, UPGRADE_REQUEST);
    let (line, _) = read_head(&mut conn).unwrap();
    assert!(line.starts_with("HTTP/1.1 101"));
    read_exactly(&mut conn, 19);
    let took = time_to_close(&mut conn);
    assert!(took >= Duration::from_millis(250) && took < Duration::from_millis(1500), "closed after {took:?}");
}

#[test]
fn a_tunnel_whose_upstream_closes_is_closed_at_once() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        while read_head(&mut reader).is_err() {}
        (&stream).write_all(SWITCH).unwrap();
        stream.shutdown(std::net::Shutdown::Both).unwrap();
    });
    let proxy = start_proxy_with_limits(snapshot(&[rule("ws.test", "/", &[port])]), test_config(), patient_limits());
    let mut conn = connect(&proxy);
    send(&mut conn, UPGRADE_REQUEST);
    let (line, _) = read_head(&mut conn).unwrap();
    assert!(line.starts_with("HTTP/1.1 101"));
    assert_eq!(read_exactly(&mut conn, 19), b"hello-from-upstream");
    let took = time_to_close(&mut conn);
    assert!(took < Duration::from_secs(1), "closed after {took:?}");
}

#[test]
fn open_tunnels_do_not_hold_workers() {
    let (port, _) = upgrade_backend(SWITCH);
    let backend = Backend::text("plain");
    let config = test_config();
    let proxy = start_proxy(&[rule("ws.test", "/", &[port]), rule("plain.test", "/", &[backend.port()])], config);
    let mut tunnels = Vec::new();
    for _ in 0..3 {
        let mut conn = connect(&proxy);
        send(&mut conn, UPGRADE_REQUEST);
        let (line, _) = read_head(&mut conn).unwrap();
        assert!(line.starts_with("HTTP/1.1 101"));
        tunnels.push(conn);
    }
    assert_eq!(get(&proxy, "plain.test", "/").text(), "plain");
}
