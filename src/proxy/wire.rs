//! HTTP/1.1 message framing the proxy writes and reads itself: request
//! targets, response heads, chunked framing and upstream response heads for
//! the upgrade tunnel. Pure byte-level code with no sockets.

use std::io::{self, Write};

use super::digits::{decimal, hex, DigitBuffer};
use crate::kube::objects::SmolStr;

/// A request target split into what routing needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The authority of an absolute-form target (`GET http://host/ HTTP/1.1`),
    /// which takes precedence over the Host header (RFC 9112 3.2.2).
    pub authority: Option<String>,
    /// Sent upstream byte for byte, always origin-form.
    pub path_and_query: SmolStr,
    /// Length of the path inside `path_and_query` (the query excluded).
    path_len: usize,
}

impl Target {
    pub fn path(&self) -> &str {
        &self.path_and_query[..self.path_len]
    }

    /// The query without `?`, if the target has one.
    pub fn query(&self) -> Option<&str> {
        self.path_and_query.get(self.path_len + 1..)
    }

    /// Replaces path and query (`rewrite-target`); the authority stays.
    pub fn set_path_and_query(&mut self, path_and_query: String) {
        self.path_len = path_and_query.find('?').unwrap_or(path_and_query.len());
        self.path_and_query = path_and_query.into();
    }
}

/// Splits a request target; `None` for forms a proxy does not route
/// (`*`, authority-form, empty or relative paths). An origin-form target is
/// kept as given: passed the request's own `SmolStr`, the target shares it.
pub fn parse_target(raw: impl AsRef<str> + Into<SmolStr>) -> Option<Target> {
    let (authority, path_and_query) = if raw.as_ref().starts_with('/') {
        (None, raw.into())
    } else {
        let raw = raw.as_ref();
        let scheme_len = ["http://", "https://"]
            .iter()
            .find(|scheme| raw.as_bytes().get(..scheme.len()).is_some_and(|prefix| prefix.eq_ignore_ascii_case(scheme.as_bytes())))?
            .len();
        let rest = &raw[scheme_len..];
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        if authority.is_empty() || authority.contains('@') {
            return None;
        }
        let path_and_query = if tail.starts_with('/') { SmolStr::new(tail) } else { format!("/{tail}").into() };
        (Some(authority.to_string()), path_and_query)
    };
    let path_len = path_and_query.find('?').unwrap_or(path_and_query.len());
    Some(Target { authority, path_and_query, path_len })
}

/// How a response body is delimited towards the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body may follow (HEAD, 1xx, 204, 304); a Content-Length is still
    /// announced when the upstream sent one.
    Empty { content_length: Option<u64> },
    Length(u64),
    Chunked,
    /// An HTTP/1.0 client and a body of unknown length: the end of the
    /// connection ends the body.
    UntilClose,
}

impl Framing {
    /// The body framing for a response with `status` to a request.
    pub fn for_response(head_request: bool, status: u16, content_length: Option<u64>, http10_client: bool) -> Framing {
        if head_request || status < 200 || status == 204 || status == 304 {
            let content_length = if status == 204 || status < 200 { None } else { content_length };
            return Framing::Empty { content_length };
        }
        match content_length {
            Some(length) => Framing::Length(length),
            None if http10_client => Framing::UntilClose,
            None => Framing::Chunked,
        }
    }

    pub fn forces_close(self) -> bool {
        self == Framing::UntilClose
    }
}

/// Serialises a response head. `close` announces the end of the connection;
/// otherwise an HTTP/1.0 client is told the connection stays open.
pub fn response_head(status: u16, headers: &[(&str, &[u8])], framing: Framing, close: bool, http10_client: bool) -> Vec<u8> {
    let mut head = Vec::with_capacity(256 + headers.iter().map(|(n, v)| n.len() + v.len() + 4).sum::<usize>());
    write_response_head(&mut head, status, headers.iter().copied(), framing, close, http10_client);
    head
}

/// Appends a response head to `head`, as [`response_head`] returns it; a
/// buffer reused from request to request makes this allocation-free.
pub fn write_response_head<'h, N: AsRef<[u8]>>(
    head: &mut Vec<u8>,
    status: u16,
    headers: impl IntoIterator<Item = (N, &'h [u8])>,
    framing: Framing,
    close: bool,
    http10_client: bool,
) {
    let reason = ureq::http::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("");
    let mut digits = DigitBuffer::default();
    head.extend_from_slice(b"HTTP/1.1 ");
    head.extend_from_slice(decimal(status.into(), &mut digits));
    head.push(b' ');
    head.extend_from_slice(reason.as_bytes());
    head.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        head.extend_from_slice(name.as_ref());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value);
        head.extend_from_slice(b"\r\n");
    }
    match framing {
        Framing::Empty { content_length: Some(length) } | Framing::Length(length) => {
            head.extend_from_slice(b"content-length: ");
            head.extend_from_slice(decimal(length, &mut digits));
            head.extend_from_slice(b"\r\n");
        }
        Framing::Chunked => head.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        Framing::Empty { content_length: None } | Framing::UntilClose => {}
    }
    if close || framing.forces_close() {
        head.extend_from_slice(b"connection: close\r\n");
    } else if http10_client {
        head.extend_from_slice(b"connection: keep-alive\r\n");
    }
    head.extend_from_slice(b"\r\n");
}

