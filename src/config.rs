//! The command line.
//!
//! Flag names are a contract: manifests, scripts and tests outside this
//! repository start ingressd with exactly these names. Parsing is pure
//! (`Config::parse` takes the arguments and the environment) so it is tested
//! without a process.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::cidr::Cidr;
use crate::kube::objects::ObjectKey;
use crate::routes::{PortRef, RouteConfig, UpstreamMode};

/// How access logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessLog {
    Text,
    Json,
    Off,
}

/// Everything the command line sets.
#[derive(Debug, Clone)]
pub struct Config {
    pub apiserver: String,
    pub token_file: PathBuf,
    pub ca_file: PathBuf,
    pub watch_namespace: Option<String>,
    pub ingress_class: String,
    pub controller_name: String,
    pub watch_ingress_without_class: bool,
    pub default_backend_service: Option<(ObjectKey, PortRef)>,
    pub upstream_mode: UpstreamMode,
    pub http_addr: SocketAddr,
    pub https_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub log_level: log::LevelFilter,
    pub workers: usize,
    pub max_connections: usize,
    pub max_header_size: usize,
    pub max_headers: usize,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_body_size: u64,
    pub upstream_connect_timeout: Duration,
    pub upstream_response_timeout: Duration,
    pub upstream_read_timeout: Duration,
    pub websocket_idle_timeout: Duration,
    pub trusted_proxies: Vec<Cidr>,
    /// Every connection on the HTTP and HTTPS listeners starts with a PROXY protocol header.
    pub use_proxy_protocol: bool,
    /// Peers whose PROXY protocol header is believed; empty: any peer.
    pub proxy_protocol_trusted_cidrs: Vec<Cidr>,
    pub default_ssl_certificate: Option<ObjectKey>,
    pub tls_handshake_timeout: Duration,
    pub access_log: AccessLog,
    pub shutdown_delay: Duration,
    pub shutdown_grace: Duration,
    /// Addresses written to Ingress status instead of the nodes' host IPs.
    pub publish_status_addresses: Vec<String>,
    /// Labels of ingressd's own pods, whose nodes' IPs are published.
    pub pod_selector: String,
    /// Name of the Lease that elects the one status writer.
    pub election_id: String,
    /// Namespace of the Lease; `None` means POD_NAMESPACE, then `default`.
    pub election_namespace: Option<String>,
    pub lease_duration: Duration,
    pub lease_renew_deadline: Duration,
    pub lease_retry_period: Duration,
    /// POD_NAME from the downward API: the election identity.
    pub pod_name: Option<String>,
    /// POD_NAMESPACE from the downward API: where ingressd's pods and Lease live.
    pub pod_namespace: Option<String>,
}

/// What the command line asked for.
#[derive(Debug)]
pub enum Command {
    Run(Box<Config>),
    Help,
    Version,
    /// `ingressd routes ...`: the arguments after the subcommand's name,
    /// which parses its own.
    Routes(Vec<String>),
    /// `ingressd migrate-check ...`, likewise.
    MigrateCheck(Vec<String>),
}

/// One flag: its name, its value placeholder (None for a switch), its default
/// as shown in `--help`, and what it does.
struct Flag {
    name: &'static str,
    value: Option<&'static str>,
    default: &'static str,
    help: &'static str,
}

const fn flag(name: &'static str, value: &'static str, default: &'static str, help: &'static str) -> Flag {
    Flag { name, value: Some(value), default, help }
}

