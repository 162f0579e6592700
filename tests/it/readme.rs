//! The README is part of the contract: its first commands exist, CI runs its
//! test command, and it documents every flag ingressd accepts.

use std::path::Path;

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn the_first_two_commands_are_the_demo_and_the_tests() {
    let readme = read("README.md");
    let commands: Vec<&str> = readme
        .lines()
        .skip_while(|l| !l.starts_with("```"))
        .skip(1)
        .take_while(|l| !l.starts_with("```"))
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .collect();
    assert_eq!(commands, ["bash scripts/demo.sh", "bash scripts/test.sh"]);
    for script in ["scripts/demo.sh", "scripts/test.sh"] {
        assert!(Path::new(env!("CARGO_MANIFEST_DIR")).join(script).is_file(), "{script} exists");
    }
    assert!(read(".ci/run").lines().any(|l| l.trim() == "bash scripts/test.sh"), "CI runs the README's test command");
}

#[test]
fn every_flag_is_documented() {
    let readme = read("README.md");
    for name in ingressd::config::Config::flag_names() {
        assert!(readme.contains(&format!("--{name}")), "README does not mention --{name}");
    }
}
