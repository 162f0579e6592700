//! Helpers shared by the tiny_http regression tests: a real server on loopback, raw clients.
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use tiny_http::{ExternalStream, Limits, Request, Server};

use crate::support::http::{header, parse_head, read_raw_head, read_until_closed};

/// Generous bound for anything that must happen; a hang shows up as a timeout of this length.
pub const PATIENCE: Duration = Duration::from_secs(5);

pub fn start_server(limits: Limits) -> (Arc<Server>, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Server::from_listener_with_limits(listener, limits).unwrap();
    (Arc::new(server), addr)
}

/// Runs `handle` for every request on `workers` threads until the server is gone.
pub fn spawn_workers<F>(server: &Arc<Server>, workers: usize, handle: F)
where
    F: Fn(Request) + Send + Sync + 'static,
{
    let handle = Arc::new(handle);
    for _ in 0..workers {
        let server = Arc::downgrade(server);
        let handle = handle.clone();
        thread::spawn(move || loop {
            let Some(server) = server.upgrade() else {
                return;
            };
            if let Ok(Some(request)) = server.recv_timeout(Duration::from_millis(50)) {
                drop(server);
                handle(request)
            }
        });
    }
}

/// Answers every request with 200 and body "ok".
pub fn answer_ok(request: Request) {
    let _ = request.respond(tiny_http::Response::from_string("ok"));
}

/// Answers with the body it read, so the framing the server chose is visible.
pub fn echo_body(mut request: Request) {
    let mut body = Vec::new();
    let _ = request.as_reader().read_to_end(&mut body);
    let _ = request.respond(tiny_http::Response::from_data(body));
}

/// A server with default limits whose two workers answer with [`echo_body`].
pub fn echo_server() -> (Arc<Server>, SocketAddr) {
    let (server, addr) = start_server(Limits::default());
    spawn_workers(&server, 2, echo_body);
    (server, addr)
}

/// Sends each `(name, request, body)` case on a connection of its own and
/// asserts that every one is answered 200 with `body`, naming all that are not.
pub fn expect_each_echoed(addr: SocketAddr, cases: &[(&str, &[u8], &[u8])]) {
    let mut wrong = Vec::new();
    for (name, request, body) in cases {
        match exchange(addr, request) {
            Ok((head, got)) if crate::support::http::status_of(&head) == 200 && got == *body => {}
            other => wrong.push(format!("{name}: got {other:?}")),
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

/// Sends each `(request, answer)` case on `client` and waits for its answer
/// (status 200, body `answer`) before the next.
pub fn expect_answers_one_by_one(client: &mut TcpStream, cases: &[(Vec<u8>, String)]) {
    for (raw, answer) in cases {
        client.write_all(raw).expect("send");
        expect_answer(client, answer);
    }
}

/// Sends every case on `client` in one write, then reads their answers in order.
pub fn expect_answers_pipelined(client: &mut TcpStream, cases: &[(Vec<u8>, String)]) {
    let all: Vec<u8> = cases.iter().flat_map(|(raw, _)| raw.clone()).collect();
    client.write_all(&all).expect("send");
    for (_, answer) in cases {
        expect_answer(client, answer);
    }
}

fn expect_answer(client: &mut TcpStream, answer: &str) {
    let (head, body) = read_sized_response(client).expect("a sized answer");
    assert_eq!(crate::support::http::status_of(&head), 200, "{head}");
    assert_eq!(String::from_utf8_lossy(&body), answer);
}

pub fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream.set_write_timeout(Some(PATIENCE)).unwrap();
    stream
}

/// Reads one response with a Content-Length body (none without one), returns (head, body).
pub fn read_sized_response(stream: &mut impl Read) -> io::Result<(String, Vec<u8>)> {
    let head = read_raw_head(stream)?;
    let (_, headers) = parse_head(&head)?;
    let length = header(&headers, "content-length").and_then(|value| value.parse::<usize>().ok()).unwrap_or(0);
    let mut body = vec![0; length];
    stream.read_exact(&mut body)?;
    Ok((head, body))
}

/// Sends a request and reads its response on a fresh connection.
pub fn exchange(addr: SocketAddr, request: &[u8]) -> io::Result<(String, Vec<u8>)> {
    let mut stream = connect(addr);
    stream.write_all(request)?;
    read_sized_response(&mut stream)
}

/// Sends `request` from another thread (the server may stop reading and close early);
/// returns the response head ("" when none came) and whether the connection was then closed.
pub fn head_and_close(addr: SocketAddr, request: Vec<u8>) -> (String, bool) {
    let mut client = connect(addr);
    let mut writer = client.try_clone().unwrap();
    let sending = thread::spawn(move || {
        let _ = writer.write_all(&request);
    });
    let head = read_raw_head(&mut client).unwrap_or_default();
    let closed = closed_by_peer(&mut client);
    drop(client);
    sending.join().unwrap();
    (head, closed)
}

/// True once the peer closed: read returns EOF or a reset within `PATIENCE`.
pub fn closed_by_peer(stream: &mut TcpStream) -> bool {
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    read_until_closed(stream).is_ok()
}

/// A plain TCP connection fed in through `serve_stream`, as a TLS session would be; like
/// ingressd's TLS stream it shares its socket, so a cut never waits for a blocked read.
pub struct PlainExternal(pub Arc<TcpStream>);

impl Read for PlainExternal {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self.0).read(buf)
    }
}

impl Write for PlainExternal {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self.0).write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        (&*self.0).flush()
    }
}

impl ExternalStream for PlainExternal {
    fn peer_addr(&self) -> Option<SocketAddr> {
        self.0.peer_addr().ok()
    }
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.0.set_read_timeout(timeout)
    }
    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.0.set_write_timeout(timeout)
    }
    fn shutdown(&self) -> io::Result<()> {
        self.0.shutdown(std::net::Shutdown::Both)
    }
    fn shared_socket(&self) -> Option<Arc<TcpStream>> {
        Some(Arc::clone(&self.0))
    }
}

/// Feeds every connection accepted on a second loopback listener to `server.serve_stream`.
pub fn external_front(server: &Arc<Server>) -> SocketAddr {
    let front = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = front.local_addr().unwrap();
    let server = Arc::downgrade(server);
    thread::spawn(move || {
        for stream in front.incoming() {
            let Ok(stream) = stream else { continue };
            let Some(server) = server.upgrade() else {
                return;
            };
            server.serve_stream(Box::new(PlainExternal(Arc::new(stream))));
        }
    });
    addr
}
