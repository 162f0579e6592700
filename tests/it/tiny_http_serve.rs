//! `Server::from_listener_serving`: each request is handled on the thread that owns its
//! connection, plain TCP and external streams alike, in order, with keep-alive.

use crate::support;
use crate::tiny_http_common;

use std::io::Write;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::thread::{self, ThreadId};

use support::http::*;
use tiny_http::{Limits, Request, Server};
use tiny_http_common::*;

/// Each request's path and the thread that served it.
type Seen = Arc<Mutex<Vec<(String, ThreadId)>>>;

/// A server whose handler answers with the request path and records the thread it ran on.
fn serving() -> (Arc<Server>, std::net::SocketAddr, Seen) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let handler = Arc::new(move |request: Request| {
        log.lock().unwrap().push((request.url().to_owned(), thread::current().id()));
        if request.url() == "/panic" {
            panic!("handler panic on purpose");
        }
        let body = request.url().to_owned();
        let _ = request.respond(tiny_http::Response::from_string(body));
    });
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Arc::new(Server::from_listener_serving(listener, Limits::default(), handler).unwrap());
    (server, addr, seen)
}

/// Sends three pipelined requests at once and checks they are answered in order, all on
/// one thread other than the test's.
fn pipelined_on_one_thread(addr: std::net::SocketAddr, seen: &Mutex<Vec<(String, ThreadId)>>, prefix: &str) {
    let mut client = connect(addr);
    let requests: String = (0..3).map(|i| format!("GET /{prefix}{i} HTTP/1.1\r\nHost: x\r\n\r\n")).collect();
    client.write_all(requests.as_bytes()).unwrap();
    for i in 0..3 {
        let (head, body) = read_sized_response(&mut client).unwrap();
        assert_eq!(status_of(&head), 200, "{head}");
        assert_eq!(String::from_utf8(body).unwrap(), format!("/{prefix}{i}"));
    }
    let seen = seen.lock().unwrap();
    let threads: Vec<ThreadId> = seen.iter().filter(|(path, _)| path.starts_with(&format!("/{prefix}"))).map(|(_, id)| *id).collect();
    assert_eq!(threads.len(), 3);
    assert!(threads.iter().all(|id| *id == threads[0]), "one connection's requests ran on several threads: {threads:?}");
    assert_ne!(threads[0], thread::current().id());
}

#[test]
fn plain_requests_run_on_their_connection_thread_in_order() {
    let (server, addr, seen) = serving();
    pipelined_on_one_thread(addr, &seen, "a");
    assert!(server.try_recv().unwrap().is_none(), "a handled request also reached recv()");
}

#[test]
fn two_live_connections_have_two_threads() {
    let (_server, addr, seen) = serving();
    let mut clients = [connect(addr), connect(addr)];
    for index in [0, 1, 0] {
        clients[index].write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let (head, _) = read_sized_response(&mut clients[index]).unwrap();
        assert_eq!(status_of(&head), 200, "{head}");
    }
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0].1, seen[2].1, "one keep-alive connection moved threads");
    assert_ne!(seen[0].1, seen[1].1, "two live connections shared a thread");
}

#[test]
fn external_stream_requests_run_on_their_connection_thread() {
    let (server, _, seen) = serving();
    let front = external_front(&server);
    pipelined_on_one_thread(front, &seen, "tls");
}

#[test]
fn a_panicking_handler_ends_only_its_connection() {
    let (_server, addr, _seen) = serving();
    let mut doomed = connect(addr);
    doomed.write_all(b"GET /panic HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let (head, _) = read_sized_response(&mut doomed).unwrap();
    assert_eq!(status_of(&head), 500, "{head}");
    assert!(closed_by_peer(&mut doomed));
    let (head, body) = exchange(addr, b"GET /after HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(status_of(&head), 200, "{head}");
    assert_eq!(body, b"/after");
}

/// Uses about `depth` × 64 KiB of stack.
#[inline(never)]
fn deep(depth: usize) -> u8 {
    let frame = std::hint::black_box([depth as u8; 64 * 1024]);
    if depth == 0 {
        frame[0]
    } else {
        deep(depth - 1).wrapping_add(frame[depth % frame.len()])
    }
}

#[test]
fn connection_threads_get_the_configured_stack_size() {
    // At least 2.5 MiB of frames (more in debug builds) overflow the 2 MiB default and fit in 16 MiB.
    let handler = Arc::new(|request: Request| {
        let body = deep(40).to_string();
        let _ = request.respond(tiny_http::Response::from_string(body));
    });
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let limits = Limits { thread_stack_size: 16 * 1024 * 1024, ..Limits::default() };
    let _server = Server::from_listener_serving(listener, limits, handler).unwrap();
    let (head, _) = exchange(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(status_of(&head), 200, "{head}");
}

#[test]
fn a_small_response_written_in_parts_leaves_at_the_flush() {
    let (flush_tx, flush_rx) = std::sync::mpsc::channel::<()>();
    let flush_rx = Mutex::new(flush_rx);
    let handler = Arc::new(move |request: Request| {
        let mut writer = request.into_writer();
        let body = [b'x'; 2048];
        let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len());
        let _ = writer.write_all(head.as_bytes()).and_then(|()| writer.write_all(&body));
        let _ = flush_rx.lock().unwrap().recv_timeout(PATIENCE);
        let _ = writer.flush();
    });
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let _server = Server::from_listener_serving(listener, Limits::default(), handler).unwrap();
    let mut client = connect(addr);
    client.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    // Head and 2 KiB of body fit the write buffer: nothing is sent before the flush.
    client.set_read_timeout(Some(std::time::Duration::from_millis(200))).unwrap();
    let mut byte = [0u8; 1];
    let early = std::io::Read::read(&mut client, &mut byte);
    assert!(early.is_err(), "part of the response left before the flush: {early:?}");
    flush_tx.send(()).unwrap();
    client.set_read_timeout(Some(PATIENCE)).unwrap();
    let (head, body) = read_sized_response(&mut client).unwrap();
    assert_eq!(status_of(&head), 200, "{head}");
    assert_eq!(body.len(), 2048);
}
