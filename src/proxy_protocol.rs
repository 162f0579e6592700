//! The PROXY protocol (versions 1 and 2, as HAProxy specifies it): the header
//! an L4 load balancer puts in front of a connection so the proxy behind it
//! learns the real client address.
//!
//! The codec is sans-I/O: [`decode`] looks at the bytes received so far and
//! says how many more it needs, how long the header is, or why the bytes are
//! not a header. [`read_header`] is the one place that touches a socket: it
//! peeks, so it never consumes a byte past the header, and the TLS handshake
//! or HTTP request behind it reaches its parser untouched. [`preface`] is what
//! the listeners run with `--use-proxy-protocol`: the trusted-peer check, the
//! header, and the count of connections closed and why.

use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::cidr::Cidr;
use crate::prometheus::{self, Type};

/// The 12 bytes every version 2 header starts with.
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// Version 1's longest header, CRLF included (the specification's bound).
const V1_MAX: usize = 107;
/// Fixed part of a version 2 header: signature, version/command, family, length.
const V2_FIXED: usize = 16;

/// What the bytes so far amount to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded {
    /// A header might still be there: at least this many bytes are needed in all.
    NeedAtLeast(usize),
    /// A complete header of `length` bytes. `client` is the address it
    /// carries; `None` when the sender speaks for itself (v2 `LOCAL`, a load
    /// balancer's health check, or v1 `UNKNOWN`), and the peer address stands.
    Header { length: usize, client: Option<SocketAddr> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The connection does not start with a PROXY protocol header.
    Missing,
    /// It starts like one but breaks the specification.
    Malformed(&'static str),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Missing => f.write_str("the connection does not start with a PROXY protocol header"),
            Error::Malformed(why) => write!(f, "malformed PROXY protocol header: {why}"),
        }
    }
}

impl std::error::Error for Error {}

/// Decodes what has arrived of a connection's first bytes, however few:
/// the caller reads more while the answer is `NeedAtLeast`, so a header split
/// across reads is never mistaken for a missing or malformed one.
pub fn decode(bytes: &[u8]) -> Result<Decoded, Error> {
    if bytes.is_empty() {
        // The shortest header of either version is longer, but which one comes is not known yet.
        return Ok(Decoded::NeedAtLeast(1));
    }
    let v1_prefix = b"PROXY ";
    let compare = bytes.len().min(V2_SIGNATURE.len());
    if bytes[..compare] == V2_SIGNATURE[..compare] {
        return if compare < V2_SIGNATURE.len() { Ok(Decoded::NeedAtLeast(V2_FIXED)) } else { decode_v2(bytes) };
    }
    let compare = bytes.len().min(v1_prefix.len());
    if bytes[..compare] == v1_prefix[..compare] {
        return if compare < v1_prefix.len() { Ok(Decoded::NeedAtLeast(v1_prefix.len() + 1)) } else { decode_v1(bytes) };
    }
    Err(Error::Missing)
}

fn decode_v1(bytes: &[u8]) -> Result<Decoded, Error> {
    let window = &bytes[..bytes.len().min(V1_MAX)];
    let Some(end) = window.windows(2).position(|w| w == b"\r\n") else {
        return if bytes.len() >= V1_MAX { Err(Error::Malformed("v1 line longer than 107 bytes")) } else { Ok(Decoded::NeedAtLeast(bytes.len() + 1)) };
    };
    let line = std::str::from_utf8(&window[..end]).map_err(|_| Error::Malformed("v1 line is not ASCII"))?;
    let fields: Vec<&str> = line.split(' ').collect();
    let client = match fields.as_slice() {
        ["PROXY", "UNKNOWN", ..] => None,
        ["PROXY", family @ ("TCP4" | "TCP6"), source, destination, source_port, destination_port] => {
            let source: IpAddr = source.parse().map_err(|_| Error::Malformed("v1 source address"))?;
            let destination: IpAddr = destination.parse().map_err(|_| Error::Malformed("v1 destination address"))?;
            if source.is_ipv4() != (*family == "TCP4") || destination.is_ipv4() != (*family == "TCP4") {
                return Err(Error::Malformed("v1 address does not match its family"));
            }
            let port = |text: &str| -> Result<u16, Error> {
                // Decimal without leading zeros or signs, as the specification writes ports.
                if text.is_empty() || (text.len() > 1 && text.starts_with('0')) || !text.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(Error::Malformed("v1 port"));
                }
                text.parse().map_err(|_| Error::Malformed("v1 port"))
            };
            port(destination_port)?;
            Some(SocketAddr::new(source, port(source_port)?))
        }
        _ => return Err(Error::Malformed("v1 line is not PROXY TCP4|TCP6|UNKNOWN with four fields")),
    };
    Ok(Decoded::Header { length: end + 2, client })
}

