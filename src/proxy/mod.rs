//! The data plane: each request is handled on the tiny_http thread that owns
//! its connection, routed by Host and path against the published route
//! table, and streamed to an upstream pod and back on that same thread.
//!
//! Along the request's way:
//! - [`route`]: read the request, find its route, apply the route's policy,
//!   then the per-client [`limits`] and the [`external_auth`] sub-request.
//! - [`client_cert`]: client certificates of `auth-tls-*` hosts (421 when
//!   the Host is not the handshake's SNI name).
//! - [`basic_auth`]: the credentials check of `auth-type: basic` routes.
//! - [`forward`]: send it upstream (endpoint fallback, one fresh-connection retry).
//! - [`response`]: stream the answer back with the proxy's own framing.
//! - [`tunnel`]: protocol upgrades (WebSocket) relayed over raw sockets.
//!
//! Below them: [`request`] (what the phases share), [`headers`] and [`wire`]
//! (pure header rewriting and HTTP framing), [`upstream`] (the shared ureq
//! Agent), `upstream_tls` (the Agents of routes to HTTPS backends),
//! `balance` (sticky and hashed endpoint choice), [`holddown`] (endpoints that refused a connection are tried last
//! for a while), [`buffers`] (copy buffers lent per request).

mod balance;
mod basic_auth;
mod buffers;
mod client_cert;
mod digits;
pub mod external_auth;
mod forward;
pub mod headers;
pub mod holddown;
pub mod limits;
mod policy;
mod request;
mod response;
mod route;
mod tunnel;
pub mod upstream;
mod upstream_tls;
pub mod wire;

use std::net::{SocketAddr, TcpListener};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cache::Current;
use crate::cidr::Cidr;
use crate::config::Config;
use crate::kube::objects::{ObjectKey, SmolStr};
use crate::proxy_protocol;

/// The settings the data plane reads from the command line.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Largest request body in bytes; 0 means no limit.
    pub max_body_size: u64,
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
    pub read_timeout: Duration,
    pub websocket_idle_timeout: Duration,
    pub trusted_proxies: Vec<Cidr>,
    /// `Some` with `--use-proxy-protocol`: every connection, plain and TLS,
    /// starts with a PROXY protocol header from a peer in this list (empty:
    /// any peer), and the header's address is the connection's client.
    pub proxy_protocol: Option<Vec<Cidr>>,
    /// X-Forwarded-Port for plain requests.
    pub http_port: u16,
    /// X-Forwarded-Port for TLS requests, and the port of ssl-redirect targets.
    pub https_port: u16,
}

impl ProxyConfig {
    pub fn from_config(config: &Config) -> ProxyConfig {
        ProxyConfig {
            max_body_size: config.max_body_size,
            connect_timeout: config.upstream_connect_timeout,
            response_timeout: config.upstream_response_timeout,
            read_timeout: config.upstream_read_timeout,
            websocket_idle_timeout: config.websocket_idle_timeout,
            trusted_proxies: config.trusted_proxies.clone(),
            proxy_protocol: config.use_proxy_protocol.then(|| config.proxy_protocol_trusted_cidrs.clone()),
            http_port: config.http_addr.port(),
            https_port: config.https_addr.port(),
        }
    }
}

/// What happened to one request, for access logs and metrics. The strings
/// are `SmolStr`s: short ones cost no allocation and long ones are shared
/// with the request's other copies (its target, its upstream X-Request-ID).
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub client: Option<SocketAddr>,
    pub host: SmolStr,
    pub method: SmolStr,
    /// The request target as received (path and query).
    pub path: SmolStr,
    /// The status sent to the client.
    pub status: u16,
    /// Bytes written to the client, head included.
    pub bytes_sent: u64,
    pub duration: Duration,
    /// The `host:port` of the last upstream tried.
    pub upstream: Option<SmolStr>,
    pub upstream_status: Option<u16>,
    pub request_id: SmolStr,
    pub ingress: Option<ObjectKey>,
    pub service: Option<SmolStr>,
    /// Upstream endpoints tried (more than one after connect failures).
    pub attempts: u32,
    /// Connection attempts to upstreams that failed.
    pub connect_errors: u32,
    /// The upstream did not answer within the response or read timeout (504).
    pub timed_out: bool,
}

