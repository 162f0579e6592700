//! The `ingressd` binary: parses the command line, starts every thread, and
//! drains gracefully on SIGTERM.

use std::net::TcpListener;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ingressd::admin::{self, Admin, MetricsSource};
use ingressd::cache::{self, CacheStatus, Compiler, Current, Generation};
use ingressd::config::{Command, Config};
use ingressd::kube::client::ApiClient;
use ingressd::kube::metrics::WatchMetrics;
use ingressd::kube::{watcher, Kind};
use ingressd::proxy::{self, ProxyConfig};
use ingressd::routes::{self, RouteConfig};
use ingressd::status::{self, StatusConfig};
use ingressd::{access_log, inspect, shutdown, tls};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("routes") {
        return inspect::main(&args[1..]);
    }
    let env = |k: &str| std::env::var(k).ok();
    match Config::parse(args, &env) {
        Ok(Command::Help) => {
            print!("{}", Config::help());
            ExitCode::SUCCESS
        }
        Ok(Command::Version) => {
            println!("ingressd {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Ok(Command::Run(config)) => match run(*config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                log::error!("{message}");
                eprintln!("ingressd: {message}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("ingressd: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(config: Config) -> Result<(), String> {
    simple_logger::SimpleLogger::new()
        .with_level(config.log_level)
        .init()
        .map_err(|e| format!("cannot start logging: {e}"))?;
    // ureq's TLS setup looks for a process-wide provider; ours is ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    shutdown::install();

    let status_config = StatusConfig::from_config(&config, status::fallback_identity)?;
    let client = Arc::new(ApiClient::new(&config.apiserver, &config.ca_file, &config.token_file).map_err(|e| e.to_string())?);
    let current = Arc::new(Current::default());
    let cache_status = Arc::new(CacheStatus::default());
    let watch_metrics = Arc::new(WatchMetrics::new());
    let (events, received) = crossbeam_channel::unbounded();
    cache::spawn(received, Arc::clone(&current), compiler(&config, Arc::clone(&watch_metrics)), Arc::clone(&cache_status))
        .map_err(|e| format!("cannot start the cache thread: {e}"))?;
    let stop_watching = Arc::new(AtomicBool::new(false));
    for kind in Kind::ALL {
        watcher::spawn(
            kind,
            Arc::clone(&client),
            config.watch_namespace.clone(),
            events.clone(),
            Arc::clone(&watch_metrics),
            Arc::clone(&stop_watching),
        );
    }
    drop(events);

    let mut sources: Vec<Arc<dyn MetricsSource>> = vec![watch_metrics, Arc::new(TlsMetrics(Arc::clone(&current)))];
    let status_handle = match status_config {
        Some(status_config) => {
            let inputs = status::Inputs {
                client: Arc::clone(&client),
                current: Arc::clone(&current),
                cache: Arc::clone(&cache_status),
                route_config: route_config(&config),
                stop: Arc::clone(&stop_watching),
            };
            let handle = status::spawn(status_config, inputs)?;
            sources.push(Arc::clone(&handle.state) as Arc<dyn MetricsSource>);
            Some(handle)
        }
        None => {
            log::info!("Ingress status publishing off: neither POD_NAMESPACE nor --publish-status-address is set");
            None
        }
    };
    let admin = Arc::new(Admin::new(Arc::clone(&current), Arc::clone(&cache_status), sources));
    let admin_addr = admin::spawn(config.admin_addr, Arc::clone(&admin))?;

    let http = TcpListener::bind(config.http_addr).map_err(|e| format!("cannot listen on --http-addr {}: {e}", config.http_addr))?;
    let https = TcpListener::bind(config.https_addr).map_err(|e| format!("cannot listen on --https-addr {}: {e}", config.https_addr))?;
    let http_addr = http.local_addr().map_err(|e| e.to_string())?;
    let https_addr = https.local_addr().map_err(|e| e.to_string())?;
    let limits = tiny_http::Limits {
        max_connections: config.max_connections,
        max_header_line: config.max_header_size,
        max_headers: config.max_headers,
        header_timeout: config.header_timeout,
        idle_timeout: config.idle_timeout,
        write_timeout: config.upstream_read_timeout.max(Duration::from_secs(10)),
    };
    let server = Arc::new(
        tiny_http::Server::from_listener_with_limits(http, limits).map_err(|e| format!("cannot start the HTTP server: {e}"))?,
    );
    let https_listener =
        tls::spawn_listener(https, tls::server_config(Arc::clone(&current)), Arc::clone(&server), config.tls_handshake_timeout)
            .map_err(|e| format!("cannot start the HTTPS accept loop: {e}"))?;

    let mut proxy_config = ProxyConfig::from_config(&config);
    proxy_config.http_port = http_addr.port();
    proxy_config.https_port = https_addr.port();
    let access = config.access_log;
    let observer: proxy::Observer = Arc::new(move |outcome: &proxy::Outcome| access_log::write(outcome, access));
    let workers = proxy::spawn_workers(Arc::clone(&server), Arc::clone(&current), Arc::new(proxy_config), observer);
    log::info!("listening: http={http_addr} https={https_addr} admin={admin_addr} workers={}", workers.len());

    while !shutdown::requested() {
        std::thread::sleep(Duration::from_millis(100));
    }
    drain(&config, &admin, &server, &https_listener);
    if let Some(handle) = &status_handle {
        handle.release();
    }
    stop_watching.store(true, Ordering::Relaxed);
    Ok(())
}

/// Readiness fails at once; listeners keep accepting for `--shutdown-delay`
/// so load balancers notice; then accepting stops and open connections get
/// up to `--shutdown-grace` to finish.
fn drain(config: &Config, admin: &Admin, server: &tiny_http::Server, https: &tls::HttpsListener) {
    admin.draining.store(true, Ordering::Relaxed);
    log::info!("shutdown requested: /readyz now fails; accepting for {:?} more", config.shutdown_delay);
    std::thread::sleep(config.shutdown_delay);
    server.stop_accepting();
    https.stop_accepting();
    let deadline = Instant::now() + config.shutdown_grace;
    while server.num_connections() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    match server.num_connections() {
        0 => log::info!("drained; exiting"),
        n => log::warn!("shutdown grace over with {n} connections open; exiting"),
    }
}

fn route_config(config: &Config) -> RouteConfig {
    RouteConfig {
        ingress_class: config.ingress_class.clone(),
        controller_name: config.controller_name.clone(),
        watch_ingress_without_class: config.watch_ingress_without_class,
        default_backend_service: config.default_backend_service.clone(),
        upstream_mode: config.upstream_mode,
    }
}

/// Compiles routes and certificates from each snapshot.
fn compiler(config: &Config, watch_metrics: Arc<WatchMetrics>) -> Compiler {
    let route_config = route_config(config);
    let default_cert = config.default_ssl_certificate.clone();
    Box::new(move |snapshot, previous: &Generation| {
        for kind in Kind::ALL {
            watch_metrics.set_objects(kind, snapshot.count(kind));
        }
        let routes = routes::compile(snapshot, &route_config);
        let served = routes::served_ingresses(snapshot, &route_config);
        let certs = tls::CertSet::compile(snapshot, &served, default_cert.as_ref(), &previous.certs);
        Generation { snapshot: Arc::clone(snapshot), routes: Arc::new(routes), certs: Arc::new(certs) }
    })
}

/// Certificate metrics from the live set.
struct TlsMetrics(Arc<Current>);

impl MetricsSource for TlsMetrics {
    fn render(&self, out: &mut String) {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
        tls::write_metrics(&self.0.load().certs, now, out);
    }
}
