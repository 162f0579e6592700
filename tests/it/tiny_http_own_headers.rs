//! Change 29: the headers a request's own handling reads (`Content-Length`,
//! `Transfer-Encoding`, `Expect`, `Connection`) are found in one pass that compares a name
//! only when its length fits. Names of the same length that differ are not taken for them,
//! names match in any case, repeated headers count as before (every `Content-Length`, both
//! `Transfer-Encoding`s, the first `Expect` and `Connection`).

use crate::support;
use crate::tiny_http_common;

use std::io::{Read, Write};

use support::http::*;
use tiny_http_common::*;

#[test]
fn lookalike_names_are_ignored_and_names_match_in_any_case() {
    let (_server, addr) = echo_server();
    let cases: &[(&str, &[u8], &[u8])] = &[
        (
            "same-length names",
            b"POST / HTTP/1.1\r\nContent-Lengtx: abc\r\nTransfer-Encodinx: gzip\r\nExpecx: what\r\nContent-Length: 2\r\n\r\nhi",
            b"hi",
        ),
        ("Content-Length in capitals", b"POST / HTTP/1.1\r\nCONTENT-LENGTH: 2\r\n\r\nhi", b"hi"),
        (
            "two equal lengths in differing case",
            b"POST / HTTP/1.1\r\ncontent-length: 2\r\nContent-Length: 2\r\n\r\nhi",
            b"hi",
        ),
        (
            "chunked in lower case",
            b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
            b"hi",
        ),
        ("no framing headers", b"POST / HTTP/1.1\r\nHost: x\r\n\r\n", b""),
    ];
    expect_each_echoed(addr, cases);
}

#[test]
fn repeated_and_conflicting_framing_headers_are_rejected_in_any_case() {
    let (_server, addr) = echo_server();
    let cases: &[(&str, &[u8], u16)] = &[
        (
            "differing lengths in differing case",
            b"POST / HTTP/1.1\r\nContent-Length: 2\r\ncontent-LENGTH: 3\r\n\r\nhi",
            400,
        ),
        (
            "length after a chunked coding",
            b"POST / HTTP/1.1\r\nTRANSFER-ENCODING: chunked\r\ncontent-length: 2\r\n\r\nhi",
            400,
        ),
        (
            "two codings in differing case",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n",
            400,
        ),
        ("unknown expectation", b"POST / HTTP/1.1\r\nEXPECT: teapot\r\nContent-Length: 2\r\n\r\nhi", 417),
    ];
    let mut wrong = Vec::new();
    for (name, request, status) in cases {
        let (head, closed) = head_and_close(addr, request.to_vec());
        if status_of(&head) != *status || !closed {
            wrong.push(format!("{name}: want {status} and closed, got {head:?} closed={closed}"));
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

#[test]
fn expect_100_continue_in_any_case_gets_its_continue() {
    let (_server, addr) = echo_server();
    let mut client = connect(addr);
    client.write_all(b"POST / HTTP/1.1\r\nexpect: 100-Continue\r\nContent-Length: 2\r\n\r\n").unwrap();
    let interim = read_raw_head(&mut client).unwrap();
    assert_eq!(status_of(&interim), 100, "{interim}");
    client.write_all(b"hi").unwrap();
    let (head, body) = read_sized_response(&mut client).unwrap();
    assert_eq!(status_of(&head), 200);
    assert_eq!(body, b"hi");
}

#[test]
fn only_the_first_connection_header_counts() {
    let (_server, addr) = echo_server();
    let mut client = connect(addr);
    client
        .write_all(b"GET / HTTP/1.1\r\nConnectiox: close\r\nConnection: keep-alive\r\nCONNECTION: close\r\n\r\n")
        .unwrap();
    let (head, _) = read_sized_response(&mut client).unwrap();
    assert_eq!(status_of(&head), 200);
    client.write_all(b"GET / HTTP/1.1\r\nconnection: Close\r\n\r\n").unwrap();
    let (head, _) = read_sized_response(&mut client).unwrap();
    assert_eq!(status_of(&head), 200, "the connection stayed open");
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "closed after the request saying close");
}

/// Change 33: names are compared as bytes of the head and a value is taken only for a name
/// that matched. Common headers as long as the four (`User-Agent` and `Connection`, `Accept`
/// and `Expect`) with values that would count for those are not taken for them.
#[test]
fn headers_as_long_as_the_own_ones_do_not_count_for_them() {
    let (_server, addr) = echo_server();
    let mut client = connect(addr);
    for _ in 0..3 {
        client
            .write_all(b"POST / HTTP/1.1\r\nUser-Agent: close\r\nAccept: teapot\r\nContent-Length: 2\r\n\r\nhi")
            .unwrap();
        let (head, body) = read_sized_response(&mut client).unwrap();
        assert_eq!(status_of(&head), 200, "{head}");
        assert_eq!(body, b"hi");
    }
}
