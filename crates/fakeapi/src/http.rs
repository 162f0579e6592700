//! HTTP/1.1 wire codec: request parsing and response framing over any `BufRead`/`Write`,
//! so it is tested on byte slices and used over TCP or TLS alike.

use std::io::{self, BufRead, Read, Write};

/// Longest request line or header line accepted.
const MAX_LINE: usize = 16 * 1024;
const MAX_HEADERS: usize = 100;
/// Largest request body accepted (API objects are small).
const MAX_BODY: usize = 8 * 1024 * 1024;

#[derive(Debug, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// Percent-decoded path without the query.
    pub path: String,
    /// Decoded query parameters in order.
    pub query: Vec<(String, String)>,
    /// Names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// HTTP/1.1 without `Connection: close`, or HTTP/1.0 with `Connection: keep-alive`.
    pub keep_alive: bool,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub fn query(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// Why no request was read.
#[derive(Debug)]
pub enum ReadError {
    /// The peer closed the connection between requests: not an error.
    Closed,
    /// The socket failed (including read timeouts).
    Io(io::Error),
    /// The bytes are not an acceptable HTTP/1.1 request; answer 400 and close.
    Malformed(String),
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> ReadError {
        ReadError::Io(e)
    }
}

/// How the request body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Empty,
    Length(usize),
    Chunked,
}

/// A whole request. `send_continue` writes the interim `100 Continue` when the client
/// waits for it before its body (curl does over 1 KiB), saving it a one-second stall.
pub fn read_request<R: BufRead>(
    reader: &mut R,
    send_continue: impl FnOnce(&mut R) -> io::Result<()>,
) -> Result<Request, ReadError> {
    let (mut request, framing) = read_head(reader)?;
    if expects_continue(&request, framing) {
        send_continue(reader)?;
    }
    request.body = read_body(reader, framing)?;
    Ok(request)
}

fn expects_continue(request: &Request, framing: Framing) -> bool {
    framing != Framing::Empty && request.header("expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
}

fn read_body<R: BufRead>(reader: &mut R, framing: Framing) -> Result<Vec<u8>, ReadError> {
    match framing {
        Framing::Empty => Ok(Vec::new()),
        Framing::Chunked => read_chunked(reader),
        Framing::Length(length) => {
            let mut body = vec![0; length];
            reader.read_exact(&mut body).map_err(truncated)?;
            Ok(body)
        }
    }
}

/// The request line and headers; the body is left unread (`body` empty).
fn read_head<R: BufRead>(reader: &mut R) -> Result<(Request, Framing), ReadError> {
    let mut line = read_line(reader)?;
    // Tolerate blank lines between requests, as RFC 9112 allows.
    while line.is_empty() {
        line = read_line(reader)?;
    }
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ReadError::Malformed(format!("bad request line {line:?}")));
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(ReadError::Malformed(format!("bad method {method:?}")));
    }
    let http10 = match version {
        "HTTP/1.1" => false,
        "HTTP/1.0" => true,
        _ => return Err(ReadError::Malformed(format!("unsupported version {version:?}"))),
    };
    if !target.starts_with('/') {
        return Err(ReadError::Malformed(format!("bad request target {target:?}")));
    }
    let (raw_path, raw_query) = target.split_once('?').unwrap_or((target, ""));
    let path = percent_decode(raw_path).ok_or_else(|| ReadError::Malformed("bad path encoding".into()))?;
    let query = parse_query(raw_query).ok_or_else(|| ReadError::Malformed("bad query encoding".into()))?;

    let mut headers = Vec::new();
    loop {
        let line = match read_line(reader) {
            Err(ReadError::Closed) => return Err(ReadError::Malformed("connection closed inside the head".into())),
            other => other?,
        };
        if line.is_empty() {
            break;
        }
        if headers.len() == MAX_HEADERS {
            return Err(ReadError::Malformed("too many headers".into()));
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(ReadError::Malformed(format!("bad header line {line:?}")));
        };
        if name.is_empty() || name.bytes().any(|b| b.is_ascii_whitespace()) {
            return Err(ReadError::Malformed(format!("bad header name {name:?}")));
        }
        headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
    }

    let header_values = |name: &'static str| headers.iter().filter(move |(n, _)| n == name).map(|(_, v)| v.as_str());
    let connection = header_values("connection").collect::<Vec<_>>().join(",").to_ascii_lowercase();
    let keep_alive = if http10 { connection.contains("keep-alive") } else { !connection.contains("close") };
    let transfer_encoding: Vec<&str> = header_values("transfer-encoding").collect();
    let lengths: Vec<&str> = header_values("content-length").collect();
    // Both framings at once is the classic smuggling shape: refuse it.
    if !transfer_encoding.is_empty() && !lengths.is_empty() {
        return Err(ReadError::Malformed("both Transfer-Encoding and Content-Length".into()));
    }
    let framing = if !transfer_encoding.is_empty() {
        if transfer_encoding.len() != 1 || !transfer_encoding[0].eq_ignore_ascii_case("chunked") {
            return Err(ReadError::Malformed("only Transfer-Encoding: chunked is supported".into()));
        }
        Framing::Chunked
    } else if let Some(first) = lengths.first() {
        if lengths.iter().any(|l| l != first) {
            return Err(ReadError::Malformed("conflicting Content-Length".into()));
        }
        let length: usize = first
            .parse()
            .ok()
            .filter(|n| *n <= MAX_BODY)
            .ok_or_else(|| ReadError::Malformed(format!("bad or too large Content-Length {first:?}")))?;
        if length == 0 { Framing::Empty } else { Framing::Length(length) }
    } else {
        Framing::Empty
    };
    Ok((Request { method: method.to_string(), path, query, headers, body: Vec::new(), keep_alive }, framing))
}

