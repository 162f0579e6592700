//! Bounded polling shared by the test binaries: a condition that never holds
//! fails the test after a set time instead of hanging the run. Not every
//! test binary polls.
#![allow(dead_code)]

use std::time::{Duration, Instant};

/// Polls `check` every 10 ms until it holds, at most `timeout`; the last
/// check runs at or after the deadline so a late success still counts.
pub fn wait_until(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
