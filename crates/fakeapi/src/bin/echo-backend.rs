//! A tiny HTTP/1.1 backend for the demo, the smoke test, the static-build
//! check and the benchmark.
//!
//! Every request is answered `200` with body `NAME METHOD TARGET\n` and the
//! header `X-Backend: NAME`, so a client behind ingressd can tell which
//! backend served it and which path reached it. `X-Seen-Host` echoes the Host
//! header the backend received, to check that the proxy passes it through.
//! std only, one thread per connection, keep-alive, bounded reads.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// An idle keep-alive connection is closed after this, so a forgotten client
/// does not hold a thread for the life of the process.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
const MAX_LINE: usize = 16 * 1024;
const MAX_HEADERS: usize = 100;

struct Options {
    addr: String,
    name: String,
    ready_file: Option<PathBuf>,
}

const USAGE: &str = "usage: echo-backend --addr IP:PORT --name NAME [--ready-file FILE]";

fn parse_options() -> Result<Options, String> {
    let mut addr = None;
    let mut name = None;
    let mut ready_file = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f.to_string(), Some(v.to_string())),
            None => (arg.clone(), None),
        };
        if flag == "--help" || flag == "-h" {
            return Err(USAGE.to_string());
        }
        let value = match inline {
            Some(v) => v,
            None => args.next().ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?,
        };
        match flag.as_str() {
            "--addr" => addr = Some(value),
            "--name" => name = Some(value),
            "--ready-file" => ready_file = Some(PathBuf::from(value)),
            _ => return Err(format!("unknown argument {flag:?}\n{USAGE}")),
        }
    }
    Ok(Options {
        addr: addr.ok_or_else(|| format!("--addr is required\n{USAGE}"))?,
        name: name.ok_or_else(|| format!("--name is required\n{USAGE}"))?,
        ready_file,
    })
}

fn main() {
    let options = match parse_options() {
        Ok(o) => o,
        Err(message) => {
            eprintln!("echo-backend: {message}");
            std::process::exit(2);
        }
    };
    let listener = match TcpListener::bind(&options.addr) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("echo-backend: cannot listen on {}: {e}", options.addr);
            std::process::exit(1);
        }
    };
    let local = match listener.local_addr() {
        Ok(a) => a.to_string(),
        Err(_) => options.addr.clone(),
    };
    println!("echo-backend {} listening on http://{local}", options.name);
    if let Some(path) = &options.ready_file {
        // Written only after bind, so a waiter that sees the file can connect;
        // the address in it resolves a requested port 0.
        if let Err(e) = std::fs::write(path, format!("{local}\n")) {
            eprintln!("echo-backend: cannot write ready file {}: {e}", path.display());
            std::process::exit(1);
        }
    }
    let name: Arc<str> = options.name.into();
    for stream in listener.incoming() {
        match stream {
            Ok(stream) => {
                let name = Arc::clone(&name);
                std::thread::spawn(move || {
                    if let Err(e) = serve_connection(stream, &name) {
                        if !matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::ConnectionReset) {
                            eprintln!("echo-backend {name}: connection error: {e}");
                        }
                    }
                });
            }
            // EMFILE and friends are transient: keep accepting after a pause.
            Err(e) => {
                eprintln!("echo-backend {name}: accept failed: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// A parsed request head, as far as answering needs it.
struct Head {
    method: String,
    target: String,
    keep_alive: bool,
    host: String,
    body: BodyFraming,
}

enum BodyFraming {
    None,
    Length(u64),
    Chunked,
}

fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_string())
}

/// Reads one CRLF- or LF-terminated line; `Ok(None)` at a clean end of stream.
fn read_line(reader: &mut impl BufRead) -> io::Result<Option<String>> {
    let mut line = Vec::new();
    let read = reader.by_ref().take(MAX_LINE as u64 + 1).read_until(b'\n', &mut line)?;
    if read == 0 {
        return Ok(None);
    }
    if !line.ends_with(b"\n") {
        return Err(invalid("line too long or truncated"));
    }
    while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        line.pop();
    }
    String::from_utf8(line).map(Some).map_err(|_| invalid("line is not UTF-8"))
}

