//! One proxied request, from route lookup to the last body byte.
//!
//! The response is framed here rather than by tiny_http's `respond()`, which
//! buffers streaming bodies and drops Content-Length (see
//! shared/notes/crates.md): the status line, headers and chunking are written
//! through `Request::into_writer()` with a flush after every upstream read.

use std::io::{self, Read, Write};
use std::sync::atomic::Ordering;
use std::time::Instant;

use ureq::http;
use ureq::SendBody;

use super::headers::{self, ClientSide, UpstreamRequestHeaders};
use super::wire::{self, Framing, Target};
use super::{tunnel, Outcome, Shared};
use crate::routes::{Backend, Route, Upstream};


/// Upstream body reads go through one buffer of this size per worker.
pub(super) const COPY_BUFFER: usize = 64 * 1024;

/// Requests under this prefix are answered over plain HTTP even when the
/// route redirects to HTTPS: ACME HTTP-01 challenges must reach the solver.
const ACME_CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

/// What the handler knows about the client's request after reading its head.
#[derive(Clone, Copy)]
pub(super) struct ClientRequest {
    pub http10: bool,
    pub close: bool,
    pub head_request: bool,
    /// Body bytes the client may still send: an answer must go out before
    /// they are drained, and the connection closes after it.
    pub unread_body: bool,
}

/// A request whose route is known, with what the plain forwarder and the
/// upgrade tunnel both need to send it upstream and to report it.
pub(super) struct RoutedRequest<'a> {
    pub client: ClientRequest,
    pub target: Target,
    pub upstream_head: UpstreamRequestHeaders,
    /// The route's endpoints; never empty.
    pub upstreams: &'a [Upstream],
    pub route: &'a Route,
    pub outcome: Outcome,
    pub started: Instant,
}

