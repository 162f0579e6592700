use std::convert::TryInto;

use ascii::{AsciiStr, AsciiString};
use std::io::Error as IoError;
use std::io::{BufRead, BufReader, BufWriter, ErrorKind, Write};

use std::net::SocketAddr;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::common::{HTTPVersion, Method, StatusCode};
use crate::external::SharedExternal;
use crate::head::{HeaderSpan, RequestHead, SpareHead};
use crate::request::{DrainFlags, FromConnection};
use crate::util::refined_tcp_stream::ReadPolicy;
use crate::util::refined_tcp_stream::TcpSocket;
use crate::util::RefinedTcpStream;
use crate::util::{Drain, DrainEntry};
use crate::util::{SequentialReader, SequentialReaderBuilder, SequentialWriterBuilder};
use crate::Limits;
use crate::Preface;
use crate::Request;
use crate::ShutdownHandle;

/// Bytes of response buffered before a write reaches the socket: a small response's head
/// and body, written separately, leave in one segment at the flush.
const RESPONSE_BUFFER: usize = 4 * 1024;

/// Bounds of the capacity a request head's text starts with: the previous head's length,
/// rounded up to a power of two, so a connection's heads rarely grow their buffer and one
/// large head does not make every later one allocate as much.
const HEAD_CAPACITY: Range<usize> = 256..4096;

/// A ClientConnection is an object that will store a socket to a client
/// and return Request objects.
pub struct ClientConnection {
    // address of the client
    remote_addr: Option<SocketAddr>,

    /// Set when the connection came through `Server::serve_stream`.
    external: Option<SharedExternal>,

    /// The external stream's `session`, asked once, after the first request head.
    session: Option<Option<Arc<dyn std::any::Any + Send + Sync>>>,

    // sequence of Readers to the stream, so that the data is not read in
    //  the wrong order
    source: SequentialReaderBuilder<BufReader<RefinedTcpStream>>,

    // Reader to read the next header from
    next_header_source: SequentialReader<BufReader<RefinedTcpStream>>,

    // Dropped after the readers (fields drop in order): the write half holds the slot in
    //  the live connection count, which must not be released while a descriptor is open.
    // sequence of Writers to the stream, to avoid writing response #2 before
    //  response #1
    sink: SequentialWriterBuilder<BufWriter<RefinedTcpStream>>,

    // set to true if we know that the previous request is the last one
    no_more_requests: bool,

    // true if the connection goes through SSL
    secure: bool,

    /// Set when a request body was dropped with too much unread: the connection must close.
    body_abandoned: Arc<AtomicBool>,

    /// Shared with the read half of the socket: how long its reads may wait.
    read_policy: Arc<ReadPolicy>,

    limits: Limits,

    /// Handed to every request so a handler can cut the connection.
    shutdown: ShutdownHandle,

    /// True once a request was read: the next one is awaited for `idle_timeout`.
    served_any: bool,

    /// True while waiting for the first byte of a keep-alive connection's next request.
    awaiting_first_byte: bool,

    drain: Arc<Drain>,

    /// Marked idle while `awaiting_first_byte`: a drain closes the connection meanwhile.
    drain_entry: DrainEntry,

    /// Set when the wait for the next request is to go on parked, without a thread
    /// (`crate::parking`); the next read continues the same wait.
    parking: bool,

    /// Set by a request whose response told the client the connection ends (draining).
    response_said_close: Arc<AtomicBool>,

    /// Head buffers given back by the last request (change 34).
    spare_head: Arc<SpareHead>,

    /// The capacity the next request head's text starts with (`HEAD_CAPACITY`).
    head_capacity: usize,

    /// The capacity the next request head's header list starts with: the previous one's
    /// (at most 64).
    headers_capacity: usize,

    /// The TCP socket a preface is read from; dropped once it was read (or not wanted).
    preface_socket: Option<TcpSocket>,

