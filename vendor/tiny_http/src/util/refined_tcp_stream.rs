use std::io::Result as IoResult;
use std::io::{Error as IoError, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crate::shutdown::ShutdownHandle;
use std::time::{Duration, Instant};

use crate::connection::Connection;
use crate::external::SharedExternal;
use crate::parking::PARK_AFTER;
use crate::util::LiveConnection;

pub(crate) enum Stream {
    /// Shared with nothing but the weak reference of a `ShutdownHandle`.
    Http(Arc<Connection>),
    External(SharedExternal),
}

impl Stream {
    /// A second handle on the same socket: no second file descriptor, so a connection
    /// costs one descriptor (an edge node holds tens of thousands of idle ones).
    fn share(&self) -> Self {
        match self {
            Stream::Http(tcp_stream) => Stream::Http(tcp_stream.clone()),
            Stream::External(external) => Stream::External(external.clone()),
        }
    }
}

/// The TCP socket under a connection, held only until its preface is read.
pub(crate) enum TcpSocket {
    Http(Arc<Connection>),
    External(Arc<TcpStream>),
}

impl TcpSocket {
    /// `None` for a Unix socket.
    pub(crate) fn tcp(&self) -> Option<&TcpStream> {
        match self {
            TcpSocket::Http(connection) => match &**connection {
                Connection::Tcp(tcp) => Some(tcp),
                #[cfg(unix)]
                Connection::Unix(_) => None,
            },
            TcpSocket::External(tcp) => Some(tcp),
        }
    }
}

impl From<SharedExternal> for Stream {
    fn from(external: SharedExternal) -> Self {
        Stream::External(external)
    }
}

impl From<Connection> for Stream {
    fn from(tcp_stream: Connection) -> Self {
        Stream::Http(Arc::new(tcp_stream))
    }
}

impl Stream {
    fn secure(&self) -> bool {
        match self {
            Stream::Http(_) => false,
            Stream::External(_) => true,
        }
    }

    fn shutdown_handle(&self) -> ShutdownHandle {
        match self {
            Stream::Http(tcp_stream) => ShutdownHandle::http(Arc::downgrade(tcp_stream)),
            Stream::External(external) => ShutdownHandle::external(external.downgrade()),
        }
    }

    fn peer_addr(&mut self) -> IoResult<Option<SocketAddr>> {
        match self {
            Stream::Http(tcp_stream) => tcp_stream.peer_addr(),
            Stream::External(external) => Ok(external.peer_addr()),
        }
    }

    fn set_read_timeout(&self, timeout: Duration) -> IoResult<()> {
        match self {
            Stream::Http(tcp_stream) => tcp_stream.set_read_timeout(Some(timeout)),
            Stream::External(external) => external.set_read_timeout(Some(timeout)),
        }
    }

    fn shutdown(&mut self, how: Shutdown) -> IoResult<()> {
        match self {
            Stream::Http(tcp_stream) => tcp_stream.shutdown(how),
            // A TLS session closes as a whole, and only once the write half is done.
            Stream::External(external) if how != Shutdown::Read => external.shutdown(),
            Stream::External(_) => Ok(()),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        match self {
            Stream::Http(tcp_stream) => (&**tcp_stream).read(buf),
            Stream::External(external) => external.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> IoResult<usize> {
        match self {
            Stream::Http(tcp_stream) => (&**tcp_stream).write(buf),
            Stream::External(external) => external.write(buf),
        }
    }

    fn flush(&mut self) -> IoResult<()> {
        match self {
            Stream::Http(tcp_stream) => (&**tcp_stream).flush(),
            Stream::External(external) => external.flush(),
        }
    }
}

/// How long reads on one connection may wait, steered by the request parser.
///
/// While a request head is read, every read is cut to the time left before the head's
/// deadline, so a client trickling bytes cannot extend it; otherwise each read may wait
/// `idle` (keep-alive wait and silence within a body).
pub(crate) struct ReadPolicy {
    /// The head deadline, encoded (`NO_DEADLINE`, `FROM_NEXT_READ`, or nanoseconds after
    /// `origin`): an atomic, not a mutex, as it is set three times per keep-alive request.
    head_deadline: AtomicU64,
    /// What an absolute `head_deadline` counts from.
    origin: Instant,
    idle: Duration,
    /// Set while the connection waits for its next request.
    awaiting_request: AtomicBool,
    /// Set by a drain: connections waiting for their next request must close.
    closing_idle: Arc<AtomicBool>,
    /// Whether a connection waiting `PARK_AFTER` for its next request is parked
    /// (`crate::parking`) instead of waiting on its thread.
    parkable: bool,
    /// Set when the wait for the next request ended so the connection can be parked.
    parking_requested: AtomicBool,
}

/// `ReadPolicy::head_deadline` when no head is being read.
const NO_DEADLINE: u64 = u64::MAX;

/// Set in `ReadPolicy::head_deadline` for a deadline that starts at the next read (or when
/// asked for), the other bits its nanoseconds from then.
const FROM_NEXT_READ: u64 = 1 << 63;

/// A duration in the bits `FROM_NEXT_READ` leaves, saturated (about 292 years).
fn nanos(duration: Duration) -> u64 {
    let most = FROM_NEXT_READ - 1;
    duration.as_nanos().min(u128::from(most)) as u64
}

/// Longest single wait of an external stream that waits for its next request on its
/// thread (it has no socket to park on), whose blocked read holds the stream's lock so a
/// drain cannot shut it down: it notices the drain after at most this long.
const IDLE_EXTERNAL_READ_SLICE: Duration = Duration::from_millis(250);

impl ReadPolicy {
    pub(crate) fn new(idle: Duration, closing_idle: Arc<AtomicBool>, parkable: bool) -> ReadPolicy {
        ReadPolicy {
            head_deadline: AtomicU64::new(NO_DEADLINE),
            origin: Instant::now(),
            idle,
            awaiting_request: AtomicBool::new(false),
            closing_idle,
            parkable,
            parking_requested: AtomicBool::new(false),
        }
    }

    pub(crate) fn set_awaiting_request(&self, awaiting: bool) {
        self.awaiting_request.store(awaiting, Ordering::Release);
    }

    fn awaiting_request(&self) -> bool {
        self.awaiting_request.load(Ordering::Acquire)
    }

    fn drain_closes_idle(&self) -> bool {
        self.awaiting_request() && self.closing_idle.load(Ordering::Acquire)
    }

    /// True once after a read ended so that the connection can be parked.
    pub(crate) fn take_parking_request(&self) -> bool {
        self.parking_requested.swap(false, Ordering::AcqRel)
    }

    /// The deadline of the request head (or of the wait for it) being read.
    pub(crate) fn head_deadline(&self) -> Option<Instant> {
        let (deadline, _) = self.resolve_head_deadline()?;
        Some(self.origin + Duration::from_nanos(deadline))
    }

    pub(crate) fn set_head_deadline(&self, deadline: Option<Instant>) {
        let encoded = deadline.map_or(NO_DEADLINE, |deadline| {
            nanos(deadline.saturating_duration_since(self.origin))
        });
        self.head_deadline.store(encoded, Ordering::Release);
    }

    /// Sets a deadline `wait` after the next read starts, without reading the clock now:
    /// a head that arrives whole in the bytes already buffered needs no read, so it never
    /// reads the clock. Until that read only buffered bytes are parsed, so the deadline
    /// starts at most that parsing's time later than the clock read it replaces, and a
    /// client cannot stretch it.
    pub(crate) fn set_head_wait(&self, wait: Duration) {
        self.head_deadline
            .store(FROM_NEXT_READ | nanos(wait), Ordering::Release);
    }

    /// The head deadline and the time now, both in nanoseconds after `origin`; a wait set
    /// by `set_head_wait` becomes a deadline from now. Counted in integers: through
    /// `Instant` and `Duration` arithmetic (normalised seconds and nanoseconds, checked at
    /// each step) this cost about 180 instructions per read.
    fn resolve_head_deadline(&self) -> Option<(u64, u64)> {
        let encoded = self.head_deadline.load(Ordering::Acquire);
        if encoded == NO_DEADLINE {
            return None;
        }
        let now = nanos(Instant::now().saturating_duration_since(self.origin));
        if encoded & FROM_NEXT_READ == 0 {
            return Some((encoded, now));
        }
        let deadline = now
            .saturating_add(encoded & !FROM_NEXT_READ)
            .min(FROM_NEXT_READ - 1);
        self.head_deadline.store(deadline, Ordering::Release);
        Some((deadline, now))
    }

    /// The wait allowed for the next read, or `TimedOut` when the head deadline has passed.
    fn next_read_timeout(&self) -> IoResult<Duration> {
        match self.resolve_head_deadline() {
            None => Ok(self.idle),
            Some((deadline, now)) if deadline > now => Ok(Duration::from_nanos(deadline - now)),
            Some(_) => Err(IoError::new(
                ErrorKind::TimedOut,
                "request head not received in time",
            )),
        }
    }
}

pub struct RefinedTcpStream {
    stream: Stream,
    close_read: bool,
    close_write: bool,
    /// Held by the write half: the connection counts as live until its socket is closed.
    _live: Option<LiveConnection>,
    /// Set when a request body was given up: reads then see end of stream.
    body_abandoned: Arc<AtomicBool>,
    read_policy: Arc<ReadPolicy>,
    /// The socket's current read timeout, to skip setting it again.
    applied_read_timeout: Option<Duration>,
}

impl RefinedTcpStream {
    pub(crate) fn new<S>(
        stream: S,
        live: LiveConnection,
        read_policy: Arc<ReadPolicy>,
    ) -> IoResult<(RefinedTcpStream, RefinedTcpStream)>
    where
        S: Into<Stream>,
    {
        let stream: Stream = stream.into();

        let (read, write) = (stream.share(), stream);

        let read = RefinedTcpStream {
            stream: read,
            close_read: true,
            close_write: false,
            _live: None,
            body_abandoned: Arc::default(),
            read_policy: read_policy.clone(),
            applied_read_timeout: None,
        };

        let write = RefinedTcpStream {
            stream: write,
            close_read: false,
            close_write: true,
            _live: Some(live),
            body_abandoned: Arc::default(),
            read_policy,
            applied_read_timeout: None,
        };

        Ok((read, write))
    }

    /// Returns true if this struct wraps around a secure connection.
    #[inline]
    pub(crate) fn secure(&self) -> bool {
        self.stream.secure()
    }

    pub(crate) fn peer_addr(&mut self) -> IoResult<Option<SocketAddr>> {
        self.stream.peer_addr()
    }

    /// Closes this connection from another thread without keeping it open.
    pub(crate) fn shutdown_handle(&self) -> ShutdownHandle {
        self.stream.shutdown_handle()
    }

    pub(crate) fn read_policy(&self) -> Arc<ReadPolicy> {
        self.read_policy.clone()
    }

    /// The flag that makes reads end once a request body was given up.
    pub(crate) fn body_abandoned(&self) -> Arc<AtomicBool> {
        self.body_abandoned.clone()
    }

    /// The TCP socket under the stream; `None` for an external stream without a shared
    /// socket.
    pub(crate) fn tcp_socket(&self) -> Option<TcpSocket> {
        match &self.stream {
            Stream::Http(connection) => Some(TcpSocket::Http(connection.clone())),
            Stream::External(external) => external.socket().map(TcpSocket::External),
        }
    }

    /// The socket a parked connection waits on; `None` for an external stream without a
    /// shared socket.
    pub(crate) fn pollable_fd(&self) -> Option<RawFd> {
        match &self.stream {
            Stream::Http(connection) => Some(connection.as_raw_fd()),
            Stream::External(external) => external.socket().map(|socket| socket.as_raw_fd()),
        }
    }

    /// The shared stream when it came through `Server::serve_stream`.
    pub(crate) fn external(&self) -> Option<SharedExternal> {
        match &self.stream {
            Stream::External(external) => Some(external.clone()),
            _ => None,
        }
    }
}

impl Drop for RefinedTcpStream {
    fn drop(&mut self) {
        if self.close_read {
            self.stream.shutdown(Shutdown::Read).ok();
        }

        if self.close_write {
            self.stream.shutdown(Shutdown::Write).ok();
        }
    }
}

impl Read for RefinedTcpStream {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        if self.body_abandoned.load(Ordering::Acquire) {
            return Ok(0);
        }
        let awaiting = self.read_policy.awaiting_request();
        let park = awaiting && self.read_policy.parkable;
        let sliced = awaiting && !park && matches!(self.stream, Stream::External(_));
        loop {
            let mut timeout = self.read_policy.next_read_timeout()?;
            if park {
                // Fixed values, so the socket option is not set again for each request.
                timeout = timeout.min(PARK_AFTER);
            } else if sliced {
                timeout = timeout.min(IDLE_EXTERNAL_READ_SLICE);
            } else if awaiting {
                // The wait for the next request is one read of the whole idle timeout.
                timeout = self.read_policy.idle;
            }
            if self.applied_read_timeout != Some(timeout) {
                self.stream.set_read_timeout(timeout)?;
                self.applied_read_timeout = Some(timeout);
            }
            match self.stream.read(buf) {
                Err(e) if park && is_timeout(&e) => {
                    // Past the idle deadline this is the idle timeout; otherwise the wait
                    // goes on without a thread.
                    self.read_policy.next_read_timeout()?;
                    self.read_policy
                        .parking_requested
                        .store(true, Ordering::Release);
                    return Err(IoError::new(ErrorKind::WouldBlock, "parked"));
                }
                Err(e) if sliced && is_timeout(&e) => {
                    if self.read_policy.drain_closes_idle() {
                        return Err(IoError::new(
                            ErrorKind::ConnectionAborted,
                            "server draining",
                        ));
                    }
                }
                // What a socket read timeout looks like on Unix.
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    return Err(IoError::new(ErrorKind::TimedOut, e))
                }
                other => return other,
            }
        }
    }
}

fn is_timeout(e: &IoError) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

impl Write for RefinedTcpStream {
    fn write(&mut self, buf: &[u8]) -> IoResult<usize> {
        self.stream.write(buf)
    }

    fn flush(&mut self) -> IoResult<()> {
        self.stream.flush()
    }
}
