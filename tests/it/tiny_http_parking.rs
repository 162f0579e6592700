//! A keep-alive connection idle past a second waits for its next request without a
//! thread (parked on the server's one parking thread), is served again when that request
//! comes, and is still closed by its idle timeout, a drain or a cut; it still counts
//! against the connection cap.

use crate::tiny_http_common;

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use tiny_http::{Limits, Request, Server, ShutdownHandle};
use tiny_http_common::*;

const KEEP_ALIVE_GET: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";

/// What the handler saw of its last request: the thread that ran it and the handle that
/// cuts its connection.
#[derive(Default)]
struct Seen {
    thread: Option<String>,
    cut: Option<ShutdownHandle>,
}

/// A server whose handler answers "ok" and records what it saw.
fn serve(limits: Limits) -> (Arc<Server>, SocketAddr, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let recorded = seen.clone();
    let handler = Arc::new(move |request: Request| {
        {
            let mut seen = recorded.lock().unwrap();
            seen.thread = Some(this_thread());
            seen.cut = Some(request.shutdown_handle());
        }
        let _ = request.respond(tiny_http::Response::from_string("ok"));
    });
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Server::from_listener_serving(listener, limits, handler).unwrap();
    (Arc::new(server), addr, seen)
}

fn patient_limits() -> Limits {
    Limits {
        idle_timeout: Duration::from_secs(30),
        header_timeout: Duration::from_secs(30),
        ..Limits::default()
    }
}

/// `/proc/self/task/TID` of the calling thread.
fn this_thread() -> String {
    let link = std::fs::read_link("/proc/thread-self").unwrap();
    format!("/proc/{}", link.display())
}

/// True while `thread` is blocked reading a socket (`read` or `recvfrom`), as a thread
/// waiting for its connection's next request is.
fn blocked_reading(thread: &str) -> bool {
    let Ok(syscall) = std::fs::read_to_string(format!("{thread}/syscall")) else {
        return false; // the thread is gone
    };
    matches!(syscall.split_whitespace().next(), Some("0" | "45"))
}

/// Sends one keep-alive request and checks its answer.
fn served(client: &mut TcpStream) {
    client.write_all(KEEP_ALIVE_GET).unwrap();
    let (head, body) = read_sized_response(client).unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, b"ok");
}

/// Serves one request on a new connection, then waits until the thread that served it no
/// longer waits on the connection's socket: the connection is parked.
fn parked_connection(addr: SocketAddr, seen: &Mutex<Seen>) -> TcpStream {
    let mut client = connect(addr);
    served(&mut client);
    wait_until_parked(seen);
    client
}

/// Waits until the thread that served the last request no longer waits on its socket.
fn wait_until_parked(seen: &Mutex<Seen>) {
    let thread = seen.lock().unwrap().thread.clone().unwrap();
    let started = Instant::now();
    while blocked_reading(&thread) {
        assert!(
            started.elapsed() < Duration::from_secs(1) + PATIENCE,
            "the thread that served an idle connection still waits on it after {:?}",
            started.elapsed()
        );
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_connection_idle_past_a_second_gives_its_thread_up_and_is_served_again() {
    let (server, addr, seen) = serve(patient_limits());
    let mut client = parked_connection(addr, &seen);
    assert_eq!(server.num_connections(), 1, "a parked connection is still live");
    served(&mut client);
    // And again, after being parked a second time.
    wait_until_parked(&seen);
    served(&mut client);
}

#[test]
fn pipelined_requests_sent_after_parking_are_answered_in_order() {
    let handler = Arc::new(|request: Request| {
        let body = request.url().to_string();
        let _ = request.respond(tiny_http::Response::from_string(body));
    });
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let _server = Server::from_listener_serving(listener, patient_limits(), handler).unwrap();
    let mut client = connect(addr);
    client.write_all(b"GET /0 HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(read_sized_response(&mut client).unwrap().1, b"/0");
    thread::sleep(Duration::from_millis(1500));
    client
        .write_all(b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(read_sized_response(&mut client).unwrap().1, b"/1");
    assert_eq!(read_sized_response(&mut client).unwrap().1, b"/2");
}

#[test]
fn a_parked_connection_is_closed_quietly_at_its_idle_timeout() {
    let limits = Limits {
        idle_timeout: Duration::from_millis(2500),
        ..patient_limits()
    };
    let (server, addr, seen) = serve(limits);
    let started = Instant::now();
    let mut client = parked_connection(addr, &seen);
    client.set_read_timeout(Some(PATIENCE)).unwrap();
    let (received, _) = crate::support::http::read_until_closed(&mut client).unwrap();
    let after = started.elapsed();
    assert!(received.is_empty(), "an idle timeout answers nothing: {received:?}");
    assert!(after >= Duration::from_millis(2400), "closed after {after:?}, before the idle timeout");
    assert!(after < Duration::from_millis(2500) + Duration::from_secs(2), "closed only after {after:?}");
    let gone = Instant::now();
    while server.num_connections() != 0 {
        assert!(gone.elapsed() < PATIENCE, "the closed connection still counts");
        thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_drain_closes_a_parked_connection_at_once() {
    let (server, addr, seen) = serve(patient_limits());
    let mut client = parked_connection(addr, &seen);
    let started = Instant::now();
    server.stop_accepting();
    client.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    assert!(closed_by_peer(&mut client), "a drain left a parked connection open");
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[test]
fn a_cut_closes_a_parked_connection_at_once() {
    let (_server, addr, seen) = serve(patient_limits());
    let mut client = parked_connection(addr, &seen);
    let started = Instant::now();
    seen.lock().unwrap().cut.take().unwrap().shutdown();
    client.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    assert!(closed_by_peer(&mut client), "a cut left a parked connection open");
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[test]
fn parked_connections_count_against_the_connection_cap() {
    let limits = Limits {
        max_connections: 1,
        ..patient_limits()
    };
    let (_server, addr, seen) = serve(limits);
    let mut parked = parked_connection(addr, &seen);
    let (head, _) = exchange(addr, KEEP_ALIVE_GET).unwrap();
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    served(&mut parked);
}

#[test]
fn an_external_stream_is_parked_on_its_shared_socket_and_served_again() {
    let (server, _, seen) = serve(patient_limits());
    let front = external_front(&server);
    let mut client = parked_connection(front, &seen);
    served(&mut client);
    wait_until_parked(&seen);
    let started = Instant::now();
    server.stop_accepting();
    client.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    assert!(closed_by_peer(&mut client), "a drain left a parked external stream open");
    assert!(started.elapsed() < Duration::from_secs(1));
}
