//! The admin server: liveness, readiness and Prometheus metrics.
//!
//! It runs on its own listener and threads so a saturated proxy never makes
//! the kubelet's probes time out.
//!
//! On a hostNetwork pod the admin port is on the node's address, reachable by
//! whatever reaches the node. So what an answer reveals depends on who asks
//! ([`Audience`]): `/debug/routes` (endpoint addresses, Secret names) and the
//! API server's error texts in `/readyz` go to loopback clients only; anyone
//! else gets the probes, `/metrics` and, in `/readyz`, kind names.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::cache::{CacheStatus, Current};
use crate::kube::metrics::WatchMetrics;
use crate::prometheus::{self, Type};

/// Anything that contributes lines to `/metrics`.
pub trait MetricsSource: Send + Sync {
    /// Appends Prometheus text-format lines (with their HELP and TYPE).
    fn render(&self, out: &mut String);
}

/// Who sent an admin request, which decides what the answer may reveal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// A loopback client: someone on the node itself (`kubectl exec`,
    /// `kubectl port-forward`, a shell on the node).
    Local,
    /// Any other client: kubelet probes and Prometheus, but also anything else
    /// that can reach the node's address.
    Remote,
}

impl Audience {
    pub fn of(peer: Option<SocketAddr>) -> Audience {
        let loopback = |ip: IpAddr| ip.to_canonical().is_loopback();
        match peer {
            Some(peer) if loopback(peer.ip()) => Audience::Local,
            _ => Audience::Remote,
        }
    }
}

/// What the admin endpoints report on.
pub struct Admin {
    pub current: Arc<Current>,
    pub cache: Arc<CacheStatus>,
    /// The watchers' last errors, named in `/readyz` for loopback clients.
    pub watch: Arc<WatchMetrics>,
    /// Set on SIGTERM: readiness fails at once so load balancers stop sending.
    pub draining: AtomicBool,
    pub sources: Vec<Arc<dyn MetricsSource>>,
}

