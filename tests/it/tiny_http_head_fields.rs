//! Change 22: the request line and header lines are parsed as bytes, not through `str`
//! searches and `Header::from_str`. What is accepted, and how it is split and trimmed, stays
//! as before: whitespace around the request line and around a header value (VT and FF
//! included, as `str::trim` trimmed them) is dropped, a value keeps its inner colons and
//! tabs; an empty name, whitespace in a name, a control character in a value, a missing
//! colon, a malformed request line or version get their status and the connection closes.

use crate::support;
use crate::tiny_http_common;

use support::http::*;
use tiny_http::{Limits, Request, Response};
use tiny_http_common::*;

/// Answers with the request line and each header as `name=[value]`, as parsed.
fn echo_fields(request: Request) {
    let mut text = format!("{} {} HTTP/{}\n", request.method(), request.url(), request.http_version());
    for header in request.headers() {
        text.push_str(&format!("{}=[{}]\n", header.field, header.value));
    }
    let _ = request.respond(Response::from_string(text));
}

fn echo_server() -> (std::sync::Arc<tiny_http::Server>, std::net::SocketAddr) {
    let (server, addr) = start_server(Limits::default());
    spawn_workers(&server, 2, echo_fields);
    (server, addr)
}

#[test]
fn fields_are_split_and_trimmed_as_before() {
    let (_server, addr) = echo_server();
    let cases: &[(&str, &[u8], &str)] = &[
        ("no space after the colon", b"GET / HTTP/1.1\r\nX-A:v\r\n\r\n", "GET / HTTP/1.1\nX-A=[v]\n"),
        (
            "whitespace around the value",
            b"GET / HTTP/1.1\r\nX-A: \t v \x0b\x0c\t\r\n\r\n",
            "GET / HTTP/1.1\nX-A=[v]\n",
        ),
        ("colons in the value", b"GET / HTTP/1.1\r\nX-A: a:b: c\r\n\r\n", "GET / HTTP/1.1\nX-A=[a:b: c]\n"),
        ("tab inside the value", b"GET / HTTP/1.1\r\nX-A: a\tb\r\n\r\n", "GET / HTTP/1.1\nX-A=[a\tb]\n"),
        ("empty value", b"GET / HTTP/1.1\r\nX-A:\r\nX-B:   \r\n\r\n", "GET / HTTP/1.1\nX-A=[]\nX-B=[]\n"),
        ("odd name characters", b"GET / HTTP/1.1\r\nX_a.B!~: v\r\n\r\n", "GET / HTTP/1.1\nX_a.B!~=[v]\n"),
        (
            "whitespace around the request line",
            b" \tGET /t?q=1 HTTP/1.1 \x0b\r\nHost: x\r\n\r\n",
            "GET /t?q=1 HTTP/1.1\nHost=[x]\n",
        ),
        ("non-standard method", b"PURGE /p HTTP/1.0\r\n\r\n", "PURGE /p HTTP/1.0\n"),
        (
            "several headers in order",
            b"GET / HTTP/1.1\r\nHost: h\r\nhost: h2\r\nAccept: */*\r\n\r\n",
            "GET / HTTP/1.1\nHost=[h]\nhost=[h2]\nAccept=[*/*]\n",
        ),
    ];
    let mut wrong = Vec::new();
    for (name, request, echo) in cases {
        match exchange(addr, request) {
            Ok((head, body)) if status_of(&head) == 200 && body == echo.as_bytes() => {}
            other => wrong.push(format!("{name}: want {echo:?}, got {other:?}")),
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

#[test]
fn malformed_fields_get_their_status_and_close() {
    let (_server, addr) = echo_server();
    let cases: &[(&str, &[u8], u16)] = &[
        ("empty name", b"GET / HTTP/1.1\r\n: v\r\n\r\n", 400),
        ("no colon", b"GET / HTTP/1.1\r\nX-A v\r\n\r\n", 400),
        ("space in the name", b"GET / HTTP/1.1\r\nX A: v\r\n\r\n", 400),
        ("tab in the name", b"GET / HTTP/1.1\r\nX\tA: v\r\n\r\n", 400),
        ("VT in the name", b"GET / HTTP/1.1\r\nX\x0bA: v\r\n\r\n", 400),
        ("space before the colon", b"GET / HTTP/1.1\r\nX-A : v\r\n\r\n", 400),
        ("first line folded", b"GET / HTTP/1.1\r\n\tX-A: v\r\n\r\n", 400),
        ("DEL in the value", b"GET / HTTP/1.1\r\nX-A: a\x7fb\r\n\r\n", 400),
        ("NUL in the value", b"GET / HTTP/1.1\r\nX-A: a\x00b\r\n\r\n", 400),
        ("VT inside the value", b"GET / HTTP/1.1\r\nX-A: a\x0bb\r\n\r\n", 400),
        ("two spaces in the request line", b"GET  / HTTP/1.1\r\n\r\n", 400),
        ("no target", b"GET HTTP/1.1\r\n\r\n", 400),
        ("no method", b" / HTTP/1.1\r\n\r\n", 400),
        ("HTTP/1", b"GET / HTTP/1\r\n\r\n", 505),
        ("HTTP/3.0", b"GET / HTTP/3.0\r\n\r\n", 505),
        ("HTTP/1.10", b"GET / HTTP/1.10\r\n\r\n", 400),
        ("HTTP/1.1.1", b"GET / HTTP/1.1.1\r\n\r\n", 400),
        ("HTTP/1.", b"GET / HTTP/1.\r\n\r\n", 400),
        ("HTTP/", b"GET / HTTP/\r\n\r\n", 400),
        ("lower-case version", b"GET / http/1.1\r\n\r\n", 400),
        ("letters for digits", b"GET / HTTP/a.b\r\n\r\n", 400),
        ("no version", b"GET / \r\n\r\n", 400),
    ];
    let mut wrong = Vec::new();
    for (name, request, status) in cases {
        let (head, closed) = head_and_close(addr, request.to_vec());
        if status_of(&head) != *status || !closed {
            wrong.push(format!(
                "{name}: want {status} and close, got {:?} closed={closed}",
                head.lines().next().unwrap_or("no answer")
            ));
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}
