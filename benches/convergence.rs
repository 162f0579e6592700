//! Convergence at scale: how long a change takes from the API write until
//! the proxy routes accordingly, and what it costs the cache thread.
//!
//! Preloads the fake API server (in this process) with `INGRESSES` Ingresses
//! (two paths each), as many Services and EndpointSlices (three endpoints
//! each) and one TLS Secret per ten Ingresses, in ten namespaces; starts the
//! release binary against it; reports start → ready and RSS after sync; then
//! makes `CHANGES` changes of each kind, timing each by polling through the
//! proxy, and reads the cache thread's CPU per change from the
//! `ingressd_cache_change_cpu_seconds` histogram. Secret changes (a label
//! only, then a renewal with a new certificate and key) route nothing new, so
//! only their CPU is reported.
//!
//! Run through `scripts/bench-convergence.sh`. Knobs: INGRESSES (10000),
//! CHANGES (50; 0 measures start and RSS only), BASE_PORT (21000: ingressd
//! takes it and the next two, the backend the next one), INGRESSD (the
//! binary, target/release/ingressd).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fakeapi::{FakeApi, Options};
use serde_json::{json, Value};

const NAMESPACES: usize = 10;
/// No change may take longer than this to show.
const CHANGE_DEADLINE: Duration = Duration::from_secs(30);

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn namespace(i: usize) -> String {
    format!("ns{}", i % NAMESPACES)
}

fn has_tls(i: usize) -> bool {
    (i / NAMESPACES) % 10 == 0
}

fn ingress(i: usize, name: &str, host: &str, service: &str) -> Value {
    let path = |p: &str| json!({"path": p, "pathType": "Prefix", "backend": {"service": {"name": service, "port": {"name": "http"}}}});
    let mut spec = json!({"ingressClassName": "ingressd", "rules": [{"host": host, "http": {"paths": [path("/"), path("/api")]}}]});
    if has_tls(i) {
        spec["tls"] = json!([{"hosts": [host], "secretName": format!("tls-{name}")}]);
    }
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"namespace": namespace(i), "name": name, "annotations": {"nginx.ingress.kubernetes.io/proxy-body-size": "8m"}},
        "spec": spec})
}

fn service(i: usize, port_name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"namespace": namespace(i), "name": format!("app{i}")},
        "spec": {"clusterIP": "10.96.0.1", "ports": [{"name": port_name, "port": 80, "targetPort": 8080}]}})
}

fn slice(i: usize, addresses: &[&str], backend_port: u16) -> Value {
    let endpoints: Vec<Value> = addresses.iter().map(|a| json!({"addresses": [a], "conditions": {"ready": true}})).collect();
    json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"namespace": namespace(i), "name": format!("app{i}-abcde"), "labels": {"kubernetes.io/service-name": format!("app{i}")}},
        "addressType": "IPv4", "ports": [{"name": "http", "port": backend_port}], "endpoints": endpoints})
}

fn secret(i: usize, name: &str, cert: &(String, String), generation: usize) -> Value {
    use std::fmt::Write as _;
    let b64 = |text: &str| {
        const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in text.as_bytes().chunks(3) {
            let n = chunk.iter().enumerate().fold(0u32, |n, (k, b)| n | u32::from(*b) << (16 - 8 * k));
            for k in 0..4 {
                let _ = out.write_char(if k <= chunk.len() { char::from(ALPHABET[(n >> (18 - 6 * k) & 63) as usize]) } else { '=' });
            }
        }
        out
    };
    json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
        "metadata": {"namespace": namespace(i), "name": format!("tls-{name}"), "labels": {"generation": generation.to_string()}},
        "data": {"tls.crt": b64(&cert.0), "tls.key": b64(&cert.1)}})
}

/// A backend on 127.0.0.1-3 answering every request 200 with keep-alive.
fn start_backend(port: u16) {
    for ip in ["127.0.0.1", "127.0.0.2", "127.0.0.3"] {
        let listener = TcpListener::bind((ip, port)).expect("backend binds");
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                std::thread::spawn(move || serve_backend(stream));
            }
        });
    }
}

fn serve_backend(stream: TcpStream) {
    let mut writer = match stream.try_clone() {
        Ok(writer) => writer,
        Err(_) => return,
    };
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        let mut length = 0usize;
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() || writer.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").is_err() {
            return;
        }
    }
}

