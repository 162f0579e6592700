//! SIGTERM and SIGINT, turned into a flag the main thread polls.
//!
//! The handler only stores to an atomic (async-signal-safe); everything else
//! — failing readiness, stopping listeners, waiting for in-flight requests —
//! happens on ordinary threads. `signal(2)` is declared here rather than
//! pulling in the libc crate for one function; std already links the C
//! library it lives in.

use std::sync::atomic::{AtomicBool, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);

const SIGINT: i32 = 2;
const SIGTERM: i32 = 15;

extern "C" {
    fn signal(signum: i32, handler: extern "C" fn(i32)) -> usize;
}

extern "C" fn on_signal(_signum: i32) {
    REQUESTED.store(true, Ordering::SeqCst);
}

/// Installs the handlers; call once at start.
pub fn install() {
    // SAFETY: `on_signal` only performs an atomic store, which is
    // async-signal-safe, and has the C ABI signature signal(2) expects.
    unsafe {
        signal(SIGTERM, on_signal);
        signal(SIGINT, on_signal);
    }
}

/// True once SIGTERM or SIGINT arrived.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

#[cfg(test)]
mod tests {
    use super::*;

    extern "C" {
        fn raise(signum: i32) -> i32;
    }

    #[test]
    fn sigterm_sets_the_flag_instead_of_killing_the_process() {
        install();
        // SAFETY: raising a signal whose handler was just installed.
        assert_eq!(unsafe { raise(SIGTERM) }, 0);
        assert!(requested());
    }
}
