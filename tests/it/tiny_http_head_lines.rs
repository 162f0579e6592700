//! Change 21: head lines are scanned in the connection's read buffer, a buffer at a time,
//! not read a byte per call. Where a read ends must not matter: a scripted stream hands the
//! server the same pipelined requests cut at every place (a CR and its LF in different
//! reads, a line ending exactly at a read's end, one byte per read), and the answers must be
//! the same each time; a line of exactly `max_header_line` bytes is served and one byte more
//! gets a 431, wherever the reads end.

use crate::support;
use crate::tiny_http_common;

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use support::http::*;
use tiny_http::{ExternalStream, Limits, Request, Server};
use tiny_http_common::*;

const MAX_LINE: usize = 64;

/// Hands out its chunks one per read, then end of stream; keeps what the server wrote and
/// says when the server dropped it (the connection ended).
struct ScriptedStream {
    chunks: VecDeque<Vec<u8>>,
    written: Arc<Mutex<Vec<u8>>>,
    ended: Sender<()>,
}

impl Read for ScriptedStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(chunk) = self.chunks.front_mut() else {
            return Ok(0);
        };
        let n = chunk.len().min(buf.len());
        buf[..n].copy_from_slice(&chunk[..n]);
        chunk.drain(..n);
        if chunk.is_empty() {
            self.chunks.pop_front();
        }
        Ok(n)
    }
}

impl Write for ScriptedStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.written
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for ScriptedStream {
    fn drop(&mut self) {
        let _ = self.ended.send(());
    }
}

impl ExternalStream for ScriptedStream {
    fn peer_addr(&self) -> Option<SocketAddr> {
        None
    }
    fn set_read_timeout(&self, _: Option<Duration>) -> io::Result<()> {
        Ok(())
    }
    fn set_write_timeout(&self, _: Option<Duration>) -> io::Result<()> {
        Ok(())
    }
    fn shutdown(&self) -> io::Result<()> {
        Ok(())
    }
}

/// Answers with what it was asked: request line, headers in order, body.
fn echo(mut request: Request) {
    let mut body = Vec::new();
    let _ = request.as_reader().read_to_end(&mut body);
    let mut text = format!(
        "{} {} HTTP/{}\n",
        request.method(),
        request.url(),
        request.http_version()
    );
    for header in request.headers() {
        text.push_str(&format!("{}: {}\n", header.field, header.value));
    }
    text.push_str(&format!("body: {}\n", String::from_utf8_lossy(&body)));
    let mut writer = request.into_writer();
    let _ = write!(
        writer,
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{text}",
        text.len()
    );
    let _ = writer.flush();
}

fn echo_server() -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let limits = Limits {
        max_header_line: MAX_LINE,
        ..Limits::default()
    };
    Server::from_listener_serving(listener, limits, Arc::new(echo)).unwrap()
}

/// Everything the server wrote on a connection fed `chunks`, once it closed the connection;
/// `Date` lines (in an interim `100 Continue`) are left out.
fn served(server: &Server, chunks: Vec<Vec<u8>>) -> String {
    let written = Arc::new(Mutex::new(Vec::new()));
    let (ended, end) = channel();
    server.serve_stream(Box::new(ScriptedStream {
        chunks: chunks.into(),
        written: written.clone(),
        ended,
    }));
    end.recv_timeout(PATIENCE)
        .expect("the connection ends once the script is read");
    let written = written.lock().unwrap_or_else(PoisonError::into_inner);
    String::from_utf8_lossy(&written)
        .split_inclusive('\n')
        .filter(|line| !line.starts_with("Date: "))
        .collect()
}

fn cut_every(script: &[u8], size: usize) -> Vec<Vec<u8>> {
    script.chunks(size).map(<[u8]>::to_vec).collect()
}

fn cut_at(script: &[u8], at: usize) -> Vec<Vec<u8>> {
    vec![script[..at].to_vec(), script[at..].to_vec()]
}

fn ok(echo: &str) -> String {
    format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{echo}", echo.len())
}