/// A response the admin server sends: status, content type, body.
pub type Reply = (u16, &'static str, String);

impl Admin {
    pub fn new(current: Arc<Current>, cache: Arc<CacheStatus>, watch: Arc<WatchMetrics>, sources: Vec<Arc<dyn MetricsSource>>) -> Admin {
        Admin { current, cache, watch, draining: AtomicBool::new(false), sources }
    }

    pub fn ready(&self) -> bool {
        self.cache.synced.load(Ordering::Relaxed) && !self.draining.load(Ordering::Relaxed)
    }

    /// Routes one admin request; pure apart from reading shared state.
    pub fn handle(&self, method: &str, path: &str, audience: Audience) -> Reply {
        const TEXT: &str = "text/plain; charset=utf-8";
        if method != "GET" && method != "HEAD" {
            return (405, TEXT, "method not allowed\n".into());
        }
        match path.split('?').next().unwrap_or("") {
            "/healthz" => (200, TEXT, "ok\n".into()),
            "/readyz" if self.draining.load(Ordering::Relaxed) => (503, TEXT, "draining\n".into()),
            "/readyz" if self.ready() => (200, TEXT, "ok\n".into()),
            "/readyz" => (503, TEXT, self.waiting(audience)),
            "/metrics" => (200, "text/plain; version=0.0.4; charset=utf-8", self.metrics()),
            "/debug/routes" if audience == Audience::Remote => {
                (403, TEXT, "/debug/routes answers loopback clients only (see ingressd routes --help)\n".into())
            }
            "/debug/routes" => (200, "application/json", crate::inspect::routes_json(&self.current.load()).to_string()),
            _ => (404, TEXT, "not found\n".into()),
        }
    }

    /// The kinds not listed yet; for a loopback client, each with the last
    /// error its watcher got (which may quote the API server).
    fn waiting(&self, audience: Audience) -> String {
        let waiting = self.cache.waiting();
        if waiting.is_empty() {
            // Every kind is listed; the cache waits a bounded time for the named Secrets.
            return "waiting for the first read of the secrets annotations name\n".into();
        }
        let names: Vec<&str> = waiting.iter().map(|kind| kind.name()).collect();
        let mut out = format!("waiting for the first list of: {}\n", names.join(", "));
        if audience == Audience::Local {
            for kind in waiting {
                let error = self.watch.last_error(kind).unwrap_or_else(|| "no failed request yet".into());
                out.push_str(&format!("{}: {error}\n", kind.name()));
            }
        }
        out
    }

    fn metrics(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        let generation = self.current.load();
        let micros = self.cache.last_compile_micros.load(Ordering::Relaxed);
        let families = [
            ("ingressd_ready", Type::Gauge, "1 when every kind has been listed and no drain is under way.", u64::from(self.ready()).to_string()),
            ("ingressd_route_table_routes", Type::Gauge, "Routes in the current table.", generation.routes.len().to_string()),
            (
                "ingressd_route_invalid_regex_paths",
                Type::Gauge,
                "Paths of regex-mode hosts left out of the current table because their regex does not compile.",
                generation.routes.invalid_regex_paths().to_string(),
            ),
            (
                "ingressd_route_table_compile_seconds_last",
                Type::Gauge,
                "Seconds the last route table compile took.",
                format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000),
            ),
            ("ingressd_route_table_compiles_total", Type::Counter, "Route table compiles.", self.cache.compiles.load(Ordering::Relaxed).to_string()),
            (
                "ingressd_last_change_timestamp_seconds",
                Type::Gauge,
                "Unix time of the last change applied to the route table.",
                self.cache.last_change_unix.load(Ordering::Relaxed).to_string(),
            ),
        ];
        for (name, kind, help, value) in families {
            prometheus::single(&mut out, name, kind, help, value);
        }
        self.cache.render_cpu(&mut out);
        for source in &self.sources {
            source.render(&mut out);
        }
        out
    }
}

impl MetricsSource for WatchMetrics {
    fn render(&self, out: &mut String) {
        WatchMetrics::render(self, out);
    }
}