    /// Set by the preface: the first request head shares its deadline.
    first_head_deadline: Option<Instant>,

    /// The socket under the connection, open as long as the connection is.
    pollable_fd: Option<std::os::fd::RawFd>,
}

/// Error that can happen when reading a request.
#[derive(Debug)]
enum ReadError {
    /// The head cannot be served: answered with this status and `Connection: close`, because
    /// where the next request would start is unknown (400 malformed, 431 too large, 501
    /// unsupported transfer coding, 505 unsupported HTTP version).
    Rejected(StatusCode),
    /// the client sent an unrecognized `Expect` header
    ExpectationFailed,
    ReadIoError(IoError),
}

impl ClientConnection {
    /// Creates a new `ClientConnection` that takes ownership of the `TcpStream`.
    pub fn new(
        write_socket: RefinedTcpStream,
        mut read_socket: RefinedTcpStream,
        limits: Limits,
        drain: Arc<Drain>,
    ) -> ClientConnection {
        // A client that disconnected right after connecting has no peer address any more.
        let remote_addr = read_socket.peer_addr().ok().flatten();
        let secure = read_socket.secure();
        let external = read_socket.external();
        let body_abandoned = read_socket.body_abandoned();
        let read_policy = read_socket.read_policy();
        let shutdown = read_socket.shutdown_handle();
        let preface_socket = read_socket.tcp_socket();
        let pollable_fd = read_socket.pollable_fd();
        let drain_entry = drain.register(&shutdown);

        let mut source = SequentialReaderBuilder::new(BufReader::with_capacity(1024, read_socket));
        let first_header = source.next().unwrap();

        ClientConnection {
            source,
            sink: SequentialWriterBuilder::new(BufWriter::with_capacity(
                RESPONSE_BUFFER,
                write_socket,
            )),
            remote_addr,
            external,
            session: None,
            next_header_source: first_header,
            no_more_requests: false,
            secure,
            body_abandoned,
            read_policy,
            limits,
            shutdown,
            served_any: false,
            awaiting_first_byte: false,
            drain_entry,
            drain,
            parking: false,
            response_said_close: Arc::default(),
            spare_head: Arc::default(),
            head_capacity: HEAD_CAPACITY.start,
            headers_capacity: 8,
            preface_socket,
            first_head_deadline: None,
            pollable_fd,
        }
    }

    /// Runs `preface` on the TCP socket before the first request; on success its address,
    /// if any, becomes the connection's remote address. The first head's deadline starts
    /// now, so the preface and that head together get `header_timeout`.
    pub(crate) fn read_preface(&mut self, preface: &Preface) -> Result<(), IoError> {
        let deadline = Instant::now() + self.limits.header_timeout;
        let socket = self.preface_socket.take();
        let tcp = socket
            .as_ref()
            .and_then(TcpSocket::tcp)
            .ok_or_else(|| IoError::new(ErrorKind::Unsupported, "a preface needs a TCP socket"))?;
        if let Some(client) = preface(tcp, deadline)? {
            self.remote_addr = Some(client);
        }
        self.first_head_deadline = Some(deadline);
        Ok(())
    }

