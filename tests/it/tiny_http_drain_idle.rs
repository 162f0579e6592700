//! Change 24: each connection is registered with the drain once, for its whole life, and
//! marks itself idle with a flag while it waits for its next request (it used to enter and
//! leave a shared map under a lock for every request). A drain closes exactly the
//! connections waiting for their next request, however many requests they served; one busy
//! in its handler is answered, told `Connection: close`, then closed.

use crate::support;
use crate::tiny_http_common;

use std::io::Write;
use std::net::TcpListener;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::http::*;
use support::wait::wait_until;
use tiny_http::{Limits, Request, Response, Server};
use tiny_http_common::*;

const KEEP_ALIVE_GET: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";

/// A server whose handler holds `/hold` until released, and says when it started holding.
fn holding_server(entered: Sender<()>, release: Receiver<()>) -> (Server, std::net::SocketAddr) {
    let entered = Mutex::new(entered);
    let release = Mutex::new(release);
    let handler = Arc::new(move |request: Request| {
        if request.url() == "/hold" {
            let _ = entered.lock().unwrap().send(());
            let _ = release.lock().unwrap().recv_timeout(PATIENCE);
        }
        let body = request.url().to_owned();
        let _ = request.respond(Response::from_string(body));
    });
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // Far longer than the test: a connection closed by a timeout fails it.
    let limits = Limits {
        idle_timeout: Duration::from_secs(30),
        header_timeout: Duration::from_secs(30),
        ..Limits::default()
    };
    (Server::from_listener_serving(listener, limits, handler).unwrap(), addr)
}

fn keep_alive_requests(client: &mut std::net::TcpStream, count: usize) {
    for _ in 0..count {
        client.write_all(KEEP_ALIVE_GET).unwrap();
        let (head, _) = read_sized_response(client).unwrap();
        assert_eq!(status_of(&head), 200, "{head}");
        assert!(!head.to_ascii_lowercase().contains("connection: close"), "{head}");
    }
}

fn closed_within_a_second(client: &mut std::net::TcpStream) -> bool {
    let started = Instant::now();
    client.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    closed_by_peer(client) && started.elapsed() < Duration::from_secs(1)
}

#[test]
fn a_drain_closes_the_idle_connections_and_answers_the_busy_one() {
    let (entered, entering) = channel();
    let (release, released) = channel();
    let (server, addr) = holding_server(entered, released);

    let mut idle_again = connect(addr);
    keep_alive_requests(&mut idle_again, 5);
    let mut busy = connect(addr);
    keep_alive_requests(&mut busy, 3);
    busy.write_all(b"GET /hold HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    entering.recv_timeout(PATIENCE).expect("the handler holds the request");
    // A connection that closed before the drain left nothing the drain trips over.
    let mut gone = connect(addr);
    keep_alive_requests(&mut gone, 2);
    drop(gone);
    assert!(wait_until(PATIENCE, || server.num_connections() == 2));

    server.stop_accepting();
    assert!(closed_within_a_second(&mut idle_again), "the idle connection is closed");
    // The closed connection's count drops once its thread has let go of it.
    assert!(wait_until(PATIENCE, || server.num_connections() == 1));

    release.send(()).unwrap();
    busy.set_read_timeout(Some(PATIENCE)).unwrap();
    let (head, body) = read_sized_response(&mut busy).expect("the request in flight is answered");
    assert_eq!((status_of(&head), &body[..]), (200, &b"/hold"[..]));
    assert!(head.to_ascii_lowercase().contains("\r\nconnection: close\r\n"), "{head}");
    assert!(closed_within_a_second(&mut busy));
    assert!(wait_until(PATIENCE, || server.num_connections() == 0));
}
