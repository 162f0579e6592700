//! # Simple usage
//!
//! ## Creating the server
//!
//! The easiest way to create a server is to call `Server::http()`.
//!
//! The `http()` function returns an `IoResult<Server>` which will return an error
//! in the case where the server creation fails (for example if the listening port is already
//! occupied).
//!
//! ```no_run
//! let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
//! ```
//!
//! A newly-created `Server` will immediately start listening for incoming connections and HTTP
//! requests.
//!
//! ## Receiving requests
//!
//! Calling `server.recv()` will block until the next request is available.
//! This function returns an `IoResult<Request>`, so you need to handle the possible errors.
//!
//! ```no_run
//! # let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
//!
//! loop {
//!     // blocks until the next request is received
//!     let request = match server.recv() {
//!         Ok(rq) => rq,
//!         Err(e) => { println!("error: {}", e); break }
//!     };
//!
//!     // do something with the request
//!     // ...
//! }
//! ```
//!
//! In a real-case scenario, you will probably want to spawn multiple worker tasks and call
//! `server.recv()` on all of them. Like this:
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use std::thread;
//! # let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
//! let server = Arc::new(server);
//! let mut guards = Vec::with_capacity(4);
//!
//! for _ in (0 .. 4) {
//!     let server = server.clone();
//!
//!     let guard = thread::spawn(move || {
//!         loop {
//!             let rq = server.recv().unwrap();
//!
//!             // ...
//!         }
//!     });
//!
//!     guards.push(guard);
//! }
//! ```
//!
//! If you don't want to block, you can call `server.try_recv()` instead.
//!
//! ## Handling requests
//!
//! The `Request` object returned by `server.recv()` contains informations about the client's request.
//! The most useful methods are probably `request.method()` and `request.url()` which return
//! the requested method (`GET`, `POST`, etc.) and url.
//!
//! To handle a request, you need to create a `Response` object. See the docs of this object for
//! more infos. Here is an example of creating a `Response` from a file:
//!
//! ```no_run
//! # use std::fs::File;
//! # use std::path::Path;
//! let response = tiny_http::Response::from_file(File::open(&Path::new("image.png")).unwrap());
//! ```
//!
//! All that remains to do is call `request.respond()`:
//!
//! ```no_run
//! # use std::fs::File;
//! # use std::path::Path;
//! # let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
//! # let request = server.recv().unwrap();
//! # let response = tiny_http::Response::from_file(File::open(&Path::new("image.png")).unwrap());
//! let _ = request.respond(response);
//! ```
#![deny(unsafe_code)]
#![deny(rust_2018_idioms)]
#![allow(clippy::match_like_matches_macro)]

use std::error::Error;
use std::io::Error as IoError;
use std::io::ErrorKind as IoErrorKind;
use std::io::Result as IoResult;
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::{Acquire, Relaxed};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::sync::{Arc, Weak};
use std::thread;
use std::time::{Duration, Instant};

use client::ClientConnection;
use connection::Connection;
use external::SharedExternal;
use parking::Parking;
use util::refined_tcp_stream::ReadPolicy;
use util::{Drain, LiveConnection, LiveCount, MessagesQueue, RefinedTcpStream, TaskPool};

pub use common::{HTTPVersion, Header, HeaderField, Method, StatusCode};
pub use connection::{ConfigListenAddr, ListenAddr, Listener};
pub use external::ExternalStream;
pub use head::{FieldName, FieldValue, RequestHeader, RequestHeaders, RequestHeadersIter};
pub use request::{ReadWrite, Request};
pub use response::{Response, ResponseBox};
pub use shutdown::ShutdownHandle;
pub use test::TestRequest;

mod client;
mod common;
mod connection;
mod external;
mod head;
mod parking;
mod request;
mod response;
mod shutdown;
mod test;
mod util;

/// The main class of this library.
///
/// Destroying this object will immediately close the listening socket and the reading
///  part of all the client's connections. Requests that have already been returned by
///  the `recv()` function will not close and the responses will be transferred to the client.
pub struct Server {
    shared: Arc<Shared>,

    // result of TcpListener::local_addr()
    listening_addr: ListenAddr,
}

/// First pause after a failed accept(); doubled on each failure in a row.
const MIN_ACCEPT_BACKOFF: Duration = Duration::from_millis(10);
/// Longest pause between accept() attempts while they keep failing.
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// A fresh socket's send buffer takes a 503 at once; never wait longer than this.
const BUSY_WRITE_TIMEOUT: Duration = Duration::from_millis(10);

