//! The one HTTP client every connection thread shares to reach upstreams.

use std::cell::Cell;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use ureq::config::{AutoHeaderValue, Config};
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{Buffers, ConnectionDetails, Connector, DefaultConnector, NextTimeout, Transport};
use ureq::Agent;

use super::ProxyConfig;

/// Idle upstream connections older than this are not reused: pods and
/// kube-proxy rules change, and servers close idle keep-alives on their own.
const MAX_IDLE_AGE: Duration = Duration::from_secs(30);

/// Idle connections kept per upstream endpoint: as many as a busy endpoint
/// has requests in flight at once under real load, so it reuses connections
/// instead of opening and closing one per request. Measured: with 64, c=256
/// churned connections (p99 0.77 s); with 256 it reuses them (p99 37 ms).
/// The vendored ureq keeps each endpoint's idle connections apart and hands
/// out the most recently used, so a large bound costs a check-out or
/// check-in nothing; the surplus after a burst ages out.
const IDLE_PER_ENDPOINT: usize = 256;

/// Idle connections kept across all endpoints.
const IDLE_TOTAL: usize = 1024;

/// A pooled connection used this recently is taken as open without ureq's
/// probe (a non-blocking read between two `ioctl`s on every check-out and
/// check-in). Servers close idle keep-alive connections after seconds, not
/// milliseconds; one that did anyway fails before any response byte and is
/// retried once on a fresh connection (see `forward`).
const TRUSTED_IDLE: Duration = Duration::from_secs(1);

/// An Agent that behaves like a proxy: statuses and redirects pass through
/// untouched, nothing is injected, the environment's proxy variables are
/// ignored, and every wait is bounded.
///
/// The response-head timeout is left to the per-read timeout when it could
/// not bind earlier: ureq re-arms the socket timeout (a `setsockopt`) on every
/// read whose remaining time changed, which a whole-response deadline does on
/// each request.
pub fn agent(config: &ProxyConfig) -> Agent {
    Agent::with_parts(agent_config(config), DefaultConnector::new().chain(CountingConnector), EndpointResolver::default())
}

/// The settings of [`agent`], shared by the TLS agents of `upstream_tls`.
pub(super) fn agent_config(config: &ProxyConfig) -> ureq::config::Config {
    let response_timeout = (config.response_timeout < config.read_timeout).then_some(config.response_timeout);
    Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .user_agent(AutoHeaderValue::None)
        .accept(AutoHeaderValue::None)
        .allow_non_standard_methods(true)
        .proxy(None)
        .no_delay(true)
        .max_idle_connections(IDLE_TOTAL)
        .max_idle_connections_per_host(IDLE_PER_ENDPOINT)
        .max_idle_age(MAX_IDLE_AGE)
        .timeout_connect(Some(config.connect_timeout))
        .timeout_recv_response(response_timeout)
        .timeout_per_read(Some(config.read_timeout))
        .timeout_per_write(Some(config.read_timeout))
        .build()
}

/// Resolves an upstream URI whose authority is an address (`10.1.2.3:8080`,
/// `[fd00::1]:80`: what endpoints and ClusterIPs are) without allocating;
/// anything else goes to ureq's resolver. ureq resolves on every request,
/// pooled connection or not, and its resolver formats a `host:port` string
/// and asks the system each time.
#[derive(Debug, Default)]
pub(super) struct EndpointResolver {
    names: DefaultResolver,
}

impl Resolver for EndpointResolver {
    fn resolve(&self, uri: &Uri, config: &Config, timeout: NextTimeout) -> Result<ResolvedSocketAddrs, ureq::Error> {
        match uri.authority().and_then(|authority| parse_socket_addr(authority.as_str())) {
            Some(address) => {
                let mut addresses = self.empty();
                addresses.push(address);
                Ok(addresses)
            }
            None => self.names.resolve(uri, config, timeout),
        }
    }
}

/// `text` as `str::parse::<SocketAddr>` reads it. Endpoints are almost
/// always `a.b.c.d:port`, which is read here byte by byte (about 250
/// instructions for `127.0.0.1:28080` under callgrind, against std's 340);
/// std's parser sees only the rest.
fn parse_socket_addr(text: &str) -> Option<SocketAddr> {
    parse_ipv4_socket_addr(text.as_bytes()).or_else(|| text.parse().ok())
}

/// `a.b.c.d:port` under std's rules: octets of one to three digits, no
/// leading zero, at most 255; a port of any number of digits (leading zeros
/// allowed) up to 65535. `None` for anything else, which std then decides.
/// One pass over the bytes, a field's checks made once at its end: measured
/// cheaper than iterator adapters per field or checks on every digit.
fn parse_ipv4_socket_addr(text: &[u8]) -> Option<SocketAddr> {
    let mut octets = [0u8; 4];
    // The octet being read, 4 once past the colon (the port).
    let mut field = 0;
    let mut value = 0u32;
    let mut digits = 0;
    for &byte in text {
        let digit = byte.wrapping_sub(b'0');
        if digit < 10 {
            value = value * 10 + u32::from(digit);
            // No field's value goes past a port's; stopping there keeps a
            // long run of digits from overflowing.
            if value > u32::from(u16::MAX) {
                return None;
            }
            digits += 1;
        } else if b"...:".get(field) == Some(&byte) {
            *octets.get_mut(field)? = octet(value, digits)?;
            field += 1;
            value = 0;
            digits = 0;
        } else {
            return None;
        }
    }
    if field < 4 || digits == 0 {
        return None;
    }
    Some(SocketAddr::from((octets, u16::try_from(value).ok()?)))
}

