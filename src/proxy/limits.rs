//! The limits phase: `limit-rps`, `limit-rpm` and `limit-connections` per
//! client address, answered with 503 as ingress-nginx does (nginx's
//! `limit_req ... nodelay` and `limit_conn`). Only routes whose Ingress sets
//! a limit reach this phase.
//!
//! Every (Ingress, client) pair has one entry in a table of fixed size
//! ([`TABLE_CAPACITY`]); when it is full the least recently seen client is
//! forgotten, and counted. A flood from many addresses thus costs bounded
//! memory, and a forgotten client starts again with a full allowance.

use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Instant;

use crate::annotations::limits::RateLimits;
use crate::bounded_lru::BoundedLru;
use crate::kube::objects::ObjectKey;
use crate::prometheus::{self, Type};

/// Clients remembered across all limited Ingresses: about 100 bytes each
/// with the table's indexes, so a few MiB at most.
pub const TABLE_CAPACITY: usize = 65_536;

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Rps,
    Rpm,
    Connections,
}

impl Limit {
    fn label(self) -> &'static str {
        match self {
            Limit::Rps => "rps",
            Limit::Rpm => "rpm",
            Limit::Connections => "connections",
        }
    }
}

/// nginx's `limit_req` state for one client: the excess over the rate, in
/// thousandths of a request, and when it was last admitted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bucket {
    excess_milli: u64,
    last_ms: Option<u64>,
}

impl Bucket {
    /// Admits a request at `now_ms` with `rate_milli` thousandths of a
    /// request per second and room for `burst` requests above the rate, as
    /// nginx's `ngx_http_limit_req_lookup`: the first request starts empty,
    /// each later one adds a request and drains what the rate allowed
    /// since; a refused request changes nothing.
    pub fn admit(&mut self, now_ms: u64, rate_milli: u64, burst: u64) -> bool {
        let Some(last) = self.last_ms else {
            *self = Bucket { excess_milli: 0, last_ms: Some(now_ms) };
            return true;
        };
        let drained = rate_milli.saturating_mul(now_ms.saturating_sub(last)) / 1000;
        let excess = (self.excess_milli + 1000).saturating_sub(drained);
        if excess > burst.saturating_mul(1000) {
            return false;
        }
        *self = Bucket { excess_milli: excess, last_ms: Some(now_ms.max(last)) };
        true
    }
}

/// What is remembered about one client of one Ingress.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientState {
    rps: Bucket,
    rpm: Bucket,
    in_flight: u32,
}

/// Admits one request of a client under `limits` at `now_ms`, or says which
/// limit refuses it. An admitted request under `limit-connections` is in
/// flight until [`ClientState::finish`].
pub fn admit(state: &mut ClientState, limits: &RateLimits, now_ms: u64) -> Result<(), Limit> {
    let multiplier = u64::from(limits.burst_multiplier);
    if limits.connections.is_some_and(|max| state.in_flight >= max) {
        return Err(Limit::Connections);
    }
    let mut next = *state;
    if let Some(rps) = limits.rps.map(u64::from) {
        if !next.rps.admit(now_ms, rps * 1000, rps * multiplier) {
            return Err(Limit::Rps);
        }
    }
    if let Some(rpm) = limits.rpm.map(u64::from) {
        if !next.rpm.admit(now_ms, rpm * 1000 / 60, rpm * multiplier) {
            return Err(Limit::Rpm);
        }
    }
    if limits.connections.is_some() {
        next.in_flight += 1;
    }
    *state = next;
    Ok(())
}

impl ClientState {
    pub fn finish(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }
}

type Key = (u64, IpAddr);

/// The limit state of every client, shared by all connection threads.
pub(crate) struct Limiter {
    table: Mutex<BoundedLru<Key, ClientState>>,
    epoch: Instant,
}

/// A request counted by `limit-connections` until dropped.
pub(crate) struct InFlight<'a> {
    limiter: &'a Limiter,
    key: Key,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut table = self.limiter.table.lock().unwrap_or_else(PoisonError::into_inner);
        // An entry evicted meanwhile has nothing left to count down.
        if let Some(state) = table.peek_mut(&self.key) {
            state.finish();
        }
    }
}

static REFUSED: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];
static EVICTIONS: AtomicU64 = AtomicU64::new(0);
static CLIENTS: AtomicU64 = AtomicU64::new(0);

impl Default for Limiter {
    fn default() -> Limiter {
        Limiter::with_capacity(TABLE_CAPACITY)
    }
}

