use std::io::Error as IoError;
use std::io::{self, Cursor, ErrorKind, Read, Write};

use std::fmt;
use std::net::SocketAddr;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;

use crate::external::SharedExternal;
use crate::head::{RequestHead, RequestHeaders, SpareHead};
use crate::shutdown::ShutdownHandle;
use crate::util::{BodyDrain, EqualReader, FusedReader};
use crate::{HTTPVersion, Method, Response, StatusCode};
use chunked_transfer::Decoder;

/// Represents an HTTP request made by a client.
///
/// A `Request` object is what is produced by the server, and is your what
/// your code must analyse and answer.
///
/// This object implements the `Send` trait, therefore you can dispatch your requests to
/// worker threads.
///
/// # Pipelining
///
/// If a client sends multiple requests in a row (without waiting for the response), then you will
/// get multiple `Request` objects simultaneously. This is called *requests pipelining*.
/// Tiny-http automatically reorders the responses so that you don't need to worry about the order
/// in which you call `respond` or `into_writer`.
///
/// This mechanic is disabled if:
///
///  - The body of a request is large enough (handling requires pipelining requires storing the
///    body of the request in a buffer ; if the body is too big, tiny-http will avoid doing that)
///  - A request sends a `Expect: 100-continue` header (which means that the client waits to
///    know whether its body will be processed before sending it)
///  - A request sends a `Connection: close` header or `Connection: upgrade` header (used for
///    websockets), which indicates that this is the last request that will be received on this
///    connection
///
/// # Automatic cleanup
///
/// If a `Request` object is destroyed without `into_writer` or `respond` being called,
/// an empty response with a 500 status code (internal server error) will automatically be
/// sent back to the client.
/// This means that if your code fails during the handling of a request, this "internal server
/// error" response will automatically be sent during the stack unwinding.
///
/// # Testing
///
/// If you want to build fake requests to test your server, use [`TestRequest`](crate::test::TestRequest).
pub struct Request {
    // where to read the body from
    data_reader: Option<Box<dyn Read + Send + 'static>>,

    // if this writer is empty, then the request has been answered
    response_writer: Option<Box<dyn Write + Send + 'static>>,

    remote_addr: Option<SocketAddr>,

    // true if HTTPS, false if HTTP
    secure: bool,

    /// What the connection's external stream told about its session (`ExternalStream::session`).
    session: Option<Arc<dyn std::any::Any + Send + Sync>>,

    method: Method,

    /// The target and the headers.
    head: RequestHead,

    http_version: HTTPVersion,

    body_length: Option<usize>,

    // true if a `100 Continue` response must be sent when `as_reader()` is called
    must_send_continue: bool,

    // If Some, a message must be sent after responding
    notify_when_responded: Option<Sender<()>>,

    /// The shared stream when the connection came through `Server::serve_stream`.
    external: Option<SharedExternal>,

    shutdown: ShutdownHandle,

    /// Shared with the server and the connection; `None` for a request that came from no
    /// connection (`TestRequest`). Not made per request and then replaced: two `Arc`s
    /// allocated and freed cost about 450 instructions per request.
    drain_flags: Option<DrainFlags>,

    /// What its `Connection` header says, for the connection to decide whether another
    /// request follows.
    connection: ConnectionHeader,

    /// The connection's spare head buffers, which get this request's when it is dropped.
    spare_head: Option<Arc<SpareHead>>,
}

/// What the first `Connection` header names, each word searched for anywhere in its value,
/// in any case (`close`, `upgrade`, `keep-alive`).
///
/// Found once per request, in one pass without allocating: the request and its connection
/// each lower-cased a copy of the value and searched it, four searches in all.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct ConnectionHeader {
    pub(crate) close: bool,
    pub(crate) upgrade: bool,
    pub(crate) keep_alive: bool,
}

impl ConnectionHeader {
    fn parse(value: &[u8]) -> ConnectionHeader {
        let mut found = ConnectionHeader::default();
        let at = |i: usize, word: &[u8]| {
            value
                .get(i..i + word.len())
                .is_some_and(|part| part.eq_ignore_ascii_case(word))
        };
        for (i, byte) in value.iter().enumerate() {
            match byte.to_ascii_lowercase() {
                b'c' if at(i, b"close") => found.close = true,
                b'u' if at(i, b"upgrade") => found.upgrade = true,
                b'k' if at(i, b"keep-alive") => found.keep_alive = true,
                _ => {}
            }
        }
        found
    }
}

