//! The fuzz targets' seed inputs (`fuzz/seeds/TARGET/`) stay what they claim
//! to be: a seed that no longer decodes starts its fuzzer from nothing again,
//! which no fuzz run would report.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use ingressd::annotations::balance::{parse_hash_key, Balance};
use ingressd::annotations::external_auth::ExternalAuth;
use ingressd::annotations::htpasswd;
use ingressd::annotations::policy::Policy;
use ingressd::annotations::rewrite::RewriteTarget;
use ingressd::annotations::source_range::parse_list;
use ingressd::kube::objects::{Ingress, StringMap};
use ingressd::kube::watch_line::{decode_event, LineSplitter};
use ingressd::kube::{Kind, Object};
use ingressd::proxy::wire::{parse_response_head, parse_target};
use ingressd::proxy_protocol::{decode, Decoded};
use ingressd::routes::{compile, compile_path_regex, RouteConfig};
use ingressd::store::Snapshot;
use ingressd::tls::{certs, der};

#[path = "../../fuzz/annotation_names.rs"]
mod annotation_names;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// Every seed of `target`, by file name.
fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = fuzz_dir().join("seeds").join(target);
    let mut seeds: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("a directory entry").path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
            (name, std::fs::read(&path).expect("a readable seed"))
        })
        .collect();
    seeds.sort();
    assert!(!seeds.is_empty(), "fuzz/seeds/{target} holds no seed");
    seeds
}

fn text(seed: &[u8]) -> &str {
    std::str::from_utf8(seed).expect("a text seed")
}

fn annotations(names: &[&str], values: &str) -> StringMap {
    names.iter().zip(values.split('\0')).map(|(name, value)| (format!("nginx.ingress.kubernetes.io/{name}"), value.to_string())).collect()
}

#[test]
fn every_fuzz_target_has_seeds_and_every_seed_folder_a_target() {
    let names = |dir: PathBuf, suffix: &str| -> BTreeSet<String> {
        std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.strip_suffix(suffix).map(str::to_string))
            .collect()
    };
    let targets = names(fuzz_dir().join("fuzz_targets"), ".rs");
    let seeded = names(fuzz_dir().join("seeds"), "");
    assert_eq!(targets, seeded);
    for target in &targets {
        seeds(target);
    }
}