impl Limiter {
    fn with_capacity(capacity: usize) -> Limiter {
        Limiter { table: Mutex::new(BoundedLru::new(capacity)), epoch: Instant::now() }
    }

    /// Checks one request of `client` to `ingress`; `Ok` holds the in-flight
    /// mark when the Ingress limits connections.
    pub fn check(&self, ingress: &ObjectKey, client: IpAddr, limits: &RateLimits) -> Result<Option<InFlight<'_>>, Limit> {
        if limits.exempts(client) {
            return Ok(None);
        }
        let key = (zone(ingress), client);
        let now_ms = self.epoch.elapsed().as_millis() as u64;
        // A panic elsewhere while the table was held leaves it whole (each
        // entry is updated in one step), so limits keep applying: failing
        // open would lift every limit for good.
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        let evictions_before = table.evictions();
        let admitted = admit(table.get_or_insert_with(&key, ClientState::default), limits, now_ms);
        EVICTIONS.fetch_add(table.evictions() - evictions_before, Ordering::Relaxed);
        CLIENTS.store(table.len() as u64, Ordering::Relaxed);
        drop(table);
        match admitted {
            Ok(()) => Ok(limits.connections.map(|_| InFlight { limiter: self, key })),
            Err(limit) => {
                REFUSED[limit as usize].fetch_add(1, Ordering::Relaxed);
                Err(limit)
            }
        }
    }
}

/// An Ingress's zone: a hash of its key, so a lookup allocates nothing. Two
/// Ingresses sharing a hash would share their clients' state; at 64 bits
/// that is not a practical concern.
fn zone(ingress: &ObjectKey) -> u64 {
    static SEED: OnceLock<std::collections::hash_map::RandomState> = OnceLock::new();
    let mut hasher = std::hash::BuildHasher::build_hasher(SEED.get_or_init(Default::default));
    ingress.hash(&mut hasher);
    hasher.finish()
}