const FLAGS: &[Flag] = &[
    flag(
        "apiserver",
        "URL",
        "https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT, or https://kubernetes.default.svc:443 when KUBERNETES_SERVICE_HOST is unset",
        "Kubernetes API server; http:// is accepted (kubectl proxy)",
    ),
    flag("token-file", "PATH", "/var/run/secrets/kubernetes.io/serviceaccount/token", "bearer token, re-read every 60 s and after a 401; none sent if absent"),
    flag("ca-file", "PATH", "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt", "the only CA trusted for the API server"),
    flag("watch-namespace", "NS", "all namespaces", "watch one namespace only"),
    flag("ingress-class", "NAME", "ingressd", "IngressClass name (and legacy annotation value) served"),
    flag("controller-name", "NAME", "ingressd.io/ingress-controller", "IngressClass spec.controller served"),
    Flag { name: "watch-ingress-without-class", value: None, default: "off", help: "also serve Ingresses that name no class" },
    flag("default-backend-service", "NS/NAME:PORT", "none", "backend for requests no rule matches, when no Ingress sets one"),
    flag("upstream-mode", "endpoints|cluster-ip", "endpoints", "forward to ready pod endpoints or to the Service ClusterIP"),
    flag("http-addr", "ADDR", "0.0.0.0:80", "plain HTTP listener"),
    flag("https-addr", "ADDR", "0.0.0.0:443", "HTTPS listener"),
    flag("admin-addr", "ADDR", "0.0.0.0:10254", "/healthz, /readyz, /metrics; /debug/routes for loopback clients only"),
    flag("log-level", "LEVEL", "info", "error, warn, info, debug or trace"),
    flag("workers", "N", "16 per core", "ignored: each connection's own thread serves its requests (accepted so command lines keep working)"),
    flag("max-connections", "N", "4096", "concurrent client connections, each one thread; more are closed at accept"),
    flag("max-header-size", "BYTES", "16384", "longest request line or header line (431 beyond)"),
    flag("max-headers", "N", "100", "most request header lines (431 beyond)"),
    flag("header-timeout", "SECONDS", "10", "time allowed to send a request head (slowloris guard)"),
    flag("idle-timeout", "SECONDS", "60", "idle keep-alive connections are closed after this"),
    flag("max-body-size", "BYTES", "1073741824", "largest request body (413 beyond); 0 means no limit"),
    flag("upstream-connect-timeout", "SECONDS", "5", "connecting to an upstream"),
    flag("upstream-response-timeout", "SECONDS", "60", "waiting for an upstream's response head (504 beyond)"),
    flag("upstream-read-timeout", "SECONDS", "60", "silence allowed between reads of an upstream body"),
    flag("websocket-idle-timeout", "SECONDS", "3600", "an upgraded tunnel with no traffic either way is closed"),
    flag("trusted-proxies", "CIDR,...", "none", "clients whose X-Forwarded-* headers are kept and extended"),
    Flag {
        name: "use-proxy-protocol",
        value: None,
        default: "off",
        help: "every HTTP and HTTPS connection must start with a PROXY protocol v1 or v2 header (else it is closed); its address is the client's",
    },
    flag("proxy-protocol-trusted-cidrs", "CIDR,...", "any peer", "with --use-proxy-protocol, connections from other peers are closed"),
    flag("default-ssl-certificate", "NS/NAME", "none", "TLS Secret for handshakes no Ingress host matches"),
    flag("tls-handshake-timeout", "SECONDS", "10", "a TLS client must finish its handshake within this"),
    flag("access-log", "text|json|off", "text", "one line per request on stdout"),
    flag("shutdown-delay", "SECONDS", "5", "after SIGTERM, keep accepting this long while /readyz says 503"),
    flag("shutdown-grace", "SECONDS", "30", "then wait this long for in-flight requests"),
    flag("publish-status-address", "ADDR,...", "host IPs of ready ingressd pods", "IPs or hostnames written to Ingress status.loadBalancer"),
    flag("pod-selector", "SELECTOR", "app.kubernetes.io/name=ingressd", "label selector of ingressd's pods in POD_NAMESPACE"),
    flag("election-id", "NAME", "ingressd-leader", "Lease electing the one replica that writes Ingress status"),
    flag("election-namespace", "NS", "$POD_NAMESPACE, else default", "namespace of the election Lease"),
    flag("lease-duration", "SECONDS", "15", "a Lease not renewed for this long may be taken over"),
    flag("lease-renew-deadline", "SECONDS", "10", "a leader that could not renew for this long stops writing"),
    flag("lease-retry-period", "SECONDS", "2", "how often the Lease is renewed or tried"),
];