/// How a request learns that its connection is to end, and tells the connection so.
pub(crate) struct DrainFlags {
    /// Set once the server ends keep-alive for a graceful drain.
    pub(crate) server_draining: Arc<AtomicBool>,
    /// Set when this response tells the client the connection ends: the connection's
    /// thread then stops after it.
    pub(crate) said_close: Arc<AtomicBool>,
}

/// What a request gets from its connection, handed to `new_request` whole: set afterwards
/// through a builder call each, the request (a few hundred bytes) was moved once per call,
/// about 250 instructions per request.
#[derive(Default)]
pub(crate) struct FromConnection {
    pub(crate) shutdown: ShutdownHandle,
    /// `None` for a request that came from no connection (`TestRequest`).
    pub(crate) drain_flags: Option<DrainFlags>,
    pub(crate) session: Option<Arc<dyn std::any::Any + Send + Sync>>,
    pub(crate) external: Option<SharedExternal>,
    /// Where the request's head buffers go when it is dropped.
    pub(crate) spare_head: Option<Arc<SpareHead>>,
}

struct NotifyOnDrop<R> {
    sender: Sender<()>,
    inner: R,
}

impl<R: Read> Read for NotifyOnDrop<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf)
    }
}
impl<R: Write> Write for NotifyOnDrop<R> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
impl<R> Drop for NotifyOnDrop<R> {
    fn drop(&mut self) {
        // The connection may already be gone; nobody is left to notify then.
        self.sender.send(()).ok();
    }
}

/// Error that can happen when building a `Request` object.
#[derive(Debug)]
pub enum RequestCreationError {
    /// The client sent an `Expect` header that was not recognized by tiny-http.
    ExpectationFailed,

    /// Error while reading data from the socket during the creation of the `Request`.
    CreationIoError(IoError),

    /// Content-Length and Transfer-Encoding do not say unambiguously where the body ends
    /// (400), or name a transfer coding other than chunked (501).
    BadFraming(StatusCode),
}

/// Where a request body ends, decided from the headers alone.
#[derive(Debug, PartialEq)]
enum BodyFraming {
    Empty,
    Length(usize),
    Chunked,
}

/// The headers a request's own handling reads (framing, `Expect`, `Connection`), found in
/// one pass over the headers that compares a name only when its length fits: four searches
/// of every name (each an ASCII case-insensitive comparison) cost about 700 instructions
/// for a request with three headers.
#[derive(Default)]
struct OwnHeaders<'a> {
    /// The value of every `Content-Length`, checked to be the same.
    length: Option<usize>,
    /// The first `Transfer-Encoding` value, and whether another followed.
    coding: Option<&'a str>,
    codings: usize,
    /// The first `Expect` value.
    expect: Option<&'a str>,
    /// The first `Connection` value.
    connection: Option<&'a str>,
}

