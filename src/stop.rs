//! The one stop signal of the background threads (watchers, the API probe,
//! status publishing). Stopping wakes every sleeper at once: a sleep on the
//! signal itself ends, and threads that sleep on a condvar of their own (a
//! backoff waiting for the probe, the publisher waiting for a generation)
//! register a wake-up with [`Stop::on_stop`]. Nothing polls a flag.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

type Hook = Box<dyn Fn() + Send + Sync>;

#[derive(Default)]
struct Inner {
    stopped: AtomicBool,
    /// Guards sleeping on `woken` and the hooks still to run.
    hooks: Mutex<Vec<Hook>>,
    woken: Condvar,
}

/// Cloned into every thread that must end on shutdown.
#[derive(Clone, Default)]
pub struct Stop(Arc<Inner>);

impl std::fmt::Debug for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Stop").field(&self.is_stopped()).finish()
    }
}

impl Stop {
    pub fn new() -> Stop {
        Stop::default()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Hook>> {
        // Hooks only wake threads; the list is valid after a panic elsewhere.
        self.0.hooks.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Signals stop, wakes every sleeper and runs the registered hooks once.
    pub fn stop(&self) {
        self.0.stopped.store(true, Ordering::SeqCst);
        let hooks = std::mem::take(&mut *self.lock());
        self.0.woken.notify_all();
        for hook in hooks {
            hook();
        }
    }

    pub fn is_stopped(&self) -> bool {
        self.0.stopped.load(Ordering::SeqCst)
    }

    /// Sleeps up to `duration`; true when stopped (before or during).
    pub fn sleep(&self, duration: Duration) -> bool {
        let hooks = self.lock();
        let _hooks = self.0.woken.wait_timeout_while(hooks, duration, |_| !self.is_stopped()).unwrap_or_else(PoisonError::into_inner);
        self.is_stopped()
    }

    /// Runs `wake` when stop is signalled, or now if it already was: for a
    /// thread sleeping on its own condvar, which `wake` must notify after
    /// taking that condvar's lock (so a sleeper between checking
    /// [`is_stopped`](Self::is_stopped) and waiting cannot miss it).
    pub fn on_stop(&self, wake: impl Fn() + Send + Sync + 'static) {
        let mut hooks = self.lock();
        if self.is_stopped() {
            drop(hooks);
            wake();
        } else {
            hooks.push(Box::new(wake));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn a_sleeper_wakes_at_once_and_hooks_run_once() {
        let stop = Stop::new();
        assert!(!stop.sleep(Duration::from_millis(5)), "elapsed, not stopped");
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&runs);
        stop.on_stop(move || {
            counted.fetch_add(1, Ordering::SeqCst);
        });
        let sleeper = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let started = Instant::now();
                (stop.sleep(Duration::from_secs(60)), started.elapsed())
            })
        };
        stop.stop();
        let (stopped, slept) = sleeper.join().expect("sleeper");
        assert!(stopped && slept < Duration::from_secs(30), "woken by stop after {slept:?}");
        stop.stop();
        assert_eq!(runs.load(Ordering::SeqCst), 1, "hooks run once");
        let late = Arc::clone(&runs);
        stop.on_stop(move || {
            late.fetch_add(1, Ordering::SeqCst);
        });
        assert_eq!(runs.load(Ordering::SeqCst), 2, "a hook registered after stop runs at once");
        assert!(stop.sleep(Duration::from_secs(60)));
    }
}
