//! The upstream phase: sends the routed request to an endpoint through the
//! shared ureq Agent, trying the next endpoint when one refuses the
//! connection, and once more on a fresh connection when a reused one turns
//! out to be dead before anything was answered.

use std::io::{self, Read};
use std::time::Instant;

use ureq::http;
use ureq::SendBody;

use super::buffers::Buffers;
use super::headers::HeaderName;
use crate::annotations::policy::UpstreamTimeouts;
use crate::kube::objects::SmolStr;
use crate::routes::Upstream;
use super::request::{reply, ClientRequest, RoutedRequest};
use super::{balance, digits, response, upstream, Outcome, Shared};

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

/// A failure that a dead pooled connection explains (the upstream closed it
/// while it sat idle): anything but a timeout or a failed connect.
fn may_be_stale_connection(err: &ureq::Error) -> bool {
    !matches!(err, ureq::Error::Timeout(_)) && !is_connect_failure(err)
}

/// Sends the request to one upstream; the outer error is a request whose
/// headers cannot go on the wire (the client's fault).
fn exchange(
    agent: &ureq::Agent,
    method: &http::Method,
    uri: http::Uri,
    headers: &[(HeaderName, SmolStr)],
    body: Option<&mut dyn Read>,
    content_length: Option<u64>,
    timeouts: Option<&UpstreamTimeouts>,
) -> Result<Result<http::Response<ureq::Body>, ureq::Error>, ureq::Error> {
    Ok(match body {
        Some(reader) => run(agent, upstream_request(method, uri, SendBody::from_reader(reader)), upstream_lines(headers, content_length)?, timeouts),
        None => run(agent, upstream_request(method, uri, ()), upstream_lines(headers, content_length)?, timeouts),
    })
}

/// The upstream URI: the endpoint's authority with the request's target.
fn upstream_uri(scheme: http::uri::Scheme, upstream: &Upstream, path_and_query: &str) -> Result<http::Uri, String> {
    let authority = upstream.uri_authority.clone().ok_or_else(|| format!("{} is not a URI authority", upstream.authority))?;
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(scheme);
    parts.authority = Some(authority);
    parts.path_and_query = Some(http::uri::PathAndQuery::try_from(path_and_query).map_err(|err| err.to_string())?);
    http::Uri::from_parts(parts).map_err(|err| err.to_string())
}

/// The request ureq sends; its headers are `upstream_lines`.
fn upstream_request<B>(method: &http::Method, uri: http::Uri, body: B) -> http::Request<B> {
    let mut request = http::Request::new(body);
    *request.method_mut() = method.clone();
    *request.uri_mut() = uri;
    request
}

/// The upstream request's headers as `HeaderLines`: the proxy only passes
/// them through, so they go out as one copy of their bytes, and the
/// response's come back the same way, where an `http::HeaderMap` would hash,
/// re-check and allocate every header on both sides. The error is a header
/// that cannot go on the wire.
fn upstream_lines(headers: &[(HeaderName, SmolStr)], content_length: Option<u64>) -> Result<ureq::HeaderLines, ureq::Error> {
    const LENGTH_LINE: usize = "content-length: \r\n".len() + 20;
    let bytes = headers.iter().map(|(name, value)| name.len() + value.len() + 4).sum::<usize>() + LENGTH_LINE;
    let mut lines = ureq::HeaderLines::with_capacity(headers.len() + 1, bytes);
    for (name, value) in headers {
        lines.push(name.as_bytes(), value.as_bytes())?;
    }
    if let Some(length) = content_length {
        lines.push(b"content-length", digits::decimal(length, &mut [0; 20]))?;
    }
    Ok(lines)
}

