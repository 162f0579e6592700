//! Protocol upgrades (WebSocket or any other `Upgrade`). ureq cannot carry
//! them, so the tunnel opens its own TCP connection, sends the request head,
//! reads the response head, and on `101` relays bytes both ways on two
//! threads of its own, so the connection's thread returns to tiny_http's pool.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::request::{finish, reply, ClientRequest, RoutedRequest};
use super::balance;
use super::headers;
use super::wire;
use super::{Outcome, Shared};
use crate::routes::{Route, Upstream};

/// Largest upstream response head accepted.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// Relay buffer per direction.
const RELAY_BUFFER: usize = 16 * 1024;

/// How often a blocked relay read wakes to check the idle deadline.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// Why the upstream side of a tunnel could not be set up.
#[derive(Debug)]
enum TunnelError {
    /// No endpoint accepted a connection.
    Connect(io::Error),
    /// The response head did not arrive within `--upstream-response-timeout`.
    Timeout,
    /// The upstream closed, failed, or sent something that is not an HTTP/1.x response head.
    BadResponse(String),
}

impl std::fmt::Display for TunnelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TunnelError::Connect(err) => write!(f, "no endpoint accepted a connection: {err}"),
            TunnelError::Timeout => f.write_str("no response head within --upstream-response-timeout"),
            TunnelError::BadResponse(why) => write!(f, "bad response: {why}"),
        }
    }
}

fn resolve(authority: &str) -> io::Result<SocketAddr> {
    authority
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::AddrNotAvailable, "authority resolves to nothing"))
}

/// Connects to the first endpoint that accepts, starting where the route's
/// balancing puts this request (its sticky endpoint, its hash, or the
/// round-robin position).
fn connect(shared: &Shared, upstreams: &[Upstream], route: &Route, plan: &balance::Plan<'_>, outcome: &mut Outcome) -> Result<TcpStream, TunnelError> {
    let order = shared.hold_down.order(upstreams, plan.first, Instant::now, plan.tries);
    let mut last_error = io::Error::new(io::ErrorKind::NotConnected, "no endpoint tried");
    for &index in order.as_slice() {
        let upstream = &upstreams[index];
        outcome.upstream = Some(upstream.authority.clone());
        outcome.attempts += 1;
        match resolve(&upstream.authority).and_then(|addr| TcpStream::connect_timeout(&addr, shared.config.connect_timeout)) {
            Ok(stream) => {
                shared.hold_down.answered(upstream);
                return Ok(stream);
            }
            Err(err) => {
                log::warn!("{}: tunnel connect to {} failed: {err}", route.service, upstream.authority);
                outcome.connect_errors += 1;
                shared.hold_down.refused(upstream, Instant::now());
                last_error = err;
            }
        }
    }
    Err(TunnelError::Connect(last_error))
}

/// Sends the request head and reads the response head; returns it with any bytes read past it.
fn handshake(shared: &Shared, stream: &mut TcpStream, request_head: &[u8]) -> Result<(wire::ResponseHead, Vec<u8>), TunnelError> {
    let io_error = |err: io::Error| if is_timeout(&err) { TunnelError::Timeout } else { TunnelError::BadResponse(err.to_string()) };
    let _ = stream.set_nodelay(true);
    stream.set_write_timeout(Some(shared.config.read_timeout)).map_err(io_error)?;
    stream.set_read_timeout(Some(shared.config.response_timeout)).map_err(io_error)?;
    stream.write_all(request_head).map_err(io_error)?;
    let deadline = Instant::now() + shared.config.response_timeout;
    let mut buffer = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        if Instant::now() > deadline {
            return Err(TunnelError::Timeout);
        }
        let read = stream.read(&mut chunk).map_err(io_error)?;
        if read == 0 {
            return Err(TunnelError::BadResponse("closed before a response head".into()));
        }
        buffer.extend_from_slice(&chunk[..read]);
        match wire::parse_response_head(&buffer) {
            Ok(Some(head)) => {
                let rest = buffer.split_off(head.length);
                return Ok((head, rest));
            }
            Ok(None) if buffer.len() > MAX_RESPONSE_HEAD => {
                return Err(TunnelError::BadResponse("response head too large".into()));
            }
            Ok(None) => {}
            Err(err) => return Err(TunnelError::BadResponse(format!("{err:?}"))),
        }
    }
}

