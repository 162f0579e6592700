//! Regex paths and rewrite templates against arbitrary input.
//!
//! Input `PATTERN\nTARGET\nPATH[?QUERY]`: the pattern compiles as a regex
//! path or is refused (never a panic, never an unanchored match); a target
//! that validates expands into an absolute path that is safe in a request
//! line; and the same pattern and target on a `use-regex` Ingress compile
//! into a table whose lookup and rewrite agree with the pieces.
//!
//! Run from `fuzz/` with `cargo +nightly fuzz run regex_rewrite corpus/regex_rewrite seeds/regex_rewrite`.

#![no_main]

use ingressd::annotations::rewrite::RewriteTarget;
use ingressd::kube::objects::Ingress;
use ingressd::kube::Object;
use ingressd::routes::{compile, compile_path_regex, RouteConfig};
use ingressd::store::Snapshot;
use libfuzzer_sys::fuzz_target;
use serde_json::json;

fn safe_in_request_line(text: &str) -> bool {
    !text.bytes().any(|b| b.is_ascii_control() || b == b' ' || b == b'#')
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut lines = text.splitn(3, '\n');
    let (Some(pattern), Some(target), Some(request)) = (lines.next(), lines.next(), lines.next()) else { return };
    let (path, query) = match request.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (request, None),
    };
    let target = RewriteTarget::parse(target).ok();
    if let Ok(regex) = compile_path_regex(pattern) {
        if let Some(found) = regex.find(path) {
            assert_eq!(found.start(), 0, "regex paths are anchored at the start");
        }
        if let (Some(captures), Some(target)) = (regex.captures(path), &target) {
            let rewritten = target.expand(&captures, query);
            assert!(rewritten.starts_with('/'), "{rewritten:?}");
            if safe_in_request_line(request) {
                assert!(safe_in_request_line(&rewritten), "{rewritten:?}");
            }
        }
    }
    if let Some(target) = &target {
        let expanded = target.expand_with(|group| if group % 2 == 0 { path } else { "" }, query);
        assert!(expanded.starts_with('/'));
    }

    let mut annotations = json!({"nginx.ingress.kubernetes.io/use-regex": "true"});
    if let Some(target) = &target {
        annotations["nginx.ingress.kubernetes.io/rewrite-target"] = json!(target.as_str());
    }
    let ingress: Result<Ingress, _> = serde_json::from_value(json!({
        "metadata": {"namespace": "ns", "name": "fuzz", "annotations": annotations},
        "spec": {"ingressClassName": "ingressd", "rules": [{"host": "r.test", "http": {"paths": [
            {"path": pattern, "pathType": "ImplementationSpecific", "backend": {"service": {"name": "svc", "port": {"number": 80}}}}
        ]}}]}
    }));
    let Ok(ingress) = ingress else { return };
    let mut snapshot = Snapshot::default();
    snapshot.insert(Object::Ingress(ingress));
    let table = compile(&snapshot, &RouteConfig { ingress_class: "ingressd".into(), ..RouteConfig::default() });
    if let Some(route) = table.lookup("r.test", request) {
        assert_eq!(route.path, if pattern.is_empty() { "/" } else { pattern });
        if let Some(rewrite) = &route.rewrite {
            assert!(rewrite.apply(path, query).is_some(), "a routed path matches its own pattern");
        }
    }
});