fn decode_v2(bytes: &[u8]) -> Result<Decoded, Error> {
    if bytes.len() < V2_FIXED {
        return Ok(Decoded::NeedAtLeast(V2_FIXED));
    }
    let version_command = bytes[12];
    if version_command >> 4 != 2 {
        return Err(Error::Malformed("v2 version is not 2"));
    }
    let family = bytes[13];
    let length = V2_FIXED + usize::from(u16::from_be_bytes([bytes[14], bytes[15]]));
    if bytes.len() < length {
        return Ok(Decoded::NeedAtLeast(length));
    }
    let addresses = &bytes[V2_FIXED..length];
    let client = match version_command & 0x0f {
        // LOCAL: the load balancer's own connection; the addresses (if any) are to be ignored.
        0x0 => None,
        0x1 => match family {
            // TCP or UDP over IPv4: source, destination, source port, destination port.
            0x11 | 0x12 => {
                let a = addresses.get(..12).ok_or(Error::Malformed("v2 IPv4 addresses are short"))?;
                Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3])), u16::from_be_bytes([a[8], a[9]])))
            }
            0x21 | 0x22 => {
                let a = addresses.get(..36).ok_or(Error::Malformed("v2 IPv6 addresses are short"))?;
                let mut source = [0u8; 16];
                source.copy_from_slice(&a[..16]);
                Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(source)), u16::from_be_bytes([a[32], a[33]])))
            }
            // UNSPEC or Unix sockets: no IP address to report; the peer address stands.
            0x00 | 0x31 | 0x32 => None,
            _ => return Err(Error::Malformed("v2 address family")),
        },
        _ => return Err(Error::Malformed("v2 command is neither LOCAL nor PROXY")),
    };
    Ok(Decoded::Header { length, client })
}

/// Reads the header in front of `stream` by `deadline`, consuming exactly
/// its bytes. `Ok(None)` means the header speaks for the sender itself.
/// Errors are `InvalidData` for a missing or malformed header and
/// `TimedOut` when the deadline passes first.
///
/// A load balancer writes the header in one piece, so one peek usually sees
/// all of it and one read consumes it. A header split across packets is read
/// in exact steps instead: [`decode`] never asks for more bytes than the
/// header holds, so nothing behind it is consumed.
pub fn read_header(stream: &TcpStream, deadline: Instant) -> io::Result<Option<SocketAddr>> {
    let original_timeout = stream.read_timeout()?;
    let result = read_header_by(stream, deadline);
    stream.set_read_timeout(original_timeout)?;
    result
}

fn read_header_by(stream: &TcpStream, deadline: Instant) -> io::Result<Option<SocketAddr>> {
    let invalid = |e: Error| io::Error::new(io::ErrorKind::InvalidData, e);
    let mut peeked = [0u8; 256];
    arm_timeout(stream, deadline)?;
    let seen = stream.peek(&mut peeked).map_err(deadline_error)?;
    if let Decoded::Header { length, client } = decode(&peeked[..seen]).map_err(invalid)? {
        read_exactly(stream, &mut vec![0u8; length], deadline)?;
        return Ok(client);
    }
    let mut header = Vec::with_capacity(V1_MAX);
    loop {
        match decode(&header).map_err(invalid)? {
            Decoded::Header { client, .. } => return Ok(client),
            Decoded::NeedAtLeast(total) => {
                let start = header.len();
                header.resize(total, 0);
                read_exactly(stream, &mut header[start..], deadline)?;
            }
        }
    }
}