/// Handles one request and reports what happened.
/// `buffer` is the worker's copy buffer, reused from request to request.
pub(crate) fn handle(shared: &Shared, request: tiny_http::Request, started: Instant, buffer: &mut [u8]) -> Outcome {
    let client_headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .map(|h| (h.field.as_str().as_str().to_owned(), h.value.as_str().to_owned()))
        .collect();
    let header_refs: Vec<(&str, &str)> = client_headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let version = request.http_version();
    let http10 = version.0 == 1 && version.1 == 0;
    let secure = request.secure();
    let peer = request.remote_addr().copied();
    let config = &shared.config;
    let side = ClientSide {
        peer: peer.map(|addr| addr.ip()),
        secure,
        listener_port: if secure { config.https_port } else { config.http_port },
        trusted_proxies: &config.trusted_proxies,
    };
    let upstream_head = headers::upstream_request_headers(&header_refs, &side, headers::new_request_id);
    let method = request.method().to_string();
    let chunked = header_refs.iter().any(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding"));
    let client = ClientRequest {
        http10,
        close: headers::client_wants_close(version.1, &header_refs),
        head_request: method.eq_ignore_ascii_case("HEAD"),
        unread_body: request.body_length().map_or(chunked, |n| n > 0),
    };
    let mut outcome = Outcome {
        client: peer,
        method,
        path: request.url().to_owned(),
        request_id: upstream_head.request_id.clone(),
        ..Outcome::default()
    };

    let Some(target) = wire::parse_target(request.url()) else {
        log::info!("{} {:?} from {peer:?}: request target not routable", outcome.method, outcome.path);
        return reply(request, &client, outcome, started, 400, "bad request target", &[]);
    };
    let mut host_headers = header_refs.iter().filter(|(n, _)| n.eq_ignore_ascii_case("host")).map(|(_, v)| v.trim());
    let (host_header, second_host) = (host_headers.next(), host_headers.next());
    let host = match (target.authority.as_deref(), host_header, second_host) {
        (_, _, Some(_)) => return reply(request, &client, outcome, started, 400, "more than one Host header", &[]),
        (Some(authority), _, None) => authority.to_owned(),
        (None, Some(host), None) if !host.is_empty() => host.to_owned(),
        _ => return reply(request, &client, outcome, started, 400, "missing Host header", &[]),
    };
    outcome.host = host.clone();
    let mut upstream_head = upstream_head;
    if target.authority.is_some() {
        // An absolute-form target's authority replaces Host (RFC 9112 3.2.2).
        upstream_head.headers.retain(|(name, _)| name != "host");
        upstream_head.headers.insert(0, ("host".to_owned(), host.clone()));
    }

    let generation = shared.current.load();
    let Some(route) = generation.routes.lookup(&host, target.path()) else {
        return reply(request, &client, outcome, started, 404, "no route for this host and path", &[]);
    };
    outcome.ingress = Some(route.ingress.clone());
    outcome.service = Some(route.service.clone());

    if route.ssl_redirect && !secure && !target.path().starts_with(ACME_CHALLENGE_PREFIX) {
        let port = if config.https_port == 443 { String::new() } else { format!(":{}", config.https_port) };
        let location = format!("https://{}{port}{}", wire::host_without_port(&host).to_ascii_lowercase(), target.path_and_query);
        return reply(request, &client, outcome, started, 308, "redirecting to https", &[("location", location.as_bytes())]);
    }

    let upstreams = match &route.backend {
        Backend::Upstreams(upstreams) if !upstreams.is_empty() => upstreams,
        Backend::Upstreams(_) => {
            log::warn!("{host}{}: service {} has no ready endpoints", target.path(), route.service);
            return reply(request, &client, outcome, started, 503, "no ready endpoints", &[]);
        }
        Backend::Unavailable(reason) => {
            log::warn!("{host}{}: backend unavailable: {reason}", target.path());
            return reply(request, &client, outcome, started, 503, "backend unavailable", &[]);
        }
    };

    if upstream_head.upgrade {
        let routed = RoutedRequest { client, target, upstream_head, upstreams, route, outcome, started };
        return tunnel::relay(shared, request, routed);
    }

    let declared_length = request.body_length().map(|n| n as u64);
    if config.max_body_size > 0 && declared_length.is_some_and(|n| n > config.max_body_size) {
        log::warn!("{host}{}: request body of {declared_length:?} bytes exceeds --max-body-size", target.path());
        let client = ClientRequest { close: true, ..client };
        return reply(request, &client, outcome, started, 413, "request body too large", &[]);
    }
    let routed = RoutedRequest { client, target, upstream_head, upstreams, route, outcome, started };
    proxy(shared, request, routed, buffer)
}

/// Why the client's request body stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyFailure {
    /// More than `--max-body-size` arrived in a chunked body.
    TooLarge,
    /// The connection ended before the declared Content-Length.
    Truncated,
    /// Reading from the client failed (reset, timeout).
    Client,
}

/// The client's request body as the upstream reads it: counts bytes, enforces
/// `--max-body-size` on chunked bodies, and turns an early end of a sized body
/// into an error (ureq spins forever on a short sized body otherwise).
struct ClientBody<'a> {
    inner: &'a mut dyn Read,
    declared: Option<u64>,
    limit: u64,
    received: u64,
    /// The body ended where its framing said.
    finished: bool,
    failure: Option<BodyFailure>,
}

impl Read for ClientBody<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = match self.inner.read(buf) {
            Ok(read) => read,
            Err(err) => {
                self.failure = Some(BodyFailure::Client);
                return Err(err);
            }
        };
        if read == 0 && self.declared.is_some_and(|declared| self.received < declared) {
            self.failure = Some(BodyFailure::Truncated);
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "client closed before the whole body arrived"));
        }
        self.received += read as u64;
        self.finished = read == 0 || self.declared.is_some_and(|declared| self.received >= declared);
        if self.limit > 0 && self.received > self.limit {
            self.failure = Some(BodyFailure::TooLarge);
            return Err(io::Error::other("request body exceeds --max-body-size"));
        }
        Ok(read)
    }
}

/// Connection-level failures: nothing reached the upstream, so the next endpoint may be tried.
fn is_connect_failure(err: &ureq::Error) -> bool {
    match err {
        ureq::Error::Timeout(ureq::Timeout::Connect) | ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => true,
        ureq::Error::Io(io) => matches!(
            io.kind(),
            io::ErrorKind::ConnectionRefused
                | io::ErrorKind::HostUnreachable
                | io::ErrorKind::NetworkUnreachable
                | io::ErrorKind::NetworkDown
                | io::ErrorKind::AddrNotAvailable
        ),
        _ => false,
    }
}