/// The octet `digits` digits of value `value` spell, if std reads them as
/// one: one to three digits, the value at least the smallest with that many
/// digits (no leading zero), at most 255.
fn octet(value: u32, digits: usize) -> Option<u8> {
    let smallest = [u32::MAX, 0, 10, 100].get(digits)?;
    if value < *smallest {
        return None;
    }
    u8::try_from(value).ok()
}

/// Upstream connections open right now, idle in the pool or in use.
static OPEN_CONNECTIONS: AtomicI64 = AtomicI64::new(0);

/// The number of upstream connections open, idle in the pool or in use; ureq
/// does not expose its pool, so every connection it opens is counted from
/// creation to close.
pub fn open_connections() -> i64 {
    OPEN_CONNECTIONS.load(Ordering::Relaxed)
}

thread_local! {
    /// Whether this thread's last request went out on a pooled connection.
    static LAST_REUSED: Cell<bool> = const { Cell::new(false) };
    /// Set to make this thread's next request open a new connection.
    static NEXT_FRESH: Cell<bool> = const { Cell::new(false) };
    /// Set while this thread sends a request with a body: pooled connections
    /// are probed however recently used, since a body cannot be sent twice.
    static PROBE_POOLED: Cell<bool> = const { Cell::new(false) };
}

/// Whether this thread's next requests probe every pooled connection before
/// using it (for requests with a body, which a dead connection would cost a
/// 502 because they are not retried).
pub fn probe_pooled_connections(probe: bool) {
    PROBE_POOLED.with(|cell| cell.set(probe));
}

/// Whether the last request this thread sent went out on a connection taken
/// from the pool (rather than one opened for it).
pub fn last_connection_was_reused() -> bool {
    LAST_REUSED.with(Cell::get)
}

/// Makes this thread's next request skip the pool: its idle connections to
/// that endpoint are dropped as dead on check-out, and a new one is opened.
pub fn next_connection_fresh() {
    NEXT_FRESH.with(|fresh| fresh.set(true));
}

/// Wraps every new upstream connection in a [`Counted`] one.
#[derive(Debug)]
pub(super) struct CountingConnector;

impl Connector<Box<dyn Transport>> for CountingConnector {
    type Out = Box<dyn Transport>;

    fn connect(&self, _: &ConnectionDetails, chained: Option<Box<dyn Transport>>) -> Result<Option<Self::Out>, ureq::Error> {
        Ok(chained.map(|inner| {
            OPEN_CONNECTIONS.fetch_add(1, Ordering::Relaxed);
            LAST_REUSED.with(|reused| reused.set(false));
            NEXT_FRESH.with(|fresh| fresh.set(false));
            Box::new(Counted { inner, last_active: Instant::now() }) as Box<dyn Transport>
        }))
    }
}

/// A connection that leaves the open count when it is dropped, and knows
/// when it was last known to be open (created, or answered as open on a
/// check-in or check-out).
#[derive(Debug)]
struct Counted {
    inner: Box<dyn Transport>,
    last_active: Instant,
}

impl Drop for Counted {
    fn drop(&mut self) {
        OPEN_CONNECTIONS.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Transport for Counted {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.inner.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.inner.transmit_output(amount, timeout)
    }

    fn maybe_await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.inner.maybe_await_input(timeout)
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.inner.await_input(timeout)
    }

    /// ureq asks on check-in and on check-out from the pool. The answer on
    /// check-out decides this thread's request, so it records the reuse.
    /// A connection is checked in only after a whole response came in on
    /// it, so an open answer marks it active: one clock read per question,
    /// none per read.
    fn is_open(&mut self) -> bool {
        if NEXT_FRESH.with(Cell::get) {
            return false;
        }
        let now = Instant::now();
        let trusted = !PROBE_POOLED.with(Cell::get) && now.saturating_duration_since(self.last_active) < TRUSTED_IDLE;
        let open = trusted || self.inner.is_open();
        if open {
            self.last_active = now;
        }
        LAST_REUSED.with(|reused| reused.set(open));
        open
    }

