//! Header lines against arbitrary input, both ways: lines a caller pushes
//! (a name and a value split from the input) and a response head an
//! upstream sends, read by a call that sent header lines. Neither may panic;
//! a pushed line is one wire line that no byte can end early or split; a
//! response's lines are what a caller could have pushed (token names in
//! lower case, values `HeaderValue` accepts).
//!
//! Run from `fuzz/` with `cargo +nightly fuzz run header_lines corpus/header_lines seeds/header_lines`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use ureq_proto::client::{Call, HeaderLines, SendRequestResult};
use ureq_proto::http::Request;

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|&b| b == b'|').unwrap_or(data.len());
    let (name, value) = (&data[..split], data.get(split + 1..).unwrap_or_default());
    let mut pushed = HeaderLines::default();
    if pushed.push(name, value).is_ok() {
        let (line_name, line_value) = pushed.iter().next().expect("one line");
        assert!(line_name.eq_ignore_ascii_case(name) && line_value == value);
        assert!(!line_value.contains(&b'\r') && !line_value.contains(&b'\n'));
    }

    let Ok(request) = Request::get("http://10.0.0.1/").body(()) else { return };
    let Ok(mut call) = Call::new(request) else { return };
    let mut lines = HeaderLines::default();
    if lines.push(b"host", b"a").is_err() {
        return;
    }
    call.set_header_lines(lines);
    let mut call = call.proceed();
    let mut output = [0; 256];
    if call.write(&mut output).is_err() {
        return;
    }
    let Ok(Some(SendRequestResult::RecvResponse(mut call))) = call.proceed() else { return };
    if let Ok((_, Some(_))) = call.try_response(data, false) {
        let lines = call.take_header_lines().expect("a call with lines gets lines");
        let mut again = HeaderLines::default();
        for (name, value) in lines.iter() {
            assert!(name.iter().all(|b| !b.is_ascii_uppercase()));
            assert!(again.push(name, value).is_ok(), "a parsed line could be pushed as it is");
        }
    }
});
