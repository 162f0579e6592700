//! The shipped DaemonSet binds ports 80 and 443 under Kubernetes' real
//! capability rules, reproduced with setpriv from the manifests themselves:
//! the pod's user and group (and that group as its only supplementary one),
//! a bounding set of exactly the capabilities it adds after dropping ALL, no
//! inheritable or ambient capabilities (Kubernetes has no field for ambient
//! ones, and containerd leaves inheritable empty), and no_new_privs when
//! allowPrivilegeEscalation is false. The binary carries the file capability
//! Dockerfile.scratch gives it.
//!
//! The same rules refuse the port to the binary without its file capability
//! (the bug of a plain NET_BIND_SERVICE in capabilities.add), and refuse to
//! execute it when the bounding set lacks the capability.
//!
//! Needs root (to switch users and set file capabilities) and setpriv and
//! setcap (util-linux, libcap2-bin); without root the test says so and passes.

use crate::support::yaml;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const PATIENCE: Duration = Duration::from_secs(20);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// What the manifests ask of the container runtime.
#[derive(Debug, Clone)]
struct Rules {
    user: String,
    group: String,
    supplementary: Vec<String>,
    bounding: Vec<String>,
    no_new_privs: bool,
}

fn daemonset_rules() -> Rules {
    let text = std::fs::read_to_string(root().join("manifests/07-daemonset.yaml")).expect("07-daemonset.yaml");
    let daemonset = yaml::parse(&text).expect("yaml").pop().expect("one document");
    let pod = daemonset.at(&["spec", "template", "spec"]).expect("pod spec");
    let container = &pod.list_at(&["containers"])[0];
    let security = container.at(&["securityContext"]).expect("container securityContext");
    let either = |key: &str| security.str_at(&[key]).or(pod.str_at(&["securityContext", key])).map(str::to_string);
    let caps = |key: &str| -> Vec<String> {
        security.list_at(&["capabilities", key]).iter().filter_map(yaml::Value::as_str).map(str::to_string).collect()
    };
    assert_eq!(caps("drop"), ["ALL"], "these rules assume every default capability is dropped");
    let user = either("runAsUser").expect("runAsUser");
    let group = either("runAsGroup").expect("runAsGroup");
    let mut supplementary = vec![group.clone()];
    supplementary.extend(pod.list_at(&["securityContext", "supplementalGroups"]).iter().filter_map(yaml::Value::as_str).map(str::to_string));
    Rules {
        user,
        group,
        supplementary,
        bounding: caps("add").iter().map(|c| c.to_ascii_lowercase()).collect(),
        no_new_privs: security.str_at(&["allowPrivilegeEscalation"]) != Some("true"),
    }
}

/// The file capability the image's binary gets: setcap's argument in Dockerfile.scratch.
fn file_capability() -> String {
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile.scratch")).expect("Dockerfile.scratch");
    let line = dockerfile.lines().find(|l| l.starts_with("RUN setcap ")).expect("a RUN setcap line");
    line.split_whitespace().nth(2).expect("setcap's capability argument").to_string()
}

fn setpriv_args(rules: &Rules) -> Vec<String> {
    let mut bounding = String::from("-all");
    for cap in &rules.bounding {
        bounding.push_str(&format!(",+{cap}"));
    }
    let mut args = vec![
        format!("--reuid={}", rules.user),
        format!("--regid={}", rules.group),
        format!("--groups={}", rules.supplementary.join(",")),
        format!("--bounding-set={bounding}"),
        "--inh-caps=-all".to_string(),
        "--ambient-caps=-all".to_string(),
    ];
    if rules.no_new_privs {
        args.push("--no-new-privs".to_string());
    }
    args
}

/// A port below 1024 nothing listens on now.
fn free_low_port() -> u16 {
    (600..1000).find(|port| TcpListener::bind(("127.0.0.1", *port)).is_ok()).expect("a free port below 1024")
}

#[derive(Debug, PartialEq)]
enum Start {
    Listening,
    Failed(String),
}

/// Runs `binary` under setpriv with `rules`, HTTP on a low port; reports
/// whether it got to listening or how it failed.
fn start_under(rules: &Rules, binary: &Path) -> Start {
    let port = free_low_port();
    let http = SocketAddr::from(([127, 0, 0, 1], port));
    let mut child = Command::new("setpriv")
        .args(setpriv_args(rules))
        .arg(binary)
        .args(["--http-addr", &http.to_string(), "--https-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"])
        .args(["--apiserver", "http://127.0.0.1:1", "--token-file", "/nonexistent/token"])
        .env_remove("POD_NAMESPACE")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("setpriv runs");
    let (lines, received) = mpsc::channel();
    let stderr = child.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + PATIENCE;
    let mut seen = Vec::new();
    let outcome = loop {
        match received.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) if line.contains(&format!("listening: http={http} ")) => break Start::Listening,
            Ok(line) => seen.push(line),
            // The channel closes when the process is gone.
            Err(mpsc::RecvTimeoutError::Disconnected) => break Start::Failed(seen.join("\n")),
            Err(mpsc::RecvTimeoutError::Timeout) => break Start::Failed(format!("neither listening nor gone within {PATIENCE:?}: {seen:?}")),
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    outcome
}

/// Copies of the test's ingressd, one with the image's file capability, in a
/// directory the pod's user may enter.
struct Binaries {
    dir: PathBuf,
    plain: PathBuf,
    capable: PathBuf,
}

impl Binaries {
    fn new() -> Binaries {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("ingressd-low-ports-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let plain = dir.join("ingressd-plain");
        let capable = dir.join("ingressd");
        for path in [&plain, &capable] {
            std::fs::copy(env!("CARGO_BIN_EXE_ingressd"), path).expect("copy ingressd");
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        let status = Command::new("setcap").arg(file_capability()).arg(&capable).status().expect("setcap runs (apt-get install libcap2-bin)");
        assert!(status.success(), "setcap failed");
        Binaries { dir, plain, capable }
    }
}

impl Drop for Binaries {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn running_as_root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
}

#[test]
fn the_manifests_rules_bind_a_low_port_only_with_the_file_capability() {
    if !running_as_root() {
        eprintln!("low_ports: not root, so setpriv cannot switch users: nothing checked");
        return;
    }
    let unprivileged_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start").unwrap_or_default();
    assert_eq!(unprivileged_start.trim(), "1024", "ports below 1024 must need NET_BIND_SERVICE here, or this proves nothing");
    let rules = daemonset_rules();
    assert_eq!(rules.bounding, ["net_bind_service"], "{rules:?}");
    let binaries = Binaries::new();

    assert_eq!(start_under(&rules, &binaries.capable), Start::Listening, "the shipped rules with the image's binary: {rules:?}");

    match start_under(&rules, &binaries.plain) {
        Start::Failed(log) => assert!(log.contains("Permission denied"), "{log}"),
        Start::Listening => panic!("the binary without a file capability bound a low port: the rules are not reproduced"),
    }

    let without_the_capability = Rules { bounding: Vec::new(), ..rules.clone() };
    match start_under(&without_the_capability, &binaries.capable) {
        Start::Failed(log) => assert!(log.contains("Operation not permitted"), "exec refused: {log}"),
        Start::Listening => panic!("the file capability worked outside the bounding set"),
    }
}
