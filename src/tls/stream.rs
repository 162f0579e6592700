//! One server-side TLS session over a TCP socket, as a blocking stream.
//!
//! The handshake is lazy: it runs inside the first `read` or `write`, that is
//! on the connection's own thread, never the accept thread. It has one
//! deadline for the whole handshake, so a silent or trickling client is
//! dropped when the deadline passes whatever timeouts the HTTP server sets.
//!
//! After the handshake, socket timeouts are the ones the HTTP server asked
//! for. A read that times out leaves the session intact (rustls keeps partial
//! records), so a caller may poll with short read timeouts and interleave
//! writes, which is how tiny_http relays an upgraded connection.

use std::cell::Cell;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::server::{Acceptor, ServerConnection};
use rustls::ServerConfig;

use super::client_auth::{ClientAuth, ClientSession};
use super::config::HttpsConfig;

/// A fatal `unrecognized_name` alert as a plaintext TLS record. rustls itself
/// answers a resolver's `None` with `access_denied`; before the ServerHello
/// the record is unencrypted, so the right alert can be written directly.
const UNRECOGNIZED_NAME_ALERT: [u8; 7] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x70];

enum State {
    /// Waiting for the ClientHello, to choose the certificate (and ALPN) first.
    Accepting(Box<Acceptor>),
    /// Handshaking, then established.
    Open(Box<ServerConnection>),
    /// The handshake failed or timed out; every later call fails.
    Failed,
}

/// A server TLS session that tiny_http serves as an external stream.
pub struct TlsStream {
    /// Shared with tiny_http, which shuts it down to cut the connection
    /// without waiting for a read blocked on it.
    socket: Arc<TcpStream>,
    peer: Option<SocketAddr>,
    config: Arc<HttpsConfig>,
    state: State,
    /// The SNI name's client-certificate settings, from the ClientHello
    /// until the handshake ends, with that name.
    client_auth: Option<(Arc<ClientAuth>, Option<String>)>,
    /// What the handshake with a client-certificate host found.
    session: Option<Arc<ClientSession>>,
    handshake_deadline: Instant,
    handshake_done: Cell<bool>,
    /// The timeouts the HTTP server asked for, applied once the handshake is over.
    read_timeout: Cell<Option<Duration>>,
    write_timeout: Cell<Option<Duration>>,
}

fn handshake_error(why: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why)
}

