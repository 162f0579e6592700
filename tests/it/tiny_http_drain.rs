//! Graceful drain: `end_keep_alive` makes every response the connection's last, and
//! `stop_accepting` also closes connections idle between requests at once, while requests
//! in flight are still answered.

use crate::support;
use crate::tiny_http_common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::http::*;
use support::wait::wait_until;
use tiny_http::{Limits, Request};
use tiny_http_common::*;

/// Far longer than any bound below: a connection closed by a timeout fails the test.
fn patient_limits() -> Limits {
    Limits {
        idle_timeout: Duration::from_secs(30),
        header_timeout: Duration::from_secs(30),
        ..Limits::default()
    }
}

const KEEP_ALIVE_GET: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";

/// True when the peer closes within one second.
fn closed_within_a_second(stream: &mut TcpStream) -> bool {
    let started = Instant::now();
    stream
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let closed = closed_by_peer(stream);
    closed && started.elapsed() < Duration::from_secs(1)
}

fn has_connection_close(head: &str) -> bool {
    head.to_ascii_lowercase()
        .contains("\r\nconnection: close\r\n")
}

#[test]
fn waiting_for_no_connections_wakes_when_the_last_one_closes() {
    let (server, addr) = start_server(patient_limits());
    spawn_workers(&server, 1, answer_ok);
    let mut client = connect(addr);
    client.write_all(KEEP_ALIVE_GET).unwrap();
    read_sized_response(&mut client).unwrap();
    assert!(wait_until(PATIENCE, || server.num_connections() == 1));

    let started = Instant::now();
    assert_eq!(server.wait_for_no_connections(Duration::from_millis(100)), 1, "a live connection outlasts a short wait");
    assert!(started.elapsed() >= Duration::from_millis(100));

    // Far longer than the test may take: only the last connection's close ends this wait.
    let waiting = {
        let server = server.clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            (server.wait_for_no_connections(Duration::from_secs(30)), started.elapsed())
        })
    };
    drop(client);
    let (left, waited) = waiting.join().unwrap();
    assert_eq!(left, 0);
    assert!(waited < PATIENCE, "woken by the close, not by the timeout: {waited:?}");
    assert_eq!(server.wait_for_no_connections(Duration::from_secs(30)), 0, "none live: returns at once");
}

#[test]
fn stop_accepting_closes_a_connection_idle_between_requests() {
    let (server, addr) = start_server(patient_limits());
    spawn_workers(&server, 1, answer_ok);
    let mut client = connect(addr);
    client.write_all(KEEP_ALIVE_GET).unwrap();
    let (head, _) = read_sized_response(&mut client).unwrap();
    assert!(!has_connection_close(&head), "{}", head);

    server.stop_accepting();
    let started = Instant::now();
    assert!(closed_by_peer(&mut client), "the idle connection is closed");
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(wait_until(PATIENCE, || server.num_connections() == 0));
}

#[test]
fn stop_accepting_closes_an_external_connection_idle_between_requests() {
    let (server, _) = start_server(patient_limits());
    spawn_workers(&server, 1, answer_ok);
    let mut client = connect(external_front(&server));
    client.write_all(KEEP_ALIVE_GET).unwrap();
    read_sized_response(&mut client).unwrap();
    // The connection thread is blocked reading the next head, holding the stream.
    std::thread::sleep(Duration::from_millis(50));

    server.stop_accepting();
    assert!(closed_within_a_second(&mut client));
    assert!(wait_until(PATIENCE, || server.num_connections() == 0));
}

#[test]
fn a_connection_that_goes_idle_after_stop_accepting_is_closed() {
    let (server, addr) = start_server(patient_limits());
    let (release, released) = mpsc::channel::<()>();
    let released = std::sync::Mutex::new(released);
    spawn_workers(&server, 1, move |request: Request| {
        let _ = released.lock().unwrap().recv_timeout(PATIENCE);
        answer_ok(request);
    });
    let mut client = connect(addr);
    client.write_all(KEEP_ALIVE_GET).unwrap();
    assert!(wait_until(PATIENCE, || server.num_connections() == 1));

    server.stop_accepting();
    release.send(()).unwrap();
    let (head, body) = read_sized_response(&mut client).expect("the request in flight is answered");
    assert_eq!((status_of(&head), &body[..]), (200, &b"ok"[..]));
    assert!(has_connection_close(&head), "{}", head);
    assert!(closed_within_a_second(&mut client));
    assert!(wait_until(PATIENCE, || server.num_connections() == 0));
}

