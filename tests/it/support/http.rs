//! HTTP/1.1 read by hand off raw streams, shared by the test binaries so that
//! every byte on the wire stays under the test's control. Heads and chunk
//! lines are read one byte at a time: nothing past them is consumed, so a
//! test can go on reading the same unbuffered stream itself (a tunnel, a
//! pipelined response). Each test binary uses a different part.
#![allow(dead_code)]

use std::io::{self, ErrorKind, Read};
use std::time::{Duration, Instant};

/// A response as it came off the wire.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// The first value of a header, by case-insensitive name.
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// The status code in a response head or status line; 0 when there is none,
/// so that a comparison fails with the head in its message.
pub fn status_of(head: &str) -> u16 {
    head.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or(0)
}

fn invalid(message: String) -> io::Error {
    io::Error::new(ErrorKind::InvalidData, message)
}

/// Reads a head through its blank line, CRLF endings only; errors on timeout or EOF.
pub fn read_raw_head(stream: &mut impl Read) -> io::Result<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte)? == 0 {
            return Err(io::Error::new(ErrorKind::UnexpectedEof, format!("EOF after {:?}", String::from_utf8_lossy(&head))));
        }
        head.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

/// Splits a head into its first line and its fields (names and values trimmed).
pub fn parse_head(raw: &str) -> io::Result<(String, Vec<(String, String)>)> {
    let mut lines = raw.lines();
    let first = lines.next().filter(|line| !line.is_empty()).ok_or_else(|| invalid(format!("no first line in {raw:?}")))?;
    let mut headers = Vec::new();
    for line in lines.take_while(|line| !line.is_empty()) {
        let (name, value) = line.split_once(':').ok_or_else(|| invalid(format!("header line without a colon: {line:?}")))?;
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    Ok((first.to_string(), headers))
}

/// Reads one request or response head: its first line and its fields.
pub fn read_head(stream: &mut impl Read) -> io::Result<(String, Vec<(String, String)>)> {
    parse_head(&read_raw_head(stream)?)
}

/// Reads one CRLF-terminated line without its ending.
fn read_line(stream: &mut impl Read) -> io::Result<String> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        if stream.read(&mut byte)? == 0 {
            return Err(io::Error::new(ErrorKind::UnexpectedEof, "EOF inside a line"));
        }
        line.push(byte[0]);
    }
    line.truncate(line.len() - 2);
    String::from_utf8(line).map_err(|_| invalid("a line that is not UTF-8".into()))
}

/// Reads a chunked body through its last chunk and the empty trailer after it.
pub fn read_chunked(stream: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line = read_line(stream)?;
        let digits = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(digits, 16).map_err(|_| invalid(format!("bad chunk size line {line:?}")))?;
        let mut chunk = vec![0; size + 2];
        stream.read_exact(&mut chunk)?;
        if !chunk.ends_with(b"\r\n") {
            return Err(invalid(format!("chunk of {size} bytes not followed by CRLF")));
        }
        if size == 0 {
            return Ok(body);
        }
        body.extend_from_slice(&chunk[..size]);
    }
}

/// Reads one response; `head_request` means no body follows. A body that is
/// neither chunked nor sized runs to the end of the stream.
pub fn read_response(stream: &mut impl Read, head_request: bool) -> io::Result<Response> {
    let (line, headers) = read_head(stream)?;
    let status = Some(status_of(&line)).filter(|code| *code != 0).ok_or_else(|| invalid(format!("bad status line {line:?}")))?;
    let body = if head_request || status == 204 || status == 304 {
        Vec::new()
    } else if header(&headers, "transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        read_chunked(stream)?
    } else if let Some(length) = header(&headers, "content-length") {
        let length: usize = length.parse().map_err(|_| invalid(format!("bad content-length {length:?}")))?;
        let mut body = vec![0; length];
        stream.read_exact(&mut body)?;
        body
    } else {
        let mut body = Vec::new();
        stream.read_to_end(&mut body)?;
        body
    };
    Ok(Response { status, headers, body })
}

/// Parses a whole response already read to its end.
pub fn parse_response(mut bytes: &[u8]) -> io::Result<Response> {
    read_response(&mut bytes, false)
}

/// Reads until the peer closes (EOF or a reset); returns what arrived and
/// how long the close took. Any other error, a read timeout included, is
/// returned: the peer did not close in time.
pub fn read_until_closed(stream: &mut impl Read) -> io::Result<(Vec<u8>, Duration)> {
    let started = Instant::now();
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => received.extend_from_slice(&buffer[..n]),
            Err(err) if err.kind() == ErrorKind::ConnectionReset => break,
            Err(err) => return Err(err),
        }
    }
    Ok((received, started.elapsed()))
}
