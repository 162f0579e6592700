//! Fix 5: limits on head line length and header count (431), and on live connections (503).

use crate::support;
use crate::tiny_http_common;

use std::io::Write;

use support::http::*;
use support::wait::wait_until;
use tiny_http::Limits;
use tiny_http_common::*;

fn small_limits() -> Limits {
    Limits {
        max_header_line: 1024,
        max_headers: 10,
        max_connections: 2,
        ..Limits::default()
    }
}

fn status_and_close(addr: std::net::SocketAddr, request: Vec<u8>) -> (u16, bool) {
    let (head, closed) = head_and_close(addr, request);
    (status_of(&head), closed)
}

#[test]
fn head_lines_up_to_the_limit_are_accepted() {
    let (server, addr) = start_server(small_limits());
    spawn_workers(&server, 1, answer_ok);
    let line = format!("X-Fits: {}\r\n", "a".repeat(1024 - 8));
    let mut request = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
    for _ in 0..9 {
        request.extend_from_slice(line.as_bytes());
    }
    request.extend_from_slice(b"\r\n");
    let (head, _) = exchange(addr, &request).unwrap();
    assert_eq!(status_of(&head), 200, "{head}");
}

#[test]
fn overlong_header_line_gets_431_and_close() {
    let (server, addr) = start_server(small_limits());
    spawn_workers(&server, 1, answer_ok);
    let request = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Long: {}\r\n\r\n",
        "a".repeat(1024 - 7)
    );
    assert_eq!(status_and_close(addr, request.into_bytes()), (431, true));
}

#[test]
fn overlong_request_line_gets_431_and_close() {
    let (server, addr) = start_server(small_limits());
    spawn_workers(&server, 1, answer_ok);
    let request = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(1024));
    assert_eq!(status_and_close(addr, request.into_bytes()), (431, true));
}

#[test]
fn endless_header_line_is_not_buffered() {
    let (server, addr) = start_server(Limits::default());
    spawn_workers(&server, 1, answer_ok);
    let mut request = b"GET / HTTP/1.1\r\nX-Endless: ".to_vec();
    request.resize(request.len() + (8 << 20), b'a');
    assert_eq!(status_and_close(addr, request), (431, true));
}

#[test]
fn too_many_headers_get_431_and_close() {
    let (server, addr) = start_server(small_limits());
    spawn_workers(&server, 1, answer_ok);
    let mut request = b"GET / HTTP/1.1\r\n".to_vec();
    for i in 0..11 {
        request.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
    }
    request.extend_from_slice(b"\r\n");
    assert_eq!(status_and_close(addr, request), (431, true));
}

#[test]
fn connections_over_the_cap_get_503_and_close() {
    let (server, addr) = start_server(small_limits());
    spawn_workers(&server, 2, answer_ok);
    let request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut held: Vec<_> = (0..2).map(|_| connect(addr)).collect();
    for client in &mut held {
        client.write_all(request).unwrap();
        read_sized_response(client).unwrap();
    }
    assert_eq!(server.num_connections(), 2);

    let mut refused = connect(addr);
    let head = read_raw_head(&mut refused).unwrap();
    assert_eq!(status_of(&head), 503, "{head}");
    assert!(closed_by_peer(&mut refused));

    drop(held.pop());
    assert!(wait_until(PATIENCE, || server.num_connections() == 1));
    let (head, _) = exchange(addr, request).unwrap();
    assert_eq!(status_of(&head), 200, "{head}");
}
