//! The API added to the vendored tiny_http: limits, external streams, raw upgrade, drain.

use crate::support;
use crate::tiny_http_common;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use support::http::*;
use support::wait::wait_until;
use tiny_http::{Limits, Request};
use tiny_http_common::*;

/// Answers with the request's view of itself: "secure=<bool> remote=<addr>".
fn describe(request: Request) {
    let body = format!(
        "secure={} remote={}",
        request.secure(),
        request
            .remote_addr()
            .map(|a| a.to_string())
            .unwrap_or_default()
    );
    let _ = request.respond(tiny_http::Response::from_string(body));
}

#[test]
fn external_stream_is_served_secure_with_its_peer_address() {
    let (server, _) = start_server(Limits::default());
    spawn_workers(&server, 2, describe);
    let front = external_front(&server);

    let mut client = connect(front);
    let local = client.local_addr().unwrap();
    for _ in 0..2 {
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let (head, body) = read_sized_response(&mut client).unwrap();
        assert_eq!(status_of(&head), 200, "{head}");
        assert_eq!(
            String::from_utf8(body).unwrap(),
            format!("secure=true remote={local}")
        );
    }
}

#[test]
fn plain_connection_is_not_secure() {
    let (server, addr) = start_server(Limits::default());
    spawn_workers(&server, 1, describe);
    let mut client = connect(addr);
    let local = client.local_addr().unwrap();
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let (_, body) = read_sized_response(&mut client).unwrap();
    assert_eq!(
        String::from_utf8(body).unwrap(),
        format!("secure=false remote={local}")
    );
}

#[test]
fn num_connections_counts_live_http_and_external_connections() {
    let (server, addr) = start_server(Limits::default());
    spawn_workers(&server, 2, answer_ok);
    let front = external_front(&server);
    assert_eq!(server.num_connections(), 0);

    let mut plain = connect(addr);
    let mut external = connect(front);
    for client in [&mut plain, &mut external] {
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        read_sized_response(client).unwrap();
    }
    assert!(
        wait_until(PATIENCE, || server.num_connections() == 2),
        "{}",
        server.num_connections()
    );

    drop(plain);
    assert!(
        wait_until(PATIENCE, || server.num_connections() == 1),
        "{}",
        server.num_connections()
    );
    drop(external);
    assert!(
        wait_until(PATIENCE, || server.num_connections() == 0),
        "{}",
        server.num_connections()
    );
}

#[test]
fn stop_accepting_refuses_new_connections_and_closes_idle_ones() {
    let (server, addr) = start_server(Limits::default());
    spawn_workers(&server, 2, answer_ok);
    let mut live = connect(addr);
    live.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    read_sized_response(&mut live).unwrap();

    server.stop_accepting();
    assert!(
        wait_until(PATIENCE, || TcpStream::connect(addr).is_err()),
        "the listener still accepts connections"
    );
    // Requests in flight are still answered (tests/tiny_http_drain.rs); a keep-alive
    // connection between requests is closed so a drain need not wait for it.
    assert!(closed_by_peer(&mut live), "the idle connection is closed");
}

/// Relays an upgraded connection: a 101, then the server speaks first ("hello") while its
/// reader half is already blocked on another thread, then echoes what the client sends.
fn upgrade_and_echo(request: Request) {
    let (mut reader, mut writer) = request.into_raw();
    let (echo_tx, echo_rx) = mpsc::channel::<Vec<u8>>();
    let reading = thread::spawn(move || {
        let mut buf = [0u8; 64];
        loop {
            match reader.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    if echo_tx.send(buf[..n].to_vec()).is_err() {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::TimedOut => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(_) => return,
            }
        }
    });
    writer
        .write_all(
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n",
        )
        .unwrap();
    writer.flush().unwrap();
    // The reader thread is (most likely) blocked in read now; writing must still go through.
    thread::sleep(Duration::from_millis(100));
    writer.write_all(b"hello").unwrap();
    writer.flush().unwrap();
    while let Ok(bytes) = echo_rx.recv() {
        if writer
            .write_all(&bytes)
            .and_then(|_| writer.flush())
            .is_err()
        {
            break;
        }
    }
    reading.join().unwrap();
}