/// Relays an upgrade request; the returned outcome describes the handshake.
pub(super) fn relay(shared: &Shared, request: tiny_http::Request, routed: RoutedRequest) -> Outcome {
    let RoutedRequest { client, target, upstream_head, upstreams, route, mut outcome, started, .. } = routed;
    let client = &ClientRequest { close: true, ..client };
    let plan = balance::plan(route, upstreams, || balance::Inputs {
        headers: request.headers(),
        request_uri: request.url(),
        client: request.remote_addr().copied(),
        host: &outcome.host,
    });
    let mut upstream = match connect(shared, upstreams, route, &plan, &mut outcome) {
        Ok(stream) => stream,
        Err(err) => {
            log::warn!("{}: upgrade for {}{} failed: {err}", route.service, outcome.host, target.path());
            return reply(request, client, outcome, started, 502, "bad gateway", &[]);
        }
    };
    let request_head = wire::request_head(&outcome.method, &target.path_and_query, &upstream_head.headers);
    let (head, past_head) = match handshake(shared, &mut upstream, &request_head) {
        Ok(answer) => answer,
        Err(err) => {
            log::warn!("{}: upgrade handshake with {} failed: {err}", route.service, outcome.upstream.as_deref().unwrap_or(""));
            let (status, text) = if matches!(err, TunnelError::Timeout) { (504, "upstream timed out") } else { (502, "bad gateway") };
            return reply(request, client, outcome, started, status, text, &[]);
        }
    };
    outcome.upstream_status = Some(head.status);
    outcome.status = head.status;
    let switching = head.status == 101;
    let upstream_headers: Vec<(&str, &[u8])> = head.headers.iter().map(|(n, v)| (n.as_str(), v.as_slice())).collect();
    let mut kept: Vec<_> = headers::downstream_response_headers(|| upstream_headers.iter().copied(), switching).collect();
    if switching {
        kept.push(("connection", b"upgrade"));
    } else {
        // The rest of a refused upgrade is relayed as it comes, so its own
        // framing headers stay; the connection ends after it.
        kept.extend(upstream_headers.iter().filter(|(n, _)| {
            n.eq_ignore_ascii_case("content-length") || n.eq_ignore_ascii_case("transfer-encoding")
        }));
        kept.push(("connection", b"close"));
    }
    let mut response_head = wire::response_head(head.status, &kept, wire::Framing::Empty { content_length: None }, false, false);
    response_head.extend_from_slice(&past_head);

    let cut = request.shutdown_handle();
    let (client_reader, mut client_writer) = request.into_raw();
    if let Err(err) = client_writer.write_all(&response_head).and_then(|()| client_writer.flush()) {
        log::debug!("{}{}: client went away during the upgrade: {err}", outcome.host, outcome.path);
        return finish(outcome, started);
    }
    outcome.bytes_sent = response_head.len() as u64;
    if !switching {
        let _ = upstream.set_read_timeout(Some(shared.config.read_timeout));
        let declared = upstream_headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| std::str::from_utf8(v).ok()?.trim().parse::<u64>().ok());
        outcome.bytes_sent += match declared {
            Some(length) => {
                let remaining = length.saturating_sub(past_head.len() as u64);
                copy_until_end(&mut (&mut upstream).take(remaining), &mut client_writer)
            }
            None => copy_until_end(&mut upstream, &mut client_writer),
        };
        return finish(outcome, started);
    }
    let client = ClientHalves { reader: client_reader, writer: client_writer, cut };
    start_relay(upstream, client, shared.config.websocket_idle_timeout, &outcome);
    finish(outcome, started)
}

/// Copies until the source ends or fails; returns the bytes copied.
fn copy_until_end(from: &mut dyn Read, to: &mut dyn Write) -> u64 {
    let mut buffer = [0u8; RELAY_BUFFER];
    let mut copied = 0;
    loop {
        match from.read(&mut buffer) {
            Ok(0) | Err(_) => return copied,
            Ok(read) => {
                if to.write_all(&buffer[..read]).and_then(|()| to.flush()).is_err() {
                    return copied;
                }
                copied += read as u64;
            }
        }
    }
}

