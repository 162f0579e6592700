//! Sockets and threads: the accept loop, TLS, one thread per connection, routing of API and
//! `/fake/` control requests, and watch streaming. All state sits in one `Mutex<State>`
//! with one `Condvar` that every change notifies, which is what wakes watch streams.

use std::collections::{HashMap, HashSet};
use std::io::{self, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use serde_json::{json, Value};

use crate::certs::Ca;
use crate::http::{self, ReadError, Request};
use crate::resources::{parse_path, Resource, Target};
use crate::selector::Selector;
use crate::store::{failure_status, resource_of, ApiError, EventType, Scope, Store};
use crate::Options;

/// How often blocked reads look at the stop flag.
const POLL: Duration = Duration::from_millis(200);
/// A stuck client must not hold a watch thread forever.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections silent this long are closed (keep-alive idle, or never finishing a request).
const IDLE_LIMIT: Duration = Duration::from_secs(600);
/// Watches without timeoutSeconds end after this long, like the real server's
/// min-request-timeout.
const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(1800);
/// How often an idle watch checks that its client is still there, so a client that went
/// away stops counting in `open_watches` promptly.
const LIVENESS_INTERVAL: Duration = Duration::from_millis(500);

pub(crate) struct Started {
    pub shared: Arc<Shared>,
    pub addr: SocketAddr,
    pub url: String,
    pub ca_pem: String,
    pub accept_thread: JoinHandle<()>,
}

pub(crate) struct Shared {
    state: Mutex<State>,
    /// Notified on every change of `state`.
    changed: Condvar,
    /// Clones of every open socket, so shutdown can close them all.
    connections: Mutex<HashMap<u64, TcpStream>>,
    connections_closed: Condvar,
    next_connection: AtomicU64,
    stop: AtomicBool,
}

struct State {
    store: Store,
    tokens: HashSet<String>,
    /// Set when tokens were configured or added: revoking the last token must not turn
    /// authentication off.
    auth_required: bool,
    fail_next: usize,
    fail_status: u16,
    hang: bool,
    bookmark_interval: Duration,
    /// (path, is_watch) → requests.
    counts: HashMap<(String, bool), usize>,
    /// (method, path) → requests.
    method_counts: HashMap<(String, String), usize>,
    total: usize,
    /// Bumped by drop_watches; a watch that sees a newer epoch closes its socket.
    watch_epoch: u64,
    /// Open watches: connection id → the epoch the watch started in.
    watches: HashMap<u64, u64>,
    stopping: bool,
}

pub(crate) fn start(opts: Options) -> io::Result<Started> {
    let listener = TcpListener::bind(opts.addr)?;
    let addr = listener.local_addr()?;
    let host = match addr.ip() {
        ip if ip.is_unspecified() => "127.0.0.1".to_string(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    let (tls, ca_pem) = if opts.tls {
        let ca = opts.ca.clone().unwrap_or_else(|| Ca::new("fakeapi CA"));
        let ip = addr.ip().to_string();
        let mut sans = vec!["127.0.0.1", "localhost", "::1"];
        if !addr.ip().is_unspecified() && !sans.contains(&ip.as_str()) {
            sans.push(&ip);
        }
        let issued = ca.issue("fakeapi", &sans);
        (Some(Arc::new(server_config(&issued.cert_pem, &issued.key_pem)?)), ca.cert_pem())
    } else {
        (None, String::new())
    };
    let url = format!("{}://{host}:{}", if tls.is_some() { "https" } else { "http" }, addr.port());

    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let start_rv = u64::try_from(now.as_millis()).unwrap_or(u64::MAX / 2);
    let mut store = Store::new(start_rv, opts.history, now.as_nanos() as u64);
    for object in opts.objects {
        store
            .apply(object, now.as_secs())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("initial object rejected: {e}")))?;
    }
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            store,
            auth_required: !opts.tokens.is_empty(),
            tokens: opts.tokens.into_iter().collect(),
            fail_next: 0,
            fail_status: 500,
            hang: false,
            bookmark_interval: opts.bookmark_interval,
            counts: HashMap::new(),
            method_counts: HashMap::new(),
            total: 0,
            watch_epoch: 0,
            watches: HashMap::new(),
            stopping: false,
        }),
        changed: Condvar::new(),
        connections: Mutex::new(HashMap::new()),
        connections_closed: Condvar::new(),
        next_connection: AtomicU64::new(1),
        stop: AtomicBool::new(false),
    });
    let accept_shared = Arc::clone(&shared);
    let accept_thread = thread::Builder::new()
        .name("fakeapi-accept".into())
        .spawn(move || accept_loop(accept_shared, listener, tls))?;
    Ok(Started { shared, addr, url, ca_pem, accept_thread })
}

