//! The external-auth and limit annotations against arbitrary values: reading
//! them never panics, expanding nginx variables never panics, and whatever
//! `auth-url` says, a policy asking for auth either checks or fails closed.
//!
//! Run from `fuzz/` with `cargo +nightly fuzz run auth_limits corpus/auth_limits seeds/auth_limits`.

#![no_main]

use ingressd::annotations::external_auth::{signin_location, ExternalAuth, Variables};
use ingressd::annotations::policy::Policy;
use ingressd::kube::objects::StringMap;
use libfuzzer_sys::fuzz_target;

#[path = "../annotation_names.rs"]
pub mod annotation_names;

use annotation_names::AUTH_LIMITS as NAMES;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let values: Vec<&str> = text.split('\0').collect();
    let annotations: StringMap =
        NAMES.iter().zip(values.iter()).map(|(name, value)| (format!("nginx.ingress.kubernetes.io/{name}"), value.to_string())).collect();
    let (policy, _problems) = Policy::from_annotations(&annotations);
    if annotations.get("nginx.ingress.kubernetes.io/auth-url").is_some() {
        assert!(policy.as_ref().is_some_and(|p| p.external_auth.is_some()), "auth-url set but no check and no refusal");
    }
    let headers = [("Cookie", values.get(1).copied().unwrap_or("")), ("Authorization", values.get(2).copied().unwrap_or(""))];
    let vars = Variables { scheme: "https", http_host: values.last().copied().unwrap_or(""), request_uri: values[0], remote_addr: "10.0.0.1", headers: &headers };
    for value in &values {
        let _ = vars.expand(value);
        let _ = signin_location(value, "rd", &vars);
    }
    if let Some(ExternalAuth::Check(check)) = policy.and_then(|p| p.external_auth) {
        let _ = vars.expand(&check.url);
    }
});