/// The last moment either direction moved a byte, shared by both relay threads.
struct Activity {
    origin: Instant,
    last_millis: AtomicU64,
    idle: Duration,
}

impl Activity {
    fn touch(&self) {
        self.last_millis.store(self.origin.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn idle_expired(&self) -> bool {
        let last = Duration::from_millis(self.last_millis.load(Ordering::Relaxed));
        self.origin.elapsed().saturating_sub(last) >= self.idle
    }
}

/// Reads that time out are the relay's chance to check the idle deadline.
fn is_timeout(err: &io::Error) -> bool {
    matches!(err.kind(), io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock)
}

/// The client's connection once handed over raw.
struct ClientHalves {
    reader: Box<dyn Read + Send>,
    writer: Box<dyn Write + Send>,
    /// Ends the client connection while the other relay thread is blocked
    /// reading it.
    cut: tiny_http::ShutdownHandle,
}

/// Relays until either side closes or nothing moves for `idle`.
///
/// Ending: client EOF half-closes the upstream so its final bytes still come
/// back. Upstream EOF, idle expiry, or a failed client write shut both
/// sockets down at once: the thread blocked reading the client would
/// otherwise hold it open until the server's idle timeout.
fn start_relay(upstream: TcpStream, client: ClientHalves, idle: Duration, outcome: &Outcome) {
    let ClientHalves { reader: mut client_reader, writer: mut client_writer, cut } = client;
    let activity = Arc::new(Activity { origin: Instant::now(), last_millis: AtomicU64::new(0), idle });
    let label = format!("{} {}", outcome.host, outcome.path);
    let upstream_reader = upstream.try_clone();
    let (mut upstream_writer, mut upstream_reader) = match upstream_reader {
        Ok(reader) => (upstream, reader),
        Err(err) => {
            log::warn!("{label}: cannot split the upstream socket: {err}");
            return;
        }
    };
    let _ = upstream_reader.set_read_timeout(Some(idle.min(IDLE_CHECK)));

    let up_activity = Arc::clone(&activity);
    let up_label = label.clone();
    let client_to_upstream = move || {
        let mut buffer = [0u8; RELAY_BUFFER];
        loop {
            match client_reader.read(&mut buffer) {
                Ok(0) => {
                    let _ = upstream_writer.shutdown(Shutdown::Write);
                    return;
                }
                Ok(read) => {
                    up_activity.touch();
                    if upstream_writer.write_all(&buffer[..read]).is_err() {
                        let _ = upstream_writer.shutdown(Shutdown::Both);
                        return;
                    }
                }
                Err(err) if is_timeout(&err) && !up_activity.idle_expired() => {}
                Err(err) => {
                    log::debug!("{up_label}: tunnel client side ended: {err}");
                    let _ = upstream_writer.shutdown(Shutdown::Both);
                    return;
                }
            }
        }
    };
    let upstream_to_client = move || {
        let mut buffer = [0u8; RELAY_BUFFER];
        loop {
            match upstream_reader.read(&mut buffer) {
                Ok(0) => break,
                Ok(read) => {
                    activity.touch();
                    if client_writer.write_all(&buffer[..read]).and_then(|()| client_writer.flush()).is_err() {
                        break;
                    }
                }
                Err(err) if is_timeout(&err) && !activity.idle_expired() => {}
                Err(err) => {
                    if is_timeout(&err) {
                        log::info!("{label}: tunnel idle for {:?}, closing", activity.idle);
                    }
                    break;
                }
            }
        }
        let _ = upstream_reader.shutdown(Shutdown::Both);
        drop(client_writer);
        cut.shutdown();
    };
    for (name, relay) in [
        ("tunnel-up", Box::new(client_to_upstream) as Box<dyn FnOnce() + Send>),
        ("tunnel-down", Box::new(upstream_to_client)),
    ] {
        if let Err(err) = std::thread::Builder::new().name(name.into()).spawn(relay) {
            log::error!("cannot start a {name} relay thread: {err}");
        }
    }
}