/// Serves the admin endpoints on two threads of their own.
pub fn spawn(addr: SocketAddr, admin: Arc<Admin>) -> Result<SocketAddr, String> {
    let server = tiny_http::Server::http(addr).map_err(|e| format!("cannot listen on --admin-addr {addr}: {e}"))?;
    let local = server.server_addr().to_ip().unwrap_or(addr);
    let server = Arc::new(server);
    for n in 0..2 {
        let server = Arc::clone(&server);
        let admin = Arc::clone(&admin);
        std::thread::Builder::new()
            .name(format!("admin-{n}"))
            .spawn(move || {
                while let Ok(request) = server.recv() {
                    let audience = Audience::of(request.remote_addr().copied());
                    let (status, content_type, body) = admin.handle(request.method().as_str(), request.url(), audience);
                    let body = if request.method() == &tiny_http::Method::Head { String::new() } else { body };
                    let mut response = tiny_http::Response::from_string(body).with_status_code(status);
                    if let Ok(header) = tiny_http::Header::from_bytes("Content-Type", content_type) {
                        response.add_header(header);
                    }
                    if let Err(e) = request.respond(response) {
                        log::debug!("admin response not delivered: {e}");
                    }
                }
            })
            .map_err(|e| format!("cannot start the admin threads: {e}"))?;
    }
    Ok(local)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::kube::Kind;

    fn admin() -> Admin {
        Admin::new(Arc::new(Current::default()), Arc::new(CacheStatus::default()), Arc::new(WatchMetrics::new()), Vec::new())
    }

    #[test]
    fn readiness_follows_sync_and_drain() {
        let admin = admin();
        for audience in [Audience::Local, Audience::Remote] {
            assert_eq!(admin.handle("GET", "/healthz", audience).0, 200);
            assert_eq!(admin.handle("GET", "/readyz", audience).0, 503);
        }
        admin.cache.synced.store(true, Ordering::Relaxed);
        assert_eq!(admin.handle("GET", "/readyz", Audience::Remote).0, 200);
        admin.draining.store(true, Ordering::Relaxed);
        assert_eq!(admin.handle("GET", "/readyz", Audience::Remote).0, 503);
        assert_eq!(admin.handle("GET", "/healthz", Audience::Remote).0, 200);
    }

    #[test]
    fn readiness_names_waiting_kinds_and_only_loopback_gets_the_errors() {
        let admin = admin();
        let secret = "list failed: HTTP 403: secrets is forbidden: User \"system:serviceaccount:ingressd:ingressd\"";
        admin.watch.set_last_error(Kind::Secret, secret.into());
        let (status, _, local) = admin.handle("GET", "/readyz", Audience::Local);
        assert_eq!(status, 503);
        assert!(local.starts_with("waiting for the first list of: ingress, ingressclass, service, endpointslice, secret\n"), "{local}");
        assert!(local.contains(&format!("secret: {secret}\n")), "{local}");
        assert!(local.contains("service: no failed request yet\n"), "{local}");
        let (status, _, remote) = admin.handle("GET", "/readyz", Audience::Remote);
        assert_eq!(status, 503);
        assert_eq!(remote, "waiting for the first list of: ingress, ingressclass, service, endpointslice, secret\n");
    }

    #[test]
    fn debug_routes_answer_loopback_only() {
        let admin = admin();
        let (status, content_type, body) = admin.handle("GET", "/debug/routes", Audience::Local);
        assert_eq!((status, content_type), (200, "application/json"));
        assert!(body.contains("\"routes\""), "{body}");
        let (status, _, body) = admin.handle("GET", "/debug/routes", Audience::Remote);
        assert_eq!(status, 403);
        assert!(!body.contains("routes\""), "{body}");
        assert_eq!(admin.handle("GET", "/metrics", Audience::Remote).0, 200);
    }

    #[test]
    fn the_audience_is_local_for_loopback_peers_only() {
        let peer = |text: &str| Some(text.parse::<SocketAddr>().expect("address"));
        assert_eq!(Audience::of(peer("127.0.0.1:5000")), Audience::Local);
        assert_eq!(Audience::of(peer("127.8.9.10:5000")), Audience::Local);
        assert_eq!(Audience::of(peer("[::1]:5000")), Audience::Local);
        assert_eq!(Audience::of(peer("[::ffff:127.0.0.1]:5000")), Audience::Local);
        assert_eq!(Audience::of(peer("10.0.0.7:5000")), Audience::Remote);
        assert_eq!(Audience::of(peer("[::ffff:10.0.0.7]:5000")), Audience::Remote);
        assert_eq!(Audience::of(None), Audience::Remote);
    }

    #[test]
    fn metrics_are_prometheus_text() {
        let admin = admin();
        let (status, content_type, body) = admin.handle("GET", "/metrics", Audience::Remote);
        assert_eq!(status, 200);
        assert!(content_type.starts_with("text/plain; version=0.0.4"));
        assert!(body.contains("ingressd_route_table_routes 0\n"), "{body}");
        assert!(body.contains("ingressd_route_invalid_regex_paths 0\n"), "{body}");
        assert!(body.contains("ingressd_route_table_compile_seconds_last 0.000000\n"), "{body}");
        for line in body.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap_or("");
            assert!(value.parse::<f64>().is_ok(), "bad sample line {line:?}");
        }
    }

    #[test]
    fn unknown_paths_and_methods() {
        let admin = admin();
        assert_eq!(admin.handle("GET", "/nope", Audience::Local).0, 404);
        assert_eq!(admin.handle("POST", "/healthz", Audience::Local).0, 405);
    }
}
