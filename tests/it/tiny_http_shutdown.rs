//! `Request::shutdown_handle`: a handler that cannot finish its response cuts the client
//! connection at once instead of leaving it open until the idle timeout.

use crate::support;
use crate::tiny_http_common;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::Duration;

use support::http::*;
use support::wait::wait_until;
use tiny_http::{ExternalStream, Limits, Request};
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
        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n0123456789")
        .unwrap();
    writer.flush().unwrap();
    drop(writer);
    handle.shutdown();
}

/// Sends a GET and reads until the peer closes; returns what arrived. Each read waits at
/// most PATIENCE (5 s), far less than the idle timeout (30 s), so a connection left open
/// until the idle timeout fails; a busy machine does not.
fn get_until_closed(addr: SocketAddr) -> Vec<u8> {
    let mut client = connect(addr);
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let (received, _) = read_until_closed(&mut client)
        .unwrap_or_else(|e| panic!("no close within {:?}: {}", PATIENCE, e));
    received
}

#[test]
fn a_cut_response_closes_the_connection_at_once() {
    let (server, addr) = start_server(patient_limits());
    spawn_workers(&server, 1, half_a_body);
    let received = get_until_closed(addr);
    assert!(received.ends_with(b"0123456789"), "{:?}", received);
    assert!(wait_until(PATIENCE, || server.num_connections() == 0));
}

#[test]
fn a_cut_response_closes_an_external_stream_at_once() {
    let (server, _) = start_server(patient_limits());
    spawn_workers(&server, 1, half_a_body);
    let received = get_until_closed(external_front(&server));
    assert!(received.ends_with(b"0123456789"), "{:?}", received);
}

/// A plain external stream that reports each read it enters: the server calls `read`
/// with the stream's lock held, so once the report arrives a read is holding the lock.
struct ReportingExternal {
    inner: PlainExternal,
    reads: mpsc::Sender<()>,
}

impl Read for ReportingExternal {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let _ = self.reads.send(());
        self.inner.read(buf)
    }
}

impl Write for ReportingExternal {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl ExternalStream for ReportingExternal {
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
    fn shared_socket(&self) -> Option<Arc<TcpStream>> {
        self.inner.shared_socket()
    }
}

/// A read blocked on an external stream holds the stream's lock for up to the idle timeout
/// (30 s here). A cut goes through the shared socket instead, so it closes the connection
/// and ends that read at once. (Regression: `shutdown` waited for the lock, so a cut HTTPS
/// connection stayed open until the blocked read timed out; the parked wait for a next
/// request, read in 250 ms slices, could starve it for seconds.)
#[test]
fn a_cut_does_not_wait_for_a_read_blocked_on_an_external_stream() {
    let (server, _) = start_server(patient_limits());
    let (reads, read_entered) = mpsc::channel();
    let read_entered = Arc::new(Mutex::new(read_entered));
    let (outcomes, outcome) = mpsc::channel();
    // Past 1024 bytes, so tiny_http hands the request over before the body has arrived.
    spawn_workers(&server, 1, move |mut request: Request| {
        let handle = request.shutdown_handle();
        let mut first = [0u8; 10];
        request.as_reader().read_exact(&mut first).unwrap();
        let read_entered = read_entered.lock().unwrap();
        while read_entered.try_recv().is_ok() {}
        let outcomes = outcomes.clone();
        let reader = thread::spawn(move || {
            // Blocks: the client promised 2000 bytes and sent 10.
            let mut rest = Vec::new();
            let ended = request.as_reader().read_to_end(&mut rest);
            outcomes.send(ended.map(|_| rest.len()).map_err(|e| e.kind())).unwrap();
        });
        read_entered.recv_timeout(PATIENCE).expect("the body read never reached the stream");
        handle.shutdown();
        reader.join().unwrap();
    });
    let front = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut client = connect(front.local_addr().unwrap());
    let (accepted, _) = front.accept().unwrap();
    let inner = PlainExternal(Arc::new(accepted));
    server.serve_stream(Box::new(ReportingExternal { inner, reads }));
    client
        .write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n0123456789")
        .unwrap();
    // `read_until_closed` gives up after PATIENCE (5 s), far less than the idle timeout.
    let (received, _) = read_until_closed(&mut client).unwrap_or_else(|e| panic!("no close within {:?}: {}", PATIENCE, e));
    assert!(received.is_empty(), "{:?}", String::from_utf8_lossy(&received));
    let ended = outcome.recv_timeout(PATIENCE).expect("the blocked body read never returned");
    assert!(!matches!(ended, Ok(1990)), "the body read got bytes nobody sent: {:?}", ended);
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
