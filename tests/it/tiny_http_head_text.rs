//! Change 28: a request's target and headers are ranges of one text holding its head, and
//! the connection sizes the next head's buffers from the previous head. Heads of every size
//! one after another on one keep-alive connection (small, growing past the buffer's hint,
//! more headers than the previous one, none at all, small again) keep their target and
//! headers exactly, and a `TestRequest` made up from parts reads back the same parts.

use crate::tiny_http_common;


use tiny_http::{Header, Limits, Request, Response, TestRequest};
use tiny_http_common::*;

/// The target and each header as `name=[value]`, one a line.
fn describe(request: &Request) -> String {
    let mut text = format!("{}\n", request.url());
    for header in request.headers() {
        text.push_str(&format!("{}=[{}]\n", header.field, header.value));
    }
    text
}

fn echo(mut request: Request) {
    let mut body = Vec::new();
    let _ = request.as_reader().read_to_end(&mut body);
    let text = describe(&request);
    let _ = request.respond(Response::from_string(text));
}

/// A request with `headers` headers, each value `width` bytes, and what its echo reads.
fn request(target: &str, headers: usize, width: usize) -> (Vec<u8>, String) {
    let mut raw = format!("GET {target} HTTP/1.1\r\n");
    let mut echo = format!("{target}\n");
    for i in 0..headers {
        let value: String = (0..width).map(|j| char::from(b'a' + ((i + j) % 26) as u8)).collect();
        raw.push_str(&format!("X-Header-{i}:  {value} \r\n"));
        echo.push_str(&format!("X-Header-{i}=[{value}]\n"));
    }
    raw.push_str("\r\n");
    (raw.into_bytes(), echo)
}

#[test]
fn heads_of_every_size_on_one_connection_keep_their_target_and_headers() {
    let limits = Limits {
        max_headers: 100,
        ..Limits::default()
    };
    let (server, addr) = start_server(limits);
    spawn_workers(&server, 1, echo);
    let cases = [
        request("/", 1, 3),
        request("/a/longer/target?with=query&and=more", 3, 40),
        request("/big", 20, 300),
        request("/many", 90, 10),
        request("/none", 0, 0),
        request("/small", 2, 1),
        request("/big-again", 10, 1000),
    ];
    let mut client = connect(addr);
    // One after another, then all pipelined in one write.
    expect_answers_one_by_one(&mut client, &cases);
    expect_answers_pipelined(&mut client, &cases);
}

#[test]
fn a_test_request_reads_back_its_target_and_headers() {
    let request: Request = TestRequest::new()
        .with_path("/p?q=1")
        .with_header(Header::from_bytes("Host", "example").unwrap())
        .with_header(Header::from_bytes("X-Empty", "").unwrap())
        .with_header(Header::from_bytes("x-two", "a, b").unwrap())
        .into();
    assert_eq!(
        describe(&request),
        "/p?q=1\nHost=[example]\nX-Empty=[]\nx-two=[a, b]\nContent-Length=[0]\n"
    );
    assert_eq!(request.headers().len(), 4);
    assert_eq!(
        request.headers().find("X-TWO").map(|h| h.value.as_str()),
        Some("a, b")
    );
}