fn server_config(cert_pem: &str, key_pem: &str) -> io::Result<ServerConfig> {
    let invalid = |what: &str, e: &dyn std::fmt::Display| io::Error::new(io::ErrorKind::InvalidInput, format!("{what}: {e}"));
    let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid("serving certificate", &e))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| invalid("serving key", &e))?;
    ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid("TLS versions", &e))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| invalid("TLS certificate", &e))
}

fn accept_loop(shared: Arc<Shared>, listener: TcpListener, tls: Option<Arc<ServerConfig>>) {
    loop {
        let accepted = listener.accept();
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        match accepted {
            Ok((tcp, _)) => {
                let conn_shared = Arc::clone(&shared);
                let tls = tls.clone();
                let spawned = thread::Builder::new()
                    .name("fakeapi-conn".into())
                    .spawn(move || serve_connection(conn_shared, tcp, tls));
                if let Err(e) = spawned {
                    eprintln!("fakeapi: cannot start a connection thread: {e}");
                }
            }
            Err(e) => {
                // EMFILE and friends pass; keep accepting rather than die.
                eprintln!("fakeapi: accept failed: {e}");
                thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// The connection's byte stream, plain or TLS.
enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ServerConnection, TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(tcp) => tcp,
            Stream::Tls(tls) => &tls.sock,
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(tcp) => tcp.read(buf),
            Stream::Tls(tls) => tls.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(tcp) => tcp.write(buf),
            Stream::Tls(tls) => tls.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(tcp) => tcp.flush(),
            Stream::Tls(tls) => tls.flush(),
        }
    }
}

/// Reads through the short socket timeout used to notice shutdown, so callers see one
/// blocking read that ends on data, EOF, stop or a long idle period.
struct Patient {
    /// The key of this connection in `Shared::connections`.
    id: u64,
    stream: Stream,
    shared: Arc<Shared>,
}

impl Read for Patient {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let idle_since = Instant::now();
        loop {
            if self.shared.stop.load(Ordering::SeqCst) {
                return Err(io::Error::new(io::ErrorKind::ConnectionAborted, "server stopping"));
            }
            match self.stream.read(buf) {
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    if idle_since.elapsed() > IDLE_LIMIT {
                        return Err(io::Error::new(io::ErrorKind::TimedOut, "idle connection"));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => return other,
            }
        }
    }
}

impl Write for Patient {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

type Conn = BufReader<Patient>;

/// What the connection does after a request.
enum After {
    KeepAlive,
    Close,
}

fn serve_connection(shared: Arc<Shared>, tcp: TcpStream, tls: Option<Arc<ServerConfig>>) {
    let id = shared.next_connection.fetch_add(1, Ordering::SeqCst);
    let registered = tcp.try_clone().map(|clone| lock(&shared.connections).insert(id, clone));
    // Re-check after registering: a shutdown that ran before the insert has not closed it.
    if registered.is_err() || shared.stop.load(Ordering::SeqCst) {
        let _ = tcp.shutdown(Shutdown::Both);
    } else {
        let _ = tcp.set_nodelay(true);
        let _ = tcp.set_read_timeout(Some(POLL));
        let _ = tcp.set_write_timeout(Some(WRITE_TIMEOUT));
        let stream = match tls {
            Some(config) => match ServerConnection::new(config) {
                Ok(conn) => Some(Stream::Tls(Box::new(StreamOwned::new(conn, tcp)))),
                Err(e) => {
                    eprintln!("fakeapi: TLS setup failed: {e}");
                    None
                }
            },
            None => Some(Stream::Plain(tcp)),
        };
        if let Some(stream) = stream {
            let mut conn = BufReader::new(Patient { id, stream, shared: Arc::clone(&shared) });
            serve_requests(&shared, &mut conn);
            let _ = conn.get_ref().stream.tcp().shutdown(Shutdown::Both);
        }
    }
    let mut connections = lock(&shared.connections);
    connections.remove(&id);
    shared.connections_closed.notify_all();
}

fn serve_requests(shared: &Shared, conn: &mut Conn) {
    loop {
        let read = http::read_request(conn, |conn| {
            let stream = conn.get_mut();
            stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
            stream.flush()
        });
        let request = match read {
            Ok(request) => request,
            Err(ReadError::Closed) => return,
            Err(ReadError::Io(e)) => {
                // rustls reports handshake and record failures this way: worth a line.
                if e.kind() == io::ErrorKind::InvalidData {
                    eprintln!("fakeapi: TLS error: {e}");
                }
                return;
            }
            Err(ReadError::Malformed(why)) => {
                eprintln!("fakeapi: malformed request: {why}");
                let body = failure_status(400, "BadRequest", &why).to_string();
                let _ = http::write_response(conn.get_mut(), 400, &[], "application/json", body.as_bytes(), false);
                return;
            }
        };
        let keep_alive = request.keep_alive;
        match handle(shared, &request, conn) {
            Ok(After::KeepAlive) if keep_alive => {}
            _ => return,
        }
    }
}

/// An answer with a JSON body.
struct Reply {
    status: u16,
    body: Value,
    retry_after: bool,
}

impl Reply {
    fn ok(status: u16, body: Value) -> Reply {
        Reply { status, body, retry_after: false }
    }

    fn error(e: &ApiError) -> Reply {
        Reply::ok(e.code(), e.status())
    }
}

fn send(conn: &mut Conn, request: &Request, reply: Reply) -> io::Result<After> {
    let retry: &[(&str, &str)] = if reply.retry_after { &[("Retry-After", "1")] } else { &[] };
    let body = reply.body.to_string();
    http::write_response(conn.get_mut(), reply.status, retry, "application/json", body.as_bytes(), request.keep_alive)?;
    Ok(After::KeepAlive)
}

fn handle(shared: &Shared, request: &Request, conn: &mut Conn) -> io::Result<After> {
    if let Some(control) = request.path.strip_prefix("/fake/") {
        let reply = shared.control(control, request);
        return send(conn, request, reply);
    }
    let is_watch = request.method == "GET" && request.query("watch").is_some_and(parse_bool);
    let mut state = shared.lock();
    *state.counts.entry((request.path.clone(), is_watch)).or_default() += 1;
    *state.method_counts.entry((request.method.clone(), request.path.clone())).or_default() += 1;
    state.total += 1;
    shared.changed.notify_all();
    if state.hang {
        drop(state);
        return hang(conn);
    }
    if state.fail_next > 0 {
        state.fail_next -= 1;
        let status = state.fail_status;
        drop(state);
        let reply = Reply { status, body: failure_status(status, fail_reason(status), "injected failure"), retry_after: status == 429 };
        return send(conn, request, reply);
    }
    if state.auth_required && !bearer_token(request).is_some_and(|t| state.tokens.contains(t)) {
        drop(state);
        return send(conn, request, Reply::ok(401, failure_status(401, "Unauthorized", "Unauthorized")));
    }
    drop(state);

    match request.path.as_str() {
        "/version" => return send(conn, request, Reply::ok(200, json!({"major": "1", "minor": "31", "gitVersion": "v1.31.0-fakeapi"}))),
        "/healthz" | "/readyz" | "/livez" => {
            http::write_response(conn.get_mut(), 200, &[], "text/plain; charset=utf-8", b"ok", request.keep_alive)?;
            return Ok(After::KeepAlive);
        }
        _ => {}
    }
    let Ok(target) = parse_path(&request.path) else {
        let status = failure_status(404, "NotFound", "the server could not find the requested resource");
        return send(conn, request, Reply::ok(404, status));
    };
    if is_watch && target.name.is_none() {
        return watch(shared, &target, request, conn);
    }
    let reply = shared.api(&target, request).unwrap_or_else(|e| Reply::error(&e));
    send(conn, request, reply)
}

/// Reads and discards until the client gives up or the server stops: never answers.
fn hang(conn: &mut Conn) -> io::Result<After> {
    let mut sink = [0u8; 4096];
    while conn.read(&mut sink)? > 0 {}
    Ok(After::Close)
}

fn parse_bool(text: &str) -> bool {
    matches!(text, "1" | "t" | "T" | "true" | "TRUE" | "True")
}

fn bearer_token(request: &Request) -> Option<&str> {
    let value = request.header("authorization")?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn fail_reason(status: u16) -> &'static str {
    match status {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        409 => "Conflict",
        410 => "Expired",
        429 => "TooManyRequests",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "InternalError",
    }
}

fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test thread must not wedge the server for the others.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn parse_body(request: &Request) -> Result<Value, ApiError> {
    serde_json::from_slice(&request.body).map_err(|e| ApiError::BadRequest(format!("the body is not valid JSON: {e}")))
}

/// labelSelector and fieldSelector, 400 when malformed.
fn selectors(request: &Request) -> Result<(Selector, Selector), ApiError> {
    let labels = Selector::labels(request.query("labelSelector").unwrap_or_default()).map_err(|e| ApiError::BadRequest(e.0))?;
    let fields = Selector::fields(request.query("fieldSelector").unwrap_or_default()).map_err(|e| ApiError::BadRequest(e.0))?;
    Ok((labels, fields))
}

fn method_not_allowed(request: &Request) -> ApiError {
    ApiError::MethodNotAllowed(format!("the server does not allow method {} on {}", request.method, request.path))
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// One non-watch API request on a resource path.
    fn api(&self, target: &Target, request: &Request) -> Result<Reply, ApiError> {
        let resource = target.resource;
        let namespace = target.namespace.as_deref();
        let Some(name) = target.name.as_deref() else {
            return match request.method.as_str() {
                "GET" => {
                    let (labels, fields) = selectors(request)?;
                    let limit = match request.query("limit") {
                        None | Some("") => 0,
                        Some(text) => text.parse().map_err(|_| ApiError::BadRequest(format!("invalid limit {text:?}")))?,
                    };
                    let token = request.query("continue").filter(|t| !t.is_empty());
                    let scope = Scope { resource, namespace, labels: &labels, fields: &fields };
                    Ok(Reply::ok(200, self.lock().store.list(&scope, limit, token)?))
                }
                "POST" => {
                    let created = self.write(|store| store.create(resource, namespace, parse_body(request)?, now_unix()))?;
                    Ok(Reply::ok(201, created))
                }
                _ => Err(method_not_allowed(request)),
            };
        };
        let object_namespace = namespace.unwrap_or_default();
        match request.method.as_str() {
            "GET" => {
                let found = self.lock().store.get(resource, object_namespace, name).cloned();
                found.map(|o| Reply::ok(200, o)).ok_or(ApiError::NotFound { resource, name: name.to_string() })
            }
            "PUT" => {
                let body = parse_body(request)?;
                let updated = self.write(|store| {
                    if target.status {
                        store.replace_status(resource, namespace, Some(name), body)
                    } else {
                        store.replace(resource, namespace, Some(name), body)
                    }
                })?;
                Ok(Reply::ok(200, updated))
            }
            "PATCH" => {
                let content_type = request.header("content-type").unwrap_or_default();
                if content_type.starts_with("application/json-patch") {
                    return Ok(Reply::ok(415, failure_status(415, "UnsupportedMediaType", "JSON patch is not supported by fakeapi; use a merge patch")));
                }
                let patch = parse_body(request)?;
                let patched = self.write(|store| store.merge_patch(resource, object_namespace, name, &patch, target.status))?;
                Ok(Reply::ok(200, patched))
            }
            "DELETE" if !target.status => Ok(Reply::ok(200, self.write(|store| store.delete(resource, object_namespace, name))?)),
            _ => Err(method_not_allowed(request)),
        }
    }

    /// Runs a store write and wakes the watches.
    fn write(&self, change: impl FnOnce(&mut Store) -> Result<Value, ApiError>) -> Result<Value, ApiError> {
        let mut state = self.lock();
        let result = change(&mut state.store);
        self.changed.notify_all();
        result
    }

    /// `/fake/...` test controls for shell scripts.
    fn control(&self, control: &str, request: &Request) -> Reply {
        let number = |name: &str| request.query(name).and_then(|v| v.parse::<u64>().ok());
        let ok = |extra: Value| Reply::ok(200, json!({"ok": true, "result": extra}));
        let bad = |message: &str| Reply::ok(400, failure_status(400, "BadRequest", message));
        match control {
            "drop-watches" => {
                self.drop_watches();
                ok(Value::Null)
            }
            "compact" => {
                self.compact();
                ok(Value::Null)
            }
            "fail-next" => match (number("n"), number("status").and_then(|s| u16::try_from(s).ok())) {
                (Some(n), Some(status)) if (100..600).contains(&status) => {
                    self.fail_next(n as usize, status);
                    ok(Value::Null)
                }
                _ => bad("want ?n=COUNT&status=CODE"),
            },
            "tokens/add" | "tokens/revoke" => match request.query("token").filter(|t| !t.is_empty()) {
                Some(token) if control == "tokens/add" => {
                    self.add_token(token);
                    ok(Value::Null)
                }
                Some(token) => {
                    self.revoke_token(token);
                    ok(Value::Null)
                }
                None => bad("want ?token=TOKEN"),
            },
            "hang" => match request.query("on") {
                Some(on) => {
                    self.set_hang(parse_bool(on));
                    ok(Value::Null)
                }
                None => bad("want ?on=true|false"),
            },
            "bookmark-interval" => match request.query("seconds").and_then(|s| s.parse::<f64>().ok()) {
                Some(seconds) if seconds > 0.0 && seconds.is_finite() => {
                    self.set_bookmark_interval(Duration::from_secs_f64(seconds));
                    ok(Value::Null)
                }
                _ => bad("want ?seconds=POSITIVE_NUMBER"),
            },
            "counts" => {
                let path = request.query("path").unwrap_or_default();
                let method = |m: &str| self.method_count(m, path);
                ok(json!({
                    "methods": {"GET": method("GET"), "POST": method("POST"), "PUT": method("PUT"), "PATCH": method("PATCH"), "DELETE": method("DELETE")},
                    "requests": self.request_count(path, None),
                    "watches": self.request_count(path, Some(true)),
                    "lists": self.request_count(path, Some(false)),
                    "total": self.total_requests(),
                    "openWatches": self.open_watches(),
                    "resourceVersion": self.resource_version().to_string(),
                }))
            }
            "wait-for-watches" => {
                let n = number("n").unwrap_or(1) as usize;
                let timeout = Duration::from_secs(number("timeoutSeconds").unwrap_or(10).min(600));
                let reached = self.wait_for_watches(n, timeout);
                Reply::ok(if reached { 200 } else { 504 }, json!({"ok": reached, "openWatches": self.open_watches()}))
            }
            "apply" => match serde_json::from_slice::<Value>(&request.body) {
                Ok(body) => {
                    let objects = match body.get("items") {
                        Some(Value::Array(items)) if body.get("kind").and_then(Value::as_str).is_some_and(|k| k.ends_with("List")) => items.clone(),
                        _ => vec![body],
                    };
                    let mut applied = Vec::new();
                    for object in objects {
                        match self.apply(object) {
                            Ok(object) => applied.push(object),
                            Err(e) => return Reply::error(&e),
                        }
                    }
                    ok(Value::Array(applied))
                }
                Err(e) => bad(&format!("the body is not valid JSON: {e}")),
            },
            "delete" => {
                let q = |name: &str| request.query(name).unwrap_or_default();
                let deleted = self.delete(q("apiVersion"), q("kind"), q("namespace"), q("name"));
                Reply::ok(if deleted { 200 } else { 404 }, json!({"ok": deleted}))
            }
            _ => Reply::ok(404, failure_status(404, "NotFound", &format!("no fakeapi control {control:?}"))),
        }
    }

    pub fn create(&self, object: Value) -> Result<Value, ApiError> {
        let resource = resource_of(&object)?;
        self.write(|store| store.create(resource, None, object, now_unix()))
    }

    pub fn apply(&self, object: Value) -> Result<Value, ApiError> {
        self.write(|store| store.apply(object, now_unix()))
    }

    pub fn delete(&self, api_version: &str, kind: &str, namespace: &str, name: &str) -> bool {
        let Some(resource) = Resource::by_kind(api_version, kind) else { return false };
        self.write(|store| store.delete(resource, namespace, name)).is_ok()
    }

    pub fn get(&self, api_version: &str, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        let resource = Resource::by_kind(api_version, kind)?;
        self.lock().store.get(resource, namespace, name).cloned()
    }

    pub fn list(&self, api_version: &str, kind: &str) -> Vec<Value> {
        let Some(resource) = Resource::by_kind(api_version, kind) else { return Vec::new() };
        let any = Selector::labels("").unwrap_or_else(|_| unreachable!("the empty selector parses"));
        let scope = Scope { resource, namespace: None, labels: &any, fields: &any };
        self.lock().store.select(&scope)
    }

    pub fn drop_watches(&self) {
        let mut state = self.lock();
        state.watch_epoch += 1;
        let epoch = state.watch_epoch;
        self.changed.notify_all();
        // Waiting watches close themselves when woken; this also reaches one blocked writing.
        let connections = lock(&self.connections);
        for tcp in state.watches.keys().filter_map(|id| connections.get(id)) {
            let _ = tcp.shutdown(Shutdown::Both);
        }
        drop(connections);
        let deadline = Instant::now() + Duration::from_secs(5);
        while state.watches.values().any(|&e| e < epoch) {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else { break };
            state = self.changed.wait_timeout(state, left).unwrap_or_else(|p| p.into_inner()).0;
        }
    }

    pub fn compact(&self) {
        self.lock().store.compact();
        self.changed.notify_all();
    }

    pub fn fail_next(&self, n: usize, status: u16) {
        let mut state = self.lock();
        state.fail_next = n;
        state.fail_status = status;
    }

    pub fn add_token(&self, token: &str) {
        let mut state = self.lock();
        state.tokens.insert(token.to_string());
        state.auth_required = true;
    }

    pub fn revoke_token(&self, token: &str) {
        self.lock().tokens.remove(token);
    }

    pub fn set_hang(&self, on: bool) {
        self.lock().hang = on;
    }

    pub fn set_bookmark_interval(&self, interval: Duration) {
        self.lock().bookmark_interval = interval;
        self.changed.notify_all();
    }

    /// `watch`: None counts both kinds.
    pub fn request_count(&self, path: &str, watch: Option<bool>) -> usize {
        let state = self.lock();
        let count = |w: bool| state.counts.get(&(path.to_string(), w)).copied().unwrap_or_default();
        match watch {
            Some(w) => count(w),
            None => count(true) + count(false),
        }
    }

    pub fn method_count(&self, method: &str, path: &str) -> usize {
        let state = self.lock();
        state.method_counts.get(&(method.to_string(), path.to_string())).copied().unwrap_or_default()
    }

    pub fn total_requests(&self) -> usize {
        self.lock().total
    }

    pub fn open_watches(&self) -> usize {
        self.lock().watches.len()
    }

    pub fn wait_for_watches(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        while state.watches.len() < n {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else { return false };
            state = self.changed.wait_timeout(state, left).unwrap_or_else(|p| p.into_inner()).0;
        }
        true
    }

    pub fn resource_version(&self) -> u64 {
        self.lock().store.resource_version()
    }

    /// Stops accepting, wakes every watch and closes every socket.
    pub fn shutdown(&self, addr: SocketAddr) {
        self.stop.store(true, Ordering::SeqCst);
        self.lock().stopping = true;
        self.changed.notify_all();
        let mut wake = addr;
        if wake.ip().is_unspecified() {
            wake.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        // Unblocks accept(); failure means the listener is gone already.
        let _ = TcpStream::connect_timeout(&wake, Duration::from_secs(1));
        for tcp in lock(&self.connections).values() {
            let _ = tcp.shutdown(Shutdown::Both);
        }
    }

    pub fn wait_for_connections_closed(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut connections = lock(&self.connections);
        while !connections.is_empty() {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else { return };
            connections = self.connections_closed.wait_timeout(connections, left).unwrap_or_else(|p| p.into_inner()).0;
        }
    }
}

/// Unregisters a watch however its stream ends.
struct WatchRegistration<'a> {
    shared: &'a Shared,
    id: u64,
}

impl Drop for WatchRegistration<'_> {
    fn drop(&mut self) {
        self.shared.lock().watches.remove(&self.id);
        self.shared.changed.notify_all();
    }
}

/// Where a watch starts.
enum Start {
    /// No resourceVersion or "0": synthetic ADDED for the current objects first.
    Now,
    After(u64),
}

fn watch(shared: &Shared, target: &Target, request: &Request, conn: &mut Conn) -> io::Result<After> {
    let parsed = (|| -> Result<_, ApiError> {
        let start = match request.query("resourceVersion").unwrap_or_default() {
            "" | "0" => Start::Now,
            text => Start::After(text.parse().map_err(|_| ApiError::BadRequest(format!("invalid resourceVersion {text:?}")))?),
        };
        let timeout = match request.query("timeoutSeconds") {
            // 0 means "the server's default", as upstream.
            None | Some("") | Some("0") => DEFAULT_WATCH_TIMEOUT,
            Some(text) => Duration::from_secs(text.parse().map_err(|_| ApiError::BadRequest(format!("invalid timeoutSeconds {text:?}")))?),
        };
        Ok((start, timeout, selectors(request)?))
    })();
    let (start, timeout, (labels, fields)) = match parsed {
        Ok(parsed) => parsed,
        Err(e) => return send(conn, request, Reply::error(&e)),
    };
    let bookmarks = request.query("allowWatchBookmarks").is_some_and(parse_bool);
    let resource = target.resource;
    let scope = Scope { resource, namespace: target.namespace.as_deref(), labels: &labels, fields: &fields };
    let deadline = Instant::now() + timeout;

    let (id, epoch) = {
        let mut state = shared.lock();
        let id = conn.get_ref().id;
        let epoch = state.watch_epoch;
        state.watches.insert(id, epoch);
        shared.changed.notify_all();
        (id, epoch)
    };
    let _registration = WatchRegistration { shared, id };
    http::write_chunked_head(conn.get_mut(), 200, "application/json")?;

    let mut last_rv = match start {
        Start::After(rv) => rv,
        Start::Now => {
            let (objects, rv) = {
                let state = shared.lock();
                (state.store.select(&scope), state.store.resource_version())
            };
            for object in objects {
                http::write_chunk(conn.get_mut(), &event_line(EventType::Added.as_str(), &object))?;
            }
            rv
        }
    };
    let mut next_bookmark = Instant::now() + shared.lock().bookmark_interval;
    let mut next_liveness = Instant::now() + LIVENESS_INTERVAL;

    loop {
        let mut lines: Vec<Vec<u8>> = Vec::new();
        {
            let mut state = shared.lock();
            loop {
                if state.stopping || state.watch_epoch != epoch {
                    drop(state);
                    // Abrupt: no terminating chunk, as when an API server dies.
                    let _ = conn.get_ref().stream.tcp().shutdown(Shutdown::Both);
                    return Ok(After::Close);
                }
                match state.store.events_after(last_rv, &scope) {
                    Err(expired) => {
                        drop(state);
                        let line = event_line("ERROR", &expired.status());
                        http::write_chunk(conn.get_mut(), &line)?;
                        http::write_last_chunk(conn.get_mut())?;
                        return Ok(After::KeepAlive);
                    }
                    Ok(events) => {
                        // max: a client may start from a version ahead of ours.
                        last_rv = last_rv.max(state.store.resource_version());
                        for (kind, object) in events {
                            lines.push(event_line(kind.as_str(), &object));
                        }
                    }
                }
                let now = Instant::now();
                if !lines.is_empty() || now >= deadline {
                    break;
                }
                if bookmarks && now >= next_bookmark {
                    let bookmark = json!({"kind": resource.kind, "apiVersion": resource.api_version(),
                                          "metadata": {"resourceVersion": last_rv.to_string()}});
                    lines.push(event_line("BOOKMARK", &bookmark));
                    next_bookmark = now + state.bookmark_interval;
                    break;
                }
                if now >= next_liveness {
                    break;
                }
                let wake = if bookmarks { deadline.min(next_bookmark) } else { deadline }.min(next_liveness);
                state = shared.changed.wait_timeout(state, wake - now).unwrap_or_else(|p| p.into_inner()).0;
            }
        }
        // One chunk per event, each flushed: clients act on every event as it arrives.
        for line in &lines {
            http::write_chunk(conn.get_mut(), line)?;
        }
        let now = Instant::now();
        if now >= deadline {
            http::write_last_chunk(conn.get_mut())?;
            return Ok(After::KeepAlive);
        }
        if now >= next_liveness {
            if !client_alive(conn) {
                return Ok(After::Close);
            }
            next_liveness = now + LIVENESS_INTERVAL;
        }
    }
}

/// Whether a watch client is still connected. It sends nothing after its request, so
/// readable bytes are a TLS close_notify (or junk) and EOF means it is gone.
fn client_alive(conn: &mut Conn) -> bool {
    let tcp = conn.get_ref().stream.tcp();
    if tcp.set_nonblocking(true).is_err() {
        return false;
    }
    let peeked = tcp.peek(&mut [0u8; 1]);
    if tcp.set_nonblocking(false).is_err() {
        return false;
    }
    match peeked {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => true,
        Ok(0) | Err(_) => false,
        // Read through TLS (bounded by the socket's POLL timeout) to see what the bytes are.
        Ok(_) => match conn.get_mut().stream.read(&mut [0u8; 512]) {
            Err(e) => matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut),
            Ok(_) => false,
        },
    }
}

fn event_line(kind: &str, object: &Value) -> Vec<u8> {
    let mut line = json!({"type": kind, "object": object}).to_string().into_bytes();
    line.push(b'\n');
    line
}
