pub use self::body_drain::BodyDrain;
pub use self::custom_stream::CustomStream;
pub(crate) use self::drain::{Drain, DrainEntry};
pub use self::equal_reader::EqualReader;
pub use self::fused_reader::FusedReader;
pub use self::messages_queue::MessagesQueue;
pub use self::refined_tcp_stream::RefinedTcpStream;
pub use self::sequential::SequentialWriterBuilder;
pub use self::sequential::{SequentialReader, SequentialReaderBuilder};
pub use self::task_pool::TaskPool;

use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

mod body_drain;
mod custom_stream;
mod drain;
// The one exception to `deny(unsafe_code)`: epoll and eventfd for the parking thread.
#[allow(unsafe_code)]
pub(crate) mod epoll;
mod equal_reader;
mod fused_reader;
mod messages_queue;
pub(crate) mod refined_tcp_stream;
mod sequential;
mod task_pool;

/// The server's count of live connections, which a drain can wait on to
/// reach zero instead of polling it.
#[derive(Default)]
pub(crate) struct LiveCount {
    live: AtomicUsize,
    /// Taken by the last connection to leave before it wakes the waiters, so
    /// a waiter that saw connections under it cannot miss the wake-up.
    none_left: Mutex<()>,
    emptied: Condvar,
}

impl LiveCount {
    pub(crate) fn get(&self) -> usize {
        self.live.load(Ordering::Acquire)
    }

    /// Waits until no connection is live, at most `timeout`; returns how
    /// many still are.
    pub(crate) fn wait_for_none(&self, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        let mut guard = self.none_left.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            let live = self.get();
            let left = deadline.saturating_duration_since(Instant::now());
            if live == 0 || left.is_zero() {
                return live;
            }
            guard = self
                .emptied
                .wait_timeout(guard, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

/// One slot in the server's count of live connections, released when dropped.
pub(crate) struct LiveConnection {
    count: Arc<LiveCount>,
}

impl LiveConnection {
    /// Takes a slot unless `max` connections are already live.
    pub(crate) fn try_acquire(count: &Arc<LiveCount>, max: usize) -> Option<LiveConnection> {
        count
            .live
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |live| {
                (live < max).then_some(live + 1)
            })
            .ok()
            .map(|_| LiveConnection {
                count: count.clone(),
            })
    }
}

impl Drop for LiveConnection {
    fn drop(&mut self) {
        if self.count.live.fetch_sub(1, Ordering::AcqRel) == 1 {
            drop(self.count.none_left.lock().unwrap_or_else(PoisonError::into_inner));
            self.count.emptied.notify_all();
        }
    }
}

/// Parses a the value of a header.
/// Suitable for `Accept-*`, `TE`, etc.
///
/// For example with `text/plain, image/png; q=1.5` this function would
/// return `[ ("text/plain", 1.0), ("image/png", 1.5) ]`
pub fn parse_header_value(input: &str) -> Vec<(&str, f32)> {
    input
        .split(',')
        .filter_map(|elem| {
            let mut params = elem.split(';');

            let t = params.next()?;

            let mut value = 1.0_f32;

            for p in params {
                if p.trim_start().starts_with("q=") {
                    if let Ok(val) = f32::from_str(p.trim_start()[2..].trim()) {
                        value = val;
                        break;
                    }
                }
            }

            Some((t.trim(), value))
        })
        .collect()
}

#[cfg(test)]
mod test {
    #[test]
    #[allow(clippy::float_cmp)]
    fn test_parse_header() {
        let result = super::parse_header_value("text/html, text/plain; q=1.5 , image/png ; q=2.0");

        assert_eq!(result.len(), 3);
        assert_eq!(result[0].0, "text/html");
        assert_eq!(result[0].1, 1.0);
        assert_eq!(result[1].0, "text/plain");
        assert_eq!(result[1].1, 1.5);
        assert_eq!(result[2].0, "image/png");
        assert_eq!(result[2].1, 2.0);
    }
}
