//! The watch stream decoder against arbitrary bytes: any chunking of any
//! input must split into the same lines, and decoding a line must return an
//! event or an error, never panic.
//!
//! Run from `fuzz/` with `cargo +nightly fuzz run watch_line corpus/watch_line seeds/watch_line`.

#![no_main]

use ingressd::kube::watch_line::{decode_event, LineSplitter};
use ingressd::kube::Kind;
use ingressd::status::addresses::PODS;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, body)) = data.split_first() else {
        return;
    };
    let mut whole = LineSplitter::new(4096);
    whole.push(body);
    let mut chunked = LineSplitter::new(4096);
    for chunk in body.chunks(usize::from(cut).max(1)) {
        chunked.push(chunk);
    }
    loop {
        let (a, b) = (whole.next_line(), chunked.next_line());
        assert_eq!(a.is_some(), b.is_some(), "chunking changed the number of lines");
        match (a, b) {
            (Some(Ok(a)), Some(Ok(b))) => {
                assert_eq!(a, b, "chunking changed a line");
                for kind in Kind::ALL {
                    let _ = decode_event(kind.resource(), &a);
                }
                let _ = decode_event(&PODS, &a);
            }
            (None, None) => break,
            _ => {}
        }
    }
});
