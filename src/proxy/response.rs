//! The response phase: the upstream's answer goes back to the client with
//! framing chosen here, in named steps: pick the framing, settle small or
//! empty bodies, write the head, copy the body, end it.
//!
//! The response is framed here rather than by tiny_http's `respond()`, which
//! buffers streaming bodies and drops Content-Length (see
//! shared/notes/crates.md): the status line, headers and chunking are written
//! through `Request::into_writer()` with a flush after every upstream read.

use std::io::{self, Read, Write};
use std::time::Instant;

use ureq::http;

use super::buffers::Buffers;
use super::headers;
use super::request::{finish, ClientRequest};
use super::wire::{self, Framing};
use super::Outcome;

/// Copies the upstream response to the client; `added` headers replace the
/// upstream's of the same name, except `set-cookie`, which is added to the
/// upstream's cookies (the sticky-session cookie).
pub(super) fn stream(
    request: tiny_http::Request,
    client: &ClientRequest,
    response: http::Response<ureq::Body>,
    added: &[(&'static str, String)],
    mut outcome: Outcome,
    started: Instant,
    buffers: &mut Buffers,
) -> Outcome {
    let Buffers { copy: buffer, head } = buffers;
    // Asked right before the head goes out: once the server drains, the
    // connection ends after a response that says so.
    let client = &ClientRequest { close: client.close || request.server_draining(), ..*client };
    let (parts, mut body) = response.into_parts();
    // The request went with header lines, so the response's headers are
    // lines and its map is empty; both are read, so none is ever missed.
    let lines = body.take_header_lines().unwrap_or_default();
    let upstream_headers = || parts.headers.iter().map(|(n, v)| (n.as_str().as_bytes(), v.as_bytes())).chain(lines.iter());
    let status = parts.status.as_u16();
    outcome.upstream_status = Some(status);
    outcome.status = status;
    let mut upstream = body.into_reader();
    let framing = choose_framing(client, status, upstream_headers());
    let settled = settle_body(&mut upstream, client, framing, buffer);

    let cut = request.shutdown_handle();
    let mut writer = request.into_writer();
    let (framing, mut prefetched) = match settled {
        Ok(settled) => settled,
        Err(err) => {
            log::warn!("{}{}: upstream {} failed before its body: {err}", outcome.host, outcome.path, outcome.upstream.as_deref().unwrap_or(""));
            return bad_gateway_before_body(writer, client, outcome, started);
        }
    };
    let kept = headers::downstream_response_headers(upstream_headers, false)
        // Set-Cookie is added beside the backend's (an auth service's
        // session cookie); every other header set here replaces the backend's.
        .filter(|(name, _)| added.is_empty() || name.eq_ignore_ascii_case(b"set-cookie") || !added.iter().any(|(set, _)| name.eq_ignore_ascii_case(set.as_bytes())))
        .chain(added.iter().map(|(name, value)| (name.as_bytes(), value.as_bytes())));
    head.clear();
    wire::write_response_head(head, status, kept, framing, client.close, client.http10);

    // A sized body's head goes out with its first bytes (one segment for a
    // small response); a streamed body's head goes out at once.
    let mut unsent_head = Some(head.as_slice());
    if !matches!(framing, Framing::Length(length) if length > 0) {
        let head = unsent_head.take().unwrap_or_default();
        if let Err(err) = writer.write_all(head).and_then(|()| writer.flush()) {
            log::debug!("{}{}: client went away before the response head: {err}", outcome.host, outcome.path);
            return finish(outcome, started);
        }
        outcome.bytes_sent = head.len() as u64;
    }
    if let Framing::Empty { .. } = framing {
        return finish(outcome, started);
    }

    let copied = match copy_body(&mut upstream, &mut writer, framing, &mut unsent_head, &mut prefetched, buffer, &mut outcome) {
        Ok(copied) => copied,
        Err(err) => {
            log::debug!("{}{}: client went away mid-body: {err}", outcome.host, outcome.path);
            return finish(outcome, started);
        }
    };
    if unsent_head.is_some() {
        return bad_gateway_before_body(writer, client, outcome, started);
    }
    end_body(writer, cut, framing, copied, outcome, started)
}

/// The body framing towards the client, from the upstream's status and
/// headers (names in lower case): a Transfer-Encoding makes the length
/// unknown; otherwise the first Content-Length gives it.
fn choose_framing<'h>(client: &ClientRequest, status: u16, upstream_headers: impl Iterator<Item = (&'h [u8], &'h [u8])>) -> Framing {
    let mut content_length = None;
    let mut first_length = true;
    for (name, value) in upstream_headers {
        match name {
            b"transfer-encoding" => return Framing::for_response(client.head_request, status, None, client.http10),
            b"content-length" if first_length => {
                first_length = false;
                content_length = std::str::from_utf8(value).ok().and_then(|v| v.trim().parse().ok());
            }
            _ => {}
        }
    }
    Framing::for_response(client.head_request, status, content_length, client.http10)
}

/// Reads what must be read before the head can be written: an empty body to
/// its end, or, for an HTTP/1.0 keep-alive client and a body of unknown
/// length, as much as fits the buffer, so a short body gets a length. Returns
/// the final framing and how many body bytes wait in `buffer`.
fn settle_body(upstream: &mut impl Read, client: &ClientRequest, framing: Framing, buffer: &mut [u8]) -> io::Result<(Framing, usize)> {
    match framing {
        Framing::Empty { .. } => {
            // Reading the (empty) body to its end returns the upstream
            // connection to the pool before the client sends its next request.
            let _ = io::copy(&mut upstream.take(buffer.len() as u64), &mut io::sink());
            Ok((framing, 0))
        }
        Framing::UntilClose if !client.close => {
            // An HTTP/1.0 keep-alive client cannot take chunks and its
            // connection stays open, so a body that fits the buffer gets a length.
            let mut prefetched = 0;
            loop {
                match upstream.read(&mut buffer[prefetched..])? {
                    0 => return Ok((Framing::Length(prefetched as u64), prefetched)),
                    read => {
                        prefetched += read;
                        if prefetched == buffer.len() {
                            return Ok((framing, prefetched));
                        }
                    }
                }
            }
        }
        _ => Ok((framing, 0)),
    }
}

/// How the body copy ended.
struct Copied {
    body_sent: u64,
    upstream_failed: bool,
}

/// Copies body bytes until the upstream ends, fails, or the declared length
/// is reached; `Err` when the client went away. Writes the unsent head with
/// the first bytes.
fn copy_body(
    upstream: &mut impl Read,
    writer: &mut Box<dyn Write + Send>,
    framing: Framing,
    unsent_head: &mut Option<&[u8]>,
    prefetched: &mut usize,
    buffer: &mut [u8],
    outcome: &mut Outcome,
) -> io::Result<Copied> {
    let mut copied = Copied { body_sent: 0, upstream_failed: false };
    loop {
        // The head goes out in front of the first body bytes, read in right
        // behind it: one write, so one segment and one client wake-up even for
        // a body larger than the server's write buffer.
        let joined_head = match *unsent_head {
            Some(head) if *prefetched == 0 && head.len() <= buffer.len() / 2 => {
                buffer[..head.len()].copy_from_slice(head);
                head.len()
            }
            _ => 0,
        };
        let read = if *prefetched > 0 { Ok(std::mem::take(prefetched)) } else { upstream.read(&mut buffer[joined_head..]) };
        let read = match read {
            Ok(0) => break,
            Ok(read) => read,
            Err(err) => {
                log::warn!(
                    "{}{}: upstream {} failed mid-body after {} bytes: {err}",
                    outcome.host,
                    outcome.path,
                    outcome.upstream.as_deref().unwrap_or(""),
                    copied.body_sent,
                );
                copied.upstream_failed = true;
                break;
            }
        };
        copied.body_sent += read as u64;
        let written = match (unsent_head.take(), framing) {
            (Some(head), _) if joined_head > 0 => {
                outcome.bytes_sent += head.len() as u64;
                writer.write_all(&buffer[..joined_head + read])
            }
            (Some(head), _) => {
                outcome.bytes_sent += head.len() as u64;
                writer.write_all(head).and_then(|()| writer.write_all(&buffer[..read]))
            }
            (None, Framing::Chunked) => wire::write_chunk(writer, &buffer[..read]),
            (None, _) => writer.write_all(&buffer[..read]),
        };
        let complete = framing == Framing::Length(copied.body_sent);
        if complete {
            // The end of a sized body returns the upstream connection to the
            // pool; do it before the client sees the last byte and reuses it.
            let _ = upstream.read(buffer);
        }
        written.and_then(|()| writer.flush())?;
        outcome.bytes_sent += read as u64;
        if complete {
            break;
        }
    }
    Ok(copied)
}

/// Ends the body the way the client must see it: a truncated body as a cut
/// connection, never as a clean end; a chunked body with its last chunk.
fn end_body(
    mut writer: Box<dyn Write + Send>,
    cut: tiny_http::ShutdownHandle,
    framing: Framing,
    copied: Copied,
    mut outcome: Outcome,
    started: Instant,
) -> Outcome {
    let short = matches!(framing, Framing::Length(length) if length != copied.body_sent);
    if copied.upstream_failed || short {
        // Now: left open, the connection would wait for the idle timeout.
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
