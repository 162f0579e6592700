//! The HTTPS accept loop: accept, set TCP_NODELAY, wrap, hand to tiny_http.
//!
//! Nothing here reads from a client: the handshake runs lazily on the
//! connection's own tiny_http thread, so one slow client never delays the
//! next accept.

use std::io;
use std::net::TcpListener;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use rustls::ServerConfig;

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
}

/// Serves HTTPS on `listener` through `server`, forever. Accept errors (a full
/// descriptor table, an aborted connection) are logged and retried after a
/// growing pause instead of ending the loop.
pub fn spawn_listener(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    server: Arc<tiny_http::Server>,
    handshake_timeout: Duration,
) -> JoinHandle<()> {
    thread::Builder::new()
        .name("https-accept".into())
        .spawn(move || accept_loop(&listener, &config, &server, handshake_timeout))
        // As with `thread::spawn`: only at startup, when the OS refuses a thread.
        .expect("the HTTPS accept thread starts")
}

fn accept_loop(listener: &TcpListener, config: &Arc<ServerConfig>, server: &tiny_http::Server, handshake_timeout: Duration) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        let socket = match listener.accept() {
            Ok((socket, _)) => socket,
            Err(error) => {
                log::warn!("tls: accept failed: {error}; retrying in {backoff:?}");
                thread::sleep(backoff);
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        backoff = FIRST_BACKOFF;
        if let Err(error) = socket.set_nodelay(true) {
            log::debug!("tls: cannot set TCP_NODELAY: {error}");
        }
        match TlsStream::new(socket, Arc::clone(config), handshake_timeout) {
            Ok(stream) => server.serve_stream(Box::new(stream)),
            Err(error) => log::debug!("tls: dropping a connection that cannot be set up: {error}"),
        }
    }
}