/// Sends the request to one upstream; the outer error is a request ureq's
/// types refuse to represent (the client's fault).
fn exchange(
    shared: &Shared,
    method: &http::Method,
    uri: &str,
    headers: &[(String, String)],
    body: Option<&mut dyn Read>,
    content_length: Option<u64>,
) -> Result<Result<http::Response<ureq::Body>, ureq::Error>, http::Error> {
    let mut builder = http::Request::builder().method(method.clone()).uri(uri);
    for (name, value) in headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    if let Some(length) = content_length {
        builder = builder.header(http::header::CONTENT_LENGTH, length);
    }
    Ok(match body {
        Some(reader) => shared.agent.run(builder.body(SendBody::from_reader(reader))?),
        None => shared.agent.run(builder.body(())?),
    })
}

fn proxy(shared: &Shared, mut request: tiny_http::Request, routed: RoutedRequest, buffer: &mut [u8]) -> Outcome {
    let RoutedRequest { client, target, upstream_head, upstreams, route, mut outcome, started } = routed;
    let Ok(method) = http::Method::from_bytes(outcome.method.as_bytes()) else {
        return reply(request, &client, outcome, started, 400, "bad method", &[]);
    };
    let declared_length = request.body_length().map(|n| n as u64);
    let has_body = client.unread_body;
    let first = route.next_upstream.fetch_add(1, Ordering::Relaxed);
    let order = shared.hold_down.order(upstreams, first, Instant::now());
    let tries = order.as_slice().len();

    let mut body_failure = None;
    let mut body_finished = false;
    let mut result = None;
    {
        let mut body = has_body.then(|| ClientBody {
            inner: request.as_reader(),
            declared: declared_length,
            limit: shared.config.max_body_size,
            received: 0,
            finished: false,
            failure: None,
        });
        for (attempt, &index) in order.as_slice().iter().enumerate() {
            let upstream = &upstreams[index];
            outcome.upstream = Some(upstream.authority.clone());
            outcome.attempts += 1;
            let uri = format!("http://{}{}", upstream.authority, target.path_and_query);
            let reader = body.as_mut().map(|b| b as &mut dyn Read);
            let sent = match exchange(shared, &method, &uri, &upstream_head.headers, reader, declared_length) {
                Ok(sent) => sent,
                Err(err) => {
                    log::info!("{} {}{}: request not representable upstream: {err}", outcome.method, outcome.host, target.path());
                    return reply(request, &client, outcome, started, 400, "bad request", &[]);
                }
            };
            let connect_failed = matches!(&sent, Err(err) if is_connect_failure(err));
            if connect_failed {
                outcome.connect_errors += 1;
                shared.hold_down.refused(upstream, Instant::now());
            } else {
                shared.hold_down.answered(upstream);
            }
            let nothing_sent = body.as_ref().is_none_or(|b| b.received == 0);
            match sent {
                Err(err) if connect_failed && nothing_sent && attempt + 1 < tries => {
                    log::warn!("{}: connect to {} failed, trying the next endpoint: {err}", route.service, upstream.authority);
                }
                sent => {
                    result = Some(sent);
                    break;
                }
            }
        }
        if let Some(body) = &body {
            body_failure = body.failure;
            body_finished = body.finished;
        }
    }
    let client = &ClientRequest { unread_body: has_body && !body_finished, ..client };

    let response = match (result, body_failure) {
        (Some(Ok(response)), _) => response,
        (_, Some(BodyFailure::TooLarge)) => {
            log::warn!("{}{}: chunked request body exceeds --max-body-size", outcome.host, target.path());
            let client = ClientRequest { close: true, ..*client };
            return reply(request, &client, outcome, started, 413, "request body too large", &[]);
        }
        (_, Some(failure)) => {
            log::info!("{}{}: client request body failed ({failure:?})", outcome.host, target.path());
            let client = ClientRequest { close: true, ..*client };
            return reply(request, &client, outcome, started, 400, "incomplete request body", &[]);
        }
        (Some(Err(ureq::Error::Timeout(timeout))), None) => {
            outcome.timed_out = true;
            log::warn!("{}: upstream {} timed out ({timeout:?})", route.service, outcome.upstream.as_deref().unwrap_or(""));
            return reply(request, client, outcome, started, 504, "upstream timed out", &[]);
        }
        (Some(Err(err)), None) => {
            log::warn!("{}: upstream {} failed: {err}", route.service, outcome.upstream.as_deref().unwrap_or(""));
            return reply(request, client, outcome, started, 502, "bad gateway", &[]);
        }
        (None, None) => return reply(request, client, outcome, started, 502, "bad gateway", &[]),
    };
    stream_response(request, client, response, outcome, started, buffer)
}