fn arm_timeout(stream: &TcpStream, deadline: Instant) -> io::Result<()> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(timed_out());
    }
    stream.set_read_timeout(Some(left))
}

fn read_exactly(mut stream: &TcpStream, buffer: &mut [u8], deadline: Instant) -> io::Result<()> {
    let mut filled = 0;
    while filled < buffer.len() {
        arm_timeout(stream, deadline)?;
        match stream.read(&mut buffer[filled..]).map_err(deadline_error)? {
            0 => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed inside a PROXY protocol header")),
            n => filled += n,
        }
    }
    Ok(())
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "no PROXY protocol header before the deadline")
}

/// A socket read timeout surfaces as `WouldBlock` on Linux.
fn deadline_error(e: io::Error) -> io::Error {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => timed_out(),
        _ => e,
    }
}

/// Why a connection was closed before its first request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rejection {
    /// The peer is outside `--proxy-protocol-trusted-cidrs`.
    Untrusted,
    /// The connection did not start with a header.
    Missing,
    Malformed,
    /// No complete header before the request-head deadline.
    Timeout,
    /// The peer closed or reset the connection inside the header.
    Closed,
}

impl Rejection {
    const ALL: [Rejection; 5] = [Rejection::Untrusted, Rejection::Missing, Rejection::Malformed, Rejection::Timeout, Rejection::Closed];

    fn label(self) -> &'static str {
        match self {
            Rejection::Untrusted => "untrusted",
            Rejection::Missing => "missing",
            Rejection::Malformed => "malformed",
            Rejection::Timeout => "timeout",
            Rejection::Closed => "closed",
        }
    }

    fn of(error: &io::Error) -> Rejection {
        match error.kind() {
            io::ErrorKind::TimedOut => Rejection::Timeout,
            io::ErrorKind::InvalidData => match error.get_ref().and_then(|e| e.downcast_ref::<Error>()) {
                Some(Error::Missing) => Rejection::Missing,
                _ => Rejection::Malformed,
            },
            _ => Rejection::Closed,
        }
    }
}

static REJECTED: [AtomicU64; 5] = [const { AtomicU64::new(0) }; 5];
static WARNED: [AtomicBool; 5] = [const { AtomicBool::new(false) }; 5];

fn reject(why: Rejection, peer: Option<SocketAddr>, error: io::Error) -> io::Error {
    REJECTED[why as usize].fetch_add(1, Ordering::Relaxed);
    let peer = peer.map_or_else(|| "an unknown peer".to_string(), |peer| peer.to_string());
    // The first of each kind is a warning (most likely a load balancer not
    // configured to send the header, or an address missing from the trusted
    // list); the rest are counted, so a scanner cannot flood the log.
    if !WARNED[why as usize].swap(true, Ordering::Relaxed) {
        log::warn!(
            "proxy protocol: closed a connection from {peer}: {error}; further ones are only counted in ingressd_proxy_protocol_rejected_total{{reason=\"{}\"}}",
            why.label()
        );
    } else {
        log::debug!("proxy protocol: closed a connection from {peer}: {error}");
    }
    error
}

/// What the HTTP and HTTPS listeners run first with `--use-proxy-protocol`:
/// a peer outside `trusted` (empty: any peer) is closed before a byte is
/// read, so a client that bypasses the load balancer cannot forge its
/// address; otherwise the connection must start with a header by
/// `deadline`. `Ok(None)` means the peer speaks for itself (v2 `LOCAL`).
pub fn preface(stream: &TcpStream, deadline: Instant, trusted: &[Cidr]) -> io::Result<Option<SocketAddr>> {
    let peer = stream.peer_addr().ok();
    let believed = trusted.is_empty() || peer.is_some_and(|peer| trusted.iter().any(|cidr| cidr.contains(peer.ip())));
    if !believed {
        let error = io::Error::new(io::ErrorKind::PermissionDenied, "the peer is outside --proxy-protocol-trusted-cidrs");
        return Err(reject(Rejection::Untrusted, peer, error));
    }
    read_header(stream, deadline).map_err(|error| reject(Rejection::of(&error), peer, error))
}