/// State used by the accept thread, `serve_stream` callers and connection threads.
struct Shared {
    /// Set once the listener must close; live connections keep being served.
    stop_accepting: AtomicBool,

    /// Parsed requests waiting for `recv()`.
    messages: Arc<MessagesQueue<Message>>,

    /// Threads that each serve one connection for its whole life.
    connection_threads: TaskPool,

    limits: Limits,

    /// Connections whose socket is still open, HTTP and external alike.
    live_connections: Arc<LiveCount>,

    drain: Arc<Drain>,

    /// Set when requests are handled on their connection's thread instead of `recv()`.
    handler: Option<Handler>,

    /// Run on each connection's thread before its first request is read.
    preface: Option<Preface>,

    /// Where connections idle between requests wait without a thread; only with a
    /// handler (`recv()` keeps each connection on its thread).
    parking: Option<Parking>,
}

/// Handles one request on the thread that owns its connection. The connection's next
/// request is read once it returns, so a connection's requests are handled in order and
/// no request crosses threads.
pub type Handler = Arc<dyn Fn(Request) + Send + Sync>;

/// Reads what a connection sends before HTTP (a PROXY protocol header), on the
/// connection's own thread, from the TCP socket under it (for an external stream, its
/// `ExternalStream::shared_socket`, before any TLS byte), by the given deadline: the
/// first request head's deadline, which the preface's time counts against.
///
/// `Ok(Some(addr))` makes `addr` the connection's `Request::remote_addr`; `Ok(None)`
/// keeps the peer address. An error closes the connection without an answer, as does a
/// connection with no TCP socket to read (a Unix socket, an external stream without a
/// shared socket).
pub type Preface = Arc<dyn Fn(&TcpStream, Instant) -> IoResult<Option<SocketAddr>> + Send + Sync>;

/// Limits that make the server safe on an edge node.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Beyond this, new connections are closed at accept (after a best-effort 503).
    pub max_connections: usize,
    /// Longest request line or single header line in bytes; longer ones get a 431.
    pub max_header_line: usize,
    /// Most header lines in one request; more get a 431.
    pub max_headers: usize,
    /// The whole request head must arrive within this, however slowly it trickles (slowloris).
    pub header_timeout: Duration,
    /// How long a keep-alive connection may wait for its next request, and the longest
    /// silence while a body is read.
    pub idle_timeout: Duration,
    /// Longest a single write to a client may block.
    pub write_timeout: Duration,
    /// Stack size of each connection thread; it must hold the deepest path a handler
    /// runs, since a stack overflow ends the whole process.
    pub thread_stack_size: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 4096,
            max_header_line: 16 * 1024,
            max_headers: 100,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(60),
            thread_stack_size: 2 * 1024 * 1024,
        }
    }
}

enum Message {
    Error(IoError),
    NewRequest(Request),
}

impl From<IoError> for Message {
    fn from(e: IoError) -> Message {
        Message::Error(e)
    }
}

impl From<Request> for Message {
    fn from(rq: Request) -> Message {
        Message::NewRequest(rq)
    }
}

// Server is shared between worker threads.
const _: fn() = || {
    fn must_be_sync_and_send<T: Sync + Send>() {}
    must_be_sync_and_send::<Server>();
};

pub struct IncomingRequests<'a> {
    server: &'a Server,
}

/// Represents the parameters required to create a server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The addresses to try to listen to.
    pub addr: ConfigListenAddr,

    /// Must be `None`: built-in TLS was removed from this copy; feed TLS sessions through
    /// `Server::serve_stream` instead.
    pub ssl: Option<SslConfig>,
}

/// Configuration of the server for SSL (kept for API compatibility; always refused).
#[derive(Debug, Clone)]
pub struct SslConfig {
    /// Contains the public certificate to send to clients.
    pub certificate: Vec<u8>,
    /// Contains the ultra-secret private key used to decode communications.
    pub private_key: Vec<u8>,
}

impl Server {
    /// Shortcut for a simple server on a specific address.
    #[inline]
    pub fn http<A>(addr: A) -> Result<Server, Box<dyn Error + Send + Sync + 'static>>
    where
        A: ToSocketAddrs,
    {
        Server::new(ServerConfig {
            addr: ConfigListenAddr::from_socket_addrs(addr)?,
            ssl: None,
        })
    }