impl<'a> OwnHeaders<'a> {
    /// A `Content-Length` that is malformed or differs from an earlier one is rejected at
    /// once, as before any other check.
    ///
    /// Reads the names as bytes of the head and takes out a value only for a name that
    /// matched: making each header's name and value `str`s first cost about 80
    /// instructions a header.
    fn of(head: &'a RequestHead) -> Result<Self, StatusCode> {
        let bad_request = StatusCode(400);
        let mut own = OwnHeaders::default();
        let text = head.text();
        for span in head.spans() {
            let name = text.as_bytes().get(span.name.clone()).unwrap_or_default();
            let value = || text.get(span.value.clone()).unwrap_or_default();
            match name.len() {
                14 if name.eq_ignore_ascii_case(b"Content-Length") => {
                    let value = value().trim();
                    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                        return Err(bad_request);
                    }
                    let value: usize = value.parse().map_err(|_| bad_request)?;
                    if own.length.is_some_and(|previous| previous != value) {
                        return Err(bad_request);
                    }
                    own.length = Some(value);
                }
                17 if name.eq_ignore_ascii_case(b"Transfer-Encoding") => {
                    own.coding.get_or_insert_with(value);
                    own.codings += 1;
                }
                6 if name.eq_ignore_ascii_case(b"Expect") => {
                    own.expect.get_or_insert_with(value);
                }
                10 if name.eq_ignore_ascii_case(b"Connection") => {
                    own.connection.get_or_insert_with(value);
                }
                _ => {}
            }
        }
        Ok(own)
    }

    /// Only unambiguous framings are accepted: anything a second parser could read
    /// differently (request smuggling) is rejected.
    fn body_framing(&self) -> Result<BodyFraming, StatusCode> {
        let bad_request = StatusCode(400);
        match (self.coding, self.codings > 1, self.length) {
            (None, _, None) => Ok(BodyFraming::Empty),
            (None, _, Some(length)) => Ok(BodyFraming::Length(length)),
            (Some(_), _, Some(_)) | (Some(_), true, None) => Err(bad_request),
            (Some(coding), false, None) => {
                if coding.trim().eq_ignore_ascii_case("chunked") {
                    Ok(BodyFraming::Chunked)
                } else {
                    Err(StatusCode(501))
                }
            }
        }
    }
}

impl From<IoError> for RequestCreationError {
    fn from(err: IoError) -> RequestCreationError {
        RequestCreationError::CreationIoError(err)
    }
}

