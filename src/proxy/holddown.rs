//! Endpoints that just refused a connection are passed over for a short
//! while, so that until the EndpointSlice catches up (a pod that crashed
//! stays listed as ready for seconds) not every request pays a failed
//! connect first. When every endpoint is held down they are tried anyway:
//! a hold-down only reorders, it never turns a request away.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::kube::objects::SmolStr;
use crate::annotations::balance::MAX_TRIES_LIMIT;
use crate::routes::Upstream;

/// How long an endpoint that refused a connection is passed over.
pub const HOLD_DOWN: Duration = Duration::from_secs(5);

/// The most endpoints one request tries unless its Ingress sets
/// `proxy-next-upstream-tries` (ingress-nginx's default), and only while
/// nothing of the request has gone out (connect failures).
pub const DEFAULT_TRIES: usize = 3;

/// Endpoints by `host:port` with the time their hold-down ends.
#[derive(Debug, Default)]
pub struct HoldDown {
    until: Mutex<HashMap<SmolStr, Instant>>,
    /// Entries in `until`: zero on the hot path, which then takes no lock.
    held: AtomicUsize,
}

/// Indices into a route's upstreams, in the order to try them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TryOrder {
    indices: [usize; MAX_TRIES_LIMIT],
    len: usize,
}

impl TryOrder {
    pub fn as_slice(&self) -> &[usize] {
        &self.indices[..self.len]
    }
}

impl HoldDown {
    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<SmolStr, Instant>> {
        // The map holds plain data that is valid after a panic elsewhere.
        self.until.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The endpoints to try, round-robin from `first`: endpoints not held
    /// down first, held-down ones after, at most `tries` (capped at
    /// [`MAX_TRIES_LIMIT`]). The clock is read only when some endpoint is
    /// held down: usually none is, and a request reads it often enough.
    pub fn order(&self, upstreams: &[Upstream], first: usize, now: impl FnOnce() -> Instant, tries: usize) -> TryOrder {
        let tries = tries.clamp(1, MAX_TRIES_LIMIT);
        let mut order = TryOrder { indices: [0; MAX_TRIES_LIMIT], len: 0 };
        let count = upstreams.len();
        if count == 0 {
            return order;
        }
        if self.held.load(Ordering::Relaxed) == 0 {
            for attempt in 0..count.min(tries) {
                order.indices[attempt] = (first + attempt) % count;
            }
            order.len = count.min(tries);
            return order;
        }
        let mut entries = self.entries();
        let now = now();
        entries.retain(|_, until| *until > now);
        self.held.store(entries.len(), Ordering::Relaxed);
        for held_down in [false, true] {
            for step in 0..count {
                let index = (first + step) % count;
                if order.len < tries && entries.contains_key(&upstreams[index].authority) == held_down {
                    order.indices[order.len] = index;
                    order.len += 1;
                }
            }
        }
        order
    }

    /// The endpoint refused a connection (or did not accept one in time).
    pub fn refused(&self, upstream: &Upstream, now: Instant) {
        let mut entries = self.entries();
        entries.insert(upstream.authority.clone(), now + HOLD_DOWN);
        self.held.store(entries.len(), Ordering::Relaxed);
    }

    /// The endpoint answered: it is no longer held down.
    pub fn answered(&self, upstream: &Upstream) {
        if self.held.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut entries = self.entries();
        entries.remove(&upstream.authority);
        self.held.store(entries.len(), Ordering::Relaxed);
    }

    /// Endpoints held down right now, for metrics.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstreams(n: usize) -> Vec<Upstream> {
        (0..n).map(|i| Upstream::new(format!("10.0.0.{i}:80").into())).collect()
    }

    #[test]
    fn round_robin_when_nothing_is_held_down() {
        let hold = HoldDown::default();
        let now = Instant::now();
        assert_eq!(hold.order(&upstreams(5), 3, || now, DEFAULT_TRIES).as_slice(), [3, 4, 0]);
        assert_eq!(hold.order(&upstreams(2), 1, || now, DEFAULT_TRIES).as_slice(), [1, 0]);
        assert!(hold.order(&[], 0, || now, DEFAULT_TRIES).as_slice().is_empty());
        assert_eq!(hold.order(&upstreams(5), 3, || now, 1).as_slice(), [3]);
        assert_eq!(hold.order(&upstreams(5), 3, || now, 0).as_slice(), [3], "at least one try");
        assert_eq!(hold.order(&upstreams(20), 0, || now, 100).as_slice().len(), MAX_TRIES_LIMIT);
    }

    #[test]
    fn held_down_endpoints_go_last_and_come_back() {
        let hold = HoldDown::default();
        let list = upstreams(3);
        let now = Instant::now();
        hold.refused(&list[0], now);
        assert_eq!(hold.held(), 1);
        for first in 0..3 {
            let order = hold.order(&list, first, || now, DEFAULT_TRIES);
            assert_eq!(order.as_slice().last(), Some(&0), "first {first}: {order:?}");
            assert_eq!(order.as_slice().len(), 3);
        }
        assert_eq!(hold.order(&list, 0, || now + HOLD_DOWN, DEFAULT_TRIES).as_slice(), [0, 1, 2], "the hold-down ends");
        assert_eq!(hold.held(), 0);
    }

    #[test]
    fn an_answer_lifts_the_hold_down_and_all_held_down_are_still_tried() {
        let hold = HoldDown::default();
        let list = upstreams(2);
        let now = Instant::now();
        hold.refused(&list[0], now);
        hold.refused(&list[1], now);
        assert_eq!(hold.order(&list, 1, || now, DEFAULT_TRIES).as_slice(), [1, 0], "never turned away");
        assert_eq!(hold.order(&upstreams(5), 0, || now, 4).as_slice(), [2, 3, 4, 0], "the limit holds with endpoints held down");
        hold.answered(&list[1]);
        assert_eq!(hold.held(), 1);
        assert_eq!(hold.order(&list, 0, || now, DEFAULT_TRIES).as_slice(), [1, 0]);
    }
}