/// [`preface`] as tiny_http runs it on every connection.
pub fn tiny_http_preface(trusted: Vec<Cidr>) -> tiny_http::Preface {
    Arc::new(move |stream: &TcpStream, deadline: Instant| preface(stream, deadline, &trusted))
}

/// `ingressd_proxy_protocol_rejected_total{reason}`.
pub fn write_metrics(out: &mut String) {
    const NAME: &str = "ingressd_proxy_protocol_rejected_total";
    prometheus::header(out, NAME, Type::Counter, "Connections closed before their first request by --use-proxy-protocol, by reason.");
    for why in Rejection::ALL {
        prometheus::sample(out, NAME, &[("reason", why.label())], REJECTED[why as usize].load(Ordering::Relaxed));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2(command: u8, family: u8, addresses: &[u8]) -> Vec<u8> {
        let mut bytes = V2_SIGNATURE.to_vec();
        bytes.push(0x20 | command);
        bytes.push(family);
        bytes.extend_from_slice(&(addresses.len() as u16).to_be_bytes());
        bytes.extend_from_slice(addresses);
        bytes
    }

    fn addr(text: &str) -> Option<SocketAddr> {
        Some(text.parse().expect("socket address"))
    }

    #[test]
    fn version_1_lines() {
        let cases: &[(&[u8], Result<Decoded, Error>)] = &[
            (b"PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\nGET /", Ok(Decoded::Header { length: 45, client: addr("192.0.2.1:56324") })),
            (b"PROXY TCP6 2001:db8::1 2001:db8::2 4000 80\r\n", Ok(Decoded::Header { length: 44, client: addr("[2001:db8::1]:4000") })),
            (b"PROXY UNKNOWN\r\n", Ok(Decoded::Header { length: 15, client: None })),
            (b"PROXY UNKNOWN 1.2.3.4 5.6.7.8 1 2\r\n", Ok(Decoded::Header { length: 35, client: None })),
            (b"PRO", Ok(Decoded::NeedAtLeast(7))),
            (b"PROXY TCP4 192.0.2.1", Ok(Decoded::NeedAtLeast(21))),
            (b"PROXY TCP4 192.0.2.1 198.51.100.1 56324\r\n", Err(Error::Malformed("v1 line is not PROXY TCP4|TCP6|UNKNOWN with four fields"))),
            (b"PROXY TCP4 2001:db8::1 198.51.100.1 1 2\r\n", Err(Error::Malformed("v1 address does not match its family"))),
            (b"PROXY TCP4 192.0.2.1 198.51.100.1 65536 443\r\n", Err(Error::Malformed("v1 port"))),
            (b"PROXY TCP4 192.0.2.1 198.51.100.1 080 443\r\n", Err(Error::Malformed("v1 port"))),
            (b"PROXY TCP4 192.0.2.1 198.51.100.1 +80 443\r\n", Err(Error::Malformed("v1 port"))),
            (b"PROXY TCP4 192.0.2.1  198.51.100.1 80 443\r\n", Err(Error::Malformed("v1 line is not PROXY TCP4|TCP6|UNKNOWN with four fields"))),
            (b"PROXY TCP4 999.0.2.1 198.51.100.1 80 443\r\n", Err(Error::Malformed("v1 source address"))),
            (b"GET / HTTP/1.1\r\n", Err(Error::Missing)),
            (b"\x16\x03\x01", Err(Error::Missing)),
        ];
        for (bytes, expected) in cases {
            assert_eq!(decode(bytes), *expected, "{:?}", String::from_utf8_lossy(bytes));
        }
        let endless = [b"PROXY TCP4 ".as_slice(), &[b'1'; 200]].concat();
        assert_eq!(decode(&endless), Err(Error::Malformed("v1 line longer than 107 bytes")));
    }

    #[test]
    fn version_2_headers() {
        let tcp4 = [192, 0, 2, 1, 198, 51, 100, 1, 0xdc, 0x04, 0x01, 0xbb];
        let mut tcp6 = vec![0u8; 36];
        tcp6[0] = 0x20;
        tcp6[1] = 0x01;
        tcp6[15] = 1;
        tcp6[32..34].copy_from_slice(&4000u16.to_be_bytes());
        let with_tlv = [tcp4.as_slice(), &[0x04, 0x00, 0x02, 0xaa, 0xbb]].concat();
        let cases: Vec<(Vec<u8>, Result<Decoded, Error>)> = vec![
            (v2(1, 0x11, &tcp4), Ok(Decoded::Header { length: 28, client: addr("192.0.2.1:56324") })),
            (v2(1, 0x21, &tcp6), Ok(Decoded::Header { length: 52, client: addr("[2001::1]:4000") })),
            (v2(1, 0x11, &with_tlv), Ok(Decoded::Header { length: 33, client: addr("192.0.2.1:56324") })),
            (v2(0, 0x00, &[]), Ok(Decoded::Header { length: 16, client: None })),
            (v2(0, 0x11, &tcp4), Ok(Decoded::Header { length: 28, client: None })),
            (v2(1, 0x00, &[]), Ok(Decoded::Header { length: 16, client: None })),
            (v2(1, 0x11, &tcp4[..8]), Err(Error::Malformed("v2 IPv4 addresses are short"))),
            (v2(1, 0x41, &tcp4), Err(Error::Malformed("v2 address family"))),
            (v2(2, 0x11, &tcp4), Err(Error::Malformed("v2 command is neither LOCAL nor PROXY"))),
            (v2(1, 0x11, &tcp4)[..20].to_vec(), Ok(Decoded::NeedAtLeast(28))),
            (V2_SIGNATURE[..5].to_vec(), Ok(Decoded::NeedAtLeast(16))),
        ];
        for (bytes, expected) in cases {
            assert_eq!(decode(&bytes), expected, "{bytes:?}");
        }
        let mut wrong_version = v2(1, 0x11, &tcp4);
        wrong_version[12] = 0x11;
        assert_eq!(decode(&wrong_version), Err(Error::Malformed("v2 version is not 2")));
    }

    /// Whatever the chunking, a prefix of a valid header never decodes as
    /// anything but "need more", and the whole header always decodes the same.
    #[test]
    fn every_prefix_of_a_header_asks_for_more() {
        let headers = [
            b"PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\n".to_vec(),
            b"PROXY UNKNOWN\r\n".to_vec(),
            v2(1, 0x11, &[192, 0, 2, 1, 198, 51, 100, 1, 0, 80, 1, 187]),
            v2(0, 0x00, &[]),
        ];
        for header in headers {
            for cut in 0..header.len() {
                match decode(&header[..cut]) {
                    Ok(Decoded::NeedAtLeast(n)) => assert!(n > cut && n <= header.len(), "cut {cut}: asked for {n}"),
                    other => panic!("cut {cut}: {other:?}"),
                }
            }
            assert!(matches!(decode(&header), Ok(Decoded::Header { length, .. }) if length == header.len()));
        }
    }

    #[test]
    fn read_header_consumes_only_the_header_even_when_it_arrives_in_pieces() {
        use std::io::Write;
        use std::net::TcpListener;
        use std::time::Duration;

        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let listening = listener.local_addr().expect("addr");
        let writer = std::thread::spawn(move || {
            let mut client = TcpStream::connect(listening).expect("connect");
            client.set_nodelay(true).expect("nodelay");
            for piece in [b"PROXY TCP4 203.0".as_slice(), b".113.7 192.0.2.1 4321 80", b"\r\nGET / HTTP/1.1\r\n\r\n"] {
                client.write_all(piece).expect("write");
                std::thread::sleep(Duration::from_millis(20));
            }
            client
        });
        let (mut server, _) = listener.accept().expect("accept");
        let client = read_header(&server, Instant::now() + Duration::from_secs(5)).expect("header");
        assert_eq!(client, addr("203.0.113.7:4321"));
        let _client = writer.join().expect("writer");
        let mut rest = [0u8; 18];
        server.read_exact(&mut rest).expect("request");
        assert_eq!(&rest, b"GET / HTTP/1.1\r\n\r\n");

        let (silent, _keep) = {
            let idle = TcpStream::connect(listening).expect("connect");
            (listener.accept().expect("accept").0, idle)
        };
        let err = read_header(&silent, Instant::now() + Duration::from_millis(100)).expect_err("nothing sent");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }
}