fn truncated(e: io::Error) -> ReadError {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        ReadError::Malformed("connection closed inside the body".into())
    } else {
        ReadError::Io(e)
    }
}

/// One line without its CRLF (or bare LF). `Closed` on EOF before any byte.
fn read_line<R: BufRead>(reader: &mut R) -> Result<String, ReadError> {
    let mut bytes = Vec::new();
    let n = reader.take(MAX_LINE as u64 + 2).read_until(b'\n', &mut bytes)?;
    if n == 0 {
        return Err(ReadError::Closed);
    }
    if bytes.last() != Some(&b'\n') {
        return Err(if n > MAX_LINE {
            ReadError::Malformed("line too long".into())
        } else {
            ReadError::Malformed("connection closed inside a line".into())
        });
    }
    bytes.pop();
    if bytes.last() == Some(&b'\r') {
        bytes.pop();
    }
    String::from_utf8(bytes).map_err(|_| ReadError::Malformed("non-UTF-8 bytes in the head".into()))
}

fn read_chunked<R: BufRead>(reader: &mut R) -> Result<Vec<u8>, ReadError> {
    let mut body = Vec::new();
    loop {
        let line = read_line(reader).map_err(|e| match e {
            ReadError::Closed => ReadError::Malformed("connection closed inside the body".into()),
            other => other,
        })?;
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .ok()
            .filter(|n| body.len() + n <= MAX_BODY)
            .ok_or_else(|| ReadError::Malformed(format!("bad or too large chunk size {size_text:?}")))?;
        if size == 0 {
            // Trailers, up to the blank line.
            while !read_line(reader)?.is_empty() {}
            return Ok(body);
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..]).map_err(truncated)?;
        if !read_line(reader)?.is_empty() {
            return Err(ReadError::Malformed("chunk not followed by CRLF".into()));
        }
    }
}

/// `None` when a `%` is not followed by two hex digits or the result is not UTF-8.
pub fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `a=1&b=x%3Dy` → pairs; `+` is a space, as Go's `url.ParseQuery` reads it.
pub fn parse_query(query: &str) -> Option<Vec<(String, String)>> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            Some((percent_decode(&name.replace('+', " "))?, percent_decode(&value.replace('+', " "))?))
        })
        .collect()
}

pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        410 => "Gone",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

/// A complete response with a Content-Length body, flushed.
pub fn write_response<W: Write>(
    writer: &mut W,
    status: u16,
    extra_headers: &[(&str, &str)],
    content_type: &str,
    body: &[u8],
    keep_alive: bool,
) -> io::Result<()> {
    let mut head = format!("HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\n", reason_phrase(status));
    for (name, value) in extra_headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    if !keep_alive {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    writer.write_all(&out)?;
    writer.flush()
}

/// The head of a chunked streaming response; chunks follow with [`write_chunk`].
pub fn write_chunked_head<W: Write>(writer: &mut W, status: u16, content_type: &str) -> io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nCache-Control: no-cache, private\r\nTransfer-Encoding: chunked\r\n\r\n",
        reason_phrase(status)
    );
    writer.write_all(head.as_bytes())?;
    writer.flush()
}

