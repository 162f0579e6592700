//! The `fake-apiserver` binary as the demo scripts run it.

use crate::common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use fakeapi::certs;
use serde_json::{json, Value};

const BINARY: &str = env!("CARGO_BIN_EXE_fake-apiserver");

/// A fresh directory per test, removed at the end.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let dir = std::env::temp_dir().join(format!("fakeapi-{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Kills the server however the test ends.
struct Server {
    child: Child,
    url: String,
    stdout_line: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn addr(&self) -> SocketAddr {
        self.url.split("://").nth(1).unwrap().parse().unwrap()
    }
}

fn spawn(args: &[&str], ready_file: &Path) -> Server {
    let mut child = Command::new(BINARY).args(args).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().expect("spawn fake-apiserver");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut stdout_line = String::new();
    let mut server = Server { child, url: String::new(), stdout_line: String::new() };
    assert!(
        eventually(Duration::from_secs(10), || std::fs::read_to_string(ready_file).is_ok_and(|text| text.ends_with('\n'))),
        "--ready-file was not written"
    );
    server.url = std::fs::read_to_string(ready_file).unwrap().trim().to_string();
    stdout.read_line(&mut stdout_line).unwrap();
    server.stdout_line = stdout_line.trim().to_string();
    server
}

#[test]
fn starts_from_an_objects_file_writes_the_ready_file_and_reuses_its_ca() {
    let dir = TempDir::new("serve");
    let objects = json!({"kind": "List", "apiVersion": "v1", "items": [
        ingress("shop", "web", json!({"app": "web"})),
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}},
    ]});
    std::fs::write(dir.path("objects.json"), objects.to_string()).unwrap();
    std::fs::write(dir.path("tokens"), format!("# comment\n{TOKEN}\n\n")).unwrap();
    let path = |f: &str| dir.path(f).to_str().unwrap().to_string();
    let args = [
        "--objects", &path("objects.json"), "--token-file", &path("tokens"), "--ca-cert", &path("ca.crt"), "--ca-key", &path("ca.key"),
        "--ca-out", &path("ca-out.pem"), "--ready-file", &path("ready"), "--bookmark-interval", "0.2", "--history", "50",
    ];
    let first = spawn(&args, &dir.path("ready"));
    assert!(first.url.starts_with("https://127.0.0.1:"), "{}", first.url);
    assert_eq!(first.stdout_line, format!("listening on {}", first.url));
    let ca_pem = std::fs::read_to_string(dir.path("ca.crt")).unwrap();
    assert_eq!(std::fs::read_to_string(dir.path("ca-out.pem")).unwrap(), ca_pem);

    let client = Client::at(first.addr(), Some(&ca_pem));
    let ingresses = client.get("/apis/networking.k8s.io/v1/ingresses").json();
    assert_eq!(names(&ingresses), ["web"]);
    assert_eq!(ingresses["items"][0]["metadata"]["namespace"], "shop");
    let services = client.get("/api/v1/namespaces/default/services").json();
    assert_eq!(names(&services), ["web"], "namespace defaults to default");
    let first_rv: u64 = services["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap();
    let mut anonymous = Client::at(first.addr(), Some(&ca_pem));
    anonymous.token = None;
    assert_eq!(anonymous.get("/api/v1/services").status, 401);
    drop(first);

    std::fs::remove_file(dir.path("ready")).unwrap();
    let second = spawn(&args, &dir.path("ready"));
    assert_eq!(std::fs::read_to_string(dir.path("ca.crt")).unwrap(), ca_pem, "the CA files are reused, not rewritten");
    let list = Client::at(second.addr(), Some(&ca_pem)).get("/api/v1/services").json();
    let second_rv: u64 = list["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap();
    assert!(second_rv > first_rv, "a restarted server's versions stay above the old ones");
}

#[test]
fn plain_http_on_a_chosen_address() {
    let dir = TempDir::new("plain");
    let addr = fakeapi::ports::unused_port().to_string();
    let server = spawn(&["--plain-http", "--addr", &addr, "--ready-file", dir.path("ready").to_str().unwrap()], &dir.path("ready"));
    assert_eq!(server.url, format!("http://{addr}"));
    let mut client = Client::at(server.addr(), None);
    client.token = None;
    assert_eq!(client.get("/apis/networking.k8s.io/v1/ingresses").status, 200);
    let status = Command::new(BINARY).arg("--bogus").output().unwrap();
    assert_eq!(status.status.code(), Some(2));
}

#[test]
fn gen_cert_and_secret_subcommands() {
    let dir = TempDir::new("certs");
    let path = |f: &str| dir.path(f).to_str().unwrap().to_string();
    let ca = certs::Ca::new("script CA");
    std::fs::write(dir.path("ca.crt"), ca.cert_pem()).unwrap();
    std::fs::write(dir.path("ca.key"), ca.key_pem()).unwrap();
    let run = |args: &[&str]| {
        let output = Command::new(BINARY).args(args).output().unwrap();
        assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap()
    };
    run(&["gen-cert", "--cn", "shop", "--san", "shop.example", "--san", "*.shop.example", "--cert-out", &path("leaf.crt"), "--key-out", &path("leaf.key"), "--ca-cert", &path("ca.crt"), "--ca-key", &path("ca.key")]);
    let leaf = std::fs::read_to_string(dir.path("leaf.crt")).unwrap();
    assert_eq!(leaf.matches("BEGIN CERTIFICATE").count(), 2);
    assert!(leaf.ends_with(&ca.cert_pem()));
    run(&["gen-cert", "--cn", "self", "--san", "127.0.0.1", "--cert-out", &path("self.crt"), "--key-out", &path("self.key")]);
    assert_eq!(std::fs::read_to_string(dir.path("self.crt")).unwrap().matches("BEGIN CERTIFICATE").count(), 1);

    let secret: Value = serde_json::from_str(&run(&["secret", "--namespace", "shop", "--name", "shop-tls", "--cert", &path("leaf.crt"), "--key", &path("leaf.key")])).unwrap();
    assert_eq!(secret["type"], "kubernetes.io/tls");
    assert_eq!(secret["metadata"], json!({"name": "shop-tls", "namespace": "shop"}));
    let key = std::fs::read_to_string(dir.path("leaf.key")).unwrap();
    assert_eq!(secret["data"]["tls.key"], certs::base64(key.as_bytes()));

    // The printed Secret is an object the API accepts as is.
    let api = start();
    api.create(secret.clone());
    assert_eq!(api.get("v1", "Secret", "shop", "shop-tls").unwrap()["data"], secret["data"]);

    let missing = Command::new(BINARY).args(["gen-cert", "--cn", "x", "--san", "x", "--cert-out", &path("a"), "--key-out", &path("b"), "--ca-cert", &path("nope.crt"), "--ca-key", &path("nope.key")]).output().unwrap();
    assert!(!missing.status.success(), "gen-cert must not invent a CA");
}
