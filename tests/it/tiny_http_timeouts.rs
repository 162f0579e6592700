//! Fix 4: TCP_NODELAY and read/write timeouts on accepted sockets, an idle keep-alive timeout,
//! and a request-head deadline that a client trickling bytes cannot extend.

use crate::support;
use crate::tiny_http_common;

use std::io::{ErrorKind, Read, Write};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::http::*;
use tiny_http::{Limits, Request};
use tiny_http_common::*;

fn short_limits() -> Limits {
    Limits {
        header_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(1),
        write_timeout: Duration::from_millis(500),
        ..Limits::default()
    }
}

#[test]
fn slowloris_head_is_cut_at_the_header_deadline() {
    let (server, addr) = start_server(short_limits());
    spawn_workers(&server, 1, answer_ok);
    check_slowloris_is_cut(addr);
}

#[test]
fn slowloris_head_on_an_external_stream_is_cut_at_the_header_deadline() {
    let (server, _) = start_server(short_limits());
    spawn_workers(&server, 1, answer_ok);
    check_slowloris_is_cut(external_front(&server));
}

fn check_slowloris_is_cut(addr: std::net::SocketAddr) {
    check_slowloris_is_cut_on(connect(addr));
}

/// Trickles a head from its request line on: the connection must close (with a 408 or
/// nothing) about `header_timeout` (1 s) after that line, not before.
fn check_slowloris_is_cut_on(mut client: std::net::TcpStream) {
    client.write_all(b"GET / HTTP/1.1\r\n").unwrap();
    // One header byte every 100 ms: each read succeeds, yet the whole head is late.
    client
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let started = Instant::now();
    let mut received = Vec::new();
    let mut buf = [0u8; 256];
    let closed_after = loop {
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "head still being read after 4 s"
        );
        if client.write_all(b"X").is_err() {
            break started.elapsed();
        }
        match client.read(&mut buf) {
            Ok(0) => break started.elapsed(),
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break started.elapsed(),
        }
    };
    assert!(
        closed_after >= Duration::from_millis(800),
        "closed too early: {closed_after:?}"
    );
    let received = String::from_utf8_lossy(&received);
    assert!(
        received.is_empty() || received.starts_with("HTTP/1.1 408"),
        "unexpected answer: {received}"
    );
}

/// Change 27: a keep-alive connection's next head gets its `header_timeout` from its first
/// byte (the deadline is armed without a clock read and starts at the next read), not from
/// the start of the idle wait, and trickling bytes still cannot extend it.
#[test]
fn slowloris_on_a_keep_alive_connection_is_cut_a_header_timeout_after_its_first_byte() {
    let (server, addr) = start_server(short_limits());
    spawn_workers(&server, 1, answer_ok);
    let mut client = connect(addr);
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let (head, _) = read_sized_response(&mut client).unwrap();
    assert_eq!(status_of(&head), 200);
    // Most of the idle timeout passes before the next head starts.
    std::thread::sleep(Duration::from_millis(700));
    check_slowloris_is_cut_on(client);
}

#[test]
fn keep_alive_head_sent_in_two_parts_within_the_header_timeout_is_served() {
    let (server, addr) = start_server(short_limits());
    spawn_workers(&server, 1, answer_ok);
    let mut client = connect(addr);
    // A new connection's first head has `header_timeout` from the accept.
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    read_sized_response(&mut client).unwrap();
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(600));
        client.write_all(b"GET / HTTP/1.1\r\n").unwrap();
        // Idle wait and head together last longer than either timeout.
        std::thread::sleep(Duration::from_millis(600));
        client.write_all(b"Host: x\r\n\r\n").unwrap();
        let (head, _) = read_sized_response(&mut client).unwrap();
        assert_eq!(status_of(&head), 200);
    }
}