/// The limits phase's series on `/metrics`.
pub fn write_metrics(out: &mut String) {
    let name = "ingressd_limit_refused_total";
    prometheus::header(out, name, Type::Counter, "Requests answered 503 by limit-rps, limit-rpm or limit-connections, by limit.");
    for limit in [Limit::Rps, Limit::Rpm, Limit::Connections] {
        prometheus::sample(out, name, &[("limit", limit.label())], REFUSED[limit as usize].load(Ordering::Relaxed));
    }
    prometheus::single(out, "ingressd_limit_clients", Type::Gauge, "Clients of limited Ingresses whose state is remembered.", CLIENTS.load(Ordering::Relaxed));
    prometheus::single(
        out,
        "ingressd_limit_evictions_total",
        Type::Counter,
        "Clients forgotten because the limit table was full (they start again with a full allowance).",
        EVICTIONS.load(Ordering::Relaxed),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(rps: Option<u32>, rpm: Option<u32>, connections: Option<u32>, burst_multiplier: u32) -> RateLimits {
        RateLimits { rps, rpm, connections, burst_multiplier, allowlist: Vec::new() }
    }

    /// Which of the requests at these instants (ms) are admitted.
    fn run(limits: &RateLimits, instants: &[u64]) -> Vec<bool> {
        let mut state = ClientState::default();
        instants.iter().map(|at| admit(&mut state, limits, *at).is_ok()).collect()
    }

    #[test]
    fn limit_req_admits_the_rate_plus_its_burst_as_nginx() {
        let t = true;
        let f = false;
        let cases: &[(RateLimits, &[u64], &[bool])] = &[
            // rps 1, burst 5: six at once (the first starts empty), the seventh refused.
            (limits(Some(1), None, None, 5), &[0, 0, 0, 0, 0, 0, 0], &[t, t, t, t, t, t, f]),
            // One second drains one request.
            (limits(Some(1), None, None, 1), &[0, 0, 0, 1000, 1000, 1999, 2000], &[t, t, f, t, f, f, t]),
            // rps 10, burst 10: a steady 10/s never refuses.
            (limits(Some(10), None, None, 1), &[0, 100, 200, 300, 400, 500, 600, 700, 800, 900, 1000], &[t; 11]),
            // A refused request does not add to the excess.
            (limits(Some(1), None, None, 1), &[0, 0, 0, 0, 0, 1000], &[t, t, f, f, f, t]),
            // rpm 60 is one a second, burst 60 * 1.
            (limits(None, Some(60), None, 1), &[0; 62], &[&[t; 61][..], &[f]].concat()),
            // rpm 2: 30 s per request, drained at nginx's integer rate (33 thousandths a second).
            (limits(None, Some(2), None, 1), &[0, 0, 0, 29_000, 31_000], &[t, t, t, f, t]),
            // Both apply: rps refuses first.
            (limits(Some(1), Some(600), None, 1), &[0, 0, 0], &[t, t, f]),
        ];
        for (limits, instants, expected) in cases {
            assert_eq!(run(limits, instants), *expected, "{limits:?} at {instants:?}");
        }
    }

    #[test]
    fn a_clock_going_backwards_drains_nothing() {
        let mut bucket = Bucket::default();
        assert!(bucket.admit(5_000, 1000, 1));
        assert!(bucket.admit(4_000, 1000, 1));
        assert!(!bucket.admit(4_500, 1000, 1));
    }

    #[test]
    fn connections_count_requests_in_flight() {
        let limits = limits(None, None, Some(2), 5);
        let mut state = ClientState::default();
        assert_eq!(admit(&mut state, &limits, 0), Ok(()));
        assert_eq!(admit(&mut state, &limits, 0), Ok(()));
        assert_eq!(admit(&mut state, &limits, 0), Err(Limit::Connections));
        state.finish();
        assert_eq!(admit(&mut state, &limits, 0), Ok(()));
        let both = RateLimits { rps: Some(1), connections: Some(1), ..limits.clone() };
        let mut state = ClientState::default();
        assert_eq!(admit(&mut state, &both, 0), Ok(()));
        for _ in 0..5 {
            assert_eq!(admit(&mut state, &both, 0), Err(Limit::Connections), "refused by connections, not charged to the rate");
            state.finish();
            assert_eq!(admit(&mut state, &both, 0), Ok(()));
        }
        state.finish();
        assert_eq!(admit(&mut state, &both, 0), Err(Limit::Rps));
        assert_eq!(state.in_flight, 0, "a request refused by the rate is not in flight");
    }

    #[test]
    fn the_limiter_keeps_ingresses_and_clients_apart_and_forgets_the_oldest() {
        let limiter = Limiter::with_capacity(2);
        let one = RateLimits { allowlist: vec![crate::cidr::Cidr::parse("10.9.0.0/16").expect("cidr")], ..limits(Some(1), None, Some(1), 1) };
        let (a, b) = (ObjectKey::new("ns", "a"), ObjectKey::new("ns", "b"));
        let ip = |text: &str| text.parse::<IpAddr>().expect("address");
        let first = limiter.check(&a, ip("10.0.0.1"), &one);
        assert!(matches!(first, Ok(Some(_))));
        assert_eq!(limiter.check(&a, ip("10.0.0.1"), &one).err(), Some(Limit::Connections));
        drop(first);
        assert!(limiter.check(&a, ip("10.0.0.1"), &one).is_ok(), "finished: the connection slot is free, the burst has room");
        assert!(limiter.check(&b, ip("10.0.0.1"), &one).is_ok(), "another Ingress has its own zone");
        assert!(matches!(limiter.check(&a, ip("10.9.1.1"), &one), Ok(None)), "allowlisted");
        assert!(limiter.check(&a, ip("10.0.0.2"), &one).is_ok(), "a new client evicts the oldest");
        let table = limiter.table.lock().expect("table");
        assert_eq!((table.len(), table.evictions()), (2, 1));
    }

    #[test]
    fn limits_still_apply_after_a_panic_poisoned_the_table() {
        let limiter = Limiter::with_capacity(8);
        let one = limits(Some(1), None, Some(1), 1);
        let (ingress, client) = (ObjectKey::new("ns", "a"), "10.0.0.1".parse::<IpAddr>().expect("address"));
        let held = limiter.check(&ingress, client, &one);
        assert!(matches!(held, Ok(Some(_))));
        std::thread::scope(|scope| {
            let poisoner = scope.spawn(|| {
                let _table = limiter.table.lock();
                panic!("a panic while the table is held");
            });
            assert!(poisoner.join().is_err());
        });
        assert!(limiter.table.is_poisoned());
        assert_eq!(limiter.check(&ingress, client, &one).err(), Some(Limit::Connections), "fails closed, not open");
        drop(held);
        assert!(matches!(limiter.check(&ingress, client, &one), Ok(Some(_))), "the finished request was counted down");
    }
}