/// A command-line mistake; `main` prints it on one line and exits 2.
#[derive(Debug, PartialEq, Eq)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn bad(flag: &str, value: &str, expected: &str) -> UsageError {
    UsageError(format!("invalid value {value:?} for --{flag}: expected {expected}"))
}

/// A comma-separated CIDR list; empty items are skipped.
fn cidrs(flag: &str, value: &str) -> Result<Vec<Cidr>, UsageError> {
    value
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| Cidr::parse(s).ok_or_else(|| bad(flag, value, "comma-separated CIDRs")))
        .collect()
}

fn seconds(flag: &str, value: &str) -> Result<Duration, UsageError> {
    value
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0 && *s < 1e9)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| bad(flag, value, "a number of seconds"))
}

fn number<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T, UsageError> {
    value.parse::<T>().map_err(|_| bad(flag, value, "a whole number"))
}

fn positive(flag: &str, value: &str) -> Result<usize, UsageError> {
    number::<usize>(flag, value)?.checked_sub(0).filter(|n| *n > 0).ok_or_else(|| bad(flag, value, "a whole number above 0"))
}

fn addr(flag: &str, value: &str) -> Result<SocketAddr, UsageError> {
    value.parse().map_err(|_| bad(flag, value, "an IP:PORT address"))
}

fn object_key(flag: &str, value: &str) -> Result<ObjectKey, UsageError> {
    match value.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => Ok(ObjectKey::new(ns, name)),
        _ => Err(bad(flag, value, "NAMESPACE/NAME")),
    }
}

fn service_ref(flag: &str, value: &str) -> Result<(ObjectKey, PortRef), UsageError> {
    let (key, port) = value.rsplit_once(':').ok_or_else(|| bad(flag, value, "NAMESPACE/NAME:PORT"))?;
    let key = object_key(flag, key).map_err(|_| bad(flag, value, "NAMESPACE/NAME:PORT"))?;
    let port = match port.parse::<i32>() {
        Ok(n) if (1..=65535).contains(&n) => PortRef::Number(n),
        Ok(_) => return Err(bad(flag, value, "NAMESPACE/NAME:PORT")),
        Err(_) if !port.is_empty() => PortRef::Name(port.to_string()),
        Err(_) => return Err(bad(flag, value, "NAMESPACE/NAME:PORT")),
    };
    Ok((key, port))
}

impl Config {
    /// The part of the command line that decides which Ingresses are ours and how they route.
    pub fn route_config(&self) -> RouteConfig {
        RouteConfig {
            ingress_class: self.ingress_class.clone(),
            controller_name: self.controller_name.clone(),
            watch_ingress_without_class: self.watch_ingress_without_class,
            default_backend_service: self.default_backend_service.clone(),
            upstream_mode: self.upstream_mode,
        }
    }

    /// Defaults for everything; `apiserver` comes from the in-cluster environment.
    pub fn defaults(env: &dyn Fn(&str) -> Option<String>) -> Config {
        let apiserver = match (env("KUBERNETES_SERVICE_HOST"), env("KUBERNETES_SERVICE_PORT")) {
            (Some(host), port) => {
                let host = if host.contains(':') { format!("[{host}]") } else { host };
                format!("https://{host}:{}", port.unwrap_or_else(|| "443".into()))
            }
            (None, _) => "https://kubernetes.default.svc:443".to_string(),
        };
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        Config {
            apiserver,
            token_file: "/var/run/secrets/kubernetes.io/serviceaccount/token".into(),
            ca_file: "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt".into(),
            watch_namespace: None,
            ingress_class: "ingressd".into(),
            controller_name: "ingressd.io/ingress-controller".into(),
            watch_ingress_without_class: false,
            default_backend_service: None,
            upstream_mode: UpstreamMode::Endpoints,
            http_addr: SocketAddr::from(([0, 0, 0, 0], 80)),
            https_addr: SocketAddr::from(([0, 0, 0, 0], 443)),
            admin_addr: SocketAddr::from(([0, 0, 0, 0], 10254)),
            log_level: log::LevelFilter::Info,
            workers: 16 * cores,
            max_connections: 4096,
            max_header_size: 16 * 1024,
            max_headers: 100,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_body_size: 1 << 30,
            upstream_connect_timeout: Duration::from_secs(5),
            upstream_response_timeout: Duration::from_secs(60),
            upstream_read_timeout: Duration::from_secs(60),
            websocket_idle_timeout: Duration::from_secs(3600),
            trusted_proxies: Vec::new(),
            use_proxy_protocol: false,
            proxy_protocol_trusted_cidrs: Vec::new(),
            default_ssl_certificate: None,
            tls_handshake_timeout: Duration::from_secs(10),
            access_log: AccessLog::Text,
            shutdown_delay: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(30),
            publish_status_addresses: Vec::new(),
            pod_selector: "app.kubernetes.io/name=ingressd".into(),
            election_id: "ingressd-leader".into(),
            election_namespace: None,
            lease_duration: Duration::from_secs(15),
            lease_renew_deadline: Duration::from_secs(10),
            lease_retry_period: Duration::from_secs(2),
            pod_name: env("POD_NAME").filter(|v| !v.is_empty()),
            pod_namespace: env("POD_NAMESPACE").filter(|v| !v.is_empty()),
        }
    }

