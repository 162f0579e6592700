//! A loopback port that stays free while a test needs it to (shared with
//! the fake API server's own tests, so it lives in that crate).
// Not every test binary that includes `support` picks a port.
#![allow(unused_imports)]

pub use fakeapi::ports::unused_port;
