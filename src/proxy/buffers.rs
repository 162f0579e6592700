//! Copy and head buffers lent to one request at a time.
//!
//! Every client connection has a thread of its own, and most connections sit
//! idle between requests: a buffer per thread would keep 64 KiB resident for
//! each idle keep-alive connection. A request takes its buffers from a small
//! shared pool instead and gives them back when it ends; taking and giving
//! are lock-free and allocate nothing once the pool is warm.

use crossbeam_channel::{Receiver, Sender};

/// Upstream body reads go through one buffer of this size per request in
/// flight: 64 KiB of body, and room for a usual response head in front of
/// the first read, so head and body leave in one write.
pub(super) const COPY_BUFFER: usize = 68 * 1024;

/// Buffers kept for reuse; requests in flight beyond this allocate their own,
/// which are freed when they end.
pub(super) const POOLED_BUFFERS: usize = 256;

/// A head buffer grown past this by an unusually large response head is
/// dropped rather than kept in the pool.
const KEPT_HEAD_CAPACITY: usize = 16 * 1024;

/// What one request borrows.
pub(super) struct Buffers {
    /// Upstream body reads.
    pub copy: Box<[u8]>,
    /// The response head the proxy writes; empty when lent.
    pub head: Vec<u8>,
}

pub(super) struct BufferPool {
    size: usize,
    give: Sender<Buffers>,
    take: Receiver<Buffers>,
}

impl BufferPool {
    pub(super) fn new(size: usize, kept: usize) -> BufferPool {
        let (give, take) = crossbeam_channel::bounded(kept);
        BufferPool { size, give, take }
    }

    pub(super) fn take(&self) -> Buffers {
        self.take.try_recv().unwrap_or_else(|_| Buffers { copy: vec![0; self.size].into_boxed_slice(), head: Vec::new() })
    }

    pub(super) fn give_back(&self, mut buffers: Buffers) {
        buffers.head.clear();
        if buffers.head.capacity() > KEPT_HEAD_CAPACITY {
            buffers.head = Vec::new();
        }
        // A full pool drops the buffers.
        let _ = self.give.try_send(buffers);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_returned_buffer_is_lent_again() {
        let pool = BufferPool::new(16, 1);
        let mut buffers = pool.take();
        buffers.head.extend_from_slice(b"HTTP/1.1 200 OK\r\n\r\n");
        let (copy, head) = (buffers.copy.as_ptr(), buffers.head.as_ptr());
        pool.give_back(buffers);
        let again = pool.take();
        assert_eq!(again.copy.as_ptr(), copy);
        assert_eq!(again.head.as_ptr(), head, "the head's capacity is kept");
        assert!(again.head.is_empty(), "lent empty");
    }

    #[test]
    fn an_outgrown_head_buffer_is_not_kept() {
        let pool = BufferPool::new(16, 1);
        let mut buffers = pool.take();
        buffers.head.resize(KEPT_HEAD_CAPACITY + 1, b'x');
        pool.give_back(buffers);
        assert_eq!(pool.take().head.capacity(), 0);
    }

    #[test]
    fn a_full_pool_drops_what_it_cannot_keep() {
        let pool = BufferPool::new(16, 1);
        let (one, two) = (pool.take(), pool.take());
        pool.give_back(one);
        pool.give_back(two);
        assert_eq!(pool.take.len(), 1);
        assert_eq!(pool.take().copy.len(), 16);
    }
}
