//! Black-box harness: runs the real `ingressd` binary against a fake API
//! server and talks to it over loopback sockets.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use fakeapi::{FakeApi, Options};

use crate::support::http::{parse_response, Response};
use crate::support::wait::wait_until;

pub const TOKEN: &str = "test-token-1";

/// A fake API server with one valid token, plus files ingressd reads.
pub struct Api {
    pub fake: FakeApi,
    pub dir: TempDir,
}

impl Api {
    pub fn start() -> Api {
        Api::start_with(Options { tokens: vec![TOKEN.to_string()], ..Default::default() })
    }

    pub fn start_with(options: Options) -> Api {
        let fake = FakeApi::start(options).expect("fake API server starts");
        let dir = TempDir::new();
        std::fs::write(dir.path("token"), TOKEN).expect("token file");
        std::fs::write(dir.path("ca.crt"), fake.ca_pem()).expect("ca file");
        Api { fake, dir }
    }
}

impl Api {
    /// Creates a Service `name` in namespace `web` backed by `backend`, and
    /// an Ingress `site` routing `host` to it.
    pub fn serve_one_site(&self, host: &str, name: &str, backend: &Backend) {
        for object in service_for("web", name, backend.addr) {
            self.fake.create(object);
        }
        self.fake.create(ingress("web", "site", &[(host, "/", name)]));
    }
}

/// A temporary directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("ingressd-test-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running ingressd process; killed on drop.
pub struct Ingressd {
    pub child: Child,
    pub http: SocketAddr,
    pub https: SocketAddr,
    pub admin: SocketAddr,
    pub log: mpsc::Receiver<String>,
}

impl Ingressd {
    /// Starts ingressd on ephemeral loopback ports and waits (bounded) for
    /// the line announcing its bound addresses.
    pub fn start(api: &Api, extra: &[&str]) -> Ingressd {
        Ingressd::start_with_env(api, extra, &[])
    }

    /// Like [`Ingressd::start`] with extra environment variables (such as
    /// the downward API's POD_NAME and POD_NAMESPACE); those two are never
    /// inherited from the test's own environment.
    pub fn start_with_env(api: &Api, extra: &[&str], env: &[(&str, &str)]) -> Ingressd {
        let mut args: Vec<String> = vec![
            "--apiserver".into(),
            api.fake.url(),
            "--token-file".into(),
            api.dir.path("token").display().to_string(),
            "--ca-file".into(),
            api.dir.path("ca.crt").display().to_string(),
            "--http-addr".into(),
            "127.0.0.1:0".into(),
            "--https-addr".into(),
            "127.0.0.1:0".into(),
            "--admin-addr".into(),
            "127.0.0.1:0".into(),
            "--access-log".into(),
            "off".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        Ingressd::start_args_env(&args, env)
    }

    pub fn start_args(args: &[String]) -> Ingressd {
        Ingressd::start_args_env(args, &[])
    }

    fn start_args_env(args: &[String], env: &[(&str, &str)]) -> Ingressd {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ingressd"))
            .args(args)
            .env_remove("POD_NAME")
            .env_remove("POD_NAMESPACE")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ingressd starts");
        let stderr = child.stderr.take().expect("stderr piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if std::env::var_os("INGRESSD_TEST_LOG").is_some() {
                    eprintln!("ingressd: {line}");
                }
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let announced = announced_addresses(&rx, Duration::from_secs(20));
        let Some((http, https, admin)) = announced else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ingressd did not announce its addresses");
        };
        Ingressd { http, https, admin, child, log: rx }
    }

    /// Polls `/readyz` until it answers 200, at most `timeout`.
    pub fn wait_ready(&self, timeout: Duration) -> bool {
        wait_until(timeout, || get(self.admin, "/readyz", "admin").map(|r| r.status == 200).unwrap_or(false))
    }

    pub fn admin_get(&self, path: &str) -> Response {
        get(self.admin, path, "admin").expect("admin answers")
    }

    /// One metric sample's value, by its full series name (with labels).
    pub fn metric(&self, series: &str) -> Option<f64> {
        let body = self.admin_get("/metrics").text();
        body.lines().find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
    }

    /// Waits for the process to exit, at most `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let mut exited = None;
        wait_until(timeout, || {
            exited = self.child.try_wait().ok().flatten();
            exited.is_some()
        });
        exited
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill").args(["-s", signal, &self.child.id().to_string()]).status().expect("kill runs");
        assert!(status.success());
    }
}

impl Drop for Ingressd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits for the `listening: http=… https=… admin=…` line.
fn announced_addresses(lines: &mpsc::Receiver<String>, timeout: Duration) -> Option<(SocketAddr, SocketAddr, SocketAddr)> {
    let deadline = Instant::now() + timeout;
    loop {
        let line = lines.recv_timeout(deadline.saturating_duration_since(Instant::now())).ok()?;
        if let Some(rest) = line.split("listening: ").nth(1) {
            let addr = |key: &str| -> Option<SocketAddr> {
                rest.split_whitespace().find_map(|kv| kv.strip_prefix(&format!("{key}="))).and_then(|v| v.parse().ok())
            };
            return Some((addr("http")?, addr("https")?, addr("admin")?));
        }
    }
}

