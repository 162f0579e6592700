//! Exponential backoff with jitter for API retries, and the probe that ends
//! every backoff at once when the API server answers again.
//!
//! Pure: the random source is a seeded [`XorShift`] and time is passed in, so
//! tests pin the delays and run the recovery bound on a fake clock. Jitter
//! keeps the watchers of many edge nodes from hitting a recovering API server
//! in lockstep.
//!
//! Why a probe: a watcher that failed ten times sleeps up to 30 s, and
//! nothing it does can notice sooner that the server is back. One cheap
//! `GET /version` every 3 to 4 s while anyone sleeps bounds the time from
//! "the API answers" to "every kind is current" by the probe interval plus
//! one list, at one request per interval per node.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::stop::Stop;

/// The first delay before jitter.
pub const INITIAL: Duration = Duration::from_millis(800);
/// No delay ever exceeds this, jitter included.
pub const MAXIMUM: Duration = Duration::from_secs(30);
/// Probes run no more often than this while anyone backs off.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(3);
/// Jitter stretches each probe interval by up to a third: 3 to 4 s.
const PROBE_JITTER: f64 = 1.0 / 3.0;

/// A small xorshift64* generator: good enough for jitter, no `rand` crate.
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> XorShift {
        // Zero is the one state xorshift never leaves.
        XorShift(if seed == 0 { 0x9E37_79B9_7F4A_7C15 } else { seed })
    }

    /// Seeds from the clock and a caller value so threads started in the
    /// same nanosecond still differ.
    pub fn from_time(salt: u64) -> XorShift {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        XorShift::new(nanos ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, 1).
    pub fn next_unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `low..high` (`high` exclusive); `low` when the range is empty.
    pub fn range(&mut self, low: u64, high: u64) -> u64 {
        if high <= low {
            return low;
        }
        low + self.next_u64() % (high - low)
    }
}

/// Delays grow 0.8 s, 1.6 s, 3.2 s … up to 30 s, each scaled by a random
/// factor in [0.75, 1.25) and capped at 30 s.
#[derive(Debug, Clone)]
pub struct Backoff {
    failures: u32,
    rng: XorShift,
}

impl Backoff {
    pub fn new(rng: XorShift) -> Backoff {
        Backoff { failures: 0, rng }
    }

    /// Records one more failure and returns how long to wait before retrying.
    pub fn next_delay(&mut self) -> Duration {
        let exponent = self.failures.min(16);
        self.failures = self.failures.saturating_add(1);
        let base = INITIAL.as_secs_f64() * f64::from(1u32 << exponent);
        let jittered = base.min(MAXIMUM.as_secs_f64()) * (0.75 + 0.5 * self.rng.next_unit());
        Duration::from_secs_f64(jittered.min(MAXIMUM.as_secs_f64()))
    }

    /// Forgets past failures, after a success that proves the API healthy.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// The random source, shared so a watcher needs only one generator.
    pub fn rng(&mut self) -> &mut XorShift {
        &mut self.rng
    }
}

/// When to probe the API server, on a caller's clock (`now` is the time
/// since any fixed origin). Pure; the probe thread owns one.
#[derive(Debug, Clone)]
pub struct ProbeSchedule {
    next: Option<Duration>,
    rng: XorShift,
}

/// What the probe thread does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeStep {
    /// Nobody backs off: wait until someone does.
    Idle,
    /// Wait until this time (or until nobody backs off any more).
    WaitUntil(Duration),
    /// Probe now, then report with [`ProbeSchedule::probed`].
    Probe,
}

impl ProbeSchedule {
    pub fn new(rng: XorShift) -> ProbeSchedule {
        ProbeSchedule { next: None, rng }
    }

    /// The first probe comes one jittered interval after backing off began,
    /// so a single quick retry that works costs no probe at all.
    pub fn step(&mut self, now: Duration, backing_off: bool) -> ProbeStep {
        if !backing_off {
            self.next = None;
            return ProbeStep::Idle;
        }
        match self.next {
            Some(at) if now >= at => ProbeStep::Probe,
            Some(at) => ProbeStep::WaitUntil(at),
            None => {
                let at = now + self.interval();
                self.next = Some(at);
                ProbeStep::WaitUntil(at)
            }
        }
    }

    /// A probe finished at `now` (whatever its outcome): the next one is a
    /// jittered interval later.
    pub fn probed(&mut self, now: Duration) {
        self.next = Some(now + self.interval());
    }

    fn interval(&mut self) -> Duration {
        PROBE_INTERVAL.mul_f64(1.0 + PROBE_JITTER * self.rng.next_unit())
    }
}

