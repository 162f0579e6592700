//! Change 30: what a request gets from its connection (its shutdown handle, the drain
//! flags, the external stream and its session) is handed to the request as it is built,
//! not set through a builder call each. Every request of a keep-alive connection, plain or
//! external, can still cut its own connection with its shutdown handle.

use crate::support;
use crate::tiny_http_common;

use std::io::Write;
use std::time::Duration;

use support::http::*;
use tiny_http::{Limits, Request, Response};
use tiny_http_common::*;

/// Answers `/cut` by cutting the connection through the request's own handle.
fn answer_or_cut(request: Request) {
    if request.url() == "/cut" {
        request.shutdown_handle().shutdown();
        return;
    }
    let _ = request.respond(Response::from_string("ok"));
}

fn check_each_request_can_cut(addr: std::net::SocketAddr) {
    let mut client = connect(addr);
    for _ in 0..3 {
        client.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let (head, body) = read_sized_response(&mut client).unwrap();
        assert_eq!(status_of(&head), 200);
        assert_eq!(body, b"ok");
    }
    client.write_all(b"GET /cut HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    client.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let (rest, _) = read_until_closed(&mut client).expect("the cut closes the connection");
    let rest = String::from_utf8_lossy(&rest);
    assert!(rest.is_empty() || rest.starts_with("HTTP/1.1 500"), "{rest}");
}

#[test]
fn each_request_of_a_keep_alive_connection_can_cut_it() {
    let (server, addr) = start_server(Limits::default());
    spawn_workers(&server, 1, answer_or_cut);
    check_each_request_can_cut(addr);
}

#[test]
fn each_request_of_a_keep_alive_external_stream_can_cut_it() {
    let (server, _) = start_server(Limits::default());
    spawn_workers(&server, 1, answer_or_cut);
    check_each_request_can_cut(external_front(&server));
}