    /// Reads a request head from self.next_header_source onto the end of `text`, line
    /// endings included, and puts its header lines' ranges in `headers`; returns the request
    /// line's method, target range and version. Every line is ASCII when this returns `Ok`.
    ///
    /// A line ends at `LF` (after `CR` or bare); a `CR` anywhere else is malformed. The next
    /// read starts at the first byte after the head.
    ///
    /// The lines are scanned in the bytes already buffered, every line of a buffer in one
    /// pass, and the head is copied into `text` once per buffer: read a line per call, each
    /// asking the reader for its buffer and copied on its own, a header line cost about 270
    /// instructions.
    fn read_head(
        &mut self,
        text: &mut Vec<u8>,
        headers: &mut Vec<HeaderSpan>,
    ) -> Result<(Method, Range<usize>, HTTPVersion), ReadError> {
        // The bytes before the LF, a CR included, may number `max_header_line + 1`: a line
        // of `max_header_line` bytes fits with its CRLF.
        let most = self.limits.max_header_line.saturating_add(1);
        let max_headers = self.limits.max_headers;
        // Where in `text` the line being read starts.
        let mut line_start = text.len();
        let mut request_line = None;

        loop {
            let available = match self.next_header_source.fill_buf() {
                Ok([]) => {
                    return Err(ReadError::ReadIoError(IoError::new(
                        ErrorKind::ConnectionAborted,
                        "Unexpected EOF",
                    )))
                }
                Ok(available) => available,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(ReadError::ReadIoError(e)),
            };
            // The next request has started: from now on its whole head has `header_timeout`.
            if self.awaiting_first_byte {
                self.awaiting_first_byte = false;
                // As `leave_idle`, which cannot be called while `available` borrows the reader.
                self.drain_entry.leave_idle();
                self.read_policy.set_awaiting_request(false);
                self.read_policy.set_head_wait(self.limits.header_timeout);
            }
            // Checked once bytes came: only then has the previous body been dropped.
            if self.body_abandoned.load(Ordering::Acquire) {
                return Err(ReadError::ReadIoError(IoError::new(
                    ErrorKind::ConnectionAborted,
                    "previous request body left unread",
                )));
            }

            // `available[i]` is, once copied, `text[base + i]`; `copied` bytes of it are.
            let base = text.len();
            let mut copied = 0;
            let mut from = 0;
            while let Some(special) = first_special(&available[from..]) {
                let special = from + special;
                // A line within this buffer that ends at the first LF, CR LF, or non-ASCII
                // byte found is clean; any other needs its LF found and its bytes checked.
                let (line_feed, clean) = match available[special..] {
                    [b'\n', ..] => (special, line_start >= base),
                    [b'\r', b'\n', ..] => (special + 1, line_start >= base),
                    _ => match available[special..].iter().position(|&byte| byte == b'\n') {
                        Some(found) => (special + found, false),
                        None => break,
                    },
                };
                from = line_feed + 1;
                if base + line_feed - line_start > most {
                    return Err(ReadError::Rejected(StatusCode(431)));
                }
                // A line begun in an earlier buffer is completed in `text`.
                let line = if line_start >= base {
                    &available[line_start - base..line_feed]
                } else {
                    text.extend_from_slice(&available[copied..from]);
                    copied = from;
                    &text[line_start..base + line_feed]
                };
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                if !clean && (line.contains(&b'\r') || !line.is_ascii()) {
                    return Err(ReadError::Rejected(StatusCode(400)));
                }
                let offset = line_start;
                line_start = base + from;

                if request_line.is_none() {
                    let (method, target, version) = parse_request_line(line)?;
                    let target = target.start + offset..target.end + offset;
                    request_line = Some((method, target, version));
                    continue;
                }
                if line.is_empty() {
                    text.extend_from_slice(&available[copied..from]);
                    self.next_header_source.consume(from);
                    return request_line.ok_or(ReadError::Rejected(StatusCode(400)));
                }
                if headers.len() == max_headers {
                    return Err(ReadError::Rejected(StatusCode(431)));
                }
                let HeaderSpan { name, value } = parse_header_line(line)?;
                headers.push(HeaderSpan {
                    name: name.start + offset..name.end + offset,
                    value: value.start + offset..value.end + offset,
                });
            }
            if base + available.len() - line_start > most {
                return Err(ReadError::Rejected(StatusCode(431)));
            }
            text.extend_from_slice(&available[copied..]);
            let used = available.len();
            self.next_header_source.consume(used);
        }
    }

    /// Reads a request from the stream.
    /// Blocks until the header has been read.
    fn read(&mut self) -> Result<Request, ReadError> {
        let request = self.read_request();
        if request.is_err() && self.read_policy.take_parking_request() {
            // Still idle, still registered with the drain, while parked; holding no head
            // buffers meanwhile.
            self.parking = true;
            self.spare_head.take();
        } else {
            self.leave_idle();
        }
        request
    }

