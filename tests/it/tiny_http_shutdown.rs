//! `Request::shutdown_handle`: a handler that cannot finish its response cuts the client
//! connection at once instead of leaving it open until the idle timeout.

use crate::support;
use crate::tiny_http_common;

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use support::http::*;
use support::wait::wait_until;
use tiny_http::{Limits, Request};
use tiny_http_common::*;

/// Far longer than any wait below: a connection closed by the idle timeout fails the test.
fn patient_limits() -> Limits {
    Limits {
        idle_timeout: Duration::from_secs(30),
        ..Limits::default()
    }
}

/// Promises 100 bytes, sends 10, then gives up on the response.
fn half_a_body(request: Request) {
    let handle = request.shutdown_handle();
    let mut writer = request.into_writer();
    writer
        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
        .unwrap();
    writer.flush().unwrap();
    drop(writer);
    handle.shutdown();
}

/// Sends a GET and reads until the peer closes; returns what arrived and how long the close took.
fn get_until_closed(addr: SocketAddr) -> (Vec<u8>, Duration) {
    let mut client = connect(addr);
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    read_until_closed(&mut client).unwrap_or_else(|e| panic!("no close within {:?}: {}", PATIENCE, e))
}

#[test]
fn a_cut_response_closes_the_connection_at_once() {
    let (server, addr) = start_server(patient_limits());
    spawn_workers(&server, 1, half_a_body);
    let (received, took) = get_until_closed(addr);
    assert!(received.ends_with(b"0123456789"), "{:?}", received);
    assert!(took < Duration::from_secs(1), "closed after {:?}", took);
    assert!(wait_until(PATIENCE, || server.num_connections() == 0));
}

#[test]
fn a_cut_response_closes_an_external_stream_at_once() {
    let (server, _) = start_server(patient_limits());
    spawn_workers(&server, 1, half_a_body);
    let (received, took) = get_until_closed(external_front(&server));
    assert!(received.ends_with(b"0123456789"), "{:?}", received);
    assert!(took < Duration::from_secs(1), "closed after {:?}", took);
}

#[test]
fn a_handle_outliving_its_connection_does_nothing() {
    let (server, addr) = start_server(patient_limits());
    let (sender, handles) = std::sync::mpsc::channel();
    spawn_workers(&server, 1, move |request: Request| {
        sender.send(request.shutdown_handle()).unwrap();
        answer_ok(request);
    });
    let mut client = connect(addr);
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let (head, body) = read_sized_response(&mut client).unwrap();
    assert_eq!((status_of(&head), &body[..]), (200, &b"ok"[..]));
    assert!(wait_until(PATIENCE, || server.num_connections() == 0));
    let handle = handles.recv_timeout(PATIENCE).unwrap();
    handle.shutdown();
}
