//! The PROXY protocol decoder against arbitrary connection starts: it never
//! panics, never claims a header longer than the bytes it saw, always asks
//! for more than it has, and a header decodes the same however it is cut.
//!
//! Run from `fuzz/` with `cargo +nightly fuzz run proxy_protocol corpus/proxy_protocol seeds/proxy_protocol`.

#![no_main]

use ingressd::proxy_protocol::{decode, Decoded};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match decode(data) {
        Ok(Decoded::Header { length, client }) => {
            assert!(length <= data.len());
            assert_eq!(decode(&data[..length]), Ok(Decoded::Header { length, client }), "the bytes behind a header do not change it");
            for cut in 0..length {
                match decode(&data[..cut]) {
                    Ok(Decoded::NeedAtLeast(n)) => assert!(n > cut && n <= length, "cut {cut} asked for {n} of {length}"),
                    other => panic!("a prefix of a valid header decoded as {other:?}"),
                }
            }
        }
        Ok(Decoded::NeedAtLeast(n)) => assert!(n > data.len()),
        Err(_) => {}
    }
});