/// Copies the upstream response to the client with the framing chosen here.
fn stream_response(
    request: tiny_http::Request,
    client: &ClientRequest,
    response: http::Response<ureq::Body>,
    mut outcome: Outcome,
    started: Instant,
    buffer: &mut [u8],
) -> Outcome {
    // Asked right before the head goes out: once the server drains, the
    // connection ends after a response that says so.
    let client = &ClientRequest { close: client.close || request.server_draining(), ..*client };
    let (parts, body) = response.into_parts();
    let status = parts.status.as_u16();
    outcome.upstream_status = Some(status);
    outcome.status = status;
    let content_length = if parts.headers.contains_key(http::header::TRANSFER_ENCODING) {
        None
    } else {
        parts.headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse().ok())
    };
    let mut framing = Framing::for_response(client.head_request, status, content_length, client.http10);
    let mut upstream = body.into_reader();
    let mut prefetch_failure = None;
    let mut prefetched = 0;
    match framing {
        Framing::Empty { .. } => {
            // Reading the (empty) body to its end returns the upstream
            // connection to the pool before the client sends its next request.
            let _ = io::copy(&mut (&mut upstream).take(buffer.len() as u64), &mut io::sink());
        }
        Framing::UntilClose if !client.close => {
            // An HTTP/1.0 keep-alive client cannot take chunks and its
            // connection stays open, so a body that fits the buffer gets a length.
            loop {
                match upstream.read(&mut buffer[prefetched..]) {
                    Ok(0) => {
                        framing = Framing::Length(prefetched as u64);
                        break;
                    }
                    Ok(read) => {
                        prefetched += read;
                        if prefetched == buffer.len() {
                            break;
                        }
                    }
                    Err(err) => {
                        prefetch_failure = Some(err);
                        break;
                    }
                }
            }
        }
        _ => {}
    }
    let cut = request.shutdown_handle();
    let mut writer = request.into_writer();
    if let Some(err) = prefetch_failure {
        log::warn!("{}{}: upstream {} failed before its body: {err}", outcome.host, outcome.path, outcome.upstream.as_deref().unwrap_or(""));
        return bad_gateway_before_body(writer, client, outcome, started);
    }
    let upstream_headers: Vec<(&str, &[u8])> = parts.headers.iter().map(|(n, v)| (n.as_str(), v.as_bytes())).collect();
    let kept = headers::downstream_response_headers(&upstream_headers, false);
    let head = wire::response_head(status, &kept, framing, client.close, client.http10);

    // A sized body's head goes out with its first bytes (one segment for a
    // small response); a streamed body's head goes out at once.
    let mut unsent_head = Some(head);
    if !matches!(framing, Framing::Length(length) if length > 0) {
        let head = unsent_head.take().unwrap_or_default();
        if let Err(err) = writer.write_all(&head).and_then(|()| writer.flush()) {
            log::debug!("{}{}: client went away before the response head: {err}", outcome.host, outcome.path);
            return finish(outcome, started);
        }
        outcome.bytes_sent = head.len() as u64;
    }
    if let Framing::Empty { .. } = framing {
        return finish(outcome, started);
    }

    let mut body_sent = 0u64;
    let mut upstream_failed = false;
    loop {
        let read = if prefetched > 0 { Ok(std::mem::take(&mut prefetched)) } else { upstream.read(buffer) };
        let read = match read {
            Ok(0) => break,
            Ok(read) => read,
            Err(err) => {
                log::warn!(
                    "{}{}: upstream {} failed mid-body after {body_sent} bytes: {err}",
                    outcome.host,
                    outcome.path,
                    outcome.upstream.as_deref().unwrap_or(""),
                );
                upstream_failed = true;
                break;
            }
        };
        body_sent += read as u64;
        let written = match (unsent_head.take(), framing) {
            (Some(mut head), _) => {
                outcome.bytes_sent += head.len() as u64;
                head.extend_from_slice(&buffer[..read]);
                writer.write_all(&head)
            }
            (None, Framing::Chunked) => wire::write_chunk(&mut writer, &buffer[..read]),
            (None, _) => writer.write_all(&buffer[..read]),
        };
        let complete = framing == Framing::Length(body_sent);
        if complete {
            // The end of a sized body returns the upstream connection to the
            // pool; do it before the client sees the last byte and reuses it.
            let _ = upstream.read(buffer);
        }
        if let Err(err) = written.and_then(|()| writer.flush()) {
            log::debug!("{}{}: client went away mid-body: {err}", outcome.host, outcome.path);
            return finish(outcome, started);
        }
        outcome.bytes_sent += read as u64;
        if complete {
            break;
        }
    }
    if unsent_head.is_some() {
        return bad_gateway_before_body(writer, client, outcome, started);
    }
    let short = matches!(framing, Framing::Length(length) if length != body_sent);
    if upstream_failed || short {
        // The client must see a truncated body, never a clean end, and see it
        // now: left open, the connection would wait for the idle timeout.
        cut.shutdown();
        return finish(outcome, started);
    }
    if framing == Framing::Chunked {
        if let Err(err) = writer.write_all(wire::LAST_CHUNK).and_then(|()| writer.flush()) {
            log::debug!("{}{}: client went away at the end of the body: {err}", outcome.host, outcome.path);
        }
        outcome.bytes_sent += wire::LAST_CHUNK.len() as u64;
    }
    finish(outcome, started)
}