/// Where watchers sleep out their backoff, so one successful probe can wake
/// them all. Shared by every user of one API client.
#[derive(Debug, Default)]
pub struct Recovery {
    state: Mutex<RecoveryState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct RecoveryState {
    /// Threads inside [`Recovery::sleep`].
    sleeping: usize,
    /// Bumped by every successful probe.
    wakes: u64,
}

/// Why a backoff sleep ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Woke {
    /// The delay passed.
    Elapsed,
    /// A probe found the API server answering.
    ApiAnswers,
    /// Stop was signalled.
    Stopped,
}

impl Recovery {
    fn lock(&self) -> MutexGuard<'_, RecoveryState> {
        // Plain counters, valid after a panic elsewhere.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Makes `stop` end every sleep here at once (each thread that sleeps
    /// here registers this; repeats are harmless).
    pub fn wake_on(self: &Arc<Self>, stop: &Stop) {
        let recovery = Arc::downgrade(self);
        stop.on_stop(move || {
            if let Some(recovery) = recovery.upgrade() {
                // Under the lock: a sleeper between its stop check and its wait cannot miss this.
                let _state = recovery.lock();
                recovery.changed.notify_all();
            }
        });
    }

    /// Sleeps up to `delay`; a successful probe or `stop` ends it early
    /// (stop once [`wake_on`](Self::wake_on) registered it).
    pub fn sleep(&self, delay: Duration, stop: &Stop) -> Woke {
        let mut state = self.lock();
        let wakes = state.wakes;
        state.sleeping += 1;
        self.changed.notify_all();
        let (mut state, _) = self
            .changed
            .wait_timeout_while(state, delay, |state| !stop.is_stopped() && state.wakes == wakes)
            .unwrap_or_else(PoisonError::into_inner);
        let woke = if stop.is_stopped() {
            Woke::Stopped
        } else if state.wakes != wakes {
            Woke::ApiAnswers
        } else {
            Woke::Elapsed
        };
        state.sleeping -= 1;
        woke
    }

    /// How many threads sleep out a backoff now.
    pub fn sleeping(&self) -> usize {
        self.lock().sleeping
    }

    /// Ends every backoff sleep now; returns how many there were.
    pub fn wake_all(&self) -> usize {
        let mut state = self.lock();
        state.wakes += 1;
        self.changed.notify_all();
        state.sleeping
    }