/// Change 31: the deadlines are counted in integer nanoseconds after the connection's
/// start. The idle wait and a trickled head both end within a few hundred milliseconds of
/// their one second, neither early nor late, request after request.
#[test]
fn idle_wait_and_head_deadline_end_on_time() {
    let (server, addr) = start_server(short_limits());
    spawn_workers(&server, 1, answer_ok);
    let on_time = |elapsed: Duration| {
        elapsed >= Duration::from_millis(900) && elapsed <= Duration::from_millis(1600)
    };

    let mut client = connect(addr);
    for _ in 0..3 {
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        read_sized_response(&mut client).unwrap();
    }
    let started = Instant::now();
    client
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let (rest, _) = read_until_closed(&mut client).unwrap();
    assert!(rest.is_empty());
    assert!(on_time(started.elapsed()), "idle close after {:?}", started.elapsed());

    let mut client = connect(addr);
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    read_sized_response(&mut client).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    client.write_all(b"GET / HTTP/1.1\r\n").unwrap();
    let started = Instant::now();
    let mut trickle = client.try_clone().unwrap();
    let trickling = std::thread::spawn(move || {
        while trickle.write_all(b"X").is_ok() && started.elapsed() < Duration::from_secs(3) {
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    client
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let _ = read_until_closed(&mut client);
    let elapsed = started.elapsed();
    drop(client);
    trickling.join().unwrap();
    assert!(on_time(elapsed), "trickled head cut after {elapsed:?}");
}

#[test]
fn idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let (server, addr) = start_server(short_limits());
    spawn_workers(&server, 1, answer_ok);

    let mut client = connect(addr);
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    read_sized_response(&mut client).unwrap();
    let started = Instant::now();
    assert!(
        closed_by_peer(&mut client),
        "idle connection still open after {:?}",
        started.elapsed()
    );
    assert!(started.elapsed() >= Duration::from_millis(800));
}

#[test]
fn keep_alive_connection_waiting_less_than_the_idle_timeout_is_served() {
    let (server, addr) = start_server(short_limits());
    spawn_workers(&server, 1, answer_ok);

    let mut client = connect(addr);
    for _ in 0..3 {
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let (head, _) = read_sized_response(&mut client).unwrap();
        assert_eq!(status_of(&head), 200);
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Writes the response head and body in two flushed writes, as a streaming proxy does.
fn answer_in_two_writes(request: Request) {
    let mut writer = request.into_writer();
    let _ = writer
        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n")
        .and_then(|_| writer.flush())
        .and_then(|_| writer.write_all(b"ok"))
        .and_then(|_| writer.flush());
}

#[test]
fn second_small_write_is_not_held_back_by_nagle() {
    let (server, addr) = start_server(Limits::default());
    spawn_workers(&server, 1, answer_in_two_writes);

    let mut client = connect(addr);
    client.set_nodelay(true).unwrap();
    let mut latencies: Vec<Duration> = (0..11)
        .map(|_| {
            let started = Instant::now();
            client
                .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            let (_, body) = read_sized_response(&mut client).unwrap();
            assert_eq!(body, b"ok");
            started.elapsed()
        })
        .collect();
    latencies.sort();
    // Nagle plus delayed ACK holds the body about 40 ms on every exchange.
    assert!(
        latencies[5] < Duration::from_millis(20),
        "median latency {:?}",
        latencies[5]
    );
}

#[test]
fn write_to_a_client_that_never_reads_times_out() {
    let (server, addr) = start_server(short_limits());
    let (result_tx, result_rx) = mpsc::channel();
    let result_tx = std::sync::Mutex::new(result_tx);
    spawn_workers(&server, 1, move |request: Request| {
        let mut writer = request.into_writer();
        let chunk = vec![b'a'; 1 << 20];
        let started = Instant::now();
        let outcome = (0..256).try_for_each(|_| writer.write_all(&chunk));
        let _ = result_tx
            .lock()
            .unwrap()
            .send((outcome.is_err(), started.elapsed()));
    });

    let mut client = connect(addr);
    client
        .write_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let (failed, took) = result_rx
        .recv_timeout(PATIENCE)
        .expect("the handler is still blocked writing to a client that does not read");
    assert!(failed, "256 MiB went into socket buffers");
    assert!(took < Duration::from_secs(4), "write took {took:?}");
    drop(client);
}
