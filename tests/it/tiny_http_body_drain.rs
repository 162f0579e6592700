//! Fix 1: a request body the handler leaves unread is drained with a fixed buffer, or the
//! connection is closed when too much is left (unpatched: allocates the remaining length).

use crate::support;
use crate::tiny_http_common;

use std::io::Write;

use support::http::*;
use tiny_http::{Limits, Request, Response};
use tiny_http_common::*;

/// Answers with the request path without touching the body.
fn answer_path_ignoring_body(request: Request) {
    let path = request.url().to_owned();
    let _ = request.respond(Response::from_string(path));
}

#[test]
fn huge_declared_body_left_unread_closes_the_connection_and_the_server_lives_on() {
    let (server, addr) = start_server(Limits::default());
    spawn_workers(&server, 2, answer_path_ignoring_body);

    let mut client = connect(addr);
    client
        .write_all(b"POST /huge HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000000\r\n\r\n")
        .unwrap();
    client.write_all(&[b'a'; 4096]).unwrap();
    let (head, body) = read_sized_response(&mut client).unwrap();
    assert_eq!(status_of(&head), 200, "{head}");
    assert_eq!(body, b"/huge");
    assert!(
        closed_by_peer(&mut client),
        "connection kept open after an abandoned body"
    );

    let (head, body) = exchange(addr, b"GET /after HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!((status_of(&head), body.as_slice()), (200, &b"/after"[..]));
}

#[test]
fn small_unread_body_is_drained_and_the_connection_reused() {
    let (server, addr) = start_server(Limits::default());
    spawn_workers(&server, 2, answer_path_ignoring_body);

    let mut client = connect(addr);
    let mut request = b"POST /first HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n".to_vec();
    request.extend_from_slice(&[b'a'; 5000]);
    client.write_all(&request).unwrap();
    let (_, body) = read_sized_response(&mut client).unwrap();
    assert_eq!(body, b"/first");

    client
        .write_all(b"GET /second HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let (head, body) = read_sized_response(&mut client).unwrap();
    assert_eq!((status_of(&head), body.as_slice()), (200, &b"/second"[..]));
}

#[test]
fn unread_chunked_body_is_drained_not_parsed_as_the_next_request() {
    let (server, addr) = start_server(Limits::default());
    spawn_workers(&server, 2, answer_path_ignoring_body);

    let inner = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut request =
        b"POST /first HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    request.extend_from_slice(format!("{:x}\r\n", inner.len()).as_bytes());
    request.extend_from_slice(inner);
    request.extend_from_slice(b"\r\n0\r\n\r\n");

    let mut client = connect(addr);
    client.write_all(&request).unwrap();
    let (_, body) = read_sized_response(&mut client).unwrap();
    assert_eq!(body, b"/first");

    client
        .write_all(b"GET /second HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let (head, body) = read_sized_response(&mut client).unwrap();
    assert_eq!(
        (
            status_of(&head),
            String::from_utf8_lossy(&body).into_owned()
        ),
        (200, "/second".to_owned())
    );
}
