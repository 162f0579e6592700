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
    connections: Mutex<Connections>,
    /// Once set, connections are closed instead of waiting for their next request.
    /// Idle external streams waiting on their thread check it between short reads
    /// because a blocked read holds the stream they would be shut down through; the
    /// parking thread checks it too.
    closing_idle: Arc<AtomicBool>,
}

/// Every live connection, registered once for its whole life, and whether it is idle
/// between two requests (on its thread or parked), where nothing else would wake it before
/// its idle timeout. Registering once per connection, and marking it idle with an atomic
/// flag, keeps a shared lock and a map update out of every request (they cost about 400
/// instructions per keep-alive request when each idle wait registered itself).
#[derive(Default)]
struct Connections {
    next_id: u64,
    all: HashMap<u64, (ShutdownHandle, Arc<AtomicBool>)>,
}

impl Drain {
    fn connections(&self) -> MutexGuard<'_, Connections> {
        self.connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
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
        let idle: Vec<ShutdownHandle> = {
            let connections = self.connections();
            // Set before the flags are read, and read after a connection sets its own (both
            // `SeqCst`): either the drain sees the connection idle, or the connection sees
            // the drain (`DrainEntry::enter_idle`).
            self.closing_idle.store(true, Ordering::SeqCst);
            connections
                .all
                .values()
                .filter(|(_, idle)| idle.load(Ordering::SeqCst))
                .map(|(handle, _)| handle.clone())
                .collect()
        };
        for handle in idle {
            // A busy external stream sees `closing_idle` after its current short read; a
            // parked connection's shut socket wakes the parking thread, which closes it.
            handle.try_shutdown();
        }
    }

    /// Registers a connection for its whole life: a drain closes it while it waits for its
    /// next request.
    pub(crate) fn register(self: &Arc<Self>, handle: &ShutdownHandle) -> DrainEntry {
        let idle = Arc::new(AtomicBool::new(false));
        let mut connections = self.connections();
        let id = connections.next_id;
        connections.next_id += 1;
        connections.all.insert(id, (handle.clone(), idle.clone()));
        DrainEntry {
            drain: self.clone(),
            id,
            idle,
        }
    }
}

/// A connection's place in the drain's list, given up when dropped (the connection closed).
pub(crate) struct DrainEntry {
    drain: Arc<Drain>,
    id: u64,
    /// Set while the connection waits for its next request.
    idle: Arc<AtomicBool>,
}

impl DrainEntry {
    /// Marks the connection as about to wait for its next request; false when idle
    /// connections are being closed, and the caller must close instead of waiting.
    pub(crate) fn enter_idle(&self) -> bool {
        self.idle.store(true, Ordering::SeqCst);
        if self.drain.closing_idle.load(Ordering::SeqCst) {
            self.idle.store(false, Ordering::SeqCst);
            return false;
        }
        true
    }

    /// The connection's next request started (or its wait ended).
    pub(crate) fn leave_idle(&self) {
        self.idle.store(false, Ordering::SeqCst);
    }
}

impl Drop for DrainEntry {
    fn drop(&mut self) {
        self.drain.connections().all.remove(&self.id);
    }
}
