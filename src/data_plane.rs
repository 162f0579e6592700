//! The edge's listeners and the HTTP server whose connection threads run
//! the proxy: bound and started together, and drained together on
//! shutdown, in the order that lets clients and load balancers move away
//! without a failed request.

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::admin::Admin;
use crate::cache::Current;
use crate::config::Config;
use crate::proxy::{self, ProxyConfig};
use crate::tls;

/// The listeners and the HTTP server whose connection threads run the proxy.
pub struct DataPlane {
    pub server: Arc<tiny_http::Server>,
    https: tls::HttpsListener,
    pub http_addr: SocketAddr,
    pub https_addr: SocketAddr,
}

impl DataPlane {
    /// Binds both listeners and starts serving; TLS sessions are fed into the same server.
    pub fn start(config: &Config, current: &Arc<Current>, observer: proxy::Observer) -> Result<DataPlane, String> {
        let http = TcpListener::bind(config.http_addr).map_err(|e| format!("cannot listen on --http-addr {}: {e}", config.http_addr))?;
        let https =
            TcpListener::bind(config.https_addr).map_err(|e| format!("cannot listen on --https-addr {}: {e}", config.https_addr))?;
        let http_addr = http.local_addr().map_err(|e| e.to_string())?;
        let https_addr = https.local_addr().map_err(|e| e.to_string())?;
        let limits = tiny_http::Limits {
            max_connections: config.max_connections,
            max_header_line: config.max_header_size,
            max_headers: config.max_headers,
            header_timeout: config.header_timeout,
            idle_timeout: config.idle_timeout,
            write_timeout: config.upstream_read_timeout.max(Duration::from_secs(10)),
            thread_stack_size: proxy::THREAD_STACK_SIZE,
        };
        let mut proxy_config = ProxyConfig::from_config(config);
        // The bound ports, not the flags': `:0` in tests, and what redirects and X-Forwarded-Port name.
        proxy_config.http_port = http_addr.port();
        proxy_config.https_port = https_addr.port();
        let server = proxy::serve(http, limits, Arc::clone(current), Arc::new(proxy_config), observer)?;
        let https = tls::spawn_listener(https, tls::server_config(current.clone()), Arc::clone(&server), config.tls_handshake_timeout)
            .map_err(|e| format!("cannot start the HTTPS accept loop: {e}"))?;
        Ok(DataPlane { server, https, http_addr, https_addr })
    }

    /// Readiness fails at once and every response from then on says
    /// `Connection: close`, so clients move elsewhere; listeners keep accepting
    /// for `--shutdown-delay` so load balancers notice. Then accepting stops,
    /// connections idle between requests close, and requests and tunnels in
    /// flight get up to `--shutdown-grace` to finish.
    pub fn drain(&self, config: &Config, admin: &Admin) {
        let server = &self.server;
        admin.draining.store(true, Ordering::Relaxed);
        server.end_keep_alive();
        log::info!("shutdown requested: /readyz now fails; accepting for {:?} more", config.shutdown_delay);
        std::thread::sleep(config.shutdown_delay);
        // HTTPS first: a TLS session accepted after the server stopped would not
        // be among the connections a drain closes when idle.
        self.https.stop_accepting();
        server.stop_accepting();
        match server.wait_for_no_connections(config.shutdown_grace) {
            0 => log::info!("drained; exiting"),
            n => log::warn!("shutdown grace over with {n} connections open; exiting"),
        }
    }
}
