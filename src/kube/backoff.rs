//! Exponential backoff with jitter for API retries.
//!
//! Pure: the random source is a seeded [`XorShift`], so tests pin the delays.
//! Jitter keeps the watchers of many edge nodes from hitting a recovering API
//! server in lockstep.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The first delay before jitter.
pub const INITIAL: Duration = Duration::from_millis(800);
/// No delay ever exceeds this, jitter included.
pub const MAXIMUM: Duration = Duration::from_secs(30);
/// A watch that stayed up this long proves the API healthy again.
pub const HEALTHY_AFTER: Duration = Duration::from_secs(60);

/// How often a stop-aware sleep looks at the stop flag.
const STOP_POLL: Duration = Duration::from_millis(50);

/// Sleeps up to `duration`, waking early when `stop` is set.
pub fn sleep_unless_stopped(duration: Duration, stop: &AtomicBool) {
    let deadline = Instant::now() + duration;
    while !stop.load(Ordering::Relaxed) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(STOP_POLL));
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