    /// Waits up to `timeout` for someone to start backing off (or for stop).
    pub fn wait_for_sleepers(&self, timeout: Duration, stop: &Stop) {
        let state = self.lock();
        let _state = self
            .changed
            .wait_timeout_while(state, timeout, |state| state.sleeping == 0 && !stop.is_stopped())
            .unwrap_or_else(PoisonError::into_inner);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn delays_grow_within_jitter_bounds_and_cap() {
        let mut backoff = Backoff::new(XorShift::new(42));
        let mut nominal = INITIAL.as_secs_f64();
        for _ in 0..12 {
            let delay = backoff.next_delay().as_secs_f64();
            let capped = nominal.min(MAXIMUM.as_secs_f64());
            assert!(delay >= capped * 0.75 - 1e-9, "{delay} below {capped}*0.75");
            assert!(delay <= (capped * 1.25).min(MAXIMUM.as_secs_f64()) + 1e-9, "{delay} above bound");
            nominal *= 2.0;
        }
        assert_eq!(backoff.failures(), 12);
        assert!(backoff.next_delay() <= MAXIMUM);
    }

    #[test]
    fn first_delay_is_about_point_eight_seconds_and_reset_returns_there() {
        let mut backoff = Backoff::new(XorShift::new(7));
        let first = backoff.next_delay();
        assert!(first >= Duration::from_millis(600) && first < Duration::from_millis(1000), "{first:?}");
        for _ in 0..10 {
            backoff.next_delay();
        }
        assert!(backoff.next_delay() >= Duration::from_millis(22_500));
        backoff.reset();
        assert!(backoff.next_delay() < Duration::from_millis(1000));
    }

    #[test]
    fn same_seed_same_delays_different_seed_differs() {
        let run = |seed| {
            let mut b = Backoff::new(XorShift::new(seed));
            (0..6).map(|_| b.next_delay()).collect::<Vec<_>>()
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
    }

    #[test]
    fn jitter_spreads_across_the_range() {
        let mut rng = XorShift::new(0);
        let samples: Vec<f64> = (0..1000).map(|_| rng.next_unit()).collect();
        assert!(samples.iter().all(|s| (0.0..1.0).contains(s)));
        assert!(samples.iter().any(|s| *s < 0.1) && samples.iter().any(|s| *s > 0.9));
        let in_range: Vec<u64> = (0..1000).map(|_| rng.range(300, 600)).collect();
        assert!(in_range.iter().all(|v| (300..600).contains(v)));
        assert_eq!(rng.range(5, 5), 5);
    }

    /// The recovery bound on a fake clock: however many failures came
    /// before (so however long the backoff), once the API answers at time
    /// `up`, the watcher's next attempt starts within 5 s: its own backoff
    /// expires, or the probe (running while it sleeps) finds the API and
    /// wakes it. The first successful attempt then resets the backoff.
    #[test]
    fn a_watcher_retries_within_five_seconds_of_the_api_answering() {
        let bound = Duration::from_secs(5);
        let mut worst = Duration::ZERO;
        for seed in 1..300u64 {
            let mut rng = XorShift::new(seed);
            let failures_before = rng.range(0, 20) as u32;
            let up = Duration::from_millis(rng.range(0, 120_000));
            let mut backoff = Backoff::new(XorShift::new(seed * 7));
            for _ in 0..failures_before {
                backoff.next_delay();
            }
            let mut probe = ProbeSchedule::new(XorShift::new(seed * 13));
            // The watcher fails at t = 0 and keeps failing until `up`.
            let mut now = Duration::ZERO;
            let retried_at = loop {
                let wake_at = now + backoff.next_delay();
                // The probe runs while the watcher sleeps; a probe at or after `up` wakes it.
                let mut t = now;
                let woken = loop {
                    match probe.step(t, true) {
                        ProbeStep::Probe if t >= up => break Some(t),
                        ProbeStep::Probe => probe.probed(t),
                        ProbeStep::WaitUntil(at) if at >= wake_at => break None,
                        ProbeStep::WaitUntil(at) => t = at,
                        ProbeStep::Idle => unreachable!("a watcher backs off"),
                    }
                };
                now = woken.unwrap_or(wake_at);
                if now >= up {
                    break now;
                }
            };
            let late = retried_at - up;
            assert!(late <= bound, "seed {seed}: {failures_before} failures, API up at {up:?}, retried {late:?} later");
            worst = worst.max(late);
        }
        assert!(worst > Duration::from_secs(3), "the probe interval sets the bound: worst {worst:?}");
    }

    #[test]
    fn the_probe_waits_an_interval_idles_when_nobody_backs_off_and_keeps_its_pace() {
        let mut probe = ProbeSchedule::new(XorShift::new(3));
        assert_eq!(probe.step(Duration::ZERO, false), ProbeStep::Idle);
        let ProbeStep::WaitUntil(first) = probe.step(Duration::from_secs(10), true) else { panic!("waits first") };
        assert!(first >= Duration::from_secs(13) && first < Duration::from_secs(14), "{first:?}");
        assert_eq!(probe.step(first, true), ProbeStep::Probe);
        probe.probed(first);
        let ProbeStep::WaitUntil(second) = probe.step(first, true) else { panic!("paced") };
        assert!(second - first >= PROBE_INTERVAL, "no more often than every 3 s");
        assert_eq!(probe.step(second, false), ProbeStep::Idle);
        let ProbeStep::WaitUntil(again) = probe.step(second, true) else { panic!("starts over") };
        assert!(again > second);
    }

    #[test]
    fn wake_all_ends_every_backoff_sleep_at_once() {
        let recovery = Arc::new(Recovery::default());
        let stop = Stop::new();
        recovery.wake_on(&stop);
        let sleepers: Vec<_> = (0..3)
            .map(|_| {
                let (recovery, stop) = (Arc::clone(&recovery), stop.clone());
                std::thread::spawn(move || recovery.sleep(Duration::from_secs(30), &stop))
            })
            .collect();
        recovery.wait_for_sleepers(Duration::from_secs(5), &stop);
        let deadline = Instant::now() + Duration::from_secs(5);
        while recovery.sleeping() < 3 && Instant::now() < deadline {
            std::thread::yield_now();
        }
        assert_eq!(recovery.wake_all(), 3);
        for sleeper in sleepers {
            assert_eq!(sleeper.join().expect("sleeper"), Woke::ApiAnswers);
        }
        assert_eq!(recovery.sleeping(), 0);
        assert_eq!(recovery.sleep(Duration::from_millis(1), &stop), Woke::Elapsed);
        let sleeper = {
            let (recovery, stop) = (Arc::clone(&recovery), stop.clone());
            std::thread::spawn(move || recovery.sleep(Duration::from_secs(60), &stop))
        };
        recovery.wait_for_sleepers(Duration::from_secs(5), &stop);
        stop.stop();
        assert_eq!(sleeper.join().expect("sleeper"), Woke::Stopped, "stop wakes a backoff sleep");
        assert_eq!(recovery.sleep(Duration::from_secs(30), &stop), Woke::Stopped);
    }
}