/// Builds a new request.
///
/// After the request line and headers have been read from the socket, a new `Request` object
/// is built.
///
/// `source_data` gives the `Read` that will allow the `Request` object to read from the
/// incoming data; it is called only for a request with a body (or an upgrade), so a bodiless
/// request leaves the connection's reader where it is, for the next head, instead of passing
/// it on through the connection's turns (a lock on each side, about 200 instructions).
/// It is the responsibility of the `Request` to read only the data of the request and not further.
///
/// The `Write` object will be used by the `Request` to write the response.
///
/// `body_abandoned` is set when the body is dropped with too much left unread: the
/// connection must then close instead of parsing the rest as the next request.
#[allow(clippy::too_many_arguments)]
pub fn new_request<S, R, W>(
    secure: bool,
    method: Method,
    head: RequestHead,
    version: HTTPVersion,
    remote_addr: Option<SocketAddr>,
    source_data: S,
    writer: W,
    body_abandoned: Arc<AtomicBool>,
    from_connection: FromConnection,
) -> Result<Request, RequestCreationError>
where
    S: FnOnce() -> R,
    R: Read + Send + 'static,
    W: Write + Send + 'static,
{
    let own = OwnHeaders::of(&head).map_err(RequestCreationError::BadFraming)?;
    let framing = own
        .body_framing()
        .map_err(RequestCreationError::BadFraming)?;
    let content_length = match framing {
        BodyFraming::Length(length) => Some(length),
        _ => None,
    };

    // true if the client sent a `Expect: 100-continue` header
    let expects_continue = {
        match own.expect {
            None => false,
            Some(v) if v.eq_ignore_ascii_case("100-continue") => true,
            _ => return Err(RequestCreationError::ExpectationFailed),
        }
    };

    let connection = own
        .connection
        .map_or_else(ConnectionHeader::default, |value| {
            ConnectionHeader::parse(value.as_bytes())
        });
    let connection_upgrade = connection.upgrade;

    // we wrap `source_data` around a reading whose nature depends on the transfer-encoding and
    // content-length headers
    let reader = if connection_upgrade {
        // if we have a `Connection: upgrade`, always keeping the whole reader
        Box::new(source_data()) as Box<dyn Read + Send + 'static>
    } else if let Some(content_length) = content_length {
        if content_length == 0 {
            Box::new(io::empty()) as Box<dyn Read + Send + 'static>
        } else if content_length <= 1024 && !expects_continue {
            // if the content-length is small enough, we just read everything into a buffer

            let mut buffer = vec![0; content_length];
            let mut offset = 0;
            let mut source_data = source_data();

            while offset != content_length {
                let read = source_data.read(&mut buffer[offset..])?;
                if read == 0 {
                    // the socket returned EOF, but we were before the expected content-length
                    // aborting
                    let info = "Connection has been closed before we received enough data";
                    let err = IoError::new(ErrorKind::ConnectionAborted, info);
                    return Err(RequestCreationError::CreationIoError(err));
                }

                offset += read;
            }

            Box::new(Cursor::new(buffer)) as Box<dyn Read + Send + 'static>
        } else {
            let data_reader = FusedReader::new(EqualReader::new(source_data(), content_length));
            Box::new(BodyDrain::new(
                data_reader,
                Some(content_length),
                body_abandoned,
            )) as Box<dyn Read + Send + 'static>
        }
    } else if framing == BodyFraming::Chunked {
        let data_reader = FusedReader::new(Decoder::new(source_data()));
        Box::new(BodyDrain::new(data_reader, None, body_abandoned))
            as Box<dyn Read + Send + 'static>
    } else {
        // if we have neither a Content-Length nor a Transfer-Encoding,
        // assuming that we have no data
        // TODO: could also be multipart/byteranges
        Box::new(io::empty()) as Box<dyn Read + Send + 'static>
    };

    Ok(Request {
        data_reader: Some(reader),
        response_writer: Some(Box::new(writer) as Box<dyn Write + Send + 'static>),
        remote_addr,
        secure,
        session: from_connection.session,
        method,
        head,
        http_version: version,
        body_length: content_length,
        must_send_continue: expects_continue,
        notify_when_responded: None,
        external: from_connection.external,
        shutdown: from_connection.shutdown,
        drain_flags: from_connection.drain_flags,
        connection,
        spare_head: from_connection.spare_head,
    })
}

impl Request {
    /// Returns true if the request was made through HTTPS.
    #[inline]
    pub fn secure(&self) -> bool {
        self.secure
    }

    /// Returns the method requested by the client (eg. `GET`, `POST`, etc.).
    #[inline]
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// Returns the resource requested by the client.
    #[inline]
    pub fn url(&self) -> &str {
        self.head.target()
    }

    /// Returns a list of all headers sent by the client.
    #[inline]
    pub fn headers(&self) -> RequestHeaders<'_> {
        self.head.headers()
    }

    /// Returns the HTTP version of the request.
    #[inline]
    pub fn http_version(&self) -> &HTTPVersion {
        &self.http_version
    }

    /// Returns the length of the body in bytes.
    ///
    /// Returns `None` if the length is unknown.
    #[inline]
    pub fn body_length(&self) -> Option<usize> {
        self.body_length
    }

    /// Returns the address of the client that sent this request.
    ///
    /// The address is always `Some` for TCP listeners, but always `None` for UNIX listeners
    /// (as the remote address of a UNIX client is almost always unnamed).
    ///
    /// Note that this is gathered from the socket. If you receive the request from a proxy,
    /// this function will return the address of the proxy and not the address of the actual
    /// user.
    #[inline]
    pub fn remote_addr(&self) -> Option<&SocketAddr> {
        self.remote_addr.as_ref()
    }

    /// What the external stream this request came through told about its session
    /// (`ExternalStream::session`), such as a TLS server name and client certificate;
    /// `None` for plain connections.
    pub fn session(&self) -> Option<&Arc<dyn std::any::Any + Send + Sync>> {
        self.session.as_ref()
    }

    /// Ends the client connection from any thread, even after `into_writer` or `into_raw`:
    /// for a response that cannot be completed, so the client sees it cut at once instead
    /// of waiting for the idle timeout.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// True once the server is draining: this response must say `Connection: close`, and
    /// once this returned true the server closes the connection after the response.
    /// `respond()` does both itself.
    ///
    /// Ask just before writing the response head: a response that did not say close keeps
    /// its connection (until `Server::stop_accepting` closes it idle), so a client is never
    /// cut while it may be sending its next request on a connection it believes reusable.
    pub fn server_draining(&self) -> bool {
        let Some(flags) = &self.drain_flags else {
            return false;
        };
        let draining = flags.server_draining.load(Ordering::Acquire);
        if draining {
            flags.said_close.store(true, Ordering::Release);
        }
        draining
    }

    /// Sends a response with a `Connection: upgrade` header, then turns the `Request` into a `Stream`.
    ///
    /// The main purpose of this function is to support websockets.
    /// If you detect that the request wants to use some kind of protocol upgrade, you can
    ///  call this function to obtain full control of the socket stream.
    ///
    /// If you call this on a non-websocket request, tiny-http will wait until this `Stream` object
    ///  is destroyed before continuing to read or write on the socket. Therefore you should always
    ///  destroy it as soon as possible.
    pub fn upgrade<R: Read>(
        mut self,
        protocol: &str,
        response: Response<R>,
    ) -> Box<dyn ReadWrite + Send> {
        use crate::util::CustomStream;

        response
            .raw_print(
                self.response_writer.as_mut().unwrap().by_ref(),
                self.http_version.clone(),
                self.head.headers(),
                false,
                Some(protocol),
            )
            .ok(); // TODO: unused result

        self.response_writer.as_mut().unwrap().flush().ok(); // TODO: unused result

        let stream = CustomStream::new(self.extract_reader_impl(), self.extract_writer_impl());
        if let Some(sender) = self.notify_when_responded.take() {
            let stream = NotifyOnDrop {
                sender,
                inner: stream,
            };
            Box::new(stream) as Box<dyn ReadWrite + Send>
        } else {
            Box::new(stream) as Box<dyn ReadWrite + Send>
        }
    }

    /// The raw connection after this request's head, for a protocol upgrade the caller relays
    /// itself (the caller writes the `101` response head and flushes).
    ///
    /// Bytes the server already buffered past the head come first from the reader. For a request
    /// without `Connection: upgrade` the reader yields only the request body, because the
    /// connection is not being handed over.
    ///
    /// Both halves can be used from two threads at once, for TCP and external streams alike. For an
    /// external stream both halves share a lock: the reader waits for data in short slices so it
    /// never holds the lock while blocked. Reads report `TimedOut` (or `WouldBlock`) after the
    /// server's idle timeout without data; the caller decides whether to keep waiting.
    pub fn into_raw(mut self) -> (Box<dyn Read + Send>, Box<dyn Write + Send>) {
        if let Some(external) = &self.external {
            if let Err(e) = external.enter_raw_mode() {
                log::warn!("cannot switch an external stream to raw reads: {}", e);
            }
        }
        let reader = self.extract_reader_impl();
        let writer = self.extract_notifying_writer();
        (reader, writer)
    }

    /// Allows to read the body of the request.
    ///
    /// # Example
    ///
    /// ```no_run
    /// # extern crate rustc_serialize;
    /// # extern crate tiny_http;
    /// # use rustc_serialize::json::Json;
    /// # use std::io::Read;
    /// # fn get_content_type(_: &tiny_http::Request) -> &'static str { "" }
    /// # fn main() {
    /// # let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
    /// let mut request = server.recv().unwrap();
    ///
    /// if get_content_type(&request) == "application/json" {
    ///     let mut content = String::new();
    ///     request.as_reader().read_to_string(&mut content).unwrap();
    ///     let json: Json = content.parse().unwrap();
    /// }
    /// # }
    /// ```
    ///
    /// If the client sent a `Expect: 100-continue` header with the request, calling this
    ///  function will send back a `100 Continue` response.
    #[inline]
    pub fn as_reader(&mut self) -> &mut dyn Read {
        if self.must_send_continue {
            let msg = Response::new_empty(StatusCode(100));
            msg.raw_print(
                self.response_writer.as_mut().unwrap().by_ref(),
                self.http_version.clone(),
                self.head.headers(),
                true,
                None,
            )
            .ok();
            self.response_writer.as_mut().unwrap().flush().ok();
            self.must_send_continue = false;
        }

        self.data_reader.as_mut().unwrap()
    }

    /// Turns the `Request` into a writer.
    ///
    /// The writer has a raw access to the stream to the user.
    /// This function is useful for things like CGI.
    ///
    /// Note that the destruction of the `Writer` object may trigger
    /// some events. For exemple if a client has sent multiple requests and the requests
    /// have been processed in parallel, the destruction of a writer will trigger
    /// the writing of the next response.
    /// Therefore you should always destroy the `Writer` as soon as possible.
    #[inline]
    pub fn into_writer(mut self) -> Box<dyn Write + Send + 'static> {
        self.extract_notifying_writer()
    }

    /// Extracts the response writer; dropping it tells the connection the response is done.
    fn extract_notifying_writer(&mut self) -> Box<dyn Write + Send + 'static> {
        let writer = self.extract_writer_impl();
        if let Some(sender) = self.notify_when_responded.take() {
            let writer = NotifyOnDrop {
                sender,
                inner: writer,
            };
            Box::new(writer) as Box<dyn Write + Send + 'static>
        } else {
            writer
        }
    }

    /// Extract the response `Writer` object from the Request, dropping this `Writer` has the same side effects
    /// as the object returned by `into_writer` above.
    ///
    /// This may only be called once on a single request.
    fn extract_writer_impl(&mut self) -> Box<dyn Write + Send + 'static> {
        use std::mem;

        assert!(self.response_writer.is_some());

        let mut writer = None;
        mem::swap(&mut self.response_writer, &mut writer);
        writer.unwrap()
    }

    /// Extract the body `Reader` object from the Request.
    ///
    /// This may only be called once on a single request.
    fn extract_reader_impl(&mut self) -> Box<dyn Read + Send + 'static> {
        use std::mem;

        assert!(self.data_reader.is_some());

        let mut reader = None;
        mem::swap(&mut self.data_reader, &mut reader);
        reader.unwrap()
    }

    /// Sends a response to this request.
    #[inline]
    pub fn respond<R>(mut self, response: Response<R>) -> Result<(), IoError>
    where
        R: Read,
    {
        let res = self.respond_impl(response);
        if let Some(sender) = self.notify_when_responded.take() {
            sender.send(()).ok();
        }
        res
    }

    fn respond_impl<R>(&mut self, response: Response<R>) -> Result<(), IoError>
    where
        R: Read,
    {
        let mut writer = self.extract_writer_impl();

        let do_not_send_body = self.method == Method::Head;
        let response = if self.server_draining() {
            response.with_connection_close()
        } else {
            response
        };

        Self::ignore_client_closing_errors(response.raw_print(
            writer.by_ref(),
            self.http_version.clone(),
            self.head.headers(),
            do_not_send_body,
            None,
        ))?;

        Self::ignore_client_closing_errors(writer.flush())
    }

    fn ignore_client_closing_errors(result: io::Result<()>) -> io::Result<()> {
        result.or_else(|err| match err.kind() {
            ErrorKind::BrokenPipe => Ok(()),
            ErrorKind::ConnectionAborted => Ok(()),
            ErrorKind::ConnectionRefused => Ok(()),
            ErrorKind::ConnectionReset => Ok(()),
            _ => Err(err),
        })
    }

    pub(crate) fn connection_header(&self) -> ConnectionHeader {
        self.connection
    }

    pub(crate) fn with_notify_sender(mut self, sender: Sender<()>) -> Self {
        self.notify_when_responded = Some(sender);
        self
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> Result<(), fmt::Error> {
        write!(
            formatter,
            "Request({} {} from {:?})",
            self.method,
            self.url(),
            self.remote_addr
        )
    }
}

impl Drop for Request {
    fn drop(&mut self) {
        if self.response_writer.is_some() {
            let response = Response::empty(500);
            let _ = self.respond_impl(response); // ignoring any potential error
            if let Some(sender) = self.notify_when_responded.take() {
                sender.send(()).ok();
            }
        }
        if let Some(spare) = self.spare_head.take() {
            self.head.give_back(&spare);
        }
    }
}

/// Dummy trait that regroups the `Read` and `Write` traits.
///
/// Automatically implemented on all types that implement both `Read` and `Write`.
pub trait ReadWrite: Read + Write {}
impl<T> ReadWrite for T where T: Read + Write {}

#[cfg(test)]
mod tests {
    use super::Request;

    #[test]
    fn must_be_send() {
        #![allow(dead_code)]
        fn f<T: Send>(_: &T) {}
        fn bar(rq: &Request) {
            f(rq);
        }
    }
}
