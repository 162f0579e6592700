//! The HTTPS accept loop: accept, set TCP_NODELAY, wrap, hand to tiny_http.
//!
//! Nothing here reads from a client: the handshake runs lazily on the
//! connection's own tiny_http thread, so one slow client never delays the
//! next accept. With `--use-proxy-protocol` the server's preface reads the
//! PROXY protocol header there too, from the stream's shared socket, before
//! the first TLS byte.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;


use super::config::HttpsConfig;
use super::TlsStream;

/// Pause after the first failed accept; doubled per consecutive failure.
const FIRST_BACKOFF: Duration = Duration::from_millis(10);
/// Longest pause, so service resumes within a second once descriptors free up.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

impl tiny_http::ExternalStream for TlsStream {
    fn peer_addr(&self) -> Option<std::net::SocketAddr> {
        TlsStream::peer_addr(self)
    }

    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        TlsStream::set_read_timeout(self, timeout)
    }

    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        TlsStream::set_write_timeout(self, timeout)
    }

    fn shutdown(&self) -> io::Result<()> {
        TlsStream::shutdown(self)
    }

    fn shared_socket(&self) -> Option<Arc<TcpStream>> {
        Some(TlsStream::shared_socket(self))
    }

    fn session(&self) -> Option<Arc<dyn std::any::Any + Send + Sync>> {
        self.client_session().map(|session| session as Arc<dyn std::any::Any + Send + Sync>)
    }
}

/// The running HTTPS accept loop.
pub struct HttpsListener {
    stop: Arc<AtomicBool>,
    addr: SocketAddr,
}

impl HttpsListener {
    /// Closes the listening socket for a graceful drain; connections already
    /// handed to tiny_http keep being served.
    pub fn stop_accepting(&self) {
        if self.stop.swap(true, Ordering::SeqCst) {
            return;
        }
        // The accept thread is blocked in accept(): one connection wakes it
        // to see the flag. A failure means it is already gone.
        let wake = match self.addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), self.addr.port()),
            IpAddr::V6(ip) if ip.is_unspecified() => SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), self.addr.port()),
            _ => self.addr,
        };
        let _ = TcpStream::connect_timeout(&wake, Duration::from_secs(1));
    }
}

/// Serves HTTPS on `listener` through `server` until `stop_accepting`. Accept
/// errors (a full descriptor table, an aborted connection) are logged and
/// retried after a growing pause instead of ending the loop.
pub fn spawn_listener(
    listener: TcpListener,
    config: Arc<HttpsConfig>,
    server: Arc<tiny_http::Server>,
    handshake_timeout: Duration,
) -> io::Result<HttpsListener> {
    let addr = listener.local_addr()?;
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = Arc::clone(&stop);
    thread::Builder::new()
        .name("https-accept".into())
        .spawn(move || accept_loop(&listener, &config, &server, handshake_timeout, &stopped))?;
    Ok(HttpsListener { stop, addr })
}

fn accept_loop(
    listener: &TcpListener,
    config: &Arc<HttpsConfig>,
    server: &tiny_http::Server,
    handshake_timeout: Duration,
    stop: &AtomicBool,
) {
    let mut backoff = FIRST_BACKOFF;
    while !stop.load(Ordering::SeqCst) {
        let socket = match listener.accept() {
            Ok((socket, _)) => socket,
            Err(error) => {
                log::warn!("tls: accept failed: {error}; retrying in {backoff:?}");
                thread::sleep(backoff);
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        if stop.load(Ordering::SeqCst) {
            break;
        }
        backoff = FIRST_BACKOFF;
        if let Err(error) = socket.set_nodelay(true) {
            log::debug!("tls: cannot set TCP_NODELAY: {error}");
        }
        match TlsStream::new(socket, Arc::clone(config), handshake_timeout) {
            Ok(stream) => server.serve_stream(Box::new(stream)),
            Err(error) => log::debug!("tls: dropping a connection that cannot be set up: {error}"),
        }
    }
    log::info!("tls: stopped accepting");
}
