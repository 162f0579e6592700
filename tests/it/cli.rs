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

#[test]
fn a_ca_file_without_a_certificate_is_a_startup_error() {
    let dir = std::env::temp_dir().join(format!("ingressd-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let ca = dir.join("ca.crt");
    std::fs::write(&ca, "not a certificate\n").expect("ca");
    let out = ingressd(&[
        "--apiserver", "https://127.0.0.1:1", "--ca-file", &ca.display().to_string(),
        "--http-addr", "127.0.0.1:0", "--https-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0",
    ]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).to_lowercase().contains("certificate"), "{}", String::from_utf8_lossy(&out.stderr));
}