fn check_upgrade(addr: SocketAddr) {
    let mut client = connect(addr);
    // "early" is sent with the head, so the server buffers it past the head.
    client
        .write_all(
            b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nearly",
        )
        .unwrap();
    let head = read_raw_head(&mut client).unwrap();
    assert_eq!(status_of(&head), 101, "{head}");
    let mut got = [0u8; 10];
    client.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"helloearly");
    client.write_all(b"ping").unwrap();
    let mut got = [0u8; 4];
    client.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"ping");
}

#[test]
fn into_raw_splits_a_tcp_connection_into_concurrent_halves() {
    let (server, addr) = start_server(Limits::default());
    spawn_workers(&server, 2, upgrade_and_echo);
    check_upgrade(addr);
}

#[test]
fn into_raw_splits_an_external_stream_into_concurrent_halves() {
    let (server, _) = start_server(Limits::default());
    spawn_workers(&server, 2, upgrade_and_echo);
    check_upgrade(external_front(&server));
}

#[test]
fn built_in_tls_is_refused_in_favour_of_serve_stream() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let config = tiny_http::SslConfig {
        certificate: Vec::new(),
        private_key: Vec::new(),
    };
    let error = tiny_http::Server::from_listener(listener, Some(config)).err();
    assert!(error.is_some_and(|e| e.to_string().contains("serve_stream")));
}

/// An external stream whose session exists only once it has been read from (as a TLS
/// handshake runs in the first read), and that counts how often it is asked.
struct SessionExternal {
    inner: PlainExternal,
    read_any: bool,
    asked: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Read for SessionExternal {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_any = true;
        self.inner.read(buf)
    }
}

impl Write for SessionExternal {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl tiny_http::ExternalStream for SessionExternal {
    fn peer_addr(&self) -> Option<SocketAddr> {
        self.inner.peer_addr()
    }
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.inner.set_read_timeout(timeout)
    }
    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.inner.set_write_timeout(timeout)
    }
    fn shutdown(&self) -> io::Result<()> {
        self.inner.shutdown()
    }
    fn session(&self) -> Option<std::sync::Arc<dyn std::any::Any + Send + Sync>> {
        self.asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.read_any.then(|| std::sync::Arc::new("sni.example".to_string()) as _)
    }
}

/// Answers with what the request's session says: "session=<text>" or "session=none".
fn describe_session(request: Request) {
    let session = request.session().and_then(|s| s.downcast_ref::<String>()).map_or("none", String::as_str);
    let body = format!("session={session}");
    let _ = request.respond(tiny_http::Response::from_string(body));
}

#[test]
fn an_external_streams_session_reaches_each_request_and_is_asked_once() {
    let (server, addr) = start_server(Limits::default());
    spawn_workers(&server, 2, describe_session);
    let asked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let front = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let front_addr = front.local_addr().unwrap();
    let mut client = connect(front_addr);
    let (accepted, _) = front.accept().unwrap();
    server.serve_stream(Box::new(SessionExternal { inner: PlainExternal(std::sync::Arc::new(accepted)), read_any: false, asked: asked.clone() }));
    for _ in 0..3 {
        client.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let (_, body) = read_sized_response(&mut client).unwrap();
        assert_eq!(String::from_utf8(body).unwrap(), "session=sni.example");
    }
    assert_eq!(asked.load(std::sync::atomic::Ordering::SeqCst), 1, "asked once per connection, after the first head");

    let mut plain = connect(addr);
    plain.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let (_, body) = read_sized_response(&mut plain).unwrap();
    assert_eq!(String::from_utf8(body).unwrap(), "session=none");
}