    fn leave_idle(&mut self) {
        self.drain_entry.leave_idle();
        self.read_policy.set_awaiting_request(false);
    }

    /// True when the connection stopped waiting for its next request so it can be parked:
    /// it is to be handed to the parking thread, not closed.
    pub(crate) fn wants_parking(&self) -> bool {
        self.parking
    }

    /// The socket the parking thread waits on.
    pub(crate) fn pollable_fd(&self) -> Option<std::os::fd::RawFd> {
        self.pollable_fd
    }

    /// When the wait for the next request ends in the idle timeout.
    pub(crate) fn idle_deadline(&self) -> Option<Instant> {
        self.read_policy.head_deadline()
    }

    fn read_request(&mut self) -> Result<Request, ReadError> {
        // A new connection must send its whole head within `header_timeout`; a keep-alive one
        // may stay silent for `idle_timeout`, then gets `header_timeout` from its first byte.
        if self.parking {
            // Back from parking: the same wait goes on, with the same deadline.
            self.parking = false;
        } else if self.served_any {
            if !self.drain_entry.enter_idle() {
                return Err(ReadError::ReadIoError(IoError::new(
                    ErrorKind::ConnectionAborted,
                    "server draining",
                )));
            }
            self.read_policy.set_awaiting_request(true);
            self.awaiting_first_byte = true;
            self.read_policy.set_head_wait(self.limits.idle_timeout);
        } else {
            // Without a preface the socket is not needed past this point.
            self.preface_socket = None;
            match self.first_head_deadline.take() {
                Some(deadline) => self.read_policy.set_head_deadline(Some(deadline)),
                None => self.read_policy.set_head_wait(self.limits.header_timeout),
            }
        }
        // The head's lines are read into one buffer the request keeps: the target and the
        // headers are ranges of it.
        let (mut text, mut headers) = self.spare_head.take().unwrap_or_else(|| {
            (
                Vec::with_capacity(self.head_capacity),
                Vec::with_capacity(self.headers_capacity),
            )
        });
        let (method, target, version) = self.read_head(&mut text, &mut headers)?;
        self.head_capacity = text
            .len()
            .next_power_of_two()
            .clamp(HEAD_CAPACITY.start, HEAD_CAPACITY.end);
        self.headers_capacity = headers.capacity().min(64);
        // Every line was checked to be ASCII; checked again as ASCII (a word at a time), it
        // becomes a `String` without `String::from_utf8`'s validation, about 90 instructions
        // dearer for a short head.
        let text = AsciiString::from_ascii(text)
            .map(String::from)
            .map_err(|_| ReadError::Rejected(StatusCode(400)))?;
        let head = RequestHead::new(text, target, headers);

        // The body is read with the idle timeout per read.
        self.read_policy.set_head_deadline(None);
        self.served_any = true;

        // building the writer for the request
        let writer = self.sink.next().unwrap();

        // A body is read from the reader that read the head; the next head then waits for
        // its turn on a new one.
        let (source, next_header_source) = (&mut self.source, &mut self.next_header_source);
        let data_source = move || {
            let mut data_source = source.next().unwrap();
            std::mem::swap(next_header_source, &mut data_source);
            data_source
        };

        let external = &self.external;
        let session = self
            .session
            .get_or_insert_with(|| external.as_ref().and_then(SharedExternal::session))
            .clone();
        let from_connection = FromConnection {
            shutdown: self.shutdown.clone(),
            drain_flags: Some(DrainFlags {
                server_draining: self.drain.keep_alive_flag(),
                said_close: self.response_said_close.clone(),
            }),
            session,
            external: self.external.clone(),
            spare_head: Some(self.spare_head.clone()),
        };

        // building the next reader
        crate::request::new_request(
            self.secure,
            method,
            head,
            version,
            self.remote_addr,
            data_source,
            writer,
            self.body_abandoned.clone(),
            from_connection,
        )
        .map_err(|e| {
            use crate::request;
            match e {
                request::RequestCreationError::CreationIoError(e) => ReadError::ReadIoError(e),
                request::RequestCreationError::ExpectationFailed => ReadError::ExpectationFailed,
                request::RequestCreationError::BadFraming(status) => ReadError::Rejected(status),
            }
        })
    }
}