/// Runs a request with the Agent's timeouts, or with the route's where its
/// Ingress sets them (a per-request copy of the configuration, so only those
/// routes pay for it).
fn run<S: ureq::AsSendBody>(
    agent: &ureq::Agent,
    request: http::Request<S>,
    lines: ureq::HeaderLines,
    timeouts: Option<&UpstreamTimeouts>,
) -> Result<http::Response<ureq::Body>, ureq::Error> {
    let Some(timeouts) = timeouts else { return agent.run_with_header_lines(request, lines) };
    let config = agent.config();
    let request = agent
        .configure_request(request)
        .timeout_connect(timeouts.connect.or(config.timeouts().connect))
        .timeout_recv_response(timeouts.read.or(config.timeouts().recv_response))
        .timeout_per_read(timeouts.read.or(config.timeout_per_read()))
        .timeout_per_write(timeouts.send.or(config.timeout_per_write()))
        .build();
    agent.run_with_header_lines(request, lines)
}

/// Forwards a routed request and streams the answer back to the client.
pub(super) fn forward(shared: &Shared, mut request: tiny_http::Request, routed: RoutedRequest, buffers: &mut Buffers) -> Outcome {
    let RoutedRequest { client, target, upstream_head, upstreams, route, mut outcome, started, response_headers } = routed;
    let Ok(method) = http::Method::from_bytes(outcome.method.as_bytes()) else {
        return reply(request, &client, outcome, started, 400, "bad method", &[]);
    };
    // Routes to HTTPS backends use their TLS setting's client; plain routes the shared one.
    let (agent, scheme) = match &route.upstream_tls {
        None => (&shared.agent, http::uri::Scheme::HTTP),
        Some(tls) => match shared.tls_agents.agent(tls, &shared.config) {
            Ok(agent) => (agent, http::uri::Scheme::HTTPS),
            Err(why) => {
                log::warn!("{}{}: TLS to service {} unusable: {why}", outcome.host, target.path(), route.service);
                return reply(request, &client, outcome, started, 502, "bad gateway", &[]);
            }
        },
    };
    let declared_length = request.body_length().map(|n| n as u64);
    let has_body = client.unread_body;
    let plan = balance::plan(route, upstreams, || balance::Inputs {
        headers: request.headers(),
        request_uri: request.url(),
        client: request.remote_addr().copied(),
        host: &outcome.host,
    });
    let order = shared.hold_down.order(upstreams, plan.first, Instant::now, plan.tries);
    let tries = order.as_slice().len();
    let mut used = plan.first;

    let mut body_failure = None;
    let mut body_finished = false;
    let mut result = None;
    upstream::probe_pooled_connections(has_body);
    {
        let mut body = has_body.then(|| ClientBody {
            inner: request.as_reader(),
            declared: declared_length,
            limit: route.max_body_size(shared.config.max_body_size),
            received: 0,
            finished: false,
            failure: None,
        });
        for (attempt, &index) in order.as_slice().iter().enumerate() {
            let upstream = &upstreams[index];
            used = index;
            outcome.upstream = Some(upstream.authority.clone());
            outcome.attempts += 1;
            let mut fresh_retry_left = true;
            let sent = loop {
                // The endpoint's authority was parsed with the route table;
                // only the target is parsed here, for each send (a clone
                // kept for a rare retry would cost every request a shared
                // count for the target's bytes).
                let uri = match upstream_uri(scheme.clone(), upstream, &target.path_and_query) {
                    Ok(uri) => uri,
                    Err(err) => {
                        log::info!("{} {}{}: request not representable upstream: {err}", outcome.method, outcome.host, target.path());
                        return reply(request, &client, outcome, started, 400, "bad request", &[]);
                    }
                };
                let reader = body.as_mut().map(|b| b as &mut dyn Read);
                let sent = match exchange(agent, &method, uri, &upstream_head.headers, reader, declared_length, route.policy.as_ref().and_then(|p| p.timeouts.as_deref())) {
                    Ok(sent) => sent,
                    Err(err) => {
                        log::info!("{} {}{}: request not representable upstream: {err}", outcome.method, outcome.host, target.path());
                        return reply(request, &client, outcome, started, 400, "bad request", &[]);
                    }
                };
                // No body byte was taken from the client, so the request can go out again
                // exactly as it was: never a POST body sent twice. Its head may have
                // reached the upstream before the connection died, so only an
                // idempotent method is sent again (nginx's default, without
                // `non_idempotent` in proxy_next_upstream).
                let body_untouched = body.as_ref().is_none_or(|b| b.received == 0 && b.failure.is_none());
                match &sent {
                    Err(err)
                        if fresh_retry_left
                            && body_untouched
                            && method.is_idempotent()
                            && may_be_stale_connection(err)
                            && upstream::last_connection_was_reused() =>
                    {
                        log::debug!("{}: reused connection to {} failed ({err}); retrying on a fresh one", route.service, upstream.authority);
                        fresh_retry_left = false;
                        upstream::next_connection_fresh();
                    }
                    _ => break sent,
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

    let mut response_headers = response_headers;
    if let Some(cookie) = plan.cookie_for(used, upstreams, &route.path, request.secure()) {
        response_headers.push(("set-cookie", cookie));
    }
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
    response::stream(request, client, response, &response_headers, outcome, started, buffers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_upstream_request_keeps_every_header_in_order_with_its_own_value() {
        let headers: Vec<(HeaderName, SmolStr)> = vec![
            ("host".into(), "shop.example".into()),
            ("x-custom".to_string().into(), "".into()),
            ("accept".into(), "text/html".into()),
            ("x-custom".to_string().into(), "second value, with a comma".into()),
            ("x-forwarded-for".into(), "10.0.0.9".into()),
        ];
        let uri: http::Uri = "http://10.1.0.4:8080/cart?x=1".parse().expect("uri");
        let request = upstream_request(&http::Method::POST, uri.clone(), ());
        assert_eq!(request.method(), http::Method::POST);
        assert_eq!(request.uri(), &uri);
        assert!(request.headers().is_empty(), "every header goes as a line");
        let lines = upstream_lines(&headers, Some(42)).expect("representable");
        let sent: Vec<(&str, &[u8])> = lines.iter().map(|(name, value)| (std::str::from_utf8(name).expect("token"), value)).collect();
        // In the client's order, repeated names where they were (a map
        // would have grouped them).
        assert_eq!(
            sent,
            [
                ("host", &b"shop.example"[..]),
                ("x-custom", b""),
                ("accept", b"text/html"),
                ("x-custom", b"second value, with a comma"),
                ("x-forwarded-for", b"10.0.0.9"),
                ("content-length", b"42"),
            ]
        );
    }

    #[test]
    fn the_upstream_uri_is_what_the_whole_uri_text_parses_to() {
        let targets = ["/", "/cart?x=1", "/a%20b?c=d&e", "/a b", "/a\"b", "/`", "/{x}", "/p?q=%zz", "/ü", "//double", "/?", "/#frag"];
        for authority in ["10.1.0.4:8080", "[fd00::1]:8080", "db.example.com:5432"] {
            let upstream = Upstream::new(authority.into());
            for target in targets {
                let whole = http::Uri::try_from(format!("http://{authority}{target}")).ok();
                let parts = upstream_uri(http::uri::Scheme::HTTP, &upstream, target).ok();
                assert_eq!(parts, whole, "{authority}{target}");
            }
        }
        let bad = Upstream::new("bad host:80".into());
        assert!(upstream_uri(http::uri::Scheme::HTTP, &bad, "/").is_err());
    }

    #[test]
    fn a_header_value_http_cannot_carry_is_refused_not_sent() {
        let headers: Vec<(HeaderName, SmolStr)> = vec![("host".into(), "a".into()), ("x-bad".to_string().into(), "line\r\nbreak".into())];
        assert!(upstream_lines(&headers, None).is_err());
    }
}