#[test]
fn proxy_protocol_seeds_are_whole_headers_with_a_request_behind() {
    for (name, seed) in seeds("proxy_protocol") {
        match decode(&seed) {
            Ok(Decoded::Header { length, .. }) => assert!(seed[length..].starts_with(b"GET "), "{name}"),
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[test]
fn watch_line_seeds_are_events_the_watchers_decode() {
    for (name, seed) in seeds("watch_line") {
        let mut lines = LineSplitter::new(4096);
        lines.push(&seed[1..]);
        let mut count = 0;
        while let Some(line) = lines.next_line() {
            let line = line.expect("a line within the limit");
            assert!(Kind::ALL.iter().any(|kind| decode_event(kind.resource(), &line).is_ok()), "{name}: {}", String::from_utf8_lossy(&line));
            count += 1;
        }
        assert!(count >= 2, "{name}: {count} lines");
    }
}

#[test]
fn tiny_http_head_seeds_are_requests() {
    for (name, seed) in seeds("tiny_http_head") {
        let script = text(&seed[1..]);
        assert!(["GET ", "POST ", "PUT "].iter().any(|m| script.starts_with(m)) && script.contains("\r\n\r\n"), "{name}");
    }
}

#[test]
fn proxy_wire_seeds_are_targets_or_response_heads() {
    for (name, seed) in seeds("proxy_wire") {
        if name.starts_with("response") {
            assert!(matches!(parse_response_head(&seed), Ok(Some(_))), "{name}");
        } else {
            assert!(parse_target(text(&seed)).is_some(), "{name}");
        }
    }
}

#[test]
fn header_lines_seeds_are_a_line_or_a_response_head() {
    for (name, seed) in seeds("header_lines") {
        if name.starts_with("response") {
            assert!(matches!(parse_response_head(&seed), Ok(Some(_))), "{name}");
        } else {
            assert!(seed.contains(&b'|'), "{name}");
        }
    }
}

#[test]
fn route_lookup_seeds_are_lookups_or_an_ingress_that_compiles() {
    for (name, seed) in seeds("route_lookup") {
        let seed = text(&seed);
        if seed.starts_with('{') {
            let ingress: Ingress = serde_json::from_str(seed).unwrap_or_else(|e| panic!("{name}: {e}"));
            let mut snapshot = Snapshot::default();
            snapshot.insert(Object::Ingress(ingress));
            let config = RouteConfig { watch_ingress_without_class: true, ..RouteConfig::default() };
            assert_eq!(compile(&snapshot, &config).len(), 2, "{name}");
        } else {
            let (host, path) = seed.split_once('\n').unwrap_or_else(|| panic!("{name}: HOST\\nPATH"));
            assert!(host.ends_with(".example.com") || host.contains(".example.com:"), "{name}");
            assert!(path.starts_with('/'), "{name}");
        }
    }
}

#[test]
fn regex_rewrite_seeds_compile_match_and_rewrite() {
    for (name, seed) in seeds("regex_rewrite") {
        let mut lines = text(&seed).splitn(3, '\n');
        let (pattern, target, path) = (lines.next().unwrap_or_default(), lines.next().unwrap_or_default(), lines.next().unwrap_or_default());
        let regex = compile_path_regex(pattern).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        let path = path.split('?').next().unwrap_or_default();
        let captures = regex.captures(path).unwrap_or_else(|| panic!("{name}: {path} does not match"));
        let target = RewriteTarget::parse(target).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert!(target.expand(&captures, None).starts_with('/'), "{name}");
    }
}

#[test]
fn htpasswd_seeds_hold_one_user_per_scheme_and_the_password_verifies() {
    for (name, seed) in seeds("htpasswd") {
        let (password, file) = text(&seed).split_once('\n').unwrap_or_else(|| panic!("{name}: PASSWORD\\nFILE"));
        let (credentials, problems) = htpasswd::parse(file);
        assert!(problems.is_empty(), "{name}: {} problems", problems.len());
        let schemes: BTreeSet<&str> = ["alice", "bob", "carol"].iter().filter_map(|user| credentials.get(user)).map(htpasswd::Hash::scheme).collect();
        assert_eq!(schemes, BTreeSet::from(["apr1", "bcrypt", "{SHA}"]), "{name}");
        for user in ["alice", "bob"] {
            assert!(credentials.get(user).is_some_and(|hash| hash.verify(password.as_bytes())), "{name}: {user}");
        }
    }
}

#[test]
fn source_range_seeds_are_accepted_lists() {
    for (name, seed) in seeds("source_range") {
        for list in text(&seed).lines() {
            assert!(parse_list(list).is_ok(), "{name}: {list}");
        }
    }
}

#[test]
fn auth_limits_seeds_configure_an_external_auth_check_without_problems() {
    for (name, seed) in seeds("auth_limits") {
        let (policy, problems) = Policy::from_annotations(&annotations(&annotation_names::AUTH_LIMITS, text(&seed)));
        assert!(problems.is_empty(), "{name}: {problems:?}");
        assert!(matches!(policy.and_then(|p| p.external_auth), Some(ExternalAuth::Check(_))), "{name}");
    }
}

#[test]
fn balance_annotations_seeds_are_accepted() {
    for (name, seed) in seeds("balance_annotations") {
        let seed = text(&seed);
        if seed.contains('\0') {
            let mut problems = Vec::new();
            assert!(Balance::from_annotations(&annotations(&annotation_names::BALANCE, seed), &mut problems).is_some(), "{name}");
            assert!(problems.is_empty(), "{name}: {problems:?}");
        } else {
            assert!(parse_hash_key(seed).is_ok(), "{name}");
        }
    }
}

#[test]
fn tls_secret_seeds_are_a_certificate_its_keys_and_their_encodings() {
    let seeds: Vec<(String, Vec<u8>)> = seeds("tls_secret");
    let seed = |file: &str| seeds.iter().find(|(name, _)| name == file).map(|(_, bytes)| bytes.as_slice()).unwrap_or_else(|| panic!("no {file}"));
    assert_eq!(certs::parse_chain(seed("cert.pem")).map(|chain| chain.len()).ok(), Some(1));
    assert!(certs::parse_key(seed("key-pkcs8.pem")).is_ok());
    assert!(certs::parse_key(seed("key-sec1.pem")).is_ok());
    assert!(der::not_after(seed("cert.der")).is_ok());
    assert_eq!(ingressd::base64::decode(text(seed("cert.pem.base64"))).ok().as_deref(), Some(seed("cert.pem")));
}
