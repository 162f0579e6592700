//! Connections accepted outside tiny_http (TLS sessions), served through `Server::serve_stream`.

use std::any::Any;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError, Weak};
use std::thread;
use std::time::{Duration, Instant};

/// What the server needs from a stream it did not accept itself.
///
/// The timeout and shutdown methods take `&self` because an implementation wraps a
/// `TcpStream` (or a clone of it) whose socket options do not need exclusive access.
pub trait ExternalStream: Read + Write + Send + 'static {
    /// The client's address, for `Request::remote_addr`.
    fn peer_addr(&self) -> Option<SocketAddr>;
    /// Applied to the underlying socket; a timed-out read must leave the stream usable.
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()>;
    /// Applied to the underlying socket.
    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()>;
    /// Closes both directions of the underlying socket.
    fn shutdown(&self) -> io::Result<()>;
    /// The socket under the stream, shared, so that cutting the connection from another
    /// thread never waits for the stream's lock: a read blocked on the connection's thread
    /// holds that lock until its read timeout, which may be the whole idle timeout.
    /// Shutting the socket itself down wakes that read at once.
    ///
    /// A server with a `Preface` reads it from this socket before the stream's first read.
    ///
    /// `None` (the default) shuts down through `shutdown`, under the lock, and makes a
    /// server with a `Preface` close the connection.
    fn shared_socket(&self) -> Option<Arc<TcpStream>> {
        None
    }
    /// What the stream learnt while setting up (a TLS session's server name and client
    /// certificate), for `Request::session`. Asked once per connection, after its first
    /// request head was read, so a handshake run lazily by the first read is over by then.
    ///
    /// `None` (the default) when there is nothing to tell.
    fn session(&self) -> Option<Arc<dyn Any + Send + Sync>> {
        None
    }
}

/// Longest time a raw (upgraded) reader holds the stream lock while waiting for data,
/// so the writer half on another thread is never blocked for long.
const RAW_READ_SLICE: Duration = Duration::from_millis(20);

/// One external stream shared by the read and write halves of a connection.
///
/// Reads and writes go through one lock because a TLS session cannot be split.
#[derive(Clone)]
pub(crate) struct SharedExternal {
    state: Arc<ExternalState>,
}

struct ExternalState {
    stream: Mutex<Box<dyn ExternalStream>>,
    /// `ExternalStream::shared_socket`, taken once: shut down without the lock.
    socket: Option<Arc<TcpStream>>,
    /// Set once the connection is handed over raw: reads then wait in short slices.
    raw: AtomicBool,
    /// How long a raw read waits for data in total before reporting `TimedOut`.
    raw_idle: Duration,
}

impl SharedExternal {
    pub(crate) fn new(stream: Box<dyn ExternalStream>, raw_idle: Duration) -> SharedExternal {
        SharedExternal {
            state: Arc::new(ExternalState {
                socket: stream.shared_socket(),
                stream: Mutex::new(stream),
                raw: AtomicBool::new(false),
                raw_idle,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Box<dyn ExternalStream>> {
        self.state
            .stream
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// A reference for a `ShutdownHandle` that does not keep the stream open.
    pub(crate) fn downgrade(&self) -> WeakExternal {
        WeakExternal(Arc::downgrade(&self.state))
    }

    pub(crate) fn peer_addr(&self) -> Option<SocketAddr> {
        self.lock().peer_addr()
    }

    /// `ExternalStream::shared_socket`, as taken when the stream was wrapped.
    pub(crate) fn socket(&self) -> Option<Arc<TcpStream>> {
        self.state.socket.clone()
    }

    pub(crate) fn session(&self) -> Option<Arc<dyn Any + Send + Sync>> {
        self.lock().session()
    }

    pub(crate) fn shutdown(&self) -> io::Result<()> {
        match &self.state.socket {
            Some(socket) => socket.shutdown(Shutdown::Both),
            None => self.lock().shutdown(),
        }
    }

    /// Ignored once the stream is raw: raw reads keep their short slices.
    pub(crate) fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        let stream = self.lock();
        if self.state.raw.load(Ordering::Acquire) {
            return Ok(());
        }
        stream.set_read_timeout(timeout)
    }

    pub(crate) fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.lock().set_write_timeout(timeout)
    }

    /// Switches reads to short lock-free waits so a writer thread can interleave.
    pub(crate) fn enter_raw_mode(&self) -> io::Result<()> {
        let stream = self.lock();
        stream.set_read_timeout(Some(RAW_READ_SLICE))?;
        self.state.raw.store(true, Ordering::Release);
        Ok(())
    }

    pub(crate) fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.state.raw.load(Ordering::Acquire) {
            return self.lock().read(buf);
        }
        let deadline = Instant::now() + self.state.raw_idle;
        loop {
            let result = self.lock().read(buf);
            match result {
                Err(e)
                    if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
                        && Instant::now() < deadline =>
                {
                    thread::yield_now();
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    return Err(io::Error::new(ErrorKind::TimedOut, e))
                }
                other => return other,
            }
        }
    }

    pub(crate) fn write(&self, buf: &[u8]) -> io::Result<usize> {
        self.lock().write(buf)
    }

    pub(crate) fn flush(&self) -> io::Result<()> {
        self.lock().flush()
    }
}

/// An external stream as a `ShutdownHandle` sees it: gone once the server dropped it.
#[derive(Clone)]
pub(crate) struct WeakExternal(Weak<ExternalState>);

impl WeakExternal {
    pub(crate) fn shutdown(&self) -> io::Result<()> {
        match self.0.upgrade() {
            Some(state) => SharedExternal { state }.shutdown(),
            None => Ok(()),
        }
    }

    /// Without a shared socket, does nothing while a read holds the stream's lock (it may
    /// hold it up to the idle timeout).
    pub(crate) fn try_shutdown(&self) {
        let Some(state) = self.0.upgrade() else {
            return;
        };
        if let Some(socket) = &state.socket {
            if let Err(e) = socket.shutdown(Shutdown::Both) {
                log::debug!("shutting an external stream down failed: {}", e);
            }
            return;
        }
        let result = match state.stream.try_lock() {
            Ok(stream) => stream.shutdown(),
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner().shutdown(),
            Err(TryLockError::WouldBlock) => return,
        };
        if let Err(e) = result {
            log::debug!("shutting an external stream down failed: {}", e);
        }
    }
}
