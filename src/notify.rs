//! "Something changed": a version counter under a mutex with a condvar.
//! A waiter remembers the version it acted on and sleeps until it moves (or
//! until its own deadline), instead of waking on a timer to compare.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

#[derive(Debug, Default)]
pub struct Notify {
    version: Mutex<u64>,
    changed: Condvar,
}

impl Notify {
    fn lock(&self) -> MutexGuard<'_, u64> {
        // A plain counter, valid after a panic elsewhere.
        self.version.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Wakes every waiter.
    pub fn notify(&self) {
        *self.lock() += 1;
        self.changed.notify_all();
    }

    pub fn version(&self) -> u64 {
        *self.lock()
    }

    /// Waits until the version is no longer `seen`, at most `timeout`;
    /// returns the version then.
    pub fn wait_past(&self, seen: u64, timeout: Duration) -> u64 {
        let version = self.lock();
        let (version, _) = self.changed.wait_timeout_while(version, timeout, |v| *v == seen).unwrap_or_else(PoisonError::into_inner);
        *version
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;
    use std::sync::Arc;

    #[test]
    fn a_waiter_wakes_on_notify_and_times_out_without() {
        let notify = Arc::new(Notify::default());
        let seen = notify.version();
        let started = Instant::now();
        assert_eq!(notify.wait_past(seen, Duration::from_millis(20)), seen);
        assert!(started.elapsed() >= Duration::from_millis(20));
        let waiter = {
            let notify = Arc::clone(&notify);
            std::thread::spawn(move || notify.wait_past(seen, Duration::from_secs(30)))
        };
        notify.notify();
        assert_eq!(waiter.join().expect("waiter"), seen + 1);
        assert_eq!(notify.wait_past(seen, Duration::from_secs(30)), seen + 1, "an earlier change is not missed");
    }
}
