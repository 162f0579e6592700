//! The data plane: a fixed pool of workers takes parsed requests from the
//! tiny_http server, routes them by Host and path against the published
//! route table, and streams them to an upstream pod and back.
//!
//! - [`headers`] and [`wire`]: pure header rewriting and HTTP framing.
//! - [`upstream`]: the shared ureq Agent.
//! - [`holddown`]: endpoints that refused a connection are tried last for a while.
//! - [`forward`]: one request, from lookup to the last body byte.
//! - [`tunnel`]: protocol upgrades (WebSocket) relayed over raw sockets.

pub mod forward;
pub mod headers;
pub mod holddown;
pub mod tunnel;
pub mod upstream;
pub mod wire;

use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::cache::Current;
use crate::config::{Cidr, Config};
use crate::kube::objects::ObjectKey;

/// The settings the data plane reads from the command line.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    pub workers: usize,
    /// Largest request body in bytes; 0 means no limit.
    pub max_body_size: u64,
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
    pub read_timeout: Duration,
    pub websocket_idle_timeout: Duration,
    pub trusted_proxies: Vec<Cidr>,
    /// X-Forwarded-Port for plain requests.
    pub http_port: u16,
    /// X-Forwarded-Port for TLS requests, and the port of ssl-redirect targets.
    pub https_port: u16,
}

impl ProxyConfig {
    pub fn from_config(config: &Config) -> ProxyConfig {
        ProxyConfig {
            workers: config.workers.max(1),
            max_body_size: config.max_body_size,
            connect_timeout: config.upstream_connect_timeout,
            response_timeout: config.upstream_response_timeout,
            read_timeout: config.upstream_read_timeout,
            websocket_idle_timeout: config.websocket_idle_timeout,
            trusted_proxies: config.trusted_proxies.clone(),
            http_port: config.http_addr.port(),
            https_port: config.https_addr.port(),
        }
    }
}

/// What happened to one request, for access logs and metrics.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub client: Option<SocketAddr>,
    pub host: String,
    pub method: String,
    /// The request target as received (path and query).
    pub path: String,
    /// The status sent to the client.
    pub status: u16,
    /// Bytes written to the client, head included.
    pub bytes_sent: u64,
    pub duration: Duration,
    /// The `host:port` of the last upstream tried.
    pub upstream: Option<String>,
    pub upstream_status: Option<u16>,
    pub request_id: String,
    pub ingress: Option<ObjectKey>,
    pub service: Option<String>,
    /// Upstream endpoints tried (more than one after connect failures).
    pub attempts: u32,
    /// Connection attempts to upstreams that failed.
    pub connect_errors: u32,
    /// The upstream did not answer within the response or read timeout (504).
    pub timed_out: bool,
}

/// Observes every finished request (access log, metrics).
pub type Observer = Arc<dyn Fn(&Outcome) + Send + Sync>;

/// What every worker shares.
pub(crate) struct Shared {
    pub current: Arc<Current>,
    pub config: Arc<ProxyConfig>,
    pub agent: ureq::Agent,
    pub hold_down: holddown::HoldDown,
}

/// The message tiny_http's `recv` fails with once `Server::unblock` was
/// called: the signal for a worker to stop.
const UNBLOCKED: &str = "thread unblocked";

/// Starts `config.workers` threads serving requests from `server` until
/// `server.unblock()` is called once per worker. One server may carry plain
/// and TLS connections alike: each request's `secure()` decides.
pub fn spawn_workers(
    server: Arc<tiny_http::Server>,
    current: Arc<Current>,
    config: Arc<ProxyConfig>,
    observer: Observer,
) -> Vec<JoinHandle<()>> {
    let shared = Arc::new(Shared { current, agent: upstream::agent(&config), hold_down: Default::default(), config });
    (0..shared.config.workers)
        .filter_map(|index| {
            let server = Arc::clone(&server);
            let shared = Arc::clone(&shared);
            let observer = Arc::clone(&observer);
            let spawned = std::thread::Builder::new()
                .name(format!("proxy-{index}"))
                .spawn(move || serve(&server, &shared, observer.as_ref()));
            match spawned {
                Ok(handle) => Some(handle),
                Err(err) => {
                    log::error!("cannot start proxy worker {index}: {err}");
                    None
                }
            }
        })
        .collect()
}

fn serve(server: &tiny_http::Server, shared: &Shared, observer: &(dyn Fn(&Outcome) + Send + Sync)) {
    let mut buffer = vec![0u8; forward::COPY_BUFFER];
    loop {
        let request = match server.recv() {
            Ok(request) => request,
            Err(err) if err.to_string() == UNBLOCKED => return,
            Err(err) => {
                log::warn!("proxy: accepting a request failed: {err}");
                continue;
            }
        };
        let started = Instant::now();
        let fallback = Outcome {
            client: request.remote_addr().copied(),
            method: request.method().to_string(),
            path: request.url().to_owned(),
            status: 500,
            ..Outcome::default()
        };
        // A bug in one request's handling must not shrink the pool. tiny_http
        // answers 500 for a request dropped before its response started.
        match catch_unwind(AssertUnwindSafe(|| forward::handle(shared, request, started, &mut buffer))) {
            Ok(outcome) => observer(&outcome),
            Err(_) => {
                log::error!("proxy: handler panicked on {} {}", fallback.method, fallback.path);
                observer(&Outcome { duration: started.elapsed(), ..fallback });
            }
        }
    }
}