    /// Parses arguments (without the program name). Accepts `--flag value` and `--flag=value`;
    /// a subcommand in first place takes the rest unparsed, since its flags are its own.
    pub fn parse<I: IntoIterator<Item = String>>(args: I, env: &dyn Fn(&str) -> Option<String>) -> Result<Command, UsageError> {
        let mut args = args.into_iter().peekable();
        match args.peek().map(String::as_str) {
            Some("routes") => return Ok(Command::Routes(args.skip(1).collect())),
            Some("migrate-check") => return Ok(Command::MigrateCheck(args.skip(1).collect())),
            _ => {}
        }
        let mut config = Config::defaults(env);
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--help" | "-h" => return Ok(Command::Help),
                "--version" | "-V" => return Ok(Command::Version),
                _ => {}
            }
            let Some(body) = arg.strip_prefix("--") else {
                return Err(UsageError(format!("unexpected argument {arg:?} (see --help)")));
            };
            let (name, inline) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (body, None),
            };
            let Some(spec) = FLAGS.iter().find(|f| f.name == name) else {
                return Err(UsageError(format!("unknown flag --{name} (see --help)")));
            };
            let value = match (spec.value, inline) {
                (None, None) => String::new(),
                (None, Some(v)) => match v.as_str() {
                    "true" => String::new(),
                    "false" => "false".into(),
                    _ => return Err(bad(name, &v, "true or false")),
                },
                (Some(_), Some(v)) => v,
                (Some(placeholder), None) => args
                    .next()
                    .ok_or_else(|| UsageError(format!("--{name} needs a value ({placeholder})")))?,
            };
            config.set(name, &value)?;
        }
        if !config.proxy_protocol_trusted_cidrs.is_empty() && !config.use_proxy_protocol {
            return Err(UsageError("--proxy-protocol-trusted-cidrs needs --use-proxy-protocol".into()));
        }
        Ok(Command::Run(Box::new(config)))
    }

    fn set(&mut self, name: &str, value: &str) -> Result<(), UsageError> {
        let v = value;
        match name {
            "apiserver" => {
                if !(v.starts_with("https://") || v.starts_with("http://")) || v.len() <= "https://".len() {
                    return Err(bad(name, v, "an http:// or https:// URL"));
                }
                self.apiserver = v.trim_end_matches('/').to_string();
            }
            "token-file" => self.token_file = v.into(),
            "ca-file" => self.ca_file = v.into(),
            "watch-namespace" => self.watch_namespace = Some(v.to_string()).filter(|n| !n.is_empty()),
            "ingress-class" => self.ingress_class = v.to_string(),
            "controller-name" => self.controller_name = v.to_string(),
            "watch-ingress-without-class" => self.watch_ingress_without_class = v != "false",
            "default-backend-service" => self.default_backend_service = Some(service_ref(name, v)?),
            "upstream-mode" => {
                self.upstream_mode = match v {
                    "endpoints" => UpstreamMode::Endpoints,
                    "cluster-ip" => UpstreamMode::ClusterIp,
                    _ => return Err(bad(name, v, "endpoints or cluster-ip")),
                }
            }
            "http-addr" => self.http_addr = addr(name, v)?,
            "https-addr" => self.https_addr = addr(name, v)?,
            "admin-addr" => self.admin_addr = addr(name, v)?,
            "log-level" => self.log_level = v.parse().map_err(|_| bad(name, v, "error, warn, info, debug or trace"))?,
            "workers" => self.workers = positive(name, v)?,
            "max-connections" => self.max_connections = positive(name, v)?,
            "max-header-size" => self.max_header_size = positive(name, v)?,
            "max-headers" => self.max_headers = positive(name, v)?,
            "header-timeout" => self.header_timeout = seconds(name, v)?,
            "idle-timeout" => self.idle_timeout = seconds(name, v)?,
            "max-body-size" => self.max_body_size = number(name, v)?,
            "upstream-connect-timeout" => self.upstream_connect_timeout = seconds(name, v)?,
            "upstream-response-timeout" => self.upstream_response_timeout = seconds(name, v)?,
            "upstream-read-timeout" => self.upstream_read_timeout = seconds(name, v)?,
            "websocket-idle-timeout" => self.websocket_idle_timeout = seconds(name, v)?,
            "trusted-proxies" => self.trusted_proxies = cidrs(name, v)?,
            "use-proxy-protocol" => self.use_proxy_protocol = v != "false",
            "proxy-protocol-trusted-cidrs" => {
                self.proxy_protocol_trusted_cidrs = cidrs(name, v)?;
                if self.proxy_protocol_trusted_cidrs.is_empty() {
                    // An empty list must not silently mean "any peer".
                    return Err(bad(name, v, "at least one CIDR (leave the flag out to trust any peer)"));
                }
            }
            "default-ssl-certificate" => self.default_ssl_certificate = Some(object_key(name, v)?),
            "tls-handshake-timeout" => self.tls_handshake_timeout = seconds(name, v)?,
            "access-log" => {
                self.access_log = match v {
                    "text" => AccessLog::Text,
                    "json" => AccessLog::Json,
                    "off" => AccessLog::Off,
                    _ => return Err(bad(name, v, "text, json or off")),
                }
            }
            "shutdown-delay" => self.shutdown_delay = seconds(name, v)?,
            "shutdown-grace" => self.shutdown_grace = seconds(name, v)?,
            "publish-status-address" => {
                self.publish_status_addresses = v.split(',').map(str::trim).filter(|a| !a.is_empty()).map(String::from).collect()
            }
            "pod-selector" => self.pod_selector = v.to_string(),
            "election-id" => self.election_id = v.to_string(),
            "election-namespace" => self.election_namespace = Some(v.to_string()).filter(|n| !n.is_empty()),
            "lease-duration" => self.lease_duration = seconds(name, v)?,
            "lease-renew-deadline" => self.lease_renew_deadline = seconds(name, v)?,
            "lease-retry-period" => self.lease_retry_period = seconds(name, v)?,
            _ => return Err(UsageError(format!("unknown flag --{name} (see --help)"))),
        }
        Ok(())
    }

    /// The names of every flag, for checks that manifests only use real flags.
    pub fn flag_names() -> impl Iterator<Item = &'static str> {
        FLAGS.iter().map(|f| f.name)
    }

    /// The `--help` text: every flag with its default.
    pub fn help() -> String {
        let mut out = String::from(
            "ingressd: Kubernetes Ingress controller and HTTP(S) reverse proxy\n\n\
             usage: ingressd [FLAGS]\n       ingressd routes --admin-addr ADDR\n       ingressd migrate-check [--file PATH] [FLAGS]\n\nflags:\n",
        );
        for f in FLAGS {
            let head = match f.value {
                Some(v) => format!("--{} {}", f.name, v),
                None => format!("--{}", f.name),
            };
            out.push_str(&format!("  {head:<48} {} (default: {})\n", f.help, f.default));
        }
        out.push_str("  --help                                           this text\n");
        out.push_str("  --version                                        print the version\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Command, UsageError> {
        let env = |k: &str| match k {
            "KUBERNETES_SERVICE_HOST" => Some("10.96.0.1".to_string()),
            "KUBERNETES_SERVICE_PORT" => Some("443".to_string()),
            _ => None,
        };
        Config::parse(args.iter().map(|s| s.to_string()), &env)
    }

    fn run(args: &[&str]) -> Config {
        match parse(args) {
            Ok(Command::Run(c)) => *c,
            other => panic!("expected a config, got {other:?}"),
        }
    }

    #[test]
    fn defaults_follow_the_in_cluster_environment() {
        let c = run(&[]);
        assert_eq!(c.apiserver, "https://10.96.0.1:443");
        assert_eq!(c.ingress_class, "ingressd");
        assert_eq!(c.controller_name, "ingressd.io/ingress-controller");
        assert_eq!(c.admin_addr.port(), 10254);
        assert!(c.watch_namespace.is_none());
    }

    #[test]
    fn flags_take_values_both_ways() {
        let c = run(&["--apiserver", "http://127.0.0.1:8001", "--watch-namespace=web", "--watch-ingress-without-class", "--workers", "4"]);
        assert_eq!(c.apiserver, "http://127.0.0.1:8001");
        assert_eq!(c.watch_namespace.as_deref(), Some("web"));
        assert!(c.watch_ingress_without_class);
        assert_eq!(c.workers, 4);
        let c = run(&["--default-backend-service", "ns/svc:http", "--trusted-proxies", "10.0.0.0/8,::1"]);
        assert_eq!(c.default_backend_service, Some((ObjectKey::new("ns", "svc"), PortRef::Name("http".into()))));
        assert_eq!(c.trusted_proxies.len(), 2);
    }

    #[test]
    fn proxy_protocol_trusts_any_peer_unless_told() {
        let c = run(&[]);
        assert!(!c.use_proxy_protocol);
        let c = run(&["--use-proxy-protocol"]);
        assert!(c.use_proxy_protocol && c.proxy_protocol_trusted_cidrs.is_empty());
        let c = run(&["--use-proxy-protocol=true", "--proxy-protocol-trusted-cidrs", "10.0.0.0/8, 2001:db8::/32"]);
        assert_eq!(c.proxy_protocol_trusted_cidrs.len(), 2);
    }

    #[test]
    fn mistakes_are_usage_errors() {
        for args in [
            &["--nope"][..],
            &["--workers", "0"],
            &["--http-addr", "localhost"],
            &["--apiserver", "ftp://x"],
            &["--upstream-mode", "magic"],
            &["--token-file"],
            &["stray"],
            &["--default-backend-service", "svc:80"],
            &["--use-proxy-protocol", "--proxy-protocol-trusted-cidrs", ""],
            &["--use-proxy-protocol", "--proxy-protocol-trusted-cidrs", "10.0.0.0/33"],
            &["--proxy-protocol-trusted-cidrs", "10.0.0.0/8"],
        ] {
            assert!(parse(args).is_err(), "{args:?} should be refused");
        }
    }

    #[test]
    fn help_lists_every_flag_with_its_default() {
        let help = Config::help();
        for f in FLAGS {
            assert!(help.contains(&format!("--{}", f.name)), "{} missing", f.name);
        }
        assert!(matches!(parse(&["--help"]), Ok(Command::Help)));
    }

    #[test]
    fn a_subcommand_gets_the_arguments_after_its_name_unparsed() {
        let routes = parse(&["routes", "--admin-addr", "127.0.0.1:10254"]);
        assert!(matches!(routes, Ok(Command::Routes(args)) if args == ["--admin-addr", "127.0.0.1:10254"]));
        let migrate = parse(&["migrate-check", "--file", "-", "--ingress-class", "nginx"]);
        assert!(matches!(migrate, Ok(Command::MigrateCheck(args)) if args == ["--file", "-", "--ingress-class", "nginx"]));
        // Only in first place: elsewhere it is an argument like any other.
        assert!(parse(&["--log-level", "info", "routes"]).is_err());
    }
}