/// GET with a given Host header over a fresh connection (`Connection: close`).
pub fn get(addr: SocketAddr, path: &str, host: &str) -> std::io::Result<Response> {
    request(addr, &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"))
}

/// Sends raw request bytes and reads the response to EOF (5 s timeouts).
pub fn request(addr: SocketAddr, raw: &str) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(raw.as_bytes())?;
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes)?;
    parse_response(&bytes)
}

/// A loopback HTTP backend answering `NAME PATH` to every request, one
/// request per connection; it counts requests. Stops with the test process.
pub struct Backend {
    pub addr: SocketAddr,
    pub requests: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Backend {
    pub fn start(name: &str) -> Backend {
        Backend::start_with_delay(name, Duration::ZERO)
    }

    /// A backend that waits `delay` before answering each request.
    pub fn start_with_delay(name: &str, delay: Duration) -> Backend {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("backend binds");
        let addr = listener.local_addr().expect("backend addr");
        let requests = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = std::sync::Arc::clone(&requests);
        let name = name.to_string();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let name = name.clone();
                let counter = std::sync::Arc::clone(&counter);
                std::thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                    let mut reader = BufReader::new(&stream);
                    let mut line = String::new();
                    if reader.read_line(&mut line).is_err() {
                        return;
                    }
                    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                    loop {
                        let mut header = String::new();
                        match reader.read_line(&mut header) {
                            Ok(0) | Err(_) => return,
                            Ok(_) if header == "\r\n" => break,
                            Ok(_) => {}
                        }
                    }
                    counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    std::thread::sleep(delay);
                    let body = format!("{name} {path}\n");
                    let _ = (&stream).write_all(
                        format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).as_bytes(),
                    );
                });
            }
        });
        Backend { addr, requests }
    }
}

/// An Ingress of class `ingressd` with one rule per (host, path, service).
pub fn ingress(namespace: &str, name: &str, rules: &[(&str, &str, &str)]) -> serde_json::Value {
    let rules: Vec<serde_json::Value> = rules
        .iter()
        .map(|(host, path, service)| {
            serde_json::json!({
                "host": host,
                "http": {"paths": [{"path": path, "pathType": "Prefix",
                    "backend": {"service": {"name": service, "port": {"number": 80}}}}]}
            })
        })
        .collect();
    serde_json::json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"namespace": namespace, "name": name},
        "spec": {"ingressClassName": "ingressd", "rules": rules}
    })
}

/// The `metadata.annotations` of an Ingress with these names under
/// `nginx.ingress.kubernetes.io/`, as Ingresses written for ingress-nginx carry them.
pub fn nginx_annotations(annotations: &[(&str, &str)]) -> serde_json::Value {
    annotations.iter().map(|(k, v)| (format!("nginx.ingress.kubernetes.io/{k}"), serde_json::json!(v))).collect::<serde_json::Map<_, _>>().into()
}

/// The annotation tests' Ingress: `name` in namespace `web` for
/// `NAME.example.com/` to Service `service`, with these annotations.
pub fn annotated(name: &str, service: &str, annotations: &[(&str, &str)]) -> serde_json::Value {
    let mut object = ingress("web", name, &[(&format!("{name}.example.com"), "/", service)]);
    object["metadata"]["annotations"] = nginx_annotations(annotations);
    object
}

/// The annotation tests' stack: a fake API with Service `web/blue` in front
/// of a counting [`Backend`] (or of `backend`, when given), these Ingresses,
/// and ingressd started with `extra` flags and ready.
pub fn start_with_blue(ingresses: Vec<serde_json::Value>, extra: &[&str], backend: Option<SocketAddr>) -> (Api, Backend, Ingressd) {
    let api = Api::start();
    let blue = Backend::start("blue");
    for object in service_for("web", "blue", backend.unwrap_or(blue.addr)).into_iter().chain(ingresses) {
        api.fake.create(object);
    }
    let ingressd = Ingressd::start(&api, extra);
    assert!(ingressd.wait_ready(Duration::from_secs(10)));
    (api, blue, ingressd)
}

/// A Service on port 80 (named `http`) and its EndpointSlice pointing at `backend`.
pub fn service_for(namespace: &str, name: &str, backend: SocketAddr) -> [serde_json::Value; 2] {
    [
        serde_json::json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"namespace": namespace, "name": name},
            "spec": {"ports": [{"name": "http", "port": 80, "targetPort": backend.port()}], "clusterIP": "10.96.0.10"}
        }),
        endpoint_slice(namespace, name, &[backend]),
    ]
}

pub fn endpoint_slice(namespace: &str, service: &str, backends: &[SocketAddr]) -> serde_json::Value {
    let port = backends.first().map(|b| b.port()).unwrap_or(1);
    let endpoints: Vec<serde_json::Value> = backends
        .iter()
        .map(|b| serde_json::json!({"addresses": [b.ip().to_string()], "conditions": {"ready": true}}))
        .collect();
    serde_json::json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"namespace": namespace, "name": format!("{service}-abc"),
            "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}]
    })
}