/// A header line of exactly `MAX_LINE` bytes without its line ending.
fn line_at_limit(name: &str) -> String {
    let line = format!("{name}: {}", "v".repeat(MAX_LINE - name.len() - 2));
    assert_eq!(line.len(), MAX_LINE);
    line
}

/// Pipelined requests with CRLF and bare-LF endings, bodies right after their heads, an
/// `Expect: 100-continue`, a header line and a request line of exactly the limit, and a
/// last request that closes.
fn pipelined_script() -> (Vec<u8>, String) {
    let long_header = line_at_limit("X-Fits");
    let long_target = format!("/{}", "t".repeat(MAX_LINE - "GET / HTTP/1.1".len()));
    let long_request_line = format!("GET {long_target} HTTP/1.1");
    assert_eq!(long_request_line.len(), MAX_LINE);
    let script = [
        "GET /a HTTP/1.1\r\nHost: x\r\nX-One: 1\r\n\r\n".to_string(),
        "POST /b HTTP/1.1\nHost: y\nContent-Length: 5\n\nhello".to_string(),
        format!("GET /c?q=1 HTTP/1.1\r\nHost: z\r\n{long_header}\r\n\r\n"),
        "PUT /e HTTP/1.1\r\nHost: v\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc".to_string(),
        format!("{long_request_line}\nHost: u\n\n"),
        "GET /d HTTP/1.0\r\nHost: w\r\n\r\n".to_string(),
    ]
    .concat();
    let answers = [
        ok("GET /a HTTP/1.1\nHost: x\nX-One: 1\nbody: \n"),
        ok("POST /b HTTP/1.1\nHost: y\nContent-Length: 5\nbody: hello\n"),
        ok(&format!("GET /c?q=1 HTTP/1.1\nHost: z\n{long_header}\nbody: \n")),
        "HTTP/1.1 100 Continue\r\nServer: tiny-http (Rust)\r\nContent-Length: 0\r\n\r\n".to_string(),
        ok("PUT /e HTTP/1.1\nHost: v\nExpect: 100-continue\nContent-Length: 3\nbody: abc\n"),
        ok(&format!("GET {long_target} HTTP/1.1\nHost: u\nbody: \n")),
        ok("GET /d HTTP/1.0\nHost: w\nbody: \n"),
    ]
    .concat();
    (script.into_bytes(), answers)
}

#[test]
fn pipelined_heads_are_answered_the_same_wherever_the_reads_end() {
    let server = echo_server();
    let (script, answers) = pipelined_script();
    assert_eq!(served(&server, vec![script.clone()]), answers, "in one read");
    let mut wrong = Vec::new();
    for size in 1..=8 {
        if served(&server, cut_every(&script, size)) != answers {
            wrong.push(format!("reads of {size} bytes"));
        }
    }
    for at in 1..script.len() {
        if served(&server, cut_at(&script, at)) != answers {
            let (before, after) = script.split_at(at);
            let before = String::from_utf8_lossy(&before[before.len().saturating_sub(8)..]);
            let after = String::from_utf8_lossy(&after[..after.len().min(8)]);
            wrong.push(format!("cut at {at}: {before:?} | {after:?}"));
        }
    }
    assert!(wrong.is_empty(), "answers differ when {}", wrong.join(", "));
}

/// The request cut at every place and into reads of every small size.
fn every_cut(script: &[u8]) -> impl Iterator<Item = (String, Vec<Vec<u8>>)> + '_ {
    let sizes = (1..=8).map(|size| (format!("reads of {size} bytes"), cut_every(script, size)));
    let cuts = (1..script.len()).map(|at| (format!("cut at {at}"), cut_at(script, at)));
    std::iter::once(("one read".to_string(), vec![script.to_vec()]))
        .chain(sizes)
        .chain(cuts)
}

fn status_line(answer: &str) -> &str {
    answer.split("\r\n").next().unwrap_or("")
}

