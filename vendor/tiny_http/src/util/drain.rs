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
    /// Mirrors `IdleConnections::closing` for parked external streams, which check it
    /// between short reads because a blocked read holds the stream they would be shut
    /// down through.
    closing_idle: Arc<AtomicBool>,
}

/// Connections parked between two requests, which nothing else would wake before their
/// idle timeout.
#[derive(Default)]
struct IdleConnections {
    /// Once set, connections are closed instead of parked.
    closing: bool,
    next_id: u64,
    parked: HashMap<u64, ShutdownHandle>,
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

    /// Ends keep-alive, closes every parked connection now and every one parked later.
    pub(crate) fn close_idle(&self) {
        self.end_keep_alive();
        let parked = {
            let mut idle = self.idle();
            idle.closing = true;
            self.closing_idle.store(true, Ordering::Release);
            std::mem::take(&mut idle.parked)
        };
        for handle in parked.values() {
            // A busy external stream sees `closing_idle` after its current short read.
            handle.try_shutdown();
        }
    }

    /// Parks a connection that is about to wait for its next request; `None` when idle
    /// connections are being closed, and the caller must close instead of waiting.
    pub(crate) fn park(self: &Arc<Self>, handle: &ShutdownHandle) -> Option<Parked> {
        let mut idle = self.idle();
        if idle.closing {
            return None;
        }
        let id = idle.next_id;
        idle.next_id += 1;
        idle.parked.insert(id, handle.clone());
        Some(Parked {
            drain: self.clone(),
            id,
        })
    }
}

/// A parked connection's place in the drain's list, given up when dropped (its next
/// request started, or it closed).
pub(crate) struct Parked {
    drain: Arc<Drain>,
    id: u64,
}

impl Drop for Parked {
    fn drop(&mut self) {
        self.drain.idle().parked.remove(&self.id);
    }
}