fn read_head(reader: &mut impl BufRead) -> io::Result<Option<Head>> {
    let request_line = match read_line(reader)? {
        Some(line) => line,
        None => return Ok(None),
    };
    let mut parts = request_line.split(' ');
    let (method, target, version) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(t), Some(v), None) if !m.is_empty() && !t.is_empty() => (m.to_string(), t.to_string(), v),
        _ => return Err(invalid("malformed request line")),
    };
    let mut keep_alive = version == "HTTP/1.1";
    let mut host = String::new();
    let mut body = BodyFraming::None;
    for _ in 0..=MAX_HEADERS {
        let line = read_line(reader)?.ok_or_else(|| invalid("end of stream inside the head"))?;
        if line.is_empty() {
            return Ok(Some(Head { method, target, keep_alive, host, body }));
        }
        let (name, value) = line.split_once(':').ok_or_else(|| invalid("header without a colon"))?;
        let value = value.trim();
        match name.to_ascii_lowercase().as_str() {
            // Only visible ASCII is echoed, so a stray CR cannot split the response head.
            "host" => host = value.chars().filter(|c| c.is_ascii_graphic()).collect(),
            "connection" => {
                let value = value.to_ascii_lowercase();
                if value.split(',').any(|t| t.trim() == "close") {
                    keep_alive = false;
                } else if value.split(',').any(|t| t.trim() == "keep-alive") {
                    keep_alive = true;
                }
            }
            "content-length" => {
                body = BodyFraming::Length(value.parse().map_err(|_| invalid("bad Content-Length"))?);
            }
            "transfer-encoding" if value.eq_ignore_ascii_case("chunked") => body = BodyFraming::Chunked,
            "transfer-encoding" => return Err(invalid("unsupported Transfer-Encoding")),
            _ => {}
        }
    }
    Err(invalid("too many header lines"))
}

/// Reads and discards the request body so the next request on the connection
/// starts at the right byte.
fn drain_body(reader: &mut impl BufRead, framing: &BodyFraming) -> io::Result<()> {
    match framing {
        BodyFraming::None => Ok(()),
        BodyFraming::Length(n) => {
            let copied = io::copy(&mut reader.by_ref().take(*n), &mut io::sink())?;
            if copied == *n {
                Ok(())
            } else {
                Err(invalid("body shorter than Content-Length"))
            }
        }
        BodyFraming::Chunked => loop {
            let size_line = read_line(reader)?.ok_or_else(|| invalid("end of stream inside a chunked body"))?;
            let size_text = size_line.split(';').next().unwrap_or("").trim();
            let size = u64::from_str_radix(size_text, 16).map_err(|_| invalid("bad chunk size"))?;
            if size == 0 {
                // Trailers, up to the empty line.
                loop {
                    match read_line(reader)? {
                        Some(line) if line.is_empty() => return Ok(()),
                        Some(_) => continue,
                        None => return Err(invalid("end of stream inside trailers")),
                    }
                }
            }
            let copied = io::copy(&mut reader.by_ref().take(size), &mut io::sink())?;
            if copied != size || read_line(reader)?.as_deref() != Some("") {
                return Err(invalid("malformed chunk"));
            }
        },
    }
}

fn serve_connection(stream: TcpStream, name: &str) -> io::Result<()> {
    stream.set_read_timeout(Some(IDLE_TIMEOUT))?;
    stream.set_write_timeout(Some(IDLE_TIMEOUT))?;
    stream.set_nodelay(true)?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    loop {
        let head = match read_head(&mut reader) {
            Ok(Some(head)) => head,
            Ok(None) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                let body = format!("{name} bad request: {e}\n");
                write!(
                    writer,
                    "HTTP/1.1 400 Bad Request\r\nX-Backend: {name}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )?;
                return writer.flush();
            }
            Err(e) => return Err(e),
        };
        drain_body(&mut reader, &head.body)?;
        let body = format!("{name} {} {}\n", head.method, head.target);
        let connection = if head.keep_alive { "keep-alive" } else { "close" };
        let mut response = format!(
            "HTTP/1.1 200 OK\r\nX-Backend: {name}\r\nX-Seen-Host: {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: {connection}\r\n\r\n",
            head.host,
            body.len()
        );
        if head.method != "HEAD" {
            response.push_str(&body);
        }
        writer.write_all(response.as_bytes())?;
        writer.flush()?;
        if !head.keep_alive {
            return Ok(());
        }
    }
}
