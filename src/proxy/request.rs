//! What every phase of one request shares: the client's request as the
//! proxy understood it, the request once routed, and the proxy's own answers.
//! The forwarder and the upgrade tunnel both build on these, so neither
//! imports the other.

use std::io::Write;
use std::net::IpAddr;
use std::time::Instant;

use super::headers::UpstreamRequestHeaders;
use super::wire::{self, Framing, Target};
use super::Outcome;
use crate::routes::{Route, Upstream};

/// What the handler knows about the client's request after reading its head.
#[derive(Clone, Copy)]
pub(super) struct ClientRequest {
    /// The client address every phase after reading the head uses (access
    /// lists, limits): the PROXY protocol address with
    /// `--use-proxy-protocol`, else the peer; from `--trusted-proxies`, the
    /// first untrusted X-Forwarded-For hop. `None` when unknown (a hop that
    /// is not an address), which access checks treat as outside every list.
    pub address: Option<IpAddr>,
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
    /// Headers the route's policy sets on the response (CORS), replacing
    /// the backend's, and Set-Cookie values from its auth service, added to
    /// the backend's; empty for most routes.
    pub response_headers: Vec<(&'static str, String)>,
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
