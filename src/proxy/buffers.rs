//! Copy buffers lent to one request at a time.
//!
//! Every client connection has a thread of its own, and most connections sit
//! idle between requests: a buffer per thread would keep 64 KiB resident for
//! each idle keep-alive connection. A request takes a buffer from a small
//! shared pool instead and gives it back when it ends; taking and giving are
//! lock-free and allocate nothing once the pool is warm.

use crossbeam_channel::{Receiver, Sender};

/// Upstream body reads go through one buffer of this size per request in flight.
pub(super) const COPY_BUFFER: usize = 64 * 1024;

/// Buffers kept for reuse; requests in flight beyond this allocate their own,
/// which are freed when they end.
pub(super) const POOLED_BUFFERS: usize = 256;

pub(super) struct BufferPool {
    size: usize,
    give: Sender<Box<[u8]>>,
    take: Receiver<Box<[u8]>>,
}

impl BufferPool {
    pub(super) fn new(size: usize, kept: usize) -> BufferPool {
        let (give, take) = crossbeam_channel::bounded(kept);
        BufferPool { size, give, take }
    }

    pub(super) fn take(&self) -> Box<[u8]> {
        self.take.try_recv().unwrap_or_else(|_| vec![0; self.size].into_boxed_slice())
    }

    pub(super) fn give_back(&self, buffer: Box<[u8]>) {
        // A full pool drops the buffer.
        let _ = self.give.try_send(buffer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_returned_buffer_is_lent_again() {
        let pool = BufferPool::new(16, 1);
        let buffer = pool.take();
        let address = buffer.as_ptr();
        pool.give_back(buffer);
        let again = pool.take();
        assert_eq!(again.as_ptr(), address);
    }

    #[test]
    fn a_full_pool_drops_what_it_cannot_keep() {
        let pool = BufferPool::new(16, 1);
        let (one, two) = (pool.take(), pool.take());
        pool.give_back(one);
        pool.give_back(two);
        assert_eq!(pool.take.len(), 1);
        assert_eq!(pool.take().len(), 16);
    }
}