    fn is_tls(&self) -> bool {
        self.inner.is_tls()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;
    use std::sync::Arc;
    use ureq::unversioned::transport::LazyBuffers;

    /// A connection that counts ureq's liveness probes.
    #[derive(Debug)]
    struct Probed {
        buffers: LazyBuffers,
        probes: Arc<AtomicU32>,
    }

    impl Transport for Probed {
        fn buffers(&mut self) -> &mut dyn Buffers {
            &mut self.buffers
        }
        fn transmit_output(&mut self, _: usize, _: NextTimeout) -> Result<(), ureq::Error> {
            Ok(())
        }
        fn await_input(&mut self, _: NextTimeout) -> Result<bool, ureq::Error> {
            Ok(false)
        }
        fn is_open(&mut self) -> bool {
            self.probes.fetch_add(1, Ordering::Relaxed);
            true
        }
    }

    /// The byte parser reads exactly the IPv4 addresses std reads, and with
    /// std's fallback every string reads as std reads it.
    #[test]
    fn endpoint_addresses_parse_exactly_as_std_parses_them() {
        let cases = [
            "10.1.2.3:8080",
            "0.0.0.0:0",
            "255.255.255.255:65535",
            "127.0.0.1:80",
            "1.2.3.4:080",
            "1.2.3.4:0000000000000080",
            "1.2.3.4:00000000000000000",
            "01.2.3.4:80",
            "1.2.3.00:80",
            "1.2.3.010:80",
            "256.1.1.1:80",
            "1.1.1.999:80",
            "1.1.1.1000:80",
            "1.1.1.0255:80",
            "9.99.199.249:1",
            "1.1.1.1:65536",
            "1.1.1.1:99999999999999999999",
            "1.1.1.1",
            "1.1.1.1:",
            "1.1.1:80",
            "1.1.1.1.1:80",
            "1.1.1.1:80 ",
            " 1.1.1.1:80",
            "1.1.1.1:80x",
            "1.1.1.1:+80",
            "1.1.1.1:-1",
            "+1.1.1.1:80",
            "1..1.1:80",
            ".1.1.1:80",
            "1.1.1.1::80",
            "1.1.1.1:8 0",
            "",
            ":",
            ":80",
            "[::1]:80",
            "[fd00::1]:8080",
            "[::ffff:1.2.3.4]:80",
            "[1.2.3.4]:80",
            "::1:80",
            "backend.default.svc:80",
            "localhost:80",
            "1.2.3.4:٣",
            "١.2.3.4:80",
        ];
        for case in cases {
            let std = case.parse::<SocketAddr>().ok();
            assert_eq!(parse_ipv4_socket_addr(case.as_bytes()), std.filter(SocketAddr::is_ipv4), "{case:?}");
            assert_eq!(parse_socket_addr(case), std, "{case:?}");
        }
    }

    /// Digit runs (leading zeros, out of range, empty) joined by dots, colons
    /// and junk, from a fixed seed: more cases near the edges than a table holds.
    #[test]
    fn random_near_addresses_parse_as_std_parses_them() {
        const JUNK: [&str; 7] = [".", ":", "::", "[", "]", "a", " "];
        let mut rng = crate::test_rng::Xorshift(0x9e37_79b9_7f4a_7c15);
        let mut next = || rng.next();
        let mut accepted = 0;
        for _ in 0..200_000 {
            let mut case = String::new();
            for piece in 0..7 + next() % 4 {
                if piece % 2 == 0 {
                    let digits = [0, 1, 1, 2, 2, 3, 3, 3, 4, 5][(next() % 10) as usize];
                    if digits > 0 {
                        let value = next() % [10, 100, 300, 70_000, 100_000][digits - 1];
                        case.push_str(&format!("{value:0digits$}"));
                    }
                } else if next() % 8 == 0 {
                    case.push_str(JUNK[(next() % JUNK.len() as u64) as usize]);
                } else {
                    case.push_str(if piece == 7 { ":" } else { "." });
                }
            }
            let std = case.parse::<SocketAddr>().ok();
            let fast = parse_ipv4_socket_addr(case.as_bytes());
            assert_eq!(fast, std.filter(SocketAddr::is_ipv4), "{case:?}");
            assert_eq!(parse_socket_addr(&case), std, "{case:?}");
            accepted += usize::from(fast.is_some());
        }
        assert!(accepted > 1_000, "{accepted} cases were addresses");
    }

    #[test]
    fn a_connection_idle_past_the_trusted_time_is_probed_once_then_trusted() {
        let probes = Arc::new(AtomicU32::new(0));
        let inner = Box::new(Probed { buffers: LazyBuffers::new(64, 64), probes: probes.clone() });
        OPEN_CONNECTIONS.fetch_add(1, Ordering::Relaxed);
        let mut connection = Counted { inner, last_active: Instant::now() - TRUSTED_IDLE * 2 };
        assert!(connection.is_open());
        assert_eq!(probes.load(Ordering::Relaxed), 1, "idle past the trusted time: probed");
        assert!(connection.is_open());
        assert!(connection.is_open());
        assert_eq!(probes.load(Ordering::Relaxed), 1, "just answered open: trusted, no probe");
        PROBE_POOLED.with(|probe| probe.set(true));
        assert!(connection.is_open());
        PROBE_POOLED.with(|probe| probe.set(false));
        assert_eq!(probes.load(Ordering::Relaxed), 2, "a request with a body always probes");
    }
}
