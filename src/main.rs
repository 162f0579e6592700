//! The `ingressd` binary: parses the command line, starts every thread, and
//! drains gracefully on SIGTERM.

use std::process::ExitCode;
use std::sync::Arc;

use ingressd::admin::{self, Admin, MetricsSource};
use ingressd::cache::{self, CacheStatus, CompileConfig, Current};
use ingressd::config::{Command, Config};
use ingressd::data_plane::DataPlane;
use ingressd::kube::client::ApiClient;
use ingressd::kube::metrics::WatchMetrics;
use ingressd::kube::{named_secrets, probe, watcher, Kind};
use ingressd::metrics::{ConnectionMetrics, GenerationMetrics, RequestMetrics};
use ingressd::proxy;
use ingressd::status::{self, StatusConfig};
use ingressd::stop::Stop;
use ingressd::{access_log, inspect, migrate, shutdown};

fn main() -> ExitCode {
    let env = |k: &str| std::env::var(k).ok();
    match Config::parse(std::env::args().skip(1), &env) {
        Ok(Command::Help) => {
            print!("{}", Config::help());
            ExitCode::SUCCESS
        }
        Ok(Command::Version) => {
            println!("ingressd {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Ok(Command::Routes(args)) => inspect::main(&args),
        Ok(Command::MigrateCheck(args)) => migrate::main(&args),
        Ok(Command::Run(config)) => {
            if let Err(e) = start_logging(config.log_level) {
                eprintln!("ingressd: cannot start logging: {e}");
                return ExitCode::FAILURE;
            }
            match run(*config) {
                Ok(()) => ExitCode::SUCCESS,
                // Once, through the log, so it carries a timestamp like every other line.
                Err(message) => {
                    log::error!("{message}");
                    ExitCode::FAILURE
                }
            }
        }
        Err(e) => {
            eprintln!("ingressd: {e}");
            ExitCode::from(2)
        }
    }
}

/// Diagnostic lines on stderr, each stamped in RFC 3339 UTC like the access log.
/// The HTTP client's crates log at most at debug: at trace they hex-dump
/// every request head they write, and with it the API token and the
/// clients' cookies and credentials.
fn start_logging(level: log::LevelFilter) -> Result<(), log::SetLoggerError> {
    let client = level.min(log::LevelFilter::Debug);
    simple_logger::SimpleLogger::new()
        .with_level(level)
        .with_module_level("ureq", client)
        .with_module_level("ureq_proto", client)
        .with_utc_timestamps()
        .init()
}

fn run(config: Config) -> Result<(), String> {
    // ureq's TLS setup looks for a process-wide provider; ours is ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let signals = shutdown::install().map_err(|e| format!("cannot install the signal handlers: {e}"))?;

    let status_config = StatusConfig::from_config(&config, status::fallback_identity)?;
    let client = Arc::new(ApiClient::new(&config.apiserver, &config.ca_file, &config.token_file).map_err(|e| e.to_string())?);
    let current = Arc::new(Current::default());
    let cache_status = Arc::new(CacheStatus::default());
    let watch_metrics = Arc::new(WatchMetrics::new());
    let stop_watching = Stop::new();
    start_watching(&config, &client, &current, &cache_status, &watch_metrics, &stop_watching)?;

    let request_metrics = Arc::new(RequestMetrics::default());
    let access = config.access_log;
    let observed = Arc::clone(&request_metrics);
    let observer: proxy::Observer = Arc::new(move |outcome: &proxy::Outcome| {
        observed.observe(outcome);
        access_log::write(outcome, access);
    });
    let data_plane = DataPlane::start(&config, &current, observer)?;
    let mut sources: Vec<Arc<dyn MetricsSource>> = vec![
        Arc::clone(&watch_metrics) as Arc<dyn MetricsSource>,
        Arc::new(GenerationMetrics(Arc::clone(&current))),
        Arc::clone(&request_metrics) as Arc<dyn MetricsSource>,
        Arc::new(ConnectionMetrics(Arc::clone(&data_plane.server))),
    ];
    let status_handle = match status_config {
        Some(status_config) => {
            let inputs = status::Inputs {
                client: Arc::clone(&client),
                current: Arc::clone(&current),
                cache: Arc::clone(&cache_status),
                route_config: config.route_config(),
                stop: stop_watching.clone(),
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
    let admin = Arc::new(Admin::new(Arc::clone(&current), Arc::clone(&cache_status), watch_metrics, sources));
    let admin_addr = admin::spawn(config.admin_addr, Arc::clone(&admin))?;

    log::info!("listening: http={} https={} admin={admin_addr}", data_plane.http_addr, data_plane.https_addr);

    // Blocks until SIGTERM or SIGINT; a channel whose sender is gone would
    // mean the signal thread died, and then draining is the safe way out.
    let _ = signals.recv();
    data_plane.drain(&config, &admin);
    if let Some(handle) = &status_handle {
        handle.release();
    }
    stop_watching.stop();
    Ok(())
}

/// Starts the cache thread, one watcher per kind, the follower of the
/// Secrets annotations name, and the probe that ends their backoff when the
/// API server answers again.
fn start_watching(
    config: &Config,
    client: &Arc<ApiClient>,
    current: &Arc<Current>,
    cache_status: &Arc<CacheStatus>,
    watch_metrics: &Arc<WatchMetrics>,
    stop: &Stop,
) -> Result<(), String> {
    let (events, received) = crossbeam_channel::unbounded();
    let compile_config = CompileConfig { routes: config.route_config(), default_certificate: config.default_ssl_certificate.clone() };
    let (wanted_secrets, _) = named_secrets::spawn(Arc::clone(client), events.clone(), stop.clone())
        .map_err(|e| format!("cannot start the named Secrets' follower: {e}"))?;
    cache::spawn(received, Arc::clone(current), compile_config, Arc::clone(cache_status), Arc::clone(watch_metrics), wanted_secrets)
        .map_err(|e| format!("cannot start the cache thread: {e}"))?;
    for kind in Kind::ALL {
        watcher::spawn(kind, Arc::clone(client), config.watch_namespace.clone(), events.clone(), Arc::clone(watch_metrics), stop.clone())
            .map_err(|e| format!("cannot start the {} watcher: {e}", kind.name()))?;
    }
    probe::spawn(Arc::clone(client), stop.clone()).map_err(|e| format!("cannot start the API probe: {e}"))?;
    Ok(())
}
