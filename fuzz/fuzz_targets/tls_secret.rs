//! The decoders a TLS Secret goes through, against arbitrary input: base64,
//! PEM certificate chains and keys, and the DER walk to notAfter. Each must
//! return a value or an error, never panic.
//!
//! Run from `fuzz/` with `cargo +nightly fuzz run tls_secret corpus/tls_secret seeds/tls_secret`.

#![no_main]

use ingressd::base64;
use ingressd::tls::{certs, der};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = base64::decode(text);
    }
    let _ = der::not_after(data);
    let _ = certs::parse_chain(data);
    let _ = certs::parse_key(data);
});