#[test]
fn one_byte_over_the_line_limit_gets_431_wherever_the_reads_end() {
    let server = echo_server();
    let over_header = format!("{}v", line_at_limit("X-Over"));
    let over_target = format!("/{}", "t".repeat(MAX_LINE + 1 - "GET / HTTP/1.1".len()));
    let scripts = [
        ("header line", format!("GET / HTTP/1.1\r\nHost: x\r\n{over_header}\r\n\r\n")),
        ("bare-LF header line", format!("GET / HTTP/1.1\nHost: x\n{over_header}v\n\n")),
        ("request line", format!("GET {over_target} HTTP/1.1\r\nHost: x\r\n\r\n")),
        // Cut at the limit, not once its line ends: the stream then ends without a LF.
        ("line without end", format!("GET / HTTP/1.1\r\nHost: x\r\n{over_header}v")),
    ];
    let mut wrong = Vec::new();
    for (name, script) in &scripts {
        for (cut, chunks) in every_cut(script.as_bytes()) {
            let answer = served(&server, chunks);
            if status_line(&answer) != "HTTP/1.1 431 Request Header Fields Too Large" {
                wrong.push(format!("{name}, {cut}: {:?}", status_line(&answer)));
            }
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

#[test]
fn line_ending_faults_are_found_wherever_the_reads_end() {
    let server = echo_server();
    let scripts = [
        ("bare CR in a header", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n", "HTTP/1.1 400 Bad Request"),
        ("two CRs before LF", "GET / HTTP/1.1\r\nHost: x\r\r\n\r\n", "HTTP/1.1 400 Bad Request"),
        ("non-ASCII byte", "GET / HTTP/1.1\r\nHost: x\r\nX-A: caf\u{e9}\r\n\r\n", "HTTP/1.1 400 Bad Request"),
        ("HTTP/2.0 request line", "GET / HTTP/2.0\r\nHost: x\r\n\r\n", "HTTP/1.1 505 HTTP Version Not Supported"),
    ];
    let mut wrong = Vec::new();
    for (name, script, status) in scripts {
        for (cut, chunks) in every_cut(script.as_bytes()) {
            let answer = served(&server, chunks);
            if status_line(&answer) != status || answer.matches("HTTP/1.1").count() != 1 {
                wrong.push(format!("{name}, {cut}: {answer:?}"));
            }
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

/// Change 35: a buffer's lines are scanned eight bytes at a time for their LF, a CR or a
/// non-ASCII byte. Header lines of every length across two words are read back exactly; a
/// CR or a non-ASCII byte at each place in a line's words gets a 400 (a 431 when the line is
/// also too long); and a body right after a head, holding CRs, LFs and non-ASCII bytes, is
/// the body, not head, with the request after it served; wherever the reads end.
#[test]
fn head_lines_are_scanned_by_word_wherever_the_reads_end() {
    let server = echo_server();
    let mut wrong = Vec::new();

    let mut script = String::new();
    let mut answers = String::new();
    for length in 0..=20 {
        let value = "v".repeat(length);
        script.push_str(&format!(
            "GET /{length} HTTP/1.1\r\nX: {value}\nHost: h{value}\r\n\r\n"
        ));
        answers.push_str(&ok(&format!(
            "GET /{length} HTTP/1.1\nX: {value}\nHost: h{value}\nbody: \n"
        )));
    }
    let mut script = script.into_bytes();
    script.extend_from_slice(b"POST /b HTTP/1.1\nContent-Length: 6\n\n\r\xff\n\r\nx");
    script.extend_from_slice(b"GET /after HTTP/1.1\r\n\r\n");
    answers.push_str(&ok(
        "POST /b HTTP/1.1\nContent-Length: 6\nbody: \r\u{fffd}\n\r\nx\n",
    ));
    answers.push_str(&ok("GET /after HTTP/1.1\nbody: \n"));
    for (cut, chunks) in every_cut(&script) {
        if served(&server, chunks) != answers {
            wrong.push(format!("clean lines, {cut}"));
        }
    }

    let good = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
    let good_answer = ok("GET /a HTTP/1.1\nHost: x\nbody: \n");
    for place in 0..17 {
        let (before, after) = ("w".repeat(place), "z".repeat(16 - place));
        for (fault, status) in [
            (&b"\r"[..], "HTTP/1.1 400 Bad Request"),
            (&[0xe9][..], "HTTP/1.1 400 Bad Request"),
        ] {
            for (line, status) in [
                (format!("X-A: {before}#{after}"), status),
                (format!("GET /{before}#{after} HTTP/1.1"), status),
                (
                    format!("X-B: {before}#{after}{}", "o".repeat(MAX_LINE)),
                    "HTTP/1.1 431 Request Header Fields Too Large",
                ),
            ] {
                let head = if line.starts_with("GET") {
                    format!("{line}\r\nHost: x\r\n\r\n")
                } else {
                    format!("GET / HTTP/1.1\r\n{line}\r\n\r\n")
                };
                let mut script = good.as_bytes().to_vec();
                for byte in head.bytes() {
                    match byte {
                        b'#' => script.extend_from_slice(fault),
                        byte => script.push(byte),
                    }
                }
                // One read, and reads of every size that puts the fault at each place of a
                // read's words.
                let reads = (1..=9).map(|size| cut_every(&script, size));
                for (cut, chunks) in std::iter::once(vec![script.clone()])
                    .chain(reads)
                    .enumerate()
                {
                    let answer = served(&server, chunks);
                    let rejected = answer.strip_prefix(good_answer.as_str()).unwrap_or("");
                    if status_line(rejected) != status || rejected.matches("HTTP/1.1").count() != 1
                    {
                        wrong.push(format!("{line:?} with {fault:?}, cut {cut}: {answer:?}"));
                    }
                }
            }
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

/// Change 36: the head's text and its method become `str`s through an ASCII check, not
/// UTF-8 validation. Standard and other methods, and every header, read back exactly; a
/// method with a non-ASCII byte gets a 400.
#[test]
fn methods_and_heads_read_back_after_the_ascii_check() {
    let server = echo_server();
    let mut script = Vec::new();
    let mut answers = String::new();
    for method in ["GET", "DELETE", "PURGE", "M-SEARCH", "get", "X"] {
        let head = format!("{method} /{method}?a=%20 HTTP/1.1\r\nHost: x\r\nX-Tab:\ta\tb \r\n\r\n");
        script.extend_from_slice(head.as_bytes());
        answers.push_str(&ok(&format!(
            "{method} /{method}?a=%20 HTTP/1.1\nHost: x\nX-Tab: a\tb\nbody: \n"
        )));
    }
    script.extend_from_slice(b"G\xc9T / HTTP/1.1\r\nHost: x\r\n\r\n");
    answers.push_str(
        "HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
    );
    for (cut, chunks) in every_cut(&script).step_by(7) {
        assert_eq!(served(&server, chunks), answers, "{cut}");
    }
}

/// The same over real TCP: a head written a byte at a time, then pipelined requests in one
/// write, on one keep-alive connection.
#[test]
fn a_head_written_a_byte_at_a_time_then_pipelined_requests_over_tcp() {
    let server = echo_server();
    let addr = server.server_addr().to_ip().unwrap();
    let mut client = connect(addr);
    client.set_nodelay(true).unwrap();
    for byte in b"GET /slow HTTP/1.1\r\nHost: x\r\nX-Long: header\r\n\r\n" {
        client.write_all(&[*byte]).unwrap();
    }
    let (head, body) = read_sized_response(&mut client).unwrap();
    assert_eq!(status_of(&head), 200, "{head}");
    assert_eq!(body, b"GET /slow HTTP/1.1\nHost: x\nX-Long: header\nbody: \n");

    client
        .write_all(b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nPOST /2 HTTP/1.1\nHost: x\nContent-Length: 2\n\nhiGET /3 HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    for expected in [
        &b"GET /1 HTTP/1.1\nHost: x\nbody: \n"[..],
        b"POST /2 HTTP/1.1\nHost: x\nContent-Length: 2\nbody: hi\n",
        b"GET /3 HTTP/1.1\nHost: x\nbody: \n",
    ] {
        let (head, body) = read_sized_response(&mut client).unwrap();
        assert_eq!(status_of(&head), 200, "{head}");
        assert_eq!(body, expected, "{}", String::from_utf8_lossy(&body));
    }
}