impl TlsStream {
    /// Wraps an accepted socket; nothing is read yet. The handshake must
    /// complete within `handshake_timeout` from now. Until the HTTP server
    /// sets its own, later reads and writes also time out after
    /// `handshake_timeout`, so no socket is ever left without a bound.
    pub fn new(socket: TcpStream, config: Arc<HttpsConfig>, handshake_timeout: Duration) -> io::Result<TlsStream> {
        let timeout = Some(handshake_timeout.max(Duration::from_millis(1)));
        socket.set_read_timeout(timeout)?;
        socket.set_write_timeout(timeout)?;
        Ok(TlsStream {
            peer: socket.peer_addr().ok(),
            socket: Arc::new(socket),
            config,
            state: State::Accepting(Box::default()),
            client_auth: None,
            session: None,
            handshake_deadline: Instant::now() + handshake_timeout,
            handshake_done: Cell::new(false),
            read_timeout: Cell::new(timeout),
            write_timeout: Cell::new(timeout),
        })
    }

    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// The client-certificate session, once the handshake with a host that
    /// has client-certificate settings is over; `None` for other hosts.
    pub fn client_session(&self) -> Option<Arc<ClientSession>> {
        self.session.clone()
    }

    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.read_timeout.set(timeout);
        if self.handshake_done.get() {
            self.socket.set_read_timeout(timeout)?;
        }
        Ok(())
    }

    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.write_timeout.set(timeout);
        if self.handshake_done.get() {
            self.socket.set_write_timeout(timeout)?;
        }
        Ok(())
    }

    pub fn shutdown(&self) -> io::Result<()> {
        self.socket.shutdown(Shutdown::Both)
    }

    /// The TCP socket under the session, for a shutdown from another thread.
    pub fn shared_socket(&self) -> Arc<TcpStream> {
        Arc::clone(&self.socket)
    }

    /// Bounds the next socket operation by what is left of the handshake deadline.
    fn arm_deadline(&mut self) -> io::Result<()> {
        let remaining = self.handshake_deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "TLS handshake deadline passed"));
        }
        self.socket.set_read_timeout(Some(remaining))?;
        self.socket.set_write_timeout(Some(remaining))
    }

    /// Runs the handshake to completion (once); any failure is final.
    fn handshake(&mut self) -> io::Result<()> {
        if self.handshake_done.get() {
            return Ok(());
        }
        // The handshake state survives an interrupted system call: resume it.
        let outcome = loop {
            match self.drive_handshake() {
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                outcome => break outcome,
            }
        };
        match outcome {
            Ok(()) => {
                self.handshake_done.set(true);
                if let (Some((auth, server_name)), State::Open(conn)) = (self.client_auth.take(), &self.state) {
                    let provider = self.config.rustls.crypto_provider();
                    self.session = Some(Arc::new(auth.session(server_name.as_deref(), conn.peer_certificates(), provider)));
                }
                self.socket.set_read_timeout(self.read_timeout.get())?;
                self.socket.set_write_timeout(self.write_timeout.get())
            }
            Err(error) => {
                self.state = State::Failed;
                let error = match error.kind() {
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                        io::Error::new(io::ErrorKind::TimedOut, "TLS handshake deadline passed")
                    }
                    _ => error,
                };
                // Debug: scanners and health probes fail handshakes all day.
                let peer = self.peer.map_or_else(|| "an unknown peer".to_string(), |peer| peer.to_string());
                log::debug!("tls: handshake with {peer} failed: {error}");
                Err(error)
            }
        }
    }

    fn drive_handshake(&mut self) -> io::Result<()> {
        loop {
            self.arm_deadline()?;
            match &mut self.state {
                State::Accepting(acceptor) => {
                    if acceptor.read_tls(&mut &*self.socket)? == 0 {
                        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "client closed before its ClientHello"));
                    }
                    let accepted = match acceptor.accept() {
                        Ok(None) => continue,
                        Ok(Some(accepted)) => accepted,
                        Err((error, mut alert)) => {
                            let _ = alert.write_all(&mut &*self.socket);
                            return Err(handshake_error(error));
                        }
                    };
                    let hello = accepted.client_hello();
                    if self.config.rustls.cert_resolver.resolve(accepted.client_hello()).is_none() {
                        let name = hello.server_name().unwrap_or("(no SNI)").to_string();
                        let _ = (&*self.socket).write_all(&UNRECOGNIZED_NAME_ALERT);
                        return Err(handshake_error(format!("no certificate for server name {name}")));
                    }
                    let offers_alpn_without_http1 =
                        hello.alpn().is_some_and(|mut offered| !offered.any(|protocol| protocol == b"http/1.1"));
                    // A host with client-certificate settings asks for one.
                    let server_name = hello.server_name().map(str::to_owned);
                    let client_auth = self.config.client_auth(server_name.as_deref());
                    let base = client_auth
                        .as_ref()
                        .and_then(|auth| auth.handshake_config(&self.config.rustls))
                        .unwrap_or_else(|| Arc::clone(&self.config.rustls));
                    self.client_auth = client_auth.map(|auth| (auth, server_name));
                    let config = if offers_alpn_without_http1 {
                        // A client that offers ALPN but not http/1.1 (h2 only)
                        // gets no ALPN answer, which means HTTP/1.1, instead
                        // of a no_application_protocol alert.
                        let mut without_alpn = ServerConfig::clone(&base);
                        without_alpn.alpn_protocols.clear();
                        Arc::new(without_alpn)
                    } else {
                        base
                    };
                    match accepted.into_connection(config) {
                        Ok(conn) => self.state = State::Open(Box::new(conn)),
                        Err((error, mut alert)) => {
                            let _ = alert.write_all(&mut &*self.socket);
                            return Err(handshake_error(error));
                        }
                    }
                }
                State::Open(conn) => {
                    if conn.wants_write() {
                        conn.write_tls(&mut &*self.socket)?;
                        continue;
                    }
                    if !conn.is_handshaking() {
                        return Ok(());
                    }
                    if conn.read_tls(&mut &*self.socket)? == 0 {
                        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "client closed during the TLS handshake"));
                    }
                    if let Err(error) = conn.process_new_packets() {
                        let _ = conn.write_tls(&mut &*self.socket);
                        return Err(handshake_error(error));
                    }
                }
                State::Failed => return Err(io::Error::new(io::ErrorKind::NotConnected, "TLS session failed")),
            }
        }
    }

    /// The established session, running the handshake first if needed.
    fn session(&mut self) -> io::Result<(&mut ServerConnection, &TcpStream)> {
        self.handshake()?;
        match &mut self.state {
            State::Open(conn) => Ok((conn, &self.socket)),
            _ => Err(io::Error::new(io::ErrorKind::NotConnected, "TLS session failed")),
        }
    }
}

/// Sends every encrypted byte rustls has queued.
fn flush_tls(conn: &mut ServerConnection, mut socket: &TcpStream) -> io::Result<()> {
    while conn.wants_write() {
        match conn.write_tls(&mut socket) {
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

impl Read for TlsStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let (conn, mut socket) = self.session()?;
        loop {
            match conn.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(error) => return Err(error),
            }
            // Session tickets and key-update answers go out before we block.
            flush_tls(conn, socket)?;
            if conn.read_tls(&mut socket)? == 0 {
                // rustls now reports a clean close_notify as Ok(0), an abrupt
                // close as UnexpectedEof.
                continue;
            }
            if let Err(error) = conn.process_new_packets() {
                let _ = flush_tls(conn, socket);
                return Err(io::Error::new(io::ErrorKind::InvalidData, error));
            }
        }
    }
}

impl Write for TlsStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let (conn, socket) = self.session()?;
        // Earlier bytes first: an error here means none of `buf` was taken.
        flush_tls(conn, socket)?;
        let taken = conn.writer().write(buf)?;
        // `buf` is now owned by the session; a failure to send it surfaces
        // on the next write or flush rather than inviting a duplicate retry.
        let _ = flush_tls(conn, socket);
        Ok(taken)
    }

    fn flush(&mut self) -> io::Result<()> {
        let (conn, socket) = self.session()?;
        conn.writer().flush()?;
        flush_tls(conn, socket)
    }
}

impl Drop for TlsStream {
    /// Says close_notify when it can without blocking, so clients can tell a
    /// complete response from a truncated one.
    fn drop(&mut self) {
        if let (true, State::Open(conn)) = (self.handshake_done.get(), &mut self.state) {
            conn.send_close_notify();
            if self.socket.set_nonblocking(true).is_ok() {
                let _ = conn.write_tls(&mut &*self.socket);
            }
        }
    }
}
