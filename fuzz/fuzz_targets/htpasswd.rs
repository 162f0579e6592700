//! The htpasswd parser and the hash checks against arbitrary Secret text:
//! each line parses to a user or a problem, and each hash it accepts
//! verifies a password without panicking. The first line of the input is
//! the password tried against every user.
//!
//! Run from `fuzz/` with `cargo +nightly fuzz run htpasswd corpus/htpasswd seeds/htpasswd`.

#![no_main]

use ingressd::annotations::htpasswd;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (password, file) = text.split_once('\n').unwrap_or(("", &text));
    let (credentials, problems) = htpasswd::parse(file);
    assert!(problems.iter().all(|p| p.line >= 1));
    for line in file.lines().filter(|line| !line.starts_with('#')) {
        if let Ok((user, hash)) = htpasswd::parse_line(line) {
            assert!(credentials.get(user).is_some());
            // bcrypt at its highest costs would stall the fuzzer, not fail it.
            if !matches!(hash, htpasswd::Hash::Bcrypt(_)) {
                let _ = hash.verify(password.as_bytes());
            }
        }
    }
    let _ = htpasswd::md5_crypt(password.as_bytes(), b"$apr1$", file.as_bytes());
});
