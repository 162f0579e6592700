use std::io::{ErrorKind, Read, Result as IoResult};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Most unread body bytes thrown away to keep a connection alive; beyond this it is closed.
pub const MAX_DRAIN: usize = 64 * 1024;

/// A request body that, when dropped unread, is drained so the next request starts at the
/// right byte, or (past `MAX_DRAIN` or on an error) marks its connection abandoned so it closes.
pub struct BodyDrain<R: Read> {
    inner: R,
    /// Bytes still expected when the length was declared.
    left: Option<usize>,
    abandoned: Arc<AtomicBool>,
}

impl<R: Read> BodyDrain<R> {
    pub fn new(inner: R, declared_length: Option<usize>, abandoned: Arc<AtomicBool>) -> Self {
        BodyDrain {
            inner,
            left: declared_length,
            abandoned,
        }
    }

    fn drain(&mut self) -> bool {
        if self.left == Some(0) {
            return true;
        }
        if self.left.is_some_and(|left| left > MAX_DRAIN) {
            return false;
        }
        let mut buf = [0u8; 8 * 1024];
        let mut drained = 0;
        while drained <= MAX_DRAIN {
            match self.inner.read(&mut buf) {
                Ok(0) => return true,
                Ok(n) => drained += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        false
    }
}

impl<R: Read> Read for BodyDrain<R> {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        let n = self.inner.read(buf)?;
        if let Some(left) = &mut self.left {
            *left = left.saturating_sub(n);
        }
        Ok(n)
    }
}

impl<R: Read> Drop for BodyDrain<R> {
    fn drop(&mut self) {
        if !self.drain() {
            self.abandoned.store(true, Ordering::Release);
        }
    }
}