    #[cfg(unix)]
    #[inline]
    /// Shortcut for a UNIX socket server at a specific path
    pub fn http_unix(
        path: &std::path::Path,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        Server::new(ServerConfig {
            addr: ConfigListenAddr::unix_from_path(path),
            ssl: None,
        })
    }

    /// Builds a new server that listens on the specified address.
    pub fn new(config: ServerConfig) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        let listener = config.addr.bind()?;
        Self::from_listener(listener, config.ssl)
    }

    /// Builds a new server using the specified TCP listener.
    ///
    /// This is useful if you've constructed TcpListener using some less usual method
    /// such as from systemd. For other cases, you probably want the `new()` function.
    pub fn from_listener<L: Into<Listener>>(
        listener: L,
        ssl_config: Option<SslConfig>,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        if ssl_config.is_some() {
            return Err("this tiny_http has no built-in TLS: use Server::serve_stream".into());
        }
        Self::start(listener.into(), Limits::default(), None, None)
    }

    /// Builds a server on a listener accepted elsewhere, with explicit limits.
    pub fn from_listener_with_limits(
        listener: std::net::TcpListener,
        limits: Limits,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        Self::start(listener.into(), limits, None, None)
    }

    /// Builds a server that runs `handler` for each request on the thread of the request's
    /// connection, TCP and `serve_stream` alike; `recv()` then never returns a request.
    ///
    /// A panicking handler ends its connection (a request dropped before its response
    /// started is answered 500) and no other.
    pub fn from_listener_serving(
        listener: std::net::TcpListener,
        limits: Limits,
        handler: Handler,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        Self::start(listener.into(), limits, Some(handler), None)
    }

    /// Like `from_listener_serving`, and every connection, TCP and `serve_stream` alike,
    /// first goes through `preface`.
    pub fn from_listener_serving_with_preface(
        listener: std::net::TcpListener,
        limits: Limits,
        handler: Handler,
        preface: Preface,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        Self::start(listener.into(), limits, Some(handler), Some(preface))
    }

    fn start(
        listener: Listener,
        limits: Limits,
        handler: Option<Handler>,
        preface: Option<Preface>,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        // building the TcpListener
        let (server, local_addr) = {
            let local_addr = listener.local_addr()?;
            log::debug!("Server listening on {}", local_addr);
            (listener, local_addr)
        };

        let drain = Arc::<Drain>::default();
        let shared = Arc::new_cyclic(|weak: &Weak<Shared>| {
            let parking = handler.as_ref().and_then(|_| {
                let weak = weak.clone();
                let resume = Box::new(move |client| match weak.upgrade() {
                    Some(shared) => shared.serve_in_place(client),
                    None => drop(client),
                });
                Parking::start(resume, drain.closing_idle_flag())
                    .map_err(|e| log::error!("idle connections keep their threads: {}", e))
                    .ok()
            });
            Shared {
                stop_accepting: AtomicBool::new(false),
                messages: MessagesQueue::with_capacity(8),
                connection_threads: TaskPool::new(limits.thread_stack_size),
                limits,
                live_connections: Arc::default(),
                drain,
                handler,
                preface,
                parking,
            }
        });

        let inside_shared = shared.clone();
        thread::spawn(move || {
            let shared = inside_shared;
            log::debug!("Running accept thread");
            let mut backoff = MIN_ACCEPT_BACKOFF;
            while !shared.stop_accepting.load(Acquire) {
                let sock = match server.accept() {
                    Ok((sock, _)) => {
                        backoff = MIN_ACCEPT_BACKOFF;
                        sock
                    }
                    Err(e) => {
                        // Out of file descriptors, or a connection reset before it was accepted:
                        // the listener itself is fine, so wait a little and keep accepting.
                        log::error!(
                            "Error accepting new client (retrying in {:?}): {}",
                            backoff,
                            e
                        );
                        thread::sleep(backoff);
                        backoff = (backoff * 2).min(MAX_ACCEPT_BACKOFF);
                        continue;
                    }
                };
                let live = match shared.acquire_connection_slot() {
                    Some(live) => live,
                    None => {
                        refuse_busy(sock);
                        continue;
                    }
                };
                let prepared = sock
                    .set_nodelay()
                    .and_then(|_| sock.set_write_timeout(Some(shared.limits.write_timeout)));
                if let Err(e) = prepared {
                    log::warn!("cannot set up an accepted socket: {}", e);
                    continue;
                }
                let read_policy = shared.read_policy(true);
                match RefinedTcpStream::new(sock, live, read_policy) {
                    Ok((read_closable, write_closable)) => {
                        shared.serve_client(ClientConnection::new(
                            write_closable,
                            read_closable,
                            shared.limits.clone(),
                            shared.drain.clone(),
                        ))
                    }
                    Err(e) => log::error!("Error setting up new client: {}", e),
                }
            }
            log::debug!("Terminating accept thread");
        });

        // result
        Ok(Server {
            shared,
            listening_addr: local_addr,
        })
    }

    /// Serves a connection accepted elsewhere (a TLS session) on this server.
    ///
    /// The stream's first read may run a TLS handshake: it happens on the connection's own
    /// thread, never the caller's. Beyond `Limits::max_connections` the stream is shut down.
    pub fn serve_stream(&self, stream: Box<dyn ExternalStream>) {
        let live = match self.shared.acquire_connection_slot() {
            Some(live) => live,
            None => {
                stream.shutdown().ok();
                return;
            }
        };
        let limits = &self.shared.limits;
        let external = SharedExternal::new(stream, limits.idle_timeout);
        if let Err(e) = external.set_write_timeout(Some(limits.write_timeout)) {
            log::warn!("cannot set a write timeout on an external stream: {}", e);
            external.shutdown().ok();
            return;
        }
        let read_policy = self.shared.read_policy(external.socket().is_some());
        match RefinedTcpStream::new(external, live, read_policy) {
            Ok((read_closable, write_closable)) => self.shared.serve_client(ClientConnection::new(
                write_closable,
                read_closable,
                limits.clone(),
                self.shared.drain.clone(),
            )),
            Err(e) => log::error!("cannot serve an external stream: {}", e),
        }
    }

    /// First step of a graceful drain, while the listener still accepts: from now on each
    /// response says `Connection: close` and ends its connection, so keep-alive clients
    /// move elsewhere.
    ///
    /// `respond()` does this itself; a handler writing its own head through `into_writer`
    /// or `into_raw` asks `Request::server_draining`.
    pub fn end_keep_alive(&self) {
        self.shared.drain.end_keep_alive();
    }

    /// Closes the listening socket for a graceful drain, ends keep-alive, and closes every
    /// connection waiting for its next request, now and as others finish their response.
    ///
    /// Requests in flight and upgraded connections are served to their end.
    pub fn stop_accepting(&self) {
        if !self.shared.stop_accepting.swap(true, Relaxed) {
            self.wake_accept_thread();
        }
        self.shared.drain.close_idle();
    }

    /// Connects briefly to ourselves so the accept thread sees the stop flag.
    fn wake_accept_thread(&self) {
        let maybe_stream = match &self.listening_addr {
            ListenAddr::IP(addr) => TcpStream::connect(addr).map(Connection::from),
            #[cfg(unix)]
            ListenAddr::Unix(addr) => match addr.as_pathname() {
                // TODO: use connect_addr when its stabilized.
                Some(path) => std::os::unix::net::UnixStream::connect(path).map(Connection::from),
                None => return,
            },
        };
        if let Ok(stream) = maybe_stream {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    /// Returns an iterator for all the incoming requests.
    ///
    /// The iterator will return `None` if the server socket is shutdown.
    #[inline]
    pub fn incoming_requests(&self) -> IncomingRequests<'_> {
        IncomingRequests { server: self }
    }

    /// Returns the address the server is listening to.
    #[inline]
    pub fn server_addr(&self) -> ListenAddr {
        self.listening_addr.clone()
    }

    /// Returns the number of clients currently connected to the server, HTTP and external.
    pub fn num_connections(&self) -> usize {
        self.shared.live_connections.get()
    }

    /// Waits until no client is connected, at most `timeout`, and returns how many still
    /// are: the end of a graceful drain, woken by the last connection to close rather than
    /// by polling `num_connections`.
    pub fn wait_for_no_connections(&self, timeout: Duration) -> usize {
        self.shared.live_connections.wait_for_none(timeout)
    }

    /// Blocks until an HTTP request has been submitted and returns it.
    pub fn recv(&self) -> IoResult<Request> {
        match self.shared.messages.pop() {
            Some(Message::Error(err)) => Err(err),
            Some(Message::NewRequest(rq)) => Ok(rq),
            None => Err(IoError::new(IoErrorKind::Other, "thread unblocked")),
        }
    }

    /// Same as `recv()` but doesn't block longer than timeout
    pub fn recv_timeout(&self, timeout: Duration) -> IoResult<Option<Request>> {
        match self.shared.messages.pop_timeout(timeout) {
            Some(Message::Error(err)) => Err(err),
            Some(Message::NewRequest(rq)) => Ok(Some(rq)),
            None => Ok(None),
        }
    }

    /// Same as `recv()` but doesn't block.
    pub fn try_recv(&self) -> IoResult<Option<Request>> {
        match self.shared.messages.try_pop() {
            Some(Message::Error(err)) => Err(err),
            Some(Message::NewRequest(rq)) => Ok(Some(rq)),
            None => Ok(None),
        }
    }

    /// Unblock thread stuck in recv() or incoming_requests().
    /// If there are several such threads, only one is unblocked.
    /// This method allows graceful shutdown of server.
    pub fn unblock(&self) {
        self.shared.messages.unblock();
    }
}

