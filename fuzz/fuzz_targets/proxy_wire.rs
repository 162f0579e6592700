//! The proxy's own parsers against arbitrary input: request targets (what a
//! client sends) and upstream response heads (what a backend sends). Each
//! must return a value or an error, never panic, and a parsed target's path
//! is what routing expects: absolute and without the query.
//!
//! Run from `fuzz/` with `cargo +nightly fuzz run proxy_wire corpus/proxy_wire seeds/proxy_wire`.

#![no_main]

use ingressd::proxy::wire::{parse_response_head, parse_target};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some(target) = parse_target(text) {
            assert!(target.path().starts_with('/'), "routing gets an absolute path");
            assert!(!target.path().contains('?'), "routing never sees the query");
        }
    }
    if let Ok(Some(head)) = parse_response_head(data) {
        assert!(head.length <= data.len());
    }
});
