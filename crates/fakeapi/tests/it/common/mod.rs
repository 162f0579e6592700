//! A minimal HTTP/1.1 client over real TCP and real TLS, so the tests see exactly the bytes
//! the server sends (framing, chunk boundaries, abrupt closes).
#![allow(dead_code)]

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fakeapi::FakeApi;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use serde_json::Value;

pub const TOKEN: &str = "test-token";
/// Every read in the tests is bounded by this.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);

pub fn ingress(ns: &str, name: &str, labels: Value) -> Value {
    serde_json::json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {"rules": [{"host": format!("{name}.example"), "http": {"paths": [{"path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": name, "port": {"number": 80}}}}]}}]}
    })
}

/// A server with TLS and `TOKEN`, short bookmarks.
pub fn start() -> FakeApi {
    start_with(fakeapi::Options {
        tokens: vec![TOKEN.into()],
        bookmark_interval: Duration::from_millis(200),
        ..Default::default()
    })
}

pub fn start_with(opts: fakeapi::Options) -> FakeApi {
    FakeApi::start(opts).expect("start fake API")
}

trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

pub struct Client {
    addr: SocketAddr,
    tls: Option<Arc<ClientConfig>>,
    pub token: Option<String>,
}

pub fn tls_config(ca_pem: &str) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    assert!(!roots.is_empty(), "CA PEM held no certificate");
    Arc::new(
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

impl Client {
    pub fn new(api: &FakeApi) -> Client {
        let tls = api.url().starts_with("https://").then(|| tls_config(&api.ca_pem()));
        Client { addr: api.addr(), tls, token: Some(TOKEN.into()) }
    }

    pub fn trusting(api: &FakeApi, ca_pem: &str) -> Client {
        Client { addr: api.addr(), tls: Some(tls_config(ca_pem)), token: Some(TOKEN.into()) }
    }

    /// A server not started in this process (the binary): `ca_pem` `None` means plain HTTP.
    pub fn at(addr: SocketAddr, ca_pem: Option<&str>) -> Client {
        Client { addr, tls: ca_pem.map(tls_config), token: Some(TOKEN.into()) }
    }

    pub fn anonymous(api: &FakeApi) -> Client {
        Client { token: None, ..Client::new(api) }
    }

    pub fn connect(&self) -> io::Result<Conn> {
        let tcp = TcpStream::connect_timeout(&self.addr, READ_TIMEOUT)?;
        tcp.set_read_timeout(Some(READ_TIMEOUT))?;
        tcp.set_write_timeout(Some(READ_TIMEOUT))?;
        let raw = tcp.try_clone()?;
        let stream: Box<dyn Stream> = match &self.tls {
            Some(config) => {
                let name = ServerName::try_from("127.0.0.1").unwrap();
                let conn = ClientConnection::new(Arc::clone(config), name).map_err(io::Error::other)?;
                Box::new(StreamOwned::new(conn, tcp))
            }
            None => Box::new(tcp),
        };
        Ok(Conn { reader: BufReader::new(stream), raw, token: self.token.clone() })
    }

    pub fn request(&self, method: &str, target: &str, body: Option<&Value>) -> Response {
        self.connect().expect("connect").request(method, target, body).expect("request")
    }

    pub fn get(&self, target: &str) -> Response {
        self.request("GET", target, None)
    }

    pub fn watch(&self, target: &str) -> Watch {
        let mut conn = self.connect().expect("connect");
        conn.send_head("GET", target, None).expect("send watch");
        let (status, headers) = conn.read_head().expect("watch head");
        Watch { conn, status, headers, pending: Vec::new() }
    }
}

pub struct Conn {
    reader: BufReader<Box<dyn Stream>>,
    pub raw: TcpStream,
    token: Option<String>,
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

impl Conn {
    pub fn send_head(&mut self, method: &str, target: &str, body: Option<&Value>) -> io::Result<()> {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut head = format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n");
        if let Some(token) = &self.token {
            head.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        if !body.is_empty() {
            head.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        head.push_str(&body);
        let stream = self.reader.get_mut();
        stream.write_all(head.as_bytes())?;
        stream.flush()
    }

    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        let stream = self.reader.get_mut();
        stream.write_all(bytes)?;
        stream.flush()
    }

    pub fn request(&mut self, method: &str, target: &str, body: Option<&Value>) -> io::Result<Response> {
        self.send_head(method, target, body)?;
        self.read_response()
    }

    pub fn read_response(&mut self) -> io::Result<Response> {
        let (status, headers) = self.read_head()?;
        let find = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
        let body = if find("transfer-encoding").is_some() {
            let mut body = Vec::new();
            while let Some(chunk) = self.read_chunk()? {
                body.extend(chunk);
            }
            body
        } else {
            let length: usize = find("content-length").expect("content-length").parse().unwrap();
            let mut body = vec![0; length];
            self.reader.read_exact(&mut body)?;
            body
        };
        Ok(Response { status, headers, body })
    }

    pub fn read_head(&mut self) -> io::Result<(u16, Vec<(String, String)>)> {
        let status_line = self.read_line()?;
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("bad status line {status_line:?}")))?;
        let mut headers = Vec::new();
        loop {
            let line = self.read_line()?;
            if line.is_empty() {
                return Ok((status, headers));
            }
            let (name, value) = line.split_once(':').unwrap();
            headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
        }
    }

    /// `None` at the terminating zero chunk.
    fn read_chunk(&mut self) -> io::Result<Option<Vec<u8>>> {
        let size = usize::from_str_radix(self.read_line()?.trim(), 16)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        if size == 0 {
            assert_eq!(self.read_line()?, "", "no trailers expected");
            return Ok(None);
        }
        let mut data = vec![0; size + 2];
        self.reader.read_exact(&mut data)?;
        assert_eq!(&data[size..], b"\r\n");
        data.truncate(size);
        Ok(Some(data))
    }

    fn read_line(&mut self) -> io::Result<String> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed"));
        }
        Ok(line.trim_end_matches(['\r', '\n']).to_string())
    }
}

/// What reading a watch stream produced.
#[derive(Debug)]
pub enum WatchItem {
    Event(Value),
    /// The terminating zero chunk: a clean end.
    End,
    /// EOF, reset or TLS failure before the zero chunk.
    Broken(String),
    /// Nothing arrived within the read timeout.
    Silent,
}

pub struct Watch {
    pub conn: Conn,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pending: Vec<u8>,
}

impl Watch {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub fn next(&mut self) -> WatchItem {
        loop {
            if let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=end).collect();
                return WatchItem::Event(serde_json::from_slice(&line).expect("event line is JSON"));
            }
            match self.conn.read_chunk() {
                Ok(Some(chunk)) => self.pending.extend(chunk),
                Ok(None) => return WatchItem::End,
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => return WatchItem::Silent,
                Err(e) => return WatchItem::Broken(e.to_string()),
            }
        }
    }

    /// The next event, panicking on anything else.
    pub fn event(&mut self) -> Value {
        match self.next() {
            WatchItem::Event(event) => event,
            other => panic!("expected an event, got {other:?}"),
        }
    }

    /// Skips bookmarks.
    pub fn change(&mut self) -> Value {
        loop {
            let event = self.event();
            if event["type"] != "BOOKMARK" {
                return event;
            }
        }
    }
}

/// Polls `check` until true or `timeout` passes.
pub fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub fn names(list: &Value) -> Vec<String> {
    list["items"].as_array().unwrap().iter().map(|i| i["metadata"]["name"].as_str().unwrap().to_string()).collect()
}

pub fn rv_of(object: &Value) -> u64 {
    object["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap()
}
