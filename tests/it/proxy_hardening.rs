//! Hostile and broken clients: slowloris, oversized heads, smuggling shapes,
//! lying Content-Lengths. None of them may block other clients, reach an
//! upstream in an ambiguous shape, or crash the process.

use crate::proxy_support;
use crate::support;

use std::io::{Read, Write};
use std::thread;
use std::time::{Duration, Instant};

use ingressd::proxy::ProxyConfig;
use proxy_support::*;
use support::http::*;

#[test]
fn slowloris_clients_do_not_block_others_and_are_cut() {
    let backend = Backend::text("ok");
    let proxy = start_proxy(&[rule("a.test", "/", &[backend.port()])], test_config());
    let mut slow = Vec::new();
    for _ in 0..4 {
        let mut conn = connect(&proxy);
        send(&mut conn, b"GET / HTTP/1.1\r\nHost: a.test\r\n");
        slow.push(conn);
    }
    let trickle = thread::spawn(move || {
        let started = Instant::now();
        let mut closed = vec![None; slow.len()];
        for _ in 0..30 {
            for (index, conn) in slow.iter_mut().enumerate() {
                if closed[index].is_none() && conn.get_mut().write_all(b"X").is_err() {
                    closed[index] = Some(started.elapsed());
                }
            }
            thread::sleep(Duration::from_millis(100));
        }
        for (index, conn) in slow.iter_mut().enumerate() {
            if closed[index].is_none() {
                conn.get_mut().set_read_timeout(Some(Duration::from_millis(100))).unwrap();
                let mut rest = Vec::new();
                if conn.read_to_end(&mut rest).is_ok() {
                    closed[index] = Some(started.elapsed());
                }
            }
        }
        closed
    });
    for _ in 0..5 {
        let started = Instant::now();
        assert_eq!(get(&proxy, "a.test", "/").status, 200);
        assert!(started.elapsed() < Duration::from_secs(1), "a normal request waited {:?}", started.elapsed());
    }
    let closed = trickle.join().unwrap();
    assert!(closed.iter().all(Option::is_some), "slowloris connections still open after 3 s: {closed:?}");
}

#[test]
fn oversized_heads_are_refused_without_blocking_others() {
    let backend = Backend::text("ok");
    let proxy = start_proxy(&[rule("a.test", "/", &[backend.port()])], test_config());
    let mut long_line = connect(&proxy);
    send(&mut long_line, b"GET / HTTP/1.1\r\nHost: a.test\r\nX-Big: ");
    let _ = long_line.get_mut().write_all(&vec![b'a'; 100 * 1024]);
    let _ = long_line.get_mut().write_all(b"\r\n\r\n");
    assert_eq!(get(&proxy, "a.test", "/").status, 200);
    assert_eq!(read_response(&mut long_line, false).expect("a response").status, 431);

    let mut many = connect(&proxy);
    let mut head = b"GET / HTTP/1.1\r\nHost: a.test\r\n".to_vec();
    for i in 0..200 {
        head.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
    }
    head.extend_from_slice(b"\r\n");
    let _ = many.get_mut().write_all(&head);
    assert_eq!(read_response(&mut many, false).expect("a response").status, 431);
    assert!(backend.received.lock().unwrap().len() == 1, "only the normal request reached the backend");
}

#[test]
fn smuggling_shapes_are_rejected() {
    let backend = Backend::echo();
    let proxy = start_proxy(&[rule("a.test", "/", &[backend.port()])], test_config());
    for raw in [
        &b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"[..],
        b"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: identity\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
        b"GET / HTTP/2.0\r\nHost: a.test\r\n\r\n",
    ] {
        let mut conn = connect(&proxy);
        send(&mut conn, raw);
        let status = read_response(&mut conn, false).expect("a response").status;
        assert!((400..=505).contains(&status) && status != 404, "{status} for {:?}", String::from_utf8_lossy(raw));
    }
    assert!(backend.received.lock().unwrap().is_empty(), "an ambiguous request reached the upstream");

    // Bare-LF line endings may be accepted (the proxy re-frames every request
    // it forwards) but must get an answer.
    let mut conn = connect(&proxy);
    send(&mut conn, b"GET / HTTP/1.1\nHost: a.test\n\n");
    assert!(matches!(read_response(&mut conn, false).expect("a response").status, 200 | 400));
}

#[test]
fn a_huge_content_length_without_a_body_does_not_crash() {
    let backend = Backend::echo();
    let proxy = start_proxy(&[rule("a.test", "/", &[backend.port()])], test_config());
    let mut conn = connect(&proxy);
    send(&mut conn, b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 50000000000\r\n\r\n");
    assert_eq!(read_response(&mut conn, false).expect("a response").status, 413);

    let unlimited = start_proxy(&[rule("a.test", "/", &[backend.port()])], ProxyConfig { max_body_size: 0, ..test_config() });
    let mut conn = connect(&unlimited);
    send(&mut conn, b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 50000000000\r\n\r\nsome");
    thread::sleep(Duration::from_millis(100));
    drop(conn);
    let started = Instant::now();
    assert_eq!(get(&unlimited, "a.test", "/").status, 200);
    assert!(started.elapsed() < Duration::from_secs(3), "the worker stayed busy for {:?}", started.elapsed());
    assert_eq!(get(&proxy, "a.test", "/").status, 200);
}