impl Iterator for IncomingRequests<'_> {
    type Item = Request;
    fn next(&mut self) -> Option<Request> {
        self.server.recv().ok()
    }
}

/// Best effort 503 on a connection over the cap, without ever blocking the accept thread.
fn refuse_busy(mut sock: Connection) {
    use std::io::Write;
    if sock.set_write_timeout(Some(BUSY_WRITE_TIMEOUT)).is_ok() {
        let _ = sock.write_all(
            b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
        );
    }
    let _ = sock.shutdown(Shutdown::Both);
}

impl Shared {
    fn acquire_connection_slot(&self) -> Option<LiveConnection> {
        let live = LiveConnection::try_acquire(&self.live_connections, self.limits.max_connections);
        if live.is_none() {
            log::warn!(
                "refusing a connection: {} connections are live",
                self.limits.max_connections
            );
        }
        live
    }

    /// `has_socket`: the connection has a socket of its own to be parked on.
    fn read_policy(&self, has_socket: bool) -> Arc<ReadPolicy> {
        Arc::new(ReadPolicy::new(
            self.limits.idle_timeout,
            self.drain.closing_idle_flag(),
            has_socket && self.parking.is_some(),
        ))
    }

    /// Hands a connection to a thread of its own that parses its requests into the queue.
    ///
    /// The next request head is read only once the previous response is written: the head's
    /// deadline must not cut reads of the previous body, and the read and write halves of an
    /// external stream share one lock.
    fn serve_client(self: &Arc<Self>, client: ClientConnection) {
        let shared = self.clone();
        let mut client = Some(client);
        self.connection_threads.spawn(Box::new(move || {
            let Some(mut client) = client.take() else {
                return;
            };
            if let Some(preface) = &shared.preface {
                if let Err(e) = client.read_preface(preface) {
                    log::debug!("closing a connection whose preface failed: {}", e);
                    return;
                }
            }
            if shared.handler.is_some() {
                shared.handle_in_place(client);
                return;
            }
            let (sender, receiver) = mpsc::channel();
            for rq in client {
                shared
                    .messages
                    .push(rq.with_notify_sender(sender.clone()).into());
                if receiver.recv().is_err() {
                    break;
                }
            }
        }));
    }

    /// Gives a parked connection whose next request arrived a thread again (as a new
    /// connection gets one).
    fn serve_in_place(self: Arc<Self>, client: ClientConnection) {
        let mut client = Some(client);
        let shared = self.clone();
        self.connection_threads.spawn(Box::new(move || {
            if let Some(client) = client.take() {
                shared.handle_in_place(client);
            }
        }));
    }

    /// Runs the handler for each request of `client` on this thread until the connection
    /// ends or is parked.
    fn handle_in_place(&self, mut client: ClientConnection) {
        let Some(handler) = &self.handler else {
            return;
        };
        while let Some(rq) = client.next() {
            if catch_unwind(AssertUnwindSafe(|| handler(rq))).is_err() {
                log::error!("a request handler panicked; closing its connection");
                return;
            }
        }
        if client.wants_parking() {
            if let Some(parking) = &self.parking {
                parking.park(client);
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shared.stop_accepting.store(true, Relaxed);
        self.wake_accept_thread();

        #[cfg(unix)]
        if let ListenAddr::Unix(addr) = &self.listening_addr {
            if let Some(path) = addr.as_pathname() {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}
