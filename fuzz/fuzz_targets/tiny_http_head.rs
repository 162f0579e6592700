//! The vendored tiny_http's request-head parser against arbitrary client bytes, fed
//! through `Server::serve_stream` on an in-memory stream, as a TLS session is: it never
//! panics (libFuzzer aborts on a panic on any thread), every connection ends once its
//! bytes are read, and what the server answers does not depend on how the bytes are cut
//! into reads (one read against reads of 1–17 bytes drawn from the first input byte),
//! except for the bytes a body that breaks off handed out before its error.
//!
//! Small limits put the 431 edges (line length, header count) within reach.
//!
//! Run from `fuzz/` with `cargo +nightly fuzz run tiny_http_head corpus/tiny_http_head seeds/tiny_http_head`.

#![no_main]

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use tiny_http::{ExternalStream, Limits, Request, Server};

/// Far beyond what one input's connection takes; a connection still open then hangs.
const CONNECTION_BOUND: Duration = Duration::from_secs(20);

/// The most body bytes the handler reads: the input itself is smaller.
const BODY_BOUND: u64 = 1 << 20;

/// Hands out its chunks one per read, then end of stream; keeps what the server wrote and
/// says when the server let go of it (the connection ended).
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

/// Answers with what the parser made of the request: method, target, version, headers in
/// order and the body (or the error that ended it), escaped.
fn echo(mut request: Request) {
    let mut body = Vec::new();
    // A body that breaks off (a malformed chunk) may have handed out some of its bytes,
    // as many as the reads had brought: only the error is compared then.
    let body_end = match request.as_reader().take(BODY_BOUND).read_to_end(&mut body) {
        Ok(_) => "end".to_string(),
        Err(e) => {
            body.clear();
            format!("error {:?}", e.kind())
        }
    };
    let mut text = format!(
        "{} {} HTTP/{}\n",
        request.method(),
        request.url().escape_debug(),
        request.http_version()
    );
    for header in request.headers() {
        text.push_str(&format!("{}: {}\n", header.field, header.value.as_str().escape_debug()));
    }
    text.push_str(&format!("body {}: {}\n", body.escape_ascii(), body_end));
    let mut writer = request.into_writer();
    let _ = write!(writer, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{text}", text.len());
    let _ = writer.flush();
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        // The listener is never connected to: every connection comes through serve_stream.
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback listener");
        let limits = Limits { max_header_line: 64, max_headers: 8, ..Limits::default() };
        Server::from_listener_serving(listener, limits, Arc::new(echo)).expect("a server")
    })
}

/// Everything the server wrote on a connection fed `chunks`, once it let the connection go;
/// `Date` lines (in an interim `100 Continue`) are left out.
fn served(chunks: VecDeque<Vec<u8>>) -> String {
    let written = Arc::new(Mutex::new(Vec::new()));
    let (ended, end) = channel();
    server().serve_stream(Box::new(ScriptedStream { chunks, written: written.clone(), ended }));
    end.recv_timeout(CONNECTION_BOUND).expect("the connection ends once its bytes are read");
    let written = written.lock().unwrap_or_else(PoisonError::into_inner);
    String::from_utf8_lossy(&written)
        .split_inclusive('\n')
        .filter(|line| !line.starts_with("Date: "))
        .collect()
}

/// Cuts `script` into reads of 1–17 bytes, sizes drawn from `seed`.
fn cut(script: &[u8], seed: u8) -> VecDeque<Vec<u8>> {
    let mut state = u32::from(seed) | 0x100;
    let mut chunks = VecDeque::new();
    let mut rest = script;
    while !rest.is_empty() {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let size = (state % 17 + 1) as usize;
        let (chunk, after) = rest.split_at(size.min(rest.len()));
        chunks.push_back(chunk.to_vec());
        rest = after;
    }
    chunks
}

fuzz_target!(|data: &[u8]| {
    let Some((&seed, script)) = data.split_first() else {
        return;
    };
    let whole = served(VecDeque::from([script.to_vec()]));
    let pieces = served(cut(script, seed));
    assert_eq!(whole, pieces, "the answers depend on where the reads end");
});
