//! `Server::from_listener_serving_with_preface`: what a connection sends before HTTP (a
//! PROXY protocol header) is read on the connection's own thread from the TCP socket,
//! for plain and external streams alike; its address becomes `remote_addr`, a failure
//! closes the connection unanswered, and the first head shares the preface's deadline.

use crate::support;
use crate::tiny_http_common;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use support::http::*;
use tiny_http::{Limits, Preface, Request, Server};
use tiny_http_common::*;

/// Reads one line `HELLO <addr>` (or `HELLO -` for "keep the peer address") byte by
/// byte, so nothing behind it is consumed; anything else is an error.
fn hello_preface(deadlines: Arc<Mutex<Vec<Instant>>>) -> Preface {
    Arc::new(move |socket: &TcpStream, deadline: Instant| {
        deadlines.lock().unwrap().push(deadline);
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while !line.ends_with(b"\r\n") {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "preface too slow"));
            }
            socket.set_read_timeout(Some(left))?;
            match (&*socket).read(&mut byte)? {
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                _ => line.push(byte[0]),
            }
        }
        let text = String::from_utf8_lossy(&line[..line.len() - 2]).into_owned();
        match text.strip_prefix("HELLO ") {
            Some("-") => Ok(None),
            Some(addr) => addr.parse().map(Some).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad address")),
            None => Err(io::Error::new(io::ErrorKind::InvalidData, "no preface")),
        }
    })
}

/// A server answering each request with its `remote_addr`; returns the plain address and
/// the address of a front that feeds connections through `serve_stream`.
fn serving(limits: Limits) -> (Arc<Server>, SocketAddr, SocketAddr, Arc<Mutex<Vec<Instant>>>) {
    let deadlines = Arc::new(Mutex::new(Vec::new()));
    let handler = Arc::new(|request: Request| {
        let body = request.remote_addr().map_or("none".to_string(), |addr| addr.to_string());
        let _ = request.respond(tiny_http::Response::from_string(body));
    });
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Server::from_listener_serving_with_preface(listener, limits, handler, hello_preface(deadlines.clone())).unwrap();
    let server = Arc::new(server);
    let front = external_front(&server);
    (server, addr, front, deadlines)
}

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";

#[test]
fn the_preface_address_is_every_request_s_remote_address_on_plain_and_external_streams() {
    let (_server, addr, front, _) = serving(Limits::default());
    for target in [addr, front] {
        let mut client = connect(target);
        // Preface and request in one write: the preface must not consume the request.
        client.write_all(&[b"HELLO 203.0.113.7:4321\r\n".as_slice(), GET].concat()).unwrap();
        for _ in 0..2 {
            let (head, body) = read_sized_response(&mut client).unwrap();
            assert_eq!(status_of(&head), 200, "{head}");
            assert_eq!(body, b"203.0.113.7:4321", "keep-alive requests keep the preface's address");
            client.write_all(GET).unwrap();
        }
    }
}

#[test]
fn a_preface_without_an_address_keeps_the_peer_address() {
    let (_server, addr, front, _) = serving(Limits::default());
    for target in [addr, front] {
        let mut client = connect(target);
        client.write_all(&[b"HELLO -\r\n".as_slice(), GET].concat()).unwrap();
        let (_, body) = read_sized_response(&mut client).unwrap();
        assert_eq!(String::from_utf8(body).unwrap(), client.local_addr().unwrap().to_string());
    }
}

#[test]
fn a_failed_preface_closes_the_connection_without_an_answer() {
    let (_server, addr, front, _) = serving(Limits::default());
    for target in [addr, front] {
        let mut client = connect(target);
        client.write_all(GET).unwrap();
        let mut received = Vec::new();
        let read = client.read_to_end(&mut received);
        assert!(read.is_ok() || received.is_empty(), "{read:?}");
        assert!(received.is_empty(), "answered {:?}", String::from_utf8_lossy(&received));
    }
}

#[test]
fn the_preface_and_the_first_head_share_one_deadline() {
    let header_timeout = Duration::from_millis(1000);
    let (_server, addr, _, deadlines) = serving(Limits { header_timeout, ..Limits::default() });
    let connected = Instant::now();
    let mut client = connect(addr);
    thread::sleep(Duration::from_millis(600));
    client.write_all(b"HELLO 203.0.113.7:1\r\n").unwrap();
    thread::sleep(Duration::from_millis(600));
    let (head, closed) = {
        let _ = client.write_all(GET);
        let head = read_raw_head(&mut client).unwrap_or_default();
        (head, closed_by_peer(&mut client))
    };
    assert!(head.is_empty() || status_of(&head) == 408, "the head came after the shared deadline: {head}");
    assert!(closed);
    let deadline = deadlines.lock().unwrap()[0];
    assert!(deadline <= connected + header_timeout + Duration::from_millis(500), "the deadline starts with the connection");
}
