//! Change 32: a request without a body leaves the connection's reader where it is for the
//! next head, instead of taking it and passing it back through the connection's turns. On
//! one keep-alive connection, bodiless requests between requests with bodies (small, large,
//! chunked, read or left unread by the handler), sent one by one or pipelined in one write,
//! are each answered in order with their own body.

use crate::tiny_http_common;


use tiny_http::{Limits, Request, Response};
use tiny_http_common::*;

/// Answers with the target and the body's length; `/skip` leaves the body unread.
fn describe(mut request: Request) {
    let mut body = Vec::new();
    if request.url() != "/skip" {
        let _ = request.as_reader().read_to_end(&mut body);
    }
    let text = format!("{} {}", request.url(), body.len());
    let _ = request.respond(Response::from_string(text));
}

fn requests() -> Vec<(Vec<u8>, String)> {
    let with_length = |target: &str, length: usize| {
        let mut raw = format!("POST {target} HTTP/1.1\r\nContent-Length: {length}\r\n\r\n").into_bytes();
        raw.extend(std::iter::repeat_n(b'b', length));
        raw
    };
    let get = |target: &str| format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes();
    let chunked = b"POST /chunked HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n".to_vec();
    vec![
        (get("/a"), "/a 0".into()),
        (with_length("/small", 10), "/small 10".into()),
        (get("/b"), "/b 0".into()),
        (with_length("/large", 5000), "/large 5000".into()),
        (get("/c"), "/c 0".into()),
        (chunked, "/chunked 5".into()),
        (get("/d"), "/d 0".into()),
        (with_length("/skip", 3000), "/skip 0".into()),
        (get("/e"), "/e 0".into()),
        (with_length("/empty", 0), "/empty 0".into()),
        (get("/f"), "/f 0".into()),
    ]
}

#[test]
fn bodiless_requests_between_bodies_are_answered_in_order() {
    let (server, addr) = start_server(Limits::default());
    spawn_workers(&server, 1, describe);
    let cases = requests();

    let mut client = connect(addr);
    expect_answers_one_by_one(&mut client, &cases);

    let mut client = connect(addr);
    expect_answers_pipelined(&mut client, &cases);
}

#[test]
fn bodiless_requests_on_an_external_stream_are_answered_in_order() {
    let (server, _) = start_server(Limits::default());
    spawn_workers(&server, 1, describe);
    let cases = requests();
    let mut client = connect(external_front(&server));
    expect_answers_pipelined(&mut client, &cases);
}