#[test]
fn after_end_keep_alive_each_response_closes_its_connection() {
    let (server, addr) = start_server(patient_limits());
    let (sender, draining) = mpsc::channel();
    spawn_workers(&server, 1, move |request: Request| {
        sender.send(request.server_draining()).unwrap();
        answer_ok(request);
    });
    let mut client = connect(addr);
    client.write_all(KEEP_ALIVE_GET).unwrap();
    read_sized_response(&mut client).unwrap();
    assert!(!draining.recv_timeout(PATIENCE).unwrap());

    server.end_keep_alive();
    client.write_all(KEEP_ALIVE_GET).unwrap();
    let (head, body) = read_sized_response(&mut client).unwrap();
    assert_eq!((status_of(&head), &body[..]), (200, &b"ok"[..]));
    assert!(has_connection_close(&head), "{}", head);
    assert!(draining.recv_timeout(PATIENCE).unwrap());
    assert!(closed_within_a_second(&mut client));

    let (head, _) = exchange(addr, KEEP_ALIVE_GET).expect("still accepting");
    assert!(has_connection_close(&head), "{}", head);
}

#[test]
fn an_upgraded_connection_outlives_stop_accepting() {
    let (server, addr) = start_server(patient_limits());
    spawn_workers(&server, 1, |request: Request| {
        let (mut reader, mut writer) = request.into_raw();
        std::thread::spawn(move || {
            writer
                .write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: upgrade\r\n\r\n")
                .unwrap();
            writer.flush().unwrap();
            let mut byte = [0u8; 1];
            while let Ok(1) = reader.read(&mut byte) {
                if writer
                    .write_all(&byte)
                    .and_then(|_| writer.flush())
                    .is_err()
                {
                    return;
                }
            }
        });
    });
    let mut client = connect(addr);
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\n")
        .unwrap();
    assert_eq!(status_of(&read_raw_head(&mut client).unwrap()), 101);

    server.stop_accepting();
    client.write_all(b"z").unwrap();
    let mut echo = [0u8; 1];
    client
        .read_exact(&mut echo)
        .expect("the tunnel still works");
    assert_eq!(&echo, b"z");
    // The connection that woke the accept thread closes; the tunnel stays counted.
    assert!(
        wait_until(PATIENCE, || server.num_connections() == 1),
        "the tunnel counts as live"
    );
    client.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(wait_until(PATIENCE, || server.num_connections() == 0));
}

/// Change 25: a request shares its connection's drain flags instead of getting its own
/// and then having them replaced. A handler that writes its own head asks
/// `server_draining` on each request: false on every request of a keep-alive connection
/// until `end_keep_alive`, then true, and having said so (`said_close`) ends the
/// connection after its response though the head it wrote said nothing about closing.
#[test]
fn a_handler_writing_its_own_head_learns_of_the_drain_and_its_connection_ends() {
    let (sender, draining) = mpsc::channel();
    let sender = std::sync::Mutex::new(sender);
    let handler = move |request: Request| {
        let said = request.server_draining();
        sender.lock().unwrap().send(said).unwrap();
        let mut writer = request.into_writer();
        let _ = writer.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        let _ = writer.flush();
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server =
        tiny_http::Server::from_listener_serving(listener, patient_limits(), std::sync::Arc::new(handler))
            .unwrap();
    let mut client = connect(addr);
    for _ in 0..3 {
        client.write_all(KEEP_ALIVE_GET).unwrap();
        let (head, body) = read_sized_response(&mut client).unwrap();
        assert_eq!((status_of(&head), &body[..]), (200, &b"ok"[..]));
        assert!(!draining.recv_timeout(PATIENCE).unwrap(), "draining before end_keep_alive");
    }

    server.end_keep_alive();
    client.write_all(KEEP_ALIVE_GET).unwrap();
    let (head, _) = read_sized_response(&mut client).unwrap();
    assert!(!has_connection_close(&head), "the handler's own head: {}", head);
    assert!(draining.recv_timeout(PATIENCE).unwrap(), "not told of the drain");
    assert!(closed_within_a_second(&mut client), "the connection outlived its last response");
}
