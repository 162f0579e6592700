//! The balancing and backend-TLS annotations against arbitrary values: the
//! parsers never panic, an accepted `upstream-hash-by` template always holds
//! a variable (a constant key would send everything to one endpoint), and a
//! `proxy-next-upstream-tries` never exceeds its limit.
//!
//! Run from `fuzz/` with `cargo +nightly fuzz run balance_annotations corpus/balance_annotations seeds/balance_annotations`.

#![no_main]

use ingressd::annotations::backend_tls::BackendProtocol;
use ingressd::annotations::balance::{parse_hash_key, Balance, HashPart, MAX_TRIES_LIMIT};
use ingressd::kube::objects::StringMap;
use libfuzzer_sys::fuzz_target;

#[path = "../annotation_names.rs"]
pub mod annotation_names;

use annotation_names::BALANCE as NAMES;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(key) = parse_hash_key(text) {
        assert!(key.parts.iter().any(|p| !matches!(p, HashPart::Literal(_))), "{text:?}");
    }
    let mut annotations = StringMap::default();
    for (i, value) in text.split('\u{0}').enumerate() {
        annotations.insert(format!("nginx.ingress.kubernetes.io/{}", NAMES[i % NAMES.len()]), value);
    }
    let mut problems = Vec::new();
    if let Some(balance) = Balance::from_annotations(&annotations, &mut problems) {
        assert!(balance.tries.is_none_or(|t| (1..=MAX_TRIES_LIMIT).contains(&t)));
    }
    let _ = BackendProtocol::from_annotations(&annotations, &mut problems);
});