/// One chunk, flushed so the client sees it at once. Empty data is skipped: a zero-size
/// chunk would end the body.
pub fn write_chunk<W: Write>(writer: &mut W, data: &[u8]) -> io::Result<()> {
    if data.is_empty() {
        return Ok(());
    }
    let mut out = format!("{:x}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    writer.write_all(&out)?;
    writer.flush()
}

/// The terminating zero chunk: a clean end of a streamed body.
pub fn write_last_chunk<W: Write>(writer: &mut W) -> io::Result<()> {
    writer.write_all(b"0\r\n\r\n")?;
    writer.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Result<Request, ReadError> {
        read_request(&mut io::BufReader::new(bytes), |_| Ok(()))
    }

    #[test]
    fn parses_a_get_with_query_and_headers() {
        let req = parse(b"GET /api/v1/pods?labelSelector=app%3Dweb,tier!%3Dx&watch=1&x=a+b HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer t\r\n\r\n").unwrap();
        assert_eq!(req.method, "GET");
        assert_eq!(req.path, "/api/v1/pods");
        assert_eq!(req.query("labelSelector"), Some("app=web,tier!=x"));
        assert_eq!(req.query("watch"), Some("1"));
        assert_eq!(req.query("x"), Some("a b"));
        assert_eq!(req.header("authorization"), Some("Bearer t"));
        assert!(req.keep_alive);
    }

    #[test]
    fn reads_sized_and_chunked_bodies_and_keeps_the_rest() {
        let bytes = b"POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloPUT /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\n";
        let mut reader = io::BufReader::new(&bytes[..]);
        let first = read_request(&mut reader, |_| Ok(())).unwrap();
        assert_eq!(first.body, b"hello");
        let second = read_request(&mut reader, |_| Ok(())).unwrap();
        assert_eq!((second.method.as_str(), second.body.as_slice(), second.keep_alive), ("PUT", &b"abcde"[..], false));
        assert!(matches!(read_request(&mut reader, |_| Ok(())), Err(ReadError::Closed)));
    }

    #[test]
    fn rejects_malformed_and_smuggling_shapes() {
        for bytes in [
            &b"GET /a HTTP/2.0\r\n\r\n"[..],
            b"GET a HTTP/1.1\r\n\r\n",
            b"get /a HTTP/1.1\r\n\r\n",
            b"GET /a HTTP/1.1 extra\r\n\r\n",
            b"GET /a HTTP/1.1\r\nno colon\r\n\r\n",
            b"GET /a HTTP/1.1\r\nBad Name: x\r\n\r\n",
            b"POST /a HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc",
            b"POST /a HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
            b"POST /a HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n",
            b"POST /a HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"POST /a HTTP/1.1\r\nContent-Length: 10\r\n\r\nshort",
            b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"GET /a%zz HTTP/1.1\r\n\r\n",
            b"GET /a HTTP/1.1\r\nHost: x",
        ] {
            assert!(matches!(parse(bytes), Err(ReadError::Malformed(_))), "{}", String::from_utf8_lossy(bytes));
        }
        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_LINE + 10));
        assert!(matches!(parse(long.as_bytes()), Err(ReadError::Malformed(_))));
    }

    #[test]
    fn expect_continue_is_seen_only_with_a_body() {
        let mut reader = io::BufReader::new(&b"PUT /a HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n{}"[..]);
        let (request, framing) = read_head(&mut reader).unwrap();
        assert!(expects_continue(&request, framing));
        assert_eq!(read_body(&mut reader, framing).unwrap(), b"{}");
        let mut reader = io::BufReader::new(&b"GET /a HTTP/1.1\r\nExpect: 100-continue\r\n\r\n"[..]);
        let (request, framing) = read_head(&mut reader).unwrap();
        assert!(!expects_continue(&request, framing));
    }

    #[test]
    fn mutated_requests_never_panic() {
        let seed = b"PUT /apis/x/v1/namespaces/a/b/c?watch=1&x=%41 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\nContent-Length: 2\r\n\r\nxy";
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..5000 {
            let mut bytes = seed.to_vec();
            for _ in 0..(next() % 6 + 1) {
                let at = (next() as usize) % bytes.len();
                match next() % 3 {
                    0 => bytes[at] = next() as u8,
                    1 => {
                        bytes.remove(at);
                    }
                    _ => bytes.insert(at, b"\r\n:%0 ;"[(next() % 7) as usize]),
                }
            }
            let mut reader = io::BufReader::new(&bytes[..]);
            while read_request(&mut reader, |_| Ok(())).is_ok() {}
        }
    }

    #[test]
    fn frames_responses() {
        let mut out = Vec::new();
        write_response(&mut out, 429, &[("Retry-After", "1")], "application/json", b"{}", true).unwrap();
        assert_eq!(out, b"HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nRetry-After: 1\r\nContent-Length: 2\r\n\r\n{}");
        let mut out = Vec::new();
        write_chunk(&mut out, b"{\"a\":1}\n").unwrap();
        write_chunk(&mut out, b"").unwrap();
        write_last_chunk(&mut out).unwrap();
        assert_eq!(out, b"8\r\n{\"a\":1}\n\r\n0\r\n\r\n");
    }
}
