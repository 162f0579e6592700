//! Graceful drain: ending keep-alive and closing connections idle between requests.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::shutdown::ShutdownHandle;

/// Drain state shared by the server and every connection thread.
#[derive(Default)]
pub(crate) struct Drain {
    /// Once set, every connection ends after its current response.
    keep_alive_ended: Arc<AtomicBool>,
    idle: Mutex<IdleConnections>,
    /// Mirrors `IdleConnections::closing` for idle external streams waiting on their
    /// thread, which check it between short reads because a blocked read holds the stream
    /// they would be shut down through; the parking thread checks it too.
    closing_idle: Arc<AtomicBool>,
}

/// Connections idle between two requests (on their thread or parked), which nothing else
/// would wake before their idle timeout.
#[derive(Default)]
struct IdleConnections {
    /// Once set, connections are closed instead of waiting for their next request.
    closing: bool,
    next_id: u64,
    idle: HashMap<u64, ShutdownHandle>,
}

impl Drain {
    fn idle(&self) -> MutexGuard<'_, IdleConnections> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn end_keep_alive(&self) {
        self.keep_alive_ended.store(true, Ordering::Release);
    }

    /// The flag requests read to tell their handler that the connection ends.
    pub(crate) fn keep_alive_flag(&self) -> Arc<AtomicBool> {
        self.keep_alive_ended.clone()
    }

    pub(crate) fn closing_idle_flag(&self) -> Arc<AtomicBool> {
        self.closing_idle.clone()
    }

    /// Ends keep-alive, closes every idle connection now and every one idle later.
    pub(crate) fn close_idle(&self) {
        self.end_keep_alive();
        let idle = {
            let mut idle = self.idle();
            idle.closing = true;
            self.closing_idle.store(true, Ordering::Release);
            std::mem::take(&mut idle.idle)
        };
        for handle in idle.values() {
            // A busy external stream sees `closing_idle` after its current short read; a
            // parked connection's shut socket wakes the parking thread, which closes it.
            handle.try_shutdown();
        }
    }

    /// Registers a connection that is about to wait for its next request; `None` when idle
    /// connections are being closed, and the caller must close instead of waiting.
    pub(crate) fn enter_idle(self: &Arc<Self>, handle: &ShutdownHandle) -> Option<IdleEntry> {
        let mut idle = self.idle();
        if idle.closing {
            return None;
        }
        let id = idle.next_id;
        idle.next_id += 1;
        idle.idle.insert(id, handle.clone());
        Some(IdleEntry {
            drain: self.clone(),
            id,
        })
    }
}

/// An idle connection's place in the drain's list, given up when dropped (its next
/// request started, or it closed).
pub(crate) struct IdleEntry {
    drain: Arc<Drain>,
    id: u64,
}

impl Drop for IdleEntry {
    fn drop(&mut self) {
        self.drain.idle().idle.remove(&self.id);
    }
}
