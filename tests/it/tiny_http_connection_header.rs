//! Change 26: the `Connection` header is read once per request, without a lower-cased
//! copy. Which requests end their connection must not change: `close` or `upgrade` in any
//! case, anywhere in the first `Connection` header's value, ends it; HTTP/1.0 ends it
//! unless that value names `keep-alive`. Each case sends its requests pipelined, then one
//! more, and counts the answers before the server closes.

use crate::support;
use crate::tiny_http_common;

use std::io::Write;
use std::net::TcpListener;
use std::sync::Arc;

use support::http::*;
use tiny_http::{Limits, Server};
use tiny_http_common::*;

fn server() -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    Server::from_listener_serving(listener, Limits::default(), Arc::new(answer_ok)).unwrap()
}

/// How many requests of `first` followed by a plain keep-alive GET are answered before the
/// connection closes.
fn answered(server: &Server, first: &str) -> usize {
    let mut client = connect(server.server_addr().to_ip().unwrap());
    let script = format!("{first}GET /next HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    client.write_all(script.as_bytes()).unwrap();
    let (received, _) = read_until_closed(&mut client).expect("the connection closes");
    // An HTTP/1.0 request is answered in HTTP/1.0.
    String::from_utf8_lossy(&received).matches(" 200 OK\r\n").count()
}

#[test]
fn which_requests_end_their_connection() {
    let server = server();
    let cases = [
        // (first request, answers: 1 when it ends the connection, 2 when the next follows)
        ("GET / HTTP/1.1\r\nHost: x\r\n\r\n", 2),
        ("GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n", 2),
        ("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 1),
        ("GET / HTTP/1.1\r\nHost: x\r\nConnection: CLOSE\r\n\r\n", 1),
        ("GET / HTTP/1.1\r\nHost: x\r\nconnection: Keep-Alive, Close\r\n\r\n", 1),
        ("GET / HTTP/1.1\r\nHost: x\r\nConnection: te,close\r\n\r\n", 1),
        ("GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: x\r\n\r\n", 1),
        ("GET / HTTP/1.1\r\nHost: x\r\nConnection: x-upgraded\r\n\r\n", 1),
        ("GET / HTTP/1.1\r\nHost: x\r\nConnection: clos\r\n\r\n", 2),
        ("GET / HTTP/1.1\r\nHost: x\r\nConnection: te\r\n\r\n", 2),
        // Only the first Connection header counts.
        ("GET / HTTP/1.1\r\nHost: x\r\nConnection: te\r\nConnection: close\r\n\r\n", 2),
        ("GET / HTTP/1.0\r\nHost: x\r\n\r\n", 1),
        ("GET / HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n", 2),
        ("GET / HTTP/1.0\r\nHost: x\r\nConnection: KEEP-ALIVE\r\n\r\n", 2),
        ("GET / HTTP/1.0\r\nHost: x\r\nConnection: te, Keep-Alive\r\n\r\n", 2),
        ("GET / HTTP/1.0\r\nHost: x\r\nConnection: keep-alive, close\r\n\r\n", 1),
        ("GET / HTTP/1.0\r\nHost: x\r\nConnection: keep-aliv\r\n\r\n", 1),
        ("GET / HTTP/1.0\r\nHost: x\r\nConnection: te\r\n\r\n", 1),
    ];
    let wrong: Vec<String> = cases
        .iter()
        .filter_map(|(first, expected)| {
            let got = answered(&server, first);
            (got != *expected).then(|| format!("{first:?}: {got} answers, expected {expected}"))
        })
        .collect();
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}