/// A short plain-text response the proxy answers by itself (errors, redirects).
pub fn simple_response(status: u16, extra_headers: &[(&str, &[u8])], text: &str, close: bool, http10_client: bool) -> Vec<u8> {
    let mut headers: Vec<(&str, &[u8])> = vec![("content-type", b"text/plain; charset=utf-8")];
    headers.extend_from_slice(extra_headers);
    let body = format!("{text}\n");
    // A 204 (or 1xx, 304) has no body: a byte of one would be read as the start of the next response.
    let framing = Framing::for_response(false, status, Some(body.len() as u64), http10_client);
    let mut message = response_head(status, &headers, framing, close, http10_client);
    if !matches!(framing, Framing::Empty { .. }) {
        message.extend_from_slice(body.as_bytes());
    }
    message
}

/// Writes one chunk; empty data writes nothing (an empty chunk would end the body).
pub fn write_chunk(out: &mut dyn Write, data: &[u8]) -> io::Result<()> {
    if data.is_empty() {
        return Ok(());
    }
    let mut digits = DigitBuffer::default();
    let mut size_line = [0u8; 22];
    let size = hex(data.len() as u64, &mut digits);
    size_line[..size.len()].copy_from_slice(size);
    size_line[size.len()..size.len() + 2].copy_from_slice(b"\r\n");
    out.write_all(&size_line[..size.len() + 2])?;
    out.write_all(data)?;
    out.write_all(b"\r\n")
}

pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// Serialises a request head for the upgrade tunnel.
pub fn request_head(method: &str, path_and_query: &str, headers: &[(super::headers::HeaderName, SmolStr)]) -> Vec<u8> {
    let mut head = Vec::with_capacity(256);
    head.extend_from_slice(format!("{method} {path_and_query} HTTP/1.1\r\n").as_bytes());
    for (name, value) in headers {
        head.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    head.extend_from_slice(b"\r\n");
    head
}

/// An upstream response head found at the start of a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    /// Bytes of the head including the blank line; anything after belongs to the body or tunnel.
    pub length: usize,
    /// Header lines as sent (names as-is, values trimmed).
    pub headers: Vec<(String, Vec<u8>)>,
}

/// Why an upstream response head could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadError {
    /// The status line is not `HTTP/1.x NNN ...`.
    BadStatusLine,
    /// A header line has no colon.
    BadHeader,
}

