//! The command line as operators meet it: usage errors exit 2 with one line,
//! `--help` lists every flag with its default, `--version` prints the version,
//! and a CA file without a certificate stops the start.

use std::process::Command;

fn ingressd(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ingressd")).args(args).output().expect("ingressd runs")
}

#[test]
fn usage_errors_exit_2_with_one_clear_line() {
    for args in [&["--no-such-flag"][..], &["--workers", "zero"], &["--http-addr"], &["--upstream-mode", "magic"]] {
        let out = ingressd(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("ingressd: "), "{stderr}");
    }
}

#[test]
fn help_and_version() {
    let help = ingressd(&["--help"]);
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    for name in ingressd::config::Config::flag_names() {
        let flag = format!("--{name}");
        let listed = text.lines().any(|l| l.split_whitespace().next() == Some(flag.as_str()) && l.contains("(default: "));
        assert!(listed, "{flag} is listed with its default");
    }
    let version = ingressd(&["--version"]);
    assert_eq!(String::from_utf8_lossy(&version.stdout).trim(), format!("ingressd {}", env!("CARGO_PKG_VERSION")));
}

/// Runs ingressd with a CA file that holds no certificate, which it refuses at start.
fn start_with_an_unparsable_ca(tag: &str) -> std::process::Output {
    let dir = std::env::temp_dir().join(format!("ingressd-cli-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let ca = dir.join("ca.crt");
    std::fs::write(&ca, "not a certificate\n").expect("ca");
    let out = ingressd(&[
        "--apiserver", "https://127.0.0.1:1", "--ca-file", &ca.display().to_string(),
        "--http-addr", "127.0.0.1:0", "--https-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0",
    ]);
    let _ = std::fs::remove_dir_all(&dir);
    out
}

#[test]
fn a_ca_file_without_a_certificate_is_a_startup_error() {
    let out = start_with_an_unparsable_ca("ca");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).to_lowercase().contains("certificate"), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Diagnostic lines start with an RFC 3339 UTC timestamp with milliseconds,
/// like the access log's.
fn is_stamped(line: &str) -> bool {
    let stamp = line.split(' ').next().unwrap_or("");
    let digits_at = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 22];
    stamp.len() == 24
        && stamp.ends_with('Z')
        && digits_at.iter().all(|&i| stamp.as_bytes()[i].is_ascii_digit())
        && [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':'), (19, b'.')].iter().all(|&(i, c)| stamp.as_bytes()[i] == c)
}

#[test]
fn a_fatal_error_is_printed_once_with_a_timestamp() {
    let out = start_with_an_unparsable_ca("fatal");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("certificate")).collect();
    assert_eq!(errors.len(), 1, "the fatal error once: {stderr}");
    for line in stderr.lines() {
        assert!(is_stamped(line), "no RFC 3339 UTC timestamp: {line:?}");
    }
}

#[test]
fn routes_help_exits_0() {
    let out = ingressd(&["routes", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("usage: ingressd routes --admin-addr IP:PORT"), "{text}");
    assert_eq!(ingressd(&["routes"]).status.code(), Some(2), "no address is still a usage error");
}

#[test]
fn help_names_the_api_server_fallback() {
    let help = String::from_utf8_lossy(&ingressd(&["--help"]).stdout).to_string();
    let line = help.lines().find(|l| l.trim_start().starts_with("--apiserver ")).expect("--apiserver line");
    assert!(line.contains("https://kubernetes.default.svc:443 when KUBERNETES_SERVICE_HOST is unset"), "{line}");
}

/// Started against an API server that refuses connections and with no token
/// file, ingressd says so at start, logs each backoff's delay, and /readyz
/// names every kind it waits for and, to a loopback client, why.
#[test]
fn an_operator_sees_the_missing_token_the_backoff_and_what_readiness_waits_for() {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    let missing = std::env::temp_dir().join(format!("ingressd-cli-no-token-{}/token", std::process::id()));
    let refused = crate::support::ports::unused_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ingressd"))
        .args([
            "--apiserver", &format!("http://{refused}"), "--token-file", &missing.display().to_string(),
            "--http-addr", "127.0.0.1:0", "--https-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0",
        ])
        .env_remove("POD_NAMESPACE")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("ingressd starts");
    let (lines, received) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    let mut admin = None;
    let (mut warned, mut backoff_logged) = (false, false);
    while !(warned && backoff_logged && admin.is_some()) {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = received.recv_timeout(left) else {
            let _ = child.kill();
            panic!("not every line came within 20 s: {seen:#?}");
        };
        assert!(is_stamped(&line), "no RFC 3339 UTC timestamp: {line:?}");
        warned |= line.contains(&format!("token file {} does not exist", missing.display()));
        // The ingress watcher records its error before it logs the backoff.
        backoff_logged |= line.contains(" ingress: retrying in ") && line.ends_with(" s");
        if let Some(addr) = line.split("admin=").nth(1).and_then(|rest| rest.split(' ').next()) {
            admin = addr.parse::<std::net::SocketAddr>().ok();
        }
        seen.push(line);
    }
    let admin = admin.expect("admin address");
    let mut client = std::net::TcpStream::connect(admin).expect("connect admin");
    client.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    client.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").expect("send");
    let mut answer = String::new();
    let read = client.read_to_string(&mut answer);
    let _ = child.kill();
    let _ = child.wait();
    read.expect("readyz answer");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("waiting for the first list of: ingress, ingressclass, service, endpointslice, secret\n"), "{answer}");
    assert!(answer.contains("ingress: list failed: "), "a loopback client gets each kind's last error: {answer}");
}