/// Nothing of the upstream response reached the client yet: a clean 502 is still possible.
fn bad_gateway_before_body(mut writer: Box<dyn Write + Send>, client: &ClientRequest, mut outcome: Outcome, started: Instant) -> Outcome {
    let message = wire::simple_response(502, &[], "bad gateway", true, client.http10);
    outcome.status = 502;
    if writer.write_all(&message).and_then(|()| writer.flush()).is_ok() {
        outcome.bytes_sent = message.len() as u64;
    }
    finish(outcome, started)
}

/// Stamps the request's duration on its outcome.
pub(super) fn finish(mut outcome: Outcome, started: Instant) -> Outcome {
    outcome.duration = started.elapsed();
    outcome
}

/// Answers by the proxy itself with a short plain-text body. With body bytes
/// still unread the answer goes out first (a client may wait for it before
/// sending its body) and the connection closes after it.
pub(super) fn reply(
    request: tiny_http::Request,
    client: &ClientRequest,
    mut outcome: Outcome,
    started: Instant,
    status: u16,
    text: &str,
    extra_headers: &[(&str, &[u8])],
) -> Outcome {
    let close = client.close || client.unread_body || request.server_draining();
    let message = if client.head_request {
        wire::response_head(status, extra_headers, Framing::Empty { content_length: None }, close, client.http10)
    } else {
        wire::simple_response(status, extra_headers, text, close, client.http10)
    };
    outcome.status = status;
    let (unread_body, mut writer) = if client.unread_body {
        let (reader, writer) = request.into_raw();
        (Some(reader), writer)
    } else {
        (None, request.into_writer())
    };
    match writer.write_all(&message).and_then(|()| writer.flush()) {
        Ok(()) => outcome.bytes_sent = message.len() as u64,
        Err(err) => log::debug!("{} {}: client went away before the {status} answer: {err}", outcome.host, outcome.path),
    }
    drop(writer);
    drop(unread_body);
    finish(outcome, started)
}