impl ClientConnection {
    /// Answers a request that cannot be served with a bodiless error; the caller closes.
    fn reject(&mut self, status: StatusCode) {
        let mut writer = self.sink.next().unwrap();
        let head = format!(
            "HTTP/1.1 {} {}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
            status.0,
            status.default_reason_phrase()
        );
        writer
            .write_all(head.as_bytes())
            .and_then(|_| writer.flush())
            .ok();
    }
}

impl Iterator for ClientConnection {
    type Item = Request;

    /// Blocks until the next Request is available.
    /// Returns None when no new Requests will come from the client.
    fn next(&mut self) -> Option<Request> {
        // the client sent a "connection: close" header in this previous request
        //  or is using HTTP 1.0, meaning that no new request will come
        if self.no_more_requests || self.response_said_close.load(Ordering::Acquire) {
            return None;
        }

        let rq = match self.read() {
            Err(_) if self.parking => return None,

            Err(ReadError::Rejected(status)) => {
                self.reject(status);
                return None;
            }

            Err(ReadError::ReadIoError(ref err)) if err.kind() == ErrorKind::TimedOut => {
                // An idle keep-alive connection closes quietly; a slow head gets a 408.
                if !self.awaiting_first_byte {
                    self.reject(StatusCode(408));
                }
                return None; // closing the connection
            }

            Err(ReadError::ExpectationFailed) => {
                self.reject(StatusCode(417));
                return None; // TODO: should be recoverable, but needs handling in case of body
            }

            Err(ReadError::ReadIoError(_)) => return None,

            Ok(rq) => rq,
        };

        // A request saying close or upgrade is the last; an HTTP/1.0 one too unless it asks
        // for keep-alive.
        let connection = rq.connection_header();
        if connection.close
            || connection.upgrade
            || (!connection.keep_alive && *rq.http_version() == HTTPVersion(1, 0))
        {
            self.no_more_requests = true;
        }

        Some(rq)
    }
}

