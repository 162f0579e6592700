//! A fake Kubernetes API server that speaks the real wire protocol, for ingressd's tests and
//! demo scripts.
//!
//! It is faithful where ingressd's client can notice: paths, bearer auth, `Status` errors,
//! one global resourceVersion, paginated lists whose pages share one resourceVersion, chunked
//! watch streams with replay from a bounded history, `410 Expired`, bookmarks and
//! `timeoutSeconds`. Test controls (drop watches, compact, fail requests, hang, count
//! requests) are methods here and HTTP endpoints under `/fake/` for shell scripts.
//!
//! # HTTP controls (no auth, not counted; any method; answer `{"ok":true,...}`)
//!
//! | path | effect |
//! | --- | --- |
//! | `/fake/drop-watches` | [`FakeApi::drop_watches`] |
//! | `/fake/compact` | [`FakeApi::compact`] |
//! | `/fake/fail-next?n=N&status=CODE` | [`FakeApi::fail_next`] |
//! | `/fake/tokens/add?token=T`, `/fake/tokens/revoke?token=T` | add or revoke a bearer token |
//! | `/fake/hang?on=true\|false` | [`FakeApi::set_hang`] |
//! | `/fake/bookmark-interval?seconds=S` | [`FakeApi::set_bookmark_interval`] |
//! | `/fake/counts?path=P` | `{"result":{"requests","watches","lists","methods":{"PUT",..},"total","openWatches","resourceVersion"}}` |
//! | `/fake/wait-for-watches?n=N&timeoutSeconds=S` | 200 once N watches are open, 504 after S |
//! | `/fake/apply` (body: object or `List`) | [`FakeApi::apply`] each object |
//! | `/fake/delete?apiVersion=&kind=&namespace=&name=` | [`FakeApi::delete`]; 404 if absent |
//!
//! Authentication is on when tokens were given at start or added later; revoking every
//! token leaves it on (everything then answers 401), so a revocation test means what it says.
//!
//! ```text
//! accept thread --> thread per connection --http::read_request--> server::handle
//!     --> store::Store (pure: objects, history, lists, watch events) behind one Mutex+Condvar
//! ```

pub mod certs;
mod http;
pub mod ports;
mod resources;
mod selector;
mod server;
mod store;

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::Value;

pub use resources::{Resource, RESOURCES};

/// How to start a [`FakeApi`].
#[derive(Clone)]
pub struct Options {
    /// Where to listen; the default port 0 lets the OS choose, so tests never collide.
    pub addr: SocketAddr,
    /// Serve HTTPS with a certificate from `ca` (or a fresh CA); plain HTTP when false.
    pub tls: bool,
    /// Accepted bearer tokens; empty means no authentication.
    pub tokens: Vec<String>,
    /// How many events the watch history keeps before older resourceVersions answer 410.
    pub history: usize,
    /// How often watches with `allowWatchBookmarks` get a BOOKMARK.
    pub bookmark_interval: Duration,
    /// Objects present at start (kind/apiVersion required; namespace defaults to `default`).
    pub objects: Vec<Value>,
    /// Reuse this CA (across restarts, so clients keep trusting the server).
    pub ca: Option<certs::Ca>,
}

/// Tokens are secrets: show how many, not what.
impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("addr", &self.addr)
            .field("tls", &self.tls)
            .field("tokens", &format_args!("{} token(s)", self.tokens.len()))
            .field("history", &self.history)
            .field("bookmark_interval", &self.bookmark_interval)
            .field("objects", &self.objects.len())
            .field("ca", &self.ca)
            .finish()
    }
}

impl Default for Options {
    fn default() -> Options {
        Options {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls: true,
            tokens: Vec::new(),
            history: 1000,
            bookmark_interval: Duration::from_secs(1),
            objects: Vec::new(),
            ca: None,
        }
    }
}

/// A running fake API server. Dropping it stops the server and closes every connection.
pub struct FakeApi {
    shared: Arc<server::Shared>,
    addr: SocketAddr,
    url: String,
    ca_pem: String,
    accept_thread: Option<JoinHandle<()>>,
}