/// The status of `GET /` for `host`, on a fresh connection.
fn status(addr: SocketAddr, host: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream.write_all(format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes()).ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// Makes the change, then polls until `done` holds; the time in between.
fn timed(addr: SocketAddr, host: &str, change: impl FnOnce(), done: impl Fn(u16) -> bool) -> Duration {
    let started = Instant::now();
    change();
    while !status(addr, host).is_some_and(&done) {
        assert!(started.elapsed() < CHANGE_DEADLINE, "{host} did not converge");
    }
    started.elapsed()
}

fn wait_for(addr: SocketAddr, host: &str, done: impl Fn(u16) -> bool) {
    let started = Instant::now();
    while !status(addr, host).is_some_and(&done) {
        assert!(started.elapsed() < CHANGE_DEADLINE, "{host} did not settle");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn admin_get(addr: SocketAddr, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n").as_bytes()).ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    Some(text)
}

/// The CPU histogram's (sum, count, buckets by bound).
fn cpu_histogram(admin: SocketAddr) -> (f64, f64, Vec<(f64, f64)>) {
    let text = admin_get(admin, "/metrics").unwrap_or_default();
    let mut sum = 0.0;
    let mut count = 0.0;
    let mut buckets = Vec::new();
    for line in text.lines() {
        let Some((series, value)) = line.rsplit_once(' ') else { continue };
        let value: f64 = value.parse().unwrap_or(0.0);
        if series == "ingressd_cache_change_cpu_seconds_sum" {
            sum = value;
        } else if series == "ingressd_cache_change_cpu_seconds_count" {
            count = value;
        } else if let Some(bound) = series.strip_prefix("ingressd_cache_change_cpu_seconds_bucket{le=\"") {
            let bound = bound.trim_end_matches("\"}");
            buckets.push((bound.parse().unwrap_or(f64::INFINITY), value));
        }
    }
    (sum, count, buckets)
}

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: f64 = status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.split_whitespace().next()?.parse().ok()).unwrap_or(0.0);
    kib / 1024.0
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

struct Ingressd(Child);

impl Drop for Ingressd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() {
    let ingresses = env_number("INGRESSES", 10_000);
    let changes = env_number("CHANGES", 50);
    let base_port = env_number("BASE_PORT", 21_000) as u16;
    let binary = std::env::var("INGRESSD").unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/target/release/ingressd").to_string());
    let (http, admin) = (SocketAddr::from(([127, 0, 0, 1], base_port)), SocketAddr::from(([127, 0, 0, 1], base_port + 2)));
    let backend_port = base_port + 3;
    start_backend(backend_port);

    let key = rcgen::KeyPair::generate().expect("key");
    let issued = rcgen::CertificateParams::new(vec!["*.example.com".to_string()]).expect("params").self_signed(&key).expect("cert");
    let cert = (issued.pem(), key.serialize_pem());
    let renewed_key = rcgen::KeyPair::generate().expect("key");
    let renewed = rcgen::CertificateParams::new(vec!["*.example.com".to_string()]).expect("params").self_signed(&renewed_key).expect("cert");
    let renewed = (renewed.pem(), renewed_key.serialize_pem());
    let mut objects = Vec::with_capacity(ingresses * 3 + ingresses / 10);
    let all_endpoints = ["127.0.0.1", "127.0.0.2", "127.0.0.3"];
    for i in 0..ingresses {
        let name = format!("app{i}");
        objects.push(ingress(i, &name, &format!("{name}.example.com"), &name));
        objects.push(service(i, "http"));
        objects.push(slice(i, &all_endpoints, backend_port));
        if has_tls(i) {
            objects.push(secret(i, &name, &cert, 0));
        }
    }
    let total_objects = objects.len();
    let api = FakeApi::start(Options { tls: false, objects, history: 100_000, ..Options::default() }).expect("fake API");

    let started = Instant::now();
    let child = Command::new(&binary)
        .args(["--apiserver", &api.url(), "--token-file", "/nonexistent", "--ca-file", "/nonexistent"])
        .args(["--http-addr", &http.to_string(), "--https-addr", &format!("127.0.0.1:{}", base_port + 1), "--admin-addr", &admin.to_string()])
        .args(["--access-log", "off", "--log-level", "warn"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {binary}: {e}"));
    let ingressd = Ingressd(child);
    while !admin_get(admin, "/readyz").is_some_and(|r| r.starts_with("HTTP/1.1 200")) {
        assert!(started.elapsed() < Duration::from_secs(300), "ingressd never became ready");
        std::thread::sleep(Duration::from_millis(10));
    }
    let ready = started.elapsed();
    wait_for(http, &format!("app{}.example.com", ingresses - 1), |s| s == 200);
    std::thread::sleep(Duration::from_secs(2));
    let rss = rss_mib(ingressd.0.id());
    println!("{ingresses} Ingresses ({total_objects} objects): start -> ready {:.2} s, RSS after sync {rss:.1} MiB", ready.as_secs_f64());
    if changes == 0 {
        return;
    }
    let changes = changes.min(ingresses / 5);

    type Change<'a> = (&'a str, Box<dyn Fn(usize) -> Duration + 'a>);
    let kinds: Vec<Change<'_>> = vec![
        (
            "Ingress create -> routable",
            Box::new(|k| {
                let host = format!("new{k}.example.com");
                timed(http, &host, || drop(api.create(ingress(k, &format!("new{k}"), &host, &format!("app{k}")))), |s| s == 200)
            }),
        ),
        (
            "Ingress delete -> 404",
            Box::new(|k| timed(http, &format!("new{k}.example.com"), || { api.delete("networking.k8s.io/v1", "Ingress", &namespace(k), &format!("new{k}")); }, |s| s == 404)),
        ),
        (
            "Ingress update -> new backend",
            Box::new(|k| {
                let i = changes + k;
                timed(http, &format!("app{i}.example.com"), || drop(api.apply(ingress(i, &format!("app{i}"), &format!("app{i}.example.com"), "missing"))), |s| s == 503)
            }),
        ),
        (
            "endpoint added -> used",
            Box::new(|k| {
                let i = 2 * changes + k;
                let host = format!("app{i}.example.com");
                api.apply(slice(i, &[], backend_port));
                wait_for(http, &host, |s| s == 503);
                timed(http, &host, || drop(api.apply(slice(i, &["127.0.0.1"], backend_port))), |s| s == 200)
            }),
        ),
        (
            "Service port renamed -> 503",
            Box::new(|k| {
                let i = 3 * changes + k;
                timed(http, &format!("app{i}.example.com"), || drop(api.apply(service(i, "renamed"))), |s| s == 503)
            }),
        ),
    ];
    println!("{:<32} {:>9} {:>9} {:>14} {:>14}", "change", "p50 ms", "p99 ms", "CPU/change ms", "CPU p99 <= ms");
    for (label, change) in &kinds {
        let before = cpu_histogram(admin);
        let mut latencies: Vec<Duration> = (0..changes).map(change).collect();
        let after = cpu_histogram(admin);
        latencies.sort();
        report(label, &latencies, &before, &after);
    }
    // A Secret change has no effect on routing to poll for: its cost only.
    // First a label change (same tls.crt/tls.key), then a renewal (a new
    // certificate and key, which must be parsed), each on its own Secrets.
    let tls_index = |k: usize| (0..ingresses).filter(|i| has_tls(*i)).nth(k % (ingresses / 10).max(1)).unwrap_or(0);
    for (label, offset, certificate) in [("Secret label update (CPU only)", 0, &cert), ("Secret renewal (CPU only)", changes, &renewed)] {
        let before = cpu_histogram(admin);
        for k in 0..changes {
            let i = tls_index(offset + k);
            api.apply(secret(i, &format!("app{i}"), certificate, k + 1));
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(200));
        report(label, &[], &before, &cpu_histogram(admin));
    }
    drop(ingressd);
}

fn report(label: &str, latencies: &[Duration], before: &(f64, f64, Vec<(f64, f64)>), after: &(f64, f64, Vec<(f64, f64)>)) {
    let batches = after.1 - before.1;
    let cpu_mean = if batches > 0.0 { (after.0 - before.0) / batches * 1e3 } else { 0.0 };
    let cpu_p99 = after
        .2
        .iter()
        .zip(&before.2)
        .find(|((_, a), (_, b))| batches > 0.0 && (a - b) >= 0.99 * batches)
        .map(|((bound, _), _)| bound * 1e3)
        .unwrap_or(f64::NAN);
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let (p50, p99) = if latencies.is_empty() { (f64::NAN, f64::NAN) } else { (ms(percentile(latencies, 0.5)), ms(percentile(latencies, 0.99))) };
    println!("{label:<32} {p50:>9.2} {p99:>9.2} {cpu_mean:>14.3} {cpu_p99:>14.3}");
}