/// Where the first LF, CR or non-ASCII byte of `bytes` is: the bytes before it are the
/// plain ASCII of a line. Looked for eight bytes at a time (each kind is a zero byte of the
/// word XORed with it, or a high bit), where searching for the LF and then for a CR in the
/// line cost about 57 instructions each and the ASCII check some more, per line.
fn first_special(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // The high bit of each zero byte of `word`; none below the first is set spuriously.
    let zeros = |word: u64| word.wrapping_sub(ONES) & !word & HIGHS;
    let mut words = bytes.chunks_exact(8);
    let mut at = 0;
    for word in &mut words {
        let word = u64::from_le_bytes(word.try_into().unwrap_or_default());
        let found = zeros(word ^ (ONES * u64::from(b'\n')))
            | zeros(word ^ (ONES * u64::from(b'\r')))
            | (word & HIGHS);
        if found != 0 {
            return Some(at + (found.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    words
        .remainder()
        .iter()
        .position(|&byte| byte == b'\n' || byte == b'\r' || !byte.is_ascii())
        .map(|found| at + found)
}

/// Parses a "HTTP/1.1" string: 1.0 and 1.1 are served, other well-formed versions get 505.
fn parse_http_version(version: &[u8]) -> Result<HTTPVersion, ReadError> {
    match version {
        b"HTTP/1.0" => Ok(HTTPVersion(1, 0)),
        b"HTTP/1.1" => Ok(HTTPVersion(1, 1)),
        _ => {
            let well_formed = match version.strip_prefix(b"HTTP/") {
                Some([major, b'.', minor]) => major.is_ascii_digit() && minor.is_ascii_digit(),
                Some([major]) => major.is_ascii_digit(),
                _ => false,
            };
            Err(ReadError::Rejected(StatusCode(if well_formed {
                505
            } else {
                400
            })))
        }
    }
}

/// Parses the request line of the request (ASCII, as `read_head` passes it): exactly
/// `METHOD SP target SP version` once the whitespace around it is trimmed.
/// eg. GET / HTTP/1.1
fn parse_request_line(line: &[u8]) -> Result<(Method, Range<usize>, HTTPVersion), ReadError> {
    let bad_request = || ReadError::Rejected(StatusCode(400));
    let mut parts = trim_whitespace(line).split(|&byte| byte == b' ');
    let (method, path, version) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(method), Some(path), Some(version), None)
            if !method.is_empty() && !path.is_empty() =>
        {
            (method, path, version)
        }
        _ => return Err(bad_request()),
    };
    let version = parse_http_version(version)?;
    let method = ascii_text(method).parse().map_err(|_| bad_request())?;
    Ok((method, range_in(line, path), version))
}

/// Where `part`, a subslice of `line`, is in it.
fn range_in(line: &[u8], part: &[u8]) -> Range<usize> {
    let start = part.as_ptr() as usize - line.as_ptr() as usize;
    start..start + part.len()
}

/// Bytes of a line `read_head` accepted (ASCII, so valid UTF-8), through the ASCII check:
/// `str::from_utf8` cost about 50 instructions for a method.
fn ascii_text(bytes: &[u8]) -> &str {
    AsciiStr::from_ascii(bytes).map_or("", AsciiStr::as_str)
}

/// Whitespace as `str::trim` sees it, in ASCII: HT, LF, VT, FF, CR and space.
fn is_whitespace(byte: &u8) -> bool {
    matches!(byte, b'\t'..=b'\r' | b' ')
}

fn trim_whitespace(mut bytes: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = bytes {
        if !is_whitespace(first) {
            break;
        }
        bytes = rest;
    }
    while let [rest @ .., last] = bytes {
        if !is_whitespace(last) {
            break;
        }
        bytes = rest;
    }
    bytes
}

/// Parses one header line (ASCII, as `read_head` passes it) into its name and its
/// value without the whitespace around it. A name that is empty or holds whitespace (a
/// folded line, a space before the colon) and control characters in the value are
/// malformed.
///
/// Works on the line's bytes: through `str` and `Header::from_str`, char searches and
/// repeated ASCII checks cost about 650 instructions for a `Host` header.
fn parse_header_line(line: &[u8]) -> Result<HeaderSpan, ReadError> {
    let bad_request = || ReadError::Rejected(StatusCode(400));
    let colon = line
        .iter()
        .position(|&byte| byte == b':')
        .ok_or_else(bad_request)?;
    let name = &line[..colon];
    let value = trim_whitespace(&line[colon + 1..]);
    let is_control = |b: &u8| (*b < 0x20 && *b != b'\t') || *b == 0x7f;
    if name.is_empty() || name.iter().any(is_whitespace) || value.iter().any(is_control) {
        return Err(bad_request());
    }
    Ok(HeaderSpan {
        name: 0..colon,
        value: range_in(line, value),
    })
}

#[cfg(test)]
mod test {
    #[test]
    fn test_parse_request_line() {
        let line = b"GET /hello HTTP/1.1";
        let (method, path, ver) = super::parse_request_line(line).unwrap();

        assert!(method == crate::Method::Get);
        assert!(&line[path] == b"/hello");
        assert!(ver == crate::common::HTTPVersion(1, 1));

        assert!(super::parse_request_line(b"GET /hello").is_err());
        assert!(super::parse_request_line(b"qsd qsd qsd").is_err());
    }
}