/// Observes every finished request (access log, metrics).
pub type Observer = Arc<dyn Fn(&Outcome) + Send + Sync>;

/// Stack of each connection thread. The deepest path it runs is a rustls
/// handshake, a request through regex route matching and ureq, or a panic
/// unwinding with a backtrace; `scripts/bench.sh` reports the most any
/// thread touched under load, and this leaves several times that as margin,
/// because an overflow ends the whole process. Only touched pages cost memory.
pub const THREAD_STACK_SIZE: usize = 512 * 1024;

/// What every connection thread shares.
pub(crate) struct Shared {
    pub current: Arc<Current>,
    pub config: Arc<ProxyConfig>,
    pub agent: ureq::Agent,
    /// Clients for routes to HTTPS backends, one per TLS setting.
    pub tls_agents: upstream_tls::TlsAgents,
    pub hold_down: holddown::HoldDown,
    /// Per-client state of `limit-*` annotations; untouched by other routes.
    pub limiter: limits::Limiter,
    /// The `auth-url` client and its cache; untouched by other routes.
    pub auth: external_auth::AuthClient,
    buffers: buffers::BufferPool,
}

/// Starts the HTTP server that runs the proxy. Each request is handled on
/// the thread that owns its connection, so a request never changes threads;
/// tiny_http's connection threads are the proxy's only threads. One server
/// carries plain and TLS connections alike: each request's `secure()` decides.
/// The connection threads get [`THREAD_STACK_SIZE`] whatever `limits` says.
/// With `config.proxy_protocol`, each connection's PROXY protocol header is
/// read on its own thread before anything else (for TLS, before the
/// handshake), and its address is what `remote_addr` reports from then on.
pub fn serve(
    listener: TcpListener,
    limits: tiny_http::Limits,
    current: Arc<Current>,
    config: Arc<ProxyConfig>,
    observer: Observer,
) -> Result<Arc<tiny_http::Server>, String> {
    let shared = Arc::new(Shared {
        current,
        agent: upstream::agent(&config),
        tls_agents: Default::default(),
        hold_down: Default::default(),
        limiter: Default::default(),
        auth: external_auth::AuthClient::new(&config),
        buffers: buffers::BufferPool::new(buffers::COPY_BUFFER, buffers::POOLED_BUFFERS),
        config,
    });
    let preface = shared.config.proxy_protocol.clone().map(proxy_protocol::tiny_http_preface);
    let handler: tiny_http::Handler = Arc::new(move |request| handle(&shared, request, observer.as_ref()));
    let limits = tiny_http::Limits { thread_stack_size: THREAD_STACK_SIZE, ..limits };
    let server = match preface {
        Some(preface) => tiny_http::Server::from_listener_serving_with_preface(listener, limits, handler, preface),
        None => tiny_http::Server::from_listener_serving(listener, limits, handler),
    };
    server
        .map(Arc::new)
        .map_err(|e| format!("cannot start the HTTP server: {e}"))
}

fn handle(shared: &Shared, request: tiny_http::Request, observer: &(dyn Fn(&Outcome) + Send + Sync)) {
    let started = Instant::now();
    // What is known before routing; the handler fills in the rest. A copy
    // stays here for the report of a handler that panics.
    let known = Outcome {
        client: request.remote_addr().copied(),
        method: SmolStr::new(request.method().as_str()),
        path: SmolStr::new(request.url()),
        ..Outcome::default()
    };
    let mut buffers = shared.buffers.take();
    // A bug in one request's handling must not end the connection thread
    // without a report. tiny_http answers 500 for a request dropped before
    // its response started, and closes that connection.
    let handled = catch_unwind(AssertUnwindSafe(|| route::handle(shared, request, known.clone(), started, &mut buffers)));
    shared.buffers.give_back(buffers);
    match handled {
        Ok(outcome) => observer(&outcome),
        Err(_) => {
            log::error!("proxy: handler panicked on {} {}", known.method, known.path);
            observer(&Outcome { status: 500, duration: started.elapsed(), ..known });
            // Unwinding on: tiny_http ends this connection.
            std::panic::resume_unwind(Box::new("proxy handler panicked"));
        }
    }
}