impl FakeApi {
    /// Binds, loads `opts.objects` and starts serving. Errors come from binding, from TLS
    /// setup, or from an initial object the server would reject (as `InvalidInput`).
    pub fn start(opts: Options) -> std::io::Result<FakeApi> {
        let started = server::start(opts)?;
        Ok(FakeApi {
            shared: started.shared,
            addr: started.addr,
            url: started.url,
            ca_pem: started.ca_pem,
            accept_thread: Some(started.accept_thread),
        })
    }

    /// `https://127.0.0.1:PORT` or `http://...`.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The CA that signed the serving certificate (IP SAN 127.0.0.1, DNS localhost); empty
    /// for plain HTTP.
    pub fn ca_pem(&self) -> String {
        self.ca_pem.clone()
    }

    /// Creates an object as a POST would. Panics on any API error: a test helper.
    pub fn create(&self, obj: Value) -> Value {
        self.shared.create(obj).unwrap_or_else(|e| panic!("fakeapi create: {e}"))
    }

    /// Creates the object or replaces it (ignoring its resourceVersion), keeping `status`
    /// when the new object has none.
    pub fn apply(&self, obj: Value) -> Value {
        self.shared.apply(obj).unwrap_or_else(|e| panic!("fakeapi apply: {e}"))
    }

    /// `namespace` is ignored for cluster-scoped kinds. False when there was no such object.
    pub fn delete(&self, api_version: &str, kind: &str, namespace: &str, name: &str) -> bool {
        self.shared.delete(api_version, kind, namespace, name)
    }

    pub fn get(&self, api_version: &str, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        self.shared.get(api_version, kind, namespace, name)
    }

    /// Every object of the kind, in the order the API lists them (namespace, then name).
    pub fn list(&self, api_version: &str, kind: &str) -> Vec<Value> {
        self.shared.list(api_version, kind)
    }

    /// Closes every open watch stream abruptly (no terminating chunk), as an API server
    /// restart or a dropped connection would; returns once they are closed (5 s bound).
    pub fn drop_watches(&self) {
        self.shared.drop_watches()
    }

    /// Forgets the whole event history: any watch from an older resourceVersion and every
    /// outstanding continue token then get 410 Expired.
    pub fn compact(&self) {
        self.shared.compact()
    }

    /// The next `n` API requests (not `/fake/` ones) answer a `Status` with this code;
    /// 429 also carries `Retry-After: 1`.
    pub fn fail_next(&self, n: usize, status: u16) {
        self.shared.fail_next(n, status)
    }

    pub fn add_token(&self, t: &str) {
        self.shared.add_token(t)
    }

    pub fn revoke_token(&self, t: &str) {
        self.shared.revoke_token(t)
    }

    /// While on, requests are read but never answered, to exercise client read timeouts.
    pub fn set_hang(&self, on: bool) {
        self.shared.set_hang(on)
    }

    pub fn set_bookmark_interval(&self, interval: Duration) {
        self.shared.set_bookmark_interval(interval)
    }

    /// Requests whose path (without query) equals `path`, watches and lists alike.
    pub fn request_count(&self, path: &str) -> usize {
        self.shared.request_count(path, None)
    }

    /// Watch requests on `path`.
    pub fn watch_count(&self, path: &str) -> usize {
        self.shared.request_count(path, Some(true))
    }

    /// Non-watch requests on `path` (lists when `path` is a collection).
    pub fn list_count(&self, path: &str) -> usize {
        self.shared.request_count(path, Some(false))
    }

    /// Requests with this method (`"PUT"`, ...) on `path`, e.g. status writes.
    pub fn method_count(&self, method: &str, path: &str) -> usize {
        self.shared.method_count(method, path)
    }

    /// Every request received, `/fake/` controls excluded.
    pub fn total_requests(&self) -> usize {
        self.shared.total_requests()
    }

    /// Watch streams currently open.
    pub fn open_watches(&self) -> usize {
        self.shared.open_watches()
    }

    /// Waits until at least `n` watches are open; false if `timeout` passed first.
    pub fn wait_for_watches(&self, n: usize, timeout: Duration) -> bool {
        self.shared.wait_for_watches(n, timeout)
    }

    /// The newest resourceVersion assigned.
    pub fn resource_version(&self) -> u64 {
        self.shared.resource_version()
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.shared.shutdown(self.addr);
        if let Some(thread) = self.accept_thread.take() {
            let _ = thread.join();
        }
        self.shared.wait_for_connections_closed(Duration::from_secs(5));
    }
}
