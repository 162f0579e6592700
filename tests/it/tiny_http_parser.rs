//! Fix 6: request heads are parsed strictly. Bare LF line endings are accepted; unsupported
//! versions, transfer codings, ambiguous body framing and non-ASCII bytes are answered with
//! their status and `Connection: close`, then the connection closes (unpatched: some hang,
//! some are served with a guessed framing, some close silently).

use crate::support;
use crate::tiny_http_common;

use support::http::*;
use tiny_http_common::*;

#[test]
fn malformed_heads_get_their_status_and_connection_close() {
    let (_server, addr) = echo_server();
    let cases: &[(&str, &[u8], u16)] = &[
        ("HTTP/2.0 request line", b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
        ("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),
        ("HTTP/1.2", b"GET / HTTP/1.2\r\nHost: x\r\n\r\n", 505),
        ("HTTP/0.9", b"GET / HTTP/0.9\r\nHost: x\r\n\r\n", 505),
        ("garbage version", b"GET / HTTX/1.1\r\nHost: x\r\n\r\n", 400),
        ("extra request line field", b"GET / HTTP/1.1 x\r\nHost: x\r\n\r\n", 400),
        ("gzip coding", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
        (
            "gzip, chunked",
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
            501,
        ),
        (
            "two Transfer-Encoding headers",
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            400,
        ),
        (
            "Content-Length and Transfer-Encoding",
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            400,
        ),
        (
            "differing Content-Length",
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
            400,
        ),
        ("signed Content-Length", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +3\r\n\r\nabc", 400),
        ("Content-Length list", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 3\r\n\r\nabc", 400),
        ("non-numeric Content-Length", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400),
        ("non-ASCII header value", b"GET / HTTP/1.1\r\nHost: x\r\nX-Name: caf\xc3\xa9\r\n\r\n", 400),
        ("non-ASCII request target", b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ("bare CR in a header", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n", 400),
        ("control byte in a header", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", 400),
        ("folded header line", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", 400),
        ("space before colon", b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400),
        ("empty header name", b"GET / HTTP/1.1\r\nHost: x\r\n: v\r\n\r\n", 400),
    ];
    let mut wrong = Vec::new();
    for (name, request, status) in cases {
        let (head, closed) = head_and_close(addr, request.to_vec());
        let says_close = head
            .to_ascii_lowercase()
            .contains("\r\nconnection: close\r\n");
        if status_of(&head) != *status || !says_close || !closed {
            wrong.push(format!(
                "{name}: want {status} + Connection: close + closed, got {:?} closed={closed}",
                head.lines().next().unwrap_or("no answer")
            ));
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

#[test]
fn well_formed_heads_are_served_with_the_right_body() {
    let (_server, addr) = echo_server();
    let cases: &[(&str, &[u8], &[u8])] = &[
        ("bare LF line endings", b"GET / HTTP/1.1\nHost: x\n\n", b""),
        (
            "mixed line endings",
            b"POST / HTTP/1.1\r\nHost: x\nContent-Length: 2\r\n\nhi",
            b"hi",
        ),
        (
            "chunked",
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
            b"hi",
        ),
        (
            "Chunked in capitals",
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
            b"hi",
        ),
        (
            "repeated equal Content-Length",
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nhi",
            b"hi",
        ),
        (
            "HTTP/1.0",
            b"POST / HTTP/1.0\r\nContent-Length: 2\r\n\r\nhi",
            b"hi",
        ),
    ];
    expect_each_echoed(addr, cases);
}
