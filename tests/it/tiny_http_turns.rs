//! Change 23: a connection's requests take their turn on its socket through one slot per
//! connection, not a channel. Requests answered on other threads (`recv()`) leave in order,
//! a request dropped unanswered passes its turn on, and the next head is read only once the
//! previous request's body reader is gone, the connection's thread then woken to read it.

use crate::support;
use crate::tiny_http_common;

use std::io::Write;
use std::thread;
use std::time::Duration;

use support::http::*;
use tiny_http::{Limits, Request, Response};
use tiny_http_common::*;

/// Long enough for a worker to block waiting for its turn; nothing must happen within it.
const QUIET: Duration = Duration::from_millis(150);

fn answer_path(request: Request) {
    let path = request.url().to_owned();
    let _ = request.respond(Response::from_string(path));
}

/// Each request answered on another thread than the connection's, the next one only then
/// read: the writer's turn comes back from that thread every time.
#[test]
fn pipelined_requests_answered_on_other_threads_leave_in_order() {
    let (server, addr) = start_server(Limits::default());
    let mut client = connect(addr);
    let requests: String = (0..4)
        .map(|i| format!("GET /r{i} HTTP/1.1\r\nHost: x\r\n\r\n"))
        .collect();
    client.write_all(requests.as_bytes()).unwrap();
    for i in 0..4 {
        let request = server.recv_timeout(PATIENCE).unwrap().expect("a pipelined request");
        assert_eq!(request.url(), format!("/r{i}"));
        thread::spawn(move || answer_path(request)).join().unwrap();
    }
    for i in 0..4 {
        let (head, body) = read_sized_response(&mut client).unwrap();
        assert_eq!(status_of(&head), 200, "{head}");
        assert_eq!(String::from_utf8(body).unwrap(), format!("/r{i}"));
    }
}

#[test]
fn the_next_head_waits_for_the_previous_body_then_is_read() {
    let (server, addr) = start_server(Limits::default());
    let mut client = connect(addr);
    // Bodies over 1 KiB are streamed from the socket, not read ahead with the head.
    let bodies = [vec![b'a'; 3000], vec![b'b'; 2000]];
    for (i, body) in bodies.iter().enumerate() {
        let head = format!("POST /p{i} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n", body.len());
        client.write_all(head.as_bytes()).unwrap();
        client.write_all(body).unwrap();
    }
    for (i, body) in bodies.iter().enumerate() {
        let mut request = server.recv_timeout(PATIENCE).unwrap().expect("the next request");
        assert_eq!(request.url(), format!("/p{i}"));
        if i == 0 {
            assert!(
                server.recv_timeout(QUIET).unwrap().is_none(),
                "the second head was read while the first body was still being read"
            );
        }
        let mut got = Vec::new();
        request.as_reader().read_to_end(&mut got).unwrap();
        assert!(got == *body, "body {i}: {} bytes, not the {} sent", got.len(), body.len());
        answer_path(request);
        let (head, answer) = read_sized_response(&mut client).unwrap();
        assert_eq!(status_of(&head), 200, "{head}");
        assert_eq!(String::from_utf8(answer).unwrap(), format!("/p{i}"));
    }
}

#[test]
fn a_request_dropped_unanswered_passes_the_turn_on() {
    let (server, addr) = start_server(Limits::default());
    let mut client = connect(addr);
    let requests: String = (0..3)
        .map(|i| format!("GET /d{i} HTTP/1.1\r\nHost: x\r\n\r\n"))
        .collect();
    client.write_all(requests.as_bytes()).unwrap();
    // Dropped unanswered, tiny_http answers 500 in its place; the others are answered.
    for answer in [false, true, false] {
        let request = server.recv_timeout(PATIENCE).unwrap().expect("a pipelined request");
        if answer {
            answer_path(request);
        }
    }
    let statuses: Vec<u16> = (0..3)
        .map(|_| status_of(&read_sized_response(&mut client).unwrap().0))
        .collect();
    assert_eq!(statuses, [500, 200, 500]);
}

/// A request answered before its body was read drains the rest when dropped, after its
/// response told the connection to go on: the connection's thread then waits for the
/// reader's turn, and must be woken when the drain passes it.
#[test]
fn the_next_head_is_read_once_the_previous_body_is_drained() {
    let (server, addr) = start_server(Limits::default());
    let mut client = connect(addr);
    client
        .write_all(b"POST /p0 HTTP/1.1\r\nHost: x\r\nContent-Length: 3000\r\n\r\n")
        .unwrap();
    client.write_all(&[b'a'; 1000]).unwrap();
    let request = server.recv_timeout(PATIENCE).unwrap().expect("the first request");
    let answering = thread::spawn(move || answer_path(request));
    let (head, body) = read_sized_response(&mut client).unwrap();
    assert_eq!(status_of(&head), 200, "{head}");
    assert_eq!(body, b"/p0");
    // No signal says the connection's thread reached the wait; give it the time to.
    thread::sleep(QUIET);
    client.write_all(&[b'a'; 2000]).unwrap();
    client.write_all(b"GET /p1 HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    answering.join().unwrap();
    let request = server.recv_timeout(PATIENCE).unwrap().expect("the head after the drained body");
    assert_eq!(request.url(), "/p1");
    answer_path(request);
    let (head, body) = read_sized_response(&mut client).unwrap();
    assert_eq!(status_of(&head), 200, "{head}");
    assert_eq!(body, b"/p1");
}