/// Parses a response head once the buffer holds the whole of it; `Ok(None)` means "read more".
pub fn parse_response_head(buffer: &[u8]) -> Result<Option<ResponseHead>, HeadError> {
    let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let mut lines = buffer[..end].split(|b| *b == b'\n').map(|line| line.strip_suffix(b"\r").unwrap_or(line));
    let status_line = lines.next().ok_or(HeadError::BadStatusLine)?;
    let status = status_line
        .strip_prefix(b"HTTP/1.")
        .filter(|rest| rest.len() >= 5 && rest[1] == b' ')
        .and_then(|rest| std::str::from_utf8(&rest[2..5]).ok())
        .and_then(|code| code.parse::<u16>().ok())
        .filter(|code| (100..=999).contains(code))
        .ok_or(HeadError::BadStatusLine)?;
    let mut headers = Vec::new();
    for line in lines {
        let colon = line.iter().position(|b| *b == b':').ok_or(HeadError::BadHeader)?;
        let name = String::from_utf8_lossy(&line[..colon]).trim().to_string();
        let value = line[colon + 1..].trim_ascii().to_vec();
        headers.push((name, value));
    }
    Ok(Some(ResponseHead { status, length: end + 4, headers }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_simple_204_has_no_body_and_no_length() {
        let message = String::from_utf8(simple_response(204, &[], "ignored", false, false)).expect("ASCII");
        assert!(message.ends_with("\r\n\r\n"), "{message:?}");
        assert!(!message.to_ascii_lowercase().contains("content-length"), "{message:?}");
        let message = String::from_utf8(simple_response(302, &[], "moved", false, false)).expect("ASCII");
        assert!(message.ends_with("\r\n\r\nmoved\n"), "{message:?}");
    }

    #[test]
    fn target_table() {
        // (raw target, Some((authority, path and query, path)) or None when refused)
        type Case<'a> = (&'a str, Option<(Option<&'a str>, &'a str, &'a str)>);
        let cases: &[Case] = &[
            ("/", Some((None, "/", "/"))),
            ("/a/b?x=1&y=%20", Some((None, "/a/b?x=1&y=%20", "/a/b"))),
            ("/a%2Fb//c", Some((None, "/a%2Fb//c", "/a%2Fb//c"))),
            ("http://Example.com:8080/p?q", Some((Some("Example.com:8080"), "/p?q", "/p"))),
            ("HTTPS://h", Some((Some("h"), "/", "/"))),
            ("http://h?q", Some((Some("h"), "/?q", "/"))),
            ("http://[::1]:80/x", Some((Some("[::1]:80"), "/x", "/x"))),
            ("http://user@h/", None),
            ("http:///x", None),
            ("*", None),
            ("example.com:443", None),
            ("", None),
            ("relative", None),
            // Found by fuzzing: a multi-byte character where the scheme would end.
            ("httpsѼ/x", None),
            ("Ѽ", None),
        ];
        for (raw, expected) in cases {
            let parsed = parse_target(*raw);
            let got = parsed.as_ref().map(|t| (t.authority.as_deref(), t.path_and_query.as_str(), t.path()));
            assert_eq!(got, *expected, "{raw:?}");
        }
    }

    #[test]
    fn framing_table() {
        use Framing::*;
        let cases = [
            // (HEAD, status, upstream Content-Length, HTTP/1.0 client) -> framing
            ((false, 200, Some(5), false), Length(5)),
            ((false, 200, None, false), Chunked),
            ((false, 200, None, true), UntilClose),
            ((false, 200, Some(0), true), Length(0)),
            ((true, 200, Some(5), false), Empty { content_length: Some(5) }),
            ((true, 200, None, false), Empty { content_length: None }),
            ((false, 204, Some(0), false), Empty { content_length: None }),
            ((false, 304, Some(7), false), Empty { content_length: Some(7) }),
            ((false, 101, None, false), Empty { content_length: None }),
        ];
        for ((head, status, length, http10), expected) in cases {
            assert_eq!(Framing::for_response(head, status, length, http10), expected, "{head} {status} {length:?} {http10}");
        }
    }

    #[test]
    fn response_heads() {
        let head = response_head(200, &[("x-a", b"1")], Framing::Chunked, false, false);
        assert_eq!(head, b"HTTP/1.1 200 OK\r\nx-a: 1\r\ntransfer-encoding: chunked\r\n\r\n");
        let head = response_head(404, &[], Framing::Length(3), true, false);
        assert_eq!(head, b"HTTP/1.1 404 Not Found\r\ncontent-length: 3\r\nconnection: close\r\n\r\n");
        let head = response_head(200, &[], Framing::Length(0), false, true);
        assert_eq!(head, b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: keep-alive\r\n\r\n");
        let head = response_head(200, &[], Framing::UntilClose, false, true);
        assert_eq!(head, b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n");
        let head = response_head(599, &[], Framing::Empty { content_length: None }, false, false);
        assert_eq!(head, b"HTTP/1.1 599 \r\n\r\n");
        let head = response_head(100, &[], Framing::Length(u64::MAX), false, false);
        assert_eq!(head, b"HTTP/1.1 100 Continue\r\ncontent-length: 18446744073709551615\r\n\r\n");
        let head = response_head(200, &[], Framing::Length(10), false, false);
        assert_eq!(head, b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n");
        let mut reused = b"left over".to_vec();
        reused.clear();
        write_response_head(&mut reused, 200, [("x-a", &b"1"[..])], Framing::Length(0), false, false);
        assert_eq!(reused, b"HTTP/1.1 200 OK\r\nx-a: 1\r\ncontent-length: 0\r\n\r\n");
    }

    #[test]
    fn chunks() {
        let mut out = Vec::new();
        write_chunk(&mut out, b"hello world, sixteen+").unwrap();
        write_chunk(&mut out, b"").unwrap();
        out.extend_from_slice(LAST_CHUNK);
        assert_eq!(out, b"15\r\nhello world, sixteen+\r\n0\r\n\r\n");
    }

    #[test]
    fn upstream_response_heads() {
        assert_eq!(parse_response_head(b"HTTP/1.1 101 Switching"), Ok(None));
        let raw = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nextra";
        let head = parse_response_head(raw).unwrap().unwrap();
        assert_eq!(head.status, 101);
        assert_eq!(&raw[head.length..], b"extra");
        assert_eq!(head.headers[0], ("Upgrade".to_string(), b"websocket".to_vec()));
        assert_eq!(parse_response_head(b"HTTP/1.0 200\r\n\r\n").unwrap().unwrap().status, 200);
        assert_eq!(parse_response_head(b"SSH-2.0\r\n\r\n"), Err(HeadError::BadStatusLine));
        assert_eq!(parse_response_head(b"HTTP/1.1 20x OK\r\n\r\n"), Err(HeadError::BadStatusLine));
        assert_eq!(parse_response_head(b"HTTP/1.1 200 OK\r\nnocolon\r\n\r\n"), Err(HeadError::BadHeader));
    }

    #[test]
    fn request_heads() {
        let head = request_head("GET", "/ws?x", &[("host".into(), "h".into()), ("upgrade".into(), "websocket".into())]);
        assert_eq!(head, b"GET /ws?x HTTP/1.1\r\nhost: h\r\nupgrade: websocket\r\n\r\n");
    }
}
