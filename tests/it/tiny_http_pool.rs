//! Fix 3: every new connection gets a thread when none is idle; none is queued behind
//! long-lived keep-alive connections (unpatched: a burst leaves some unanswered).

use crate::tiny_http_common;

use std::io::Write;
use std::time::Duration;

use tiny_http::Limits;
use tiny_http_common::*;

fn burst_of_keep_alive_connections_is_fully_answered(round: usize) {
    let (server, addr) = start_server(Limits::default());
    spawn_workers(&server, 4, answer_ok);

    // All connections stay open (keep-alive) until every one has been answered.
    let mut clients: Vec<_> = (0..64).map(|_| connect(addr)).collect();
    for client in &mut clients {
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
    }
    // After the first miss the others get a short wait only, to keep a failing run short.
    let mut unanswered = 0;
    for client in &mut clients {
        if unanswered > 0 {
            client
                .set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
        }
        if read_sized_response(client).is_err() {
            unanswered += 1;
        }
    }
    assert_eq!(
        unanswered, 0,
        "round {round}: {unanswered} of 64 connections got no answer"
    );
}

#[test]
fn bursts_of_64_keep_alive_connections_are_all_answered() {
    for round in 0..3 {
        burst_of_keep_alive_connections_is_fully_answered(round);
    }
}
