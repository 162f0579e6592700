//! A loopback port that stays free while a test needs it to.
//!
//! Binding port 0 and dropping the listener hands back a port from the
//! kernel's ephemeral range, which the kernel then gives to the next socket
//! that binds port 0 or connects out, anywhere on the machine: another test's
//! backend, or a client's source port (even a connect to that very port, which
//! can connect to itself). A test that meant "nobody listens here" or "start
//! the server here later" then finds it taken. Ports below the ephemeral range
//! are never handed out that way.
use std::net::{SocketAddr, TcpListener};

/// A loopback address below the kernel's ephemeral port range with nothing
/// listening on it now; each call in a process starts its search elsewhere.
pub fn unused_port() -> SocketAddr {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let (low, high) = (10_000u16, ephemeral_low.max(10_100));
    let span = high - low;
    // Spread processes (test runs side by side) and calls within one process apart.
    let start = (std::process::id() as u16).wrapping_mul(7919).wrapping_add(NEXT.fetch_add(97, Ordering::Relaxed)) % span;
    (0..span)
        .map(|i| low + (start + i) % span)
        .map(|port| SocketAddr::from(([127, 0, 0, 1], port)))
        .find(|addr| TcpListener::bind(addr).is_ok())
        .expect("a free loopback port below the ephemeral range")
}
